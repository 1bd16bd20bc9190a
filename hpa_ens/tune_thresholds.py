"""``python -m hpa_ens.tune_thresholds``: per-class thresholds from OOF predictions, written as JSON.

Methods (see docs/thresholds.md):

- ``exact``: per class the OOF-F1-best cut over every distinct score (optionally robust for rare classes);
- ``match``: per class the cut whose predicted share on the test predictions meets a target share; with
  ``--tolerance T`` the OOF-F1-best cut whose test share lies within ±T (relative) of the target;
- ``optuna``: TPE over what couples the classes (exact→matched mix, global logit offset, min/max labels,
  optional small per-class offsets), constrained to a test distribution near the target with ``--tolerance``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from . import thresholds as T
from .cli import console, entry, parser
from .io import atomic_write_json, sha256_file
from .classes import CLASS_NAMES, N_CLASSES
from .contract import read_prediction_set
from .labels import read_labels, read_target_distribution
from .report import save_figure
from ._validation import ParameterError

PROG = "python -m hpa_ens.tune_thresholds"


def build_parser():
    p = parser(PROG, __doc__.splitlines()[0])
    p.add_argument("--labels", required=True, help="train labels, Id,Target")
    p.add_argument("--pred", required=True, help="prediction-set folder (oof.csv, test.csv, meta.json)")
    p.add_argument("--out", required=True, help="thresholds JSON to write")
    p.add_argument("--method", choices=["exact", "match", "optuna"], default="exact")
    p.add_argument("--target-dist", default="train",
                   help="target class shares: 'train' (shares of --labels) or a CSV with one row per class")
    p.add_argument("--target-column", default=None, help="column of --target-dist (default: lb, else share)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="match: relative band |test share - target| <= T*target; optuna: feasible when "
                        "sum|test share - target| / sum(target) <= T")
    p.add_argument("--min-labels", type=int, default=1, help="labels forced per image (optuna: searched in 0..this)")
    p.add_argument("--max-labels", type=int, default=5,
                   help="cap on labels per image, 0 = no cap (optuna: searched in max(1,min)..this)")
    p.add_argument("--robust", choices=["none", "bootstrap", "shrink"], default="none",
                   help="robust thresholds for rare classes (fewer than --rare-max positives)")
    p.add_argument("--rare-max", type=int, default=100, help="a class with fewer positives is rare")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap resamples (--robust bootstrap)")
    p.add_argument("--shrink-strength", type=float, default=50.0,
                   help="positives at which exact cut and F1*/2 weigh equally (--robust shrink)")
    p.add_argument("--storage", default=None, help="optuna: JournalStorage file shared by several processes")
    p.add_argument("--study-name", default=None, help="optuna: study name (default: derived from the inputs)")
    p.add_argument("--trials", type=int, default=100, help="optuna: trials run by this process")
    p.add_argument("--offset-range", type=float, default=1.0, help="optuna: global logit offset in ±this")
    p.add_argument("--class-offsets", type=float, default=0.0,
                   help="optuna: per-class logit offsets in ±this around each cut (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plots", default=None, help="folder for PNG plots (F1 curves, shares)")
    return p


def _check_args(args) -> None:
    def bad(name, expected, value):
        raise ParameterError(f"The '--{name}' parameter of {PROG} must be {expected}. Got {value!r} instead.")

    if not 0 <= args.min_labels <= N_CLASSES:
        bad("min-labels", f"an int in [0, {N_CLASSES}]", args.min_labels)
    if args.max_labels < 0 or (args.max_labels and args.max_labels < max(1, args.min_labels)):
        bad("max-labels", "0 (no cap) or an int >= max(1, --min-labels)", args.max_labels)
    if args.tolerance is not None and not (np.isfinite(args.tolerance) and args.tolerance >= 0):
        bad("tolerance", "a float >= 0", args.tolerance)
    if args.trials < 1:
        bad("trials", "an int >= 1", args.trials)
    if args.rare_max < 0:
        bad("rare-max", "an int >= 0", args.rare_max)
    if args.n_boot < 1:
        bad("n-boot", "an int >= 1", args.n_boot)
    if args.class_offsets < 0 or args.offset_range < 0:
        bad("class-offsets/--offset-range", "floats >= 0", (args.class_offsets, args.offset_range))


def input_hashes(labels: Path, pred: Path, target_dist: str) -> dict:
    files = {}
    for name in ("oof.csv", "oof.parquet", "test.csv", "test.parquet", "meta.json"):
        if (pred / name).exists():
            files[name] = sha256_file(pred / name)
    out = {"labels": sha256_file(labels), "pred": files}
    if target_dist != "train":
        out["target_dist"] = sha256_file(target_dist)
    return out


def _study_name(hashes: dict, args) -> str:
    # Processes sharing a storage must land in one study: the name depends on the inputs and the search
    # space, never on the seed (each process should use its own seed).
    key = {"inputs": hashes, "target_column": args.target_column, "tolerance": args.tolerance,
           "min": args.min_labels, "max": args.max_labels, "robust": args.robust, "rare_max": args.rare_max,
           "n_boot": args.n_boot, "strength": args.shrink_strength, "offset_range": args.offset_range,
           "class_offsets": args.class_offsets}
    return "thresholds-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def journal_storage(path: str):
    """An Optuna JournalStorage on a file: safe for several processes appending to one study."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _floats(values) -> list:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def save_plots(folder: Path, curves: T.CutCurves, thresholds, f1_rule, test_share, target_share, title: str) -> list[str]:
    """``f1_curves.png`` (F1 vs threshold per class, chosen cut marked) and ``shares.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(4, 7, figsize=(21, 11), sharey=True)
    for k, ax in enumerate(axes.ravel()):
        ok = np.flatnonzero(curves.f1[k] >= 0)
        ok = ok[curves.thresholds[k, ok] < T.NEVER]
        if len(ok) > 2000:
            # Plotting every one of 31k cuts adds nothing visible; keep cuts evenly spread both in
            # rank and in threshold (thresholds fall as the cut index rises).
            by_rank = ok[np.linspace(0, len(ok) - 1, 1000).astype(int)]
            by_value = ok[np.minimum(np.searchsorted(-curves.thresholds[k, ok], -np.linspace(1, 0, 1000)), len(ok) - 1)]
            ok = np.union1d(by_rank, by_value)
        ax.plot(curves.thresholds[k, ok], curves.f1[k, ok], lw=1)
        thr = float(thresholds[k])
        ax.axvline(min(thr, 1.0), color="red", lw=1, ls="--")
        exact_f1 = float(curves.f1_at(np.asarray(thresholds))[k])
        ax.set_title(f"{k} {CLASS_NAMES[k][:18]} (n={int(curves.n_pos[k])})\nF1 {exact_f1:.3f} at {thr:.3f}; "
                     f"rule {float(f1_rule[k]):.3f}", fontsize=8)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"OOF F1 vs threshold per class ({title}); red: chosen cut")
    fig.tight_layout()
    paths = []
    for name, figure in (("f1_curves.png", fig), ("shares.png", _shares_figure(plt, test_share, target_share, title))):
        paths.append(str(save_figure(figure, folder / name, dpi=80)))
    return paths


def _shares_figure(plt, test_share, target_share, title):
    fig, ax = plt.subplots(figsize=(14, 5))
    x = np.arange(N_CLASSES)
    ax.bar(x - 0.2, target_share, width=0.4, label="target share")
    ax.bar(x + 0.2, test_share, width=0.4, label="predicted test share")
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{k} {CLASS_NAMES[k][:14]}" for k in x], rotation=70, fontsize=7)
    ax.set_ylabel("share of images (log)")
    ax.set_title(f"Predicted test share vs target per class ({title})")
    ax.legend()
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    labels_path, pred_path = Path(args.labels), Path(args.pred)
    labels = read_labels(labels_path)
    pset = read_prediction_set(pred_path, train_ids=labels.index, test_ids=None)
    y_true = labels.to_numpy(dtype=np.uint8)
    oof = pset.oof.to_numpy(dtype=np.float64)
    test = pset.test.to_numpy(dtype=np.float64)
    target = read_target_distribution(args.target_dist, column=args.target_column, labels=labels)
    hashes = input_hashes(labels_path, pred_path, args.target_dist)
    max_labels = args.max_labels or None
    warnings: list[str] = []

    curves = T.f1_curves(oof, y_true)
    base, rare = T.robust_thresholds(oof, y_true, args.robust, args.rare_max, args.n_boot, args.shrink_strength,
                                     args.seed)
    matched = T.match_thresholds(test, target)
    for k in np.flatnonzero(curves.n_pos == 0):
        # Nothing to learn from OOF: never predict, unless the target says the class does occur.
        base[k] = matched[k] if target[k] > 0 else T.NEVER
        warnings.append(f"class {k} ({CLASS_NAMES[k]}) has no positives in {labels_path}; threshold "
                        f"{'matched to target share %.4g' % target[k] if target[k] > 0 else 'set to never predict (1.0)'}.")

    params: dict = {"target_dist": args.target_dist, "target_column": args.target_column,
                    "tolerance": args.tolerance, "robust": args.robust}
    if args.robust != "none":
        params |= {"rare_max": args.rare_max, "rare_classes": [int(k) for k in np.flatnonzero(rare)]}
        params |= {"n_boot": args.n_boot, "seed": args.seed} if args.robust == "bootstrap" else {
            "shrink_strength": args.shrink_strength}
    min_labels = args.min_labels
    if args.method == "exact":
        thresholds = base
    elif args.method == "match":
        if args.tolerance is None:
            thresholds = matched
        else:
            thresholds = T.match_thresholds_within(curves, test, target, args.tolerance)
        no_pos = curves.n_pos == 0
        thresholds[no_pos] = base[no_pos]
    else:
        storage = journal_storage(args.storage) if args.storage else None
        study_name = args.study_name or _study_name(hashes, args)
        console.print(f"optuna: {args.trials} trials in study {study_name}"
                      + (f" ({args.storage})" if args.storage else ""))
        result = T.tune_coupled(
            oof, y_true, test, base, matched, target, n_trials=args.trials, seed=args.seed,
            tolerance=args.tolerance, min_labels_range=(0, args.min_labels),
            max_labels_range=(max(1, args.min_labels), max_labels or N_CLASSES),
            offset_range=args.offset_range, class_offset_range=args.class_offsets, storage=storage,
            study_name=study_name, show_progress=os.environ.get("HPA_ENS_NO_PROGRESS") != "1")
        thresholds = result["thresholds"]
        min_labels, max_labels = result["min_labels"], result["max_labels"]
        params |= {"trials": args.trials, "seed": args.seed, "storage": args.storage, "study_name": study_name,
                   "offset_range": args.offset_range, "class_offsets": args.class_offsets,
                   "best_params": result["params"], "best_trial": result["best_trial"],
                   "n_trials_total": result["n_trials_total"], "feasible": result["feasible"],
                   "distribution_gap": result["distribution_gap"]}
        if not result["feasible"] and args.tolerance is not None:
            warnings.append(f"no trial met the distribution constraint (gap <= {args.tolerance}); "
                            "the best infeasible trial was kept.")

    scored = T.evaluate_thresholds(oof, y_true, thresholds, min_labels, max_labels, test)
    out = {
        "thresholds": _floats(thresholds),
        "method": args.method,
        "min_labels": int(min_labels),
        "max_labels": None if max_labels is None else int(max_labels),
        "params": params,
        "oof_macro_f1": scored["macro_f1"],
        "oof_macro_f1_no_rule": float(curves.f1_at(thresholds).mean()),
        "oof_per_class_f1": _floats(scored["per_class_f1"]),
        "n_positives": [int(v) for v in curves.n_pos],
        "test_share": _floats(scored["test_share"]),
        "target_share": _floats(target),
        "test_distribution_gap": T.distribution_gap(scored["test_share"], target),
        "test_labels_per_image": scored["test_labels_per_image"],
        "class_names": list(CLASS_NAMES),
        "n_oof": int(len(oof)),
        "n_test": int(len(test)),
        "inputs": hashes,
        "warnings": warnings,
    }
    atomic_write_json(args.out, out)
    if args.plots:
        out["plots"] = save_plots(Path(args.plots), curves, thresholds, scored["per_class_f1"], scored["test_share"],
                                  target, args.method)
    for message in warnings:
        console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)
    console.print(f"{args.method}: OOF macro F1 {out['oof_macro_f1']:.4f} (min {min_labels}, max {max_labels}); "
                  f"test distribution gap {out['test_distribution_gap']:.3f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    entry(main)
