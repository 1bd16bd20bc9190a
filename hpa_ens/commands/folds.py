"""``hpa-ens folds``: multilabel-stratified, duplicate-aware cross-validation folds.

Reads the labels (and the external Ids of ``--extra-labels``), splits with :func:`hpa_ens.folds.build_folds`
(duplicate groups of ``--groups`` kept in one fold), writes ``folds.csv``, ``folds.report.json`` (+ PNG)
and ``folds.extra.csv`` through :func:`hpa_ens.folds.write_outputs`, and prints the split-quality table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..contract.extra_folds import extra_folds_path
from ..folds import STRATEGIES, build_folds, report_table, write_outputs
from ..labels import read_labels
from ..task import load_task
from ._cli import add_task_argument, console, parser

NAME = "folds"


def build_parser() -> argparse.ArgumentParser:
    p = parser(NAME, "Multilabel-stratified, duplicate-aware cross-validation folds.")
    p.add_argument("--labels", required=True, help="train.csv (Id,Target)")
    p.add_argument("--out", required=True, help="folds.csv to write (Id,fold); the report goes beside it")
    p.add_argument("--n-folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--groups", nargs="+", action="extend", default=[], metavar="FILE",
                   help="duplicate files (ID,Group Id | Id1,Id2 | Id_a,Id_b | Extra,Test); repeatable")
    p.add_argument("--extra-labels", default=None, metavar="FILE",
                   help="Id,Target of external (HPAv18) images: each gets the fold of the train images it duplicates "
                        "(per --groups) in <out stem>.extra.csv, -1 when none")
    p.add_argument("--extra-out", default=None, metavar="FILE", help="where to write the external folds "
                                                                     "(default: <out stem>.extra.csv)")
    p.add_argument("--strategy", choices=STRATEGIES, default="iterative")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG of the split quality")
    add_task_argument(p)
    return p


def _summary_lines(result: dict) -> list[str]:
    r = result["report"]
    lines = []
    if r["groups"]:
        lines.append(f"duplicate groups: {r['n_duplicate_groups']} covering {r['n_duplicate_ids']} train Ids "
                     f"(from {len(r['groups'])} file(s))")
    if result["extra"] is not None:
        lines.append(f"external Ids: {r['n_extra']}, {r['n_extra_tied']} tied to a train fold by a duplicate "
                     f"(the model of that fold does not train on them)")
    n = len(result["folds"])
    lines.append(f"{n:,} rows, {r['n_folds']} folds, {result['seconds']:.2f} s")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    task = load_task(args.task)
    labels = read_labels(args.labels, task=task)
    extra_ids = read_labels(args.extra_labels, task=task).index.tolist() if args.extra_labels else []
    result = build_folds(labels, args.n_folds, args.seed, args.strategy, args.groups, extra_ids)
    out = Path(args.out)
    extra_out = Path(args.extra_out) if args.extra_out else extra_folds_path(out)
    written = write_outputs(result, out, args.labels, task, not args.no_plot, extra_out)
    console.print(report_table(result["comparison"], args.strategy, task.class_names))
    for line in _summary_lines(result):
        console.print(line)
    console.print("wrote " + ", ".join(map(str, written)))
    return 0
