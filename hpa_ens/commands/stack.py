"""``hpa-ens stack``: per-class LightGBM stacking over prediction sets.

::

    hpa-ens stack --labels train.csv --folds folds.csv --pred oof/a oof/b oof/c --out oof/stack

Reads the labels, the shared ``folds.csv`` and the prediction sets (each with OOF rows) through the
contract, fits :class:`hpa_ens.ensemble.Stacker` (dynamic by default: the stack only where it beats the
mean blend, every choice nested in the folds; ``--no-dynamic`` stacks every class) with ``--n-jobs``
(fold, class) models side by side, without keeping the boosters, and writes an ordinary prediction set
plus ``stack_report.json`` and ``stack_report.png`` (per-class and macro OOF F1 at exact thresholds of
the best single set, the mean blend and the stack; which classes and folds use the stack and which the
blend, with the inner-split gains; and the verdict).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..contract import build_meta, check_output_folder, prediction_set_lock
from ..contract.inputs import meta_inputs, read_stage_inputs, write_stage_set
from ..ensemble import EARLY_STOPPING_ROUNDS, FEATURES, RARE_FALLBACKS, Stacker, StackResult
from ..ensemble import plot_stack_report, stack_summary
from ..io import atomic_write_json
from ..validation import ParameterError
from ._cli import (add_deprecated_pred_alias, add_n_jobs_argument, add_task_argument, console, parser, progress,
                   prog, warn)

NAME = "stack"


def prefer_passive_omp_wait() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` for LightGBM's OpenMP threads, unless the user set a policy.

    LightGBM's OpenMP workers spin while they wait. On a shared machine (more runnable threads than
    cores) that collapses: measured on a 2-core box under load 18, a small stack took 174 s with 2
    threads vs 26 s with 1; with passive waiting, 8 s with 2 threads vs 16 s with 1. libgomp reads this
    once, when LightGBM loads it, so it is set before lightgbm is imported; a user's own setting wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Per-class LightGBM stacking over prediction sets.")
    ap.add_argument("--labels", required=True, help="train labels Id,Target")
    ap.add_argument("--folds", required=True, help="the shared folds.csv (Id,fold) the base models used")
    ap.add_argument("--pred", nargs="+", help="prediction-set folders (oof.csv, test.csv, meta.json), each with "
                    "OOF rows (required)")
    add_deprecated_pred_alias(ap)
    ap.add_argument("--out", required=True, help="output prediction-set folder")
    add_task_argument(ap)
    add_n_jobs_argument(ap)
    ap.add_argument("--threads", dest="n_jobs", type=int, help=argparse.SUPPRESS)  # old name of --n-jobs
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", choices=FEATURES, default="probs")
    ap.add_argument("--dynamic", action="store_true", default=True,
                    help="the default: keep the calibrated mean blend per (fold, class) where the stack does not beat "
                         "it on the fold's inner split, and in every class of a fold where the stack does not beat it "
                         "there as a whole (each choice reads rows of the other folds only)")
    ap.add_argument("--no-dynamic", "--always-stack", dest="dynamic", action="store_false",
                    help="stack every class with enough positives, whatever the inner split says (the old default)")
    ap.add_argument("--rare", choices=RARE_FALLBACKS, default="mean", help="fallback for classes with few positives")
    ap.add_argument("--min-positives", type=int, default=20,
                    help="positives a class needs in a fold's training rows to get a LightGBM model")
    ap.add_argument("--n-rounds", type=int, default=400, help="boosting rounds at most (early stopping decides)")
    ap.add_argument("--early-stopping", type=int, default=EARLY_STOPPING_ROUNDS,
                    help="patience in rounds on the inner split")
    ap.add_argument("--inner-fraction", type=float, default=0.2, help="share of training rows for early stopping")
    ap.add_argument("--learning-rate", type=float, default=0.1)
    ap.add_argument("--num-leaves", type=int, default=15)
    ap.add_argument("--name", default=None, help="name recorded in meta.json (default: the --out folder's name)")
    return ap


def stacker_from_args(args: argparse.Namespace) -> Stacker:
    """The command's Stacker: the flags' values, and no boosters kept (memory flat in the number of classes)."""
    return Stacker(features=args.features, dynamic=args.dynamic, rare=args.rare, min_positives=args.min_positives,
                   n_rounds=args.n_rounds, early_stopping_rounds=args.early_stopping,
                   inner_fraction=args.inner_fraction, learning_rate=args.learning_rate, num_leaves=args.num_leaves,
                   n_jobs=args.n_jobs, seed=args.seed, keep_models=False)


def _meta(args, argv, inputs, result: StackResult, report: dict) -> dict:
    params = {"features": args.features, "dynamic": args.dynamic, "rare": args.rare,
              "min_positives": args.min_positives, "n_rounds": args.n_rounds, "early_stopping": args.early_stopping,
              "inner_fraction": args.inner_fraction, "seed": args.seed, "lightgbm": result.params}
    folds_kept = {str(f["fold"]): f["kept"] for f in report["folds"]}
    trees = result.n_trees[result.n_trees > 0]
    return build_meta("hpa_ens.stack", meta_inputs(inputs), folds=args.folds, params=params,
                      argv=argv, name=args.name or Path(args.out).name, task=inputs.task.to_meta(),
                      oof_macro_f1_exact_thresholds=report["macro"], verdict=report["verdict"],
                      set_fallback=result.fallback, fallback_classes=report["fallback_classes"],
                      class_uses=[c["uses"] for c in report["classes"]], folds_kept=folds_kept,
                      mean_trees=float(trees.mean()) if len(trees) else 0.0)


def report_table(report: dict, class_names):
    """The per-class table of a :func:`~hpa_ens.ensemble.stack_summary`, as a rich Table."""
    from rich.table import Table

    names = list(report["macro"])
    support = report["support"]
    table = Table(title="OOF F1 at each one's exact per-class thresholds", show_footer=True)
    table.add_column("id", justify="right", footer="")
    table.add_column("class", footer="macro")
    table.add_column("support", justify="right", footer=str(int(np.sum(support))))
    for name in names:
        table.add_column(name, justify="right", footer=f"{report['macro'][name]:.4f}")
    table.add_column("uses", footer="")
    table.add_column("inner gain", justify="right", footer="")
    for c in range(len(support)):
        row = [report["per_class"][n][c] for n in names]
        best = int(np.argmax(row))
        cells = [f"[bold]{v:.4f}[/bold]" if i == best else f"{v:.4f}" for i, v in enumerate(row)]
        record = report["classes"][c]
        gain = record["mean_inner_gain"]
        table.add_row(str(c), class_names[c] if c < len(class_names) else str(c), str(int(support[c])), *cells,
                      record["uses"], "" if gain is None else f"{gain:+.4f}")
    return table


def fold_lines(report: dict) -> list[str]:
    """One line per fold: the set-level rule's gain on its inner split and what the fold kept."""
    lines = []
    for fold in report["folds"]:
        gain = "not measured" if fold["set_gain"] is None else f"macro F1 gain {fold['set_gain']:+.4f}"
        lines.append(f"fold {fold['fold']}: {fold['kept']} ({gain} on its inner split; "
                     f"{fold['classes_stacked']} classes stacked)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    prefer_passive_omp_wait()
    args = build_parser().parse_args(argv)
    if not args.pred:
        raise ParameterError(f"The '--pred' parameter of {prog(NAME)} is required: one or more prediction-set "
                             f"folders. Got none instead.")
    stacker = stacker_from_args(args)
    stacker.lightgbm_params()  # parameter errors before any file is read or written
    check_output_folder(args.out)
    inputs = read_stage_inputs(args.pred, args.labels, args.folds, args.task, needs_oof="the stack")
    for message in inputs.warnings:
        warn(message)
    with progress() as bar:
        job = bar.add_task("stacking (fold x class)", total=len(np.unique(inputs.folds)) * inputs.task.n_classes)
        result = stacker.fit(inputs.oof_list, inputs.Y, inputs.folds, X_test=inputs.test_list,
                             progress=lambda: bar.advance(job)).result_
    report = stack_summary(inputs.Y, result, inputs.oof_list, inputs.names)
    meta = _meta(args, list(argv) if argv is not None else None, inputs, result, report)
    with prediction_set_lock(args.out):  # the set and its report, from one run (another waits)
        out = write_stage_set(args.out, inputs, result.oof, result.test, meta)
        atomic_write_json(out / "stack_report.json", report)
        plot_stack_report(report, out / "stack_report.png")
    console.print(report_table(report, inputs.task.class_names))
    console.print("inner gain: the stack's F1 minus the blend's on the fold's inner split (rows of the other folds), "
                  "mean over folds")
    for line in fold_lines(report):
        console.print(line)
    if report["fallback_classes"]:
        console.print("fallback used for classes " + ", ".join(f"{c} ({m})" for c, m in report["fallback_classes"].items()))
    console.print(f"[bold]{report['verdict']}[/bold]  (report: {out / 'stack_report.json'})")
    return 0
