"""``hpa-ens report``: one HTML page about your prediction sets (also ``python -m hpa_ens.report``).

::

    hpa-ens report --pred oof/a oof/b oof/c --labels train.csv --folds folds.csv --out reports/sets
    hpa-ens report --pred oof/* --labels train.csv --folds folds.csv --stack oof/stack --truth test_labels.csv \\
        --curves b --out reports/sets

Writes ``index.html`` with its PNGs and ``report.json`` (the numbers) into ``--out``: a leaderboard (OOF macro
F1 at exact cuts tuned on the other folds of ``--folds``, with a bootstrap interval, the rows, where each set
came from; test macro F1 with ``--truth``), the correlation of the sets' probabilities and errors, per-class F1,
the mean blend (computed) and a ``--stack`` set beside the best set, and the threshold curves of ``--curves``
(default: the best set). The stack is read, not fitted: make it with ``hpa-ens stack``. Every set needs OOF rows;
a test-only set is refused (docs/report.md).
"""

from __future__ import annotations

import argparse
import warnings as _warnings
from pathlib import Path
from typing import Sequence

from ..contract import align
from ..contract.inputs import read_stage_inputs
from ..io import sha256_file
from ..set_report import MEAN_BLEND, build_set_report, write_set_report
from ..task import load_task
from ..validation import ContractError, ParameterError
from ._cli import add_task_argument, console, parser, progress, progress_callback, prog, say, warn

NAME = "report"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "One HTML page about your prediction sets: leaderboard, correlation, per-class F1, blend and "
                      "stack, threshold curves.")
    ap.add_argument("--pred", nargs="+", required=True,
                    help="prediction-set folders (oof.csv, test.csv, meta.json), each with OOF rows")
    ap.add_argument("--labels", required=True, help="train labels, Id,Target")
    ap.add_argument("--folds", required=True, help="folds.csv (Id,fold): each fold is scored at cuts tuned on the others")
    ap.add_argument("--out", required=True, type=Path, help="report folder (index.html, PNGs, report.json)")
    ap.add_argument("--truth", default=None, help="test labels, Id,Target: adds the test column")
    ap.add_argument("--stack", default=None, help="a stack prediction set (hpa-ens stack) to rank and show beside "
                                                  "the mean blend")
    ap.add_argument("--curves", default=None, help="the leaderboard row whose threshold curves are drawn "
                                                   "(default: the best set)")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of every interval")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    add_task_argument(ap)
    return ap


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that is a file, or a folder holding an ``index.html`` this command did not write."""
    if out.exists() and not out.is_dir():
        raise ContractError(f"{out}: exists and is not a folder; expected a folder for the report.")
    if (out / "index.html").exists() and not (out / "report.json").exists():
        raise ContractError(f"{out}: holds an index.html but no report.json, so it is not a report this command "
                            f"wrote; refusing to replace it. Choose another --out.")


def read_truth(path, task, test_ids) -> tuple:
    """The test labels aligned to the sets' test Ids, and what reading them warned about."""
    from ..labels import read_labels

    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        frame = read_labels(path, task=task)
    frame = align(frame, test_ids, str(path), "the prediction sets' test rows")
    return frame.to_numpy(), [str(w.message) for w in caught]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.n_boot < 1:
        raise ParameterError(f"The '--n-boot' parameter of {prog(NAME)} must be an int >= 1. Got {args.n_boot} instead.")
    task = load_task(args.task)
    check_out(args.out)
    folders = list(args.pred)
    if args.stack is not None:
        if any(Path(p).resolve() == Path(args.stack).resolve() for p in folders):
            raise ParameterError(f"The '--stack' parameter of {prog(NAME)} must not be one of --pred. "
                                 f"Got {args.stack} in both instead.")
        folders.append(args.stack)
    inputs = read_stage_inputs(folders, args.labels, args.folds, task, needs_oof=prog(NAME),
                               hint="Leave it out of --pred: the leaderboard ranks sets on their OOF rows.")
    notes = list(inputs.warnings)
    truth = None
    if args.truth is not None:
        truth, truth_notes = read_truth(args.truth, task, inputs.test_ids)
        notes += truth_notes
    n_sets = len(args.pred)
    names, oof_list, test_list = inputs.names[:n_sets], inputs.oof_list[:n_sets], inputs.test_list[:n_sets]
    metas = [ps.meta for ps in inputs.sets[:n_sets]]
    stack = None
    if args.stack is not None:
        stack = (inputs.names[-1], inputs.oof_list[-1], inputs.test_list[-1], inputs.sets[-1].meta)
    rows = names + ([MEAN_BLEND] if n_sets > 1 else []) + ([stack[0]] if stack else [])
    if args.curves is not None and args.curves not in rows:
        raise ParameterError(f"The '--curves' parameter of {prog(NAME)} must name a row of the leaderboard "
                             f"({', '.join(rows)}). Got {args.curves!r} instead.")
    with progress(transient=True) as bar:
        report = build_set_report(names, oof_list, inputs.Y, inputs.folds, test_list=test_list, truth=truth,
                                  stack=stack, metas=metas, folds_sha256=sha256_file(args.folds),
                                  class_names=task.class_names, curves=args.curves, n_boot=args.n_boot,
                                  seed=args.seed, progress=progress_callback(bar))
    for message in notes + report.warnings:
        warn(message)
    page = write_set_report(args.out, report)
    console.print(_leaderboard_table(report))
    say(f"best set: {report.best_set}; wrote {page}")
    return 0


def _leaderboard_table(report):
    from rich.table import Table

    table = Table(title="OOF macro F1 at cross-fitted exact cuts")
    for col in ("rank", "set", "kind", "OOF macro F1", "95% CI") + (("test macro F1", "95% CI") if report.has_truth else ()):
        table.add_column(col, justify="left" if col in ("set", "kind") else "right")
    for rank, s in enumerate(report.scores, 1):
        cells = [str(rank), s.name, s.kind, f"{s.oof_macro_f1:.4f}", f"[{s.oof_ci[0]:.4f}, {s.oof_ci[1]:.4f}]"]
        if report.has_truth:
            cells += [f"{s.test_macro_f1:.4f}", f"[{s.test_ci[0]:.4f}, {s.test_ci[1]:.4f}]"]
        table.add_row(*cells)
    return table
