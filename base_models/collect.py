"""Assemble the fold outputs under ``OUT/NAME/fold*/`` into the prediction set ``OUT/NAME/``.

:func:`collect` (the command: ``python -m base_models.collect NAME [--out oof] [--folds FILE]``, also
``hpa-ens collect``; :mod:`base_models.commands.collect`) writes ``oof.csv`` (every train Id
exactly once, each predicted by the fold model that held it out, in the folds file's order),
``test.csv`` (mean of the folds' test probabilities) and ``meta.json`` (with the task and how each
fold chose its epoch). It refuses a missing or unfinished fold, folds trained with different configs
or folds files, a folds file that changed or is gone, and OOF Ids that are not exactly the fold's.
No torch: a set is collected wherever its fold outputs are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from hpa_ens.validation import ContractError
from hpa_ens.contract import build_meta, read_fold_metrics, read_folds, read_probs, write_prediction_set
from hpa_ens.io import sha256_file
from hpa_ens.labels import read_labels
from hpa_ens.metrics import macro_f1
from hpa_ens.task import load_task
from hpa_ens.thresholds import exact_thresholds


def read_folds_metrics(folder: Path, folds_path: Path | None) -> tuple[list[dict], Path]:
    """Every fold's metrics, checked against each other and against the folds file (which must exist)."""
    if not (folder / "fold0").is_dir():
        raise ContractError(f"{folder}: no fold outputs (expected {folder}/fold0/metrics.json ...).")
    first = read_fold_metrics(folder / "fold0", fold=0)
    folds_path = Path(folds_path) if folds_path else Path(first["folds_path"])
    if not folds_path.is_file():
        raise ContractError(f"{folds_path}: the folds file the folds were trained on is gone; pass --folds FILE "
                            f"(collect never falls back to file order).")
    if sha256_file(folds_path) != first["folds_sha256"]:
        raise ContractError(f"{folds_path}: changed since fold 0 was trained (sha256 differs); retrain the folds.")
    all_metrics = [first] + [read_fold_metrics(folder / f"fold{k}", fold=k) for k in range(1, first["n_folds"])]
    for m in all_metrics[1:]:
        where = f"{folder}/fold{m['fold']}"
        if m["folds_sha256"] != first["folds_sha256"] or m["n_folds"] != first["n_folds"]:
            raise ContractError(f"{where}: trained on a different folds file than fold 0 "
                                f"(sha256 {m['folds_sha256'][:12]} vs {first['folds_sha256'][:12]}).")
        if m["config_sha256"] != first["config_sha256"]:
            raise ContractError(f"{where}: trained with a different config than fold 0; retrain the fold "
                                f"(python -m base_models.train ... --fold {m['fold']}).")
    return all_metrics, folds_path


def assemble(folder: Path, folds: pd.Series, n_folds: int, task) -> tuple[pd.DataFrame, pd.DataFrame]:
    """OOF rows in the folds file's Id order (each from its own fold) and the mean of the folds' test rows."""
    parts = []
    for k in range(n_folds):
        part = read_probs(folder / f"fold{k}" / "oof.csv", task=task)
        if set(part.index) != set(folds.index[folds.to_numpy() == k]) or part.index.duplicated().any():
            raise ContractError(f"{folder}/fold{k}/oof.csv: its Ids are not fold {k} of the folds file.")
        parts.append(part)
    oof = pd.concat(parts).loc[folds.index]
    tests = [read_probs(folder / f"fold{k}" / "test.csv", task=task) for k in range(n_folds)]
    test_ids = tests[0].index
    for k, t in enumerate(tests):
        if len(t) != len(test_ids) or set(t.index) != set(test_ids):
            raise ContractError(f"{folder}/fold{k}/test.csv: its test Ids differ from fold 0's.")
    test = sum(t.loc[test_ids] for t in tests) / n_folds
    if oof.shape[1] != task.n_classes:
        raise ContractError(f"{folder}: the folds predict {oof.shape[1]} classes, the task {task.name!r} has "
                            f"{task.n_classes}.")
    return oof, test


def collect(name: str, out_root="oof", folds_path=None, argv: Sequence[str] | None = None) -> dict:
    """Write the prediction set of config ``name``; returns a summary (OOF macro F1 at 0.5 and per-class best)."""
    import yaml

    folder = Path(out_root) / name
    all_metrics, folds_path = read_folds_metrics(folder, folds_path)
    first, n_folds = all_metrics[0], all_metrics[0]["n_folds"]
    config = yaml.safe_load((folder / "fold0" / "config.yaml").read_text(encoding="utf-8")) \
        if (folder / "fold0" / "config.yaml").exists() else {}
    task = load_task(config.get("task"))
    folds = read_folds(folds_path)
    oof, test = assemble(folder, folds, n_folds, task)
    labels_path = Path(first["data_dir"]) / "train.csv"
    inputs = {"train.csv": labels_path} if labels_path.exists() else {}
    meta = build_meta("base_models.collect", inputs=inputs, folds=folds_path, params=config, argv=argv, name=name,
                      epoch_selection=sorted({m["epoch_selection"] for m in all_metrics}),
                      folds_detail=[{"fold": m["fold"], "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
                                     "epoch_selection": m["epoch_selection"], "fold_macro_f1": m["fold_macro_f1"],
                                     "timing": m["timing"]} for m in all_metrics])
    write_prediction_set(folder, oof, test, meta, task=task)
    summary = {"name": name, "n_folds": n_folds, "n_oof": len(oof), "n_test": len(test),
               "train_seconds": sum(m["timing"]["total_seconds"] for m in all_metrics)}
    if labels_path.exists():
        truth = read_labels(labels_path, task=task).loc[oof.index].to_numpy()
        summary["oof_macro_f1_at_0.5"] = macro_f1(truth, oof.to_numpy() > 0.5)
        summary["oof_macro_f1_best_thresholds"] = float(np.mean(exact_thresholds(truth, oof.to_numpy())[1]))
    return summary


if __name__ == "__main__":  # python -m base_models.collect: the command lives in base_models.commands.collect
    from hpa_ens.commands import launch

    launch("collect", __spec__.name)
