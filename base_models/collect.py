"""Assemble the fold outputs under ``OUT/NAME/fold*/`` into the prediction set ``OUT/NAME/``.

``python -m base_models.collect NAME [--out oof]`` writes ``oof.csv`` (every train Id exactly once,
each predicted by the fold model that held it out), ``test.csv`` (mean of the folds' test
probabilities) and ``meta.json``. It refuses if a fold is missing or unfinished, if folds were trained
on different folds files, or if the folds file changed since.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from hpa_ens import cli
from hpa_ens.io import sha256_file
from hpa_ens.contract import build_meta, read_folds, read_probs, write_prediction_set
from hpa_ens.labels import read_labels
from hpa_ens.metrics import macro_f1
from hpa_ens._validation import ContractError  # noqa: E402


def _read_fold_metrics(folder: Path, fold: int) -> dict:
    path = folder / f"fold{fold}" / "metrics.json"
    if not path.exists():
        raise ContractError(f"{path}: fold {fold} is missing or unfinished; train it with "
                         f"python -m base_models.train ... --fold {fold} [--resume].")
    metrics = json.loads(path.read_text(encoding="utf-8"))
    if metrics.get("status") != "complete":
        raise ContractError(f"{path}: fold {fold} did not complete. Got status {metrics.get('status')!r} instead.")
    for fname, digest in metrics.get("outputs", {}).items():
        actual = path.parent / fname
        if not actual.exists() or sha256_file(actual) != digest:
            raise ContractError(f"{actual}: missing or changed since {path} recorded it; retrain the fold.")
    return metrics


def collect(name: str, out_root="oof", folds_path=None, argv: Sequence[str] | None = None) -> dict:
    """Write the prediction set of config ``name``; returns a summary (OOF macro F1 at 0.5 and per-class best)."""
    from .infer import best_threshold_f1

    folder = Path(out_root) / name
    if not (folder / "fold0").is_dir():
        raise ContractError(f"{folder}: no fold outputs (expected {folder}/fold0/metrics.json ...).")
    first = _read_fold_metrics(folder, 0)
    folds_path = Path(folds_path) if folds_path else Path(first["folds_path"])
    n_folds = int(first["n_folds"])
    if folds_path.exists():
        current = sha256_file(folds_path)
        if current != first["folds_sha256"]:
            raise ContractError(f"{folds_path}: changed since fold 0 was trained (sha256 differs); retrain the folds.")
    all_metrics = [first] + [_read_fold_metrics(folder, k) for k in range(1, n_folds)]
    for m in all_metrics:
        if m["folds_sha256"] != first["folds_sha256"]:
            raise ContractError(f"{folder}/fold{m['fold']}: trained on a different folds file than fold 0 "
                             f"(sha256 {m['folds_sha256'][:12]} vs {first['folds_sha256'][:12]}).")
        if m["n_folds"] != n_folds or m["fold"] not in range(n_folds):
            raise ContractError(f"{folder}/fold{m['fold']}: records {m['n_folds']} folds, fold 0 records {n_folds}.")
    if len({m["config_sha256"] for m in all_metrics}) > 1:
        cli.console.print(f"[yellow]warning:[/yellow] {folder}: folds were trained with different configs.")

    oof_parts = [read_probs(folder / f"fold{k}" / "oof.csv") for k in range(n_folds)]
    oof = pd.concat(oof_parts)
    data_dir = Path(first["data_dir"])
    labels_path = data_dir / "train.csv"
    if folds_path.exists():
        folds = read_folds(folds_path)
        train_ids = folds.index.tolist()
        for k, part in enumerate(oof_parts):
            expected = set(folds.index[folds.to_numpy() == k])
            if set(part.index) != expected:
                raise ContractError(f"{folder}/fold{k}/oof.csv: its Ids are not fold {k} of {folds_path}.")
    else:
        train_ids = list(dict.fromkeys(oof.index))
    if oof.index.duplicated().any():
        dup = oof.index[oof.index.duplicated()][0]
        raise ContractError(f"{folder}: Id {dup!r} appears in more than one fold's oof.csv.")
    oof = oof.loc[train_ids] if set(oof.index) == set(train_ids) else oof
    tests = [read_probs(folder / f"fold{k}" / "test.csv") for k in range(n_folds)]
    test_ids = tests[0].index.tolist()
    test = sum(t.loc[test_ids] if set(t.index) == set(test_ids) else _mismatch(folder, k)
               for k, t in enumerate(tests)) / n_folds
    inputs = {}
    if labels_path.exists():
        inputs["train.csv"] = labels_path
    meta = build_meta("base_models.collect", inputs=inputs, folds=folds_path if folds_path.exists() else None,
                      params={k: v for k, v in _resolved_config(folder).items()}, argv=argv, name=name,
                      folds_detail=[{"fold": m["fold"], "best_epoch": m["best_epoch"],
                                     "fold_macro_f1": m["fold_macro_f1"], "timing": m["timing"]}
                                    for m in all_metrics])
    if meta["folds_sha256"] is None:
        meta["folds_sha256"] = first["folds_sha256"]
    write_prediction_set(folder, oof, test, meta)
    summary = {"name": name, "n_folds": n_folds, "n_oof": len(oof), "n_test": len(test),
               "train_seconds": sum(m["timing"]["total_seconds"] for m in all_metrics)}
    if labels_path.exists():
        truth = read_labels(labels_path).loc[oof.index].to_numpy()
        summary["oof_macro_f1_at_0.5"] = macro_f1(truth, oof.to_numpy() > 0.5)
        summary["oof_macro_f1_best_thresholds"] = best_threshold_f1(truth, oof.to_numpy())[0]
    return summary


def _mismatch(folder: Path, k: int):
    raise ContractError(f"{folder}/fold{k}/test.csv: its test Ids differ from fold 0's.")


def _resolved_config(folder: Path) -> dict:
    import yaml

    path = folder / "fold0" / "config.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}


def main(argv: Sequence[str] | None = None) -> int:
    ap = cli.parser("python -m base_models.collect", "Assemble the fold outputs of one config into "
                     "OUT/NAME/{oof.csv,test.csv,meta.json}.")
    ap.add_argument("name", help="the config name (folder under --out)")
    ap.add_argument("--out", default="oof", help="OOF root")
    ap.add_argument("--folds", default=None, help="folds file to check against (default: the one fold 0 recorded)")
    args = ap.parse_args(argv)
    summary = collect(args.name, args.out, args.folds, argv=argv)
    f1 = summary.get("oof_macro_f1_best_thresholds")
    cli.console.print(f"{args.name}: {summary['n_oof']} OOF rows, {summary['n_test']} test rows"
                       + (f", OOF macro F1 {f1:.4f} (per-class best thresholds)" if f1 is not None else ""))
    return 0


if __name__ == "__main__":
    cli.entry(main)
