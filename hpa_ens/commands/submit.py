"""``hpa-ens submit``: thresholds, duplicates and leaks -> ``submission.csv``, or ``--check`` a submission.

Reads and checks every input the flags name into a :class:`hpa_ens.submit.SubmitPlan` before anything
is written (the prediction set, the thresholds bound to it, the label rule, duplicates, leaks, the
target shares), runs the steps (:func:`hpa_ens.submit.make_submission`), writes the submission, its
change log and summary (:func:`hpa_ens.submit.write_submission`) and prints the steps and the predicted
class shares.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..contract.thresholds import BUILTIN_TARGETS
from ..thresholds import DEFAULT_RANK_RULE, Posterior
from ..submit import (SubmitPlan, check_submission, load_duplicates, load_test_probs, make_submission,
                      thresholds_problem, write_submission)
from ..task import Task, load_task
from ..validation import ContractError, ParameterError, check_param
from ._cli import add_task_argument, console, parser, prog

NAME = "submit"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Write the submission (duplicates and leaks applied), or --check one.")
    ap.add_argument("--check", default=None, metavar="SUBMISSION", help="only validate this submission file")
    ap.add_argument("--pred", default=None, help="prediction-set folder (its test.csv; test-only sets too) or an Id,0..K-1 CSV")
    ap.add_argument("--thresholds", default=None, help="thresholds JSON from hpa_ens.tune_thresholds (K floats)")
    ap.add_argument("--threshold", type=float, default=None, help="one threshold for every class instead of --thresholds")
    ap.add_argument("--allow-other-pred", action="store_true",
                    help="apply thresholds tuned on another prediction set (or on none recorded); noted in the summary")
    ap.add_argument("--sample-submission", required=True, help="sample_submission.csv (Id order)")
    ap.add_argument("--out", default=None, help="submission CSV to write")
    ap.add_argument("--duplicates", default=None, help="Id_a,Id_b,distance,kind from hpa_ens.dedup")
    ap.add_argument("--max-distance", type=int, default=None, help="use only duplicate pairs within this hash distance")
    ap.add_argument("--labels", default=None, help="train labels Id,Target (train-test duplicates, --target-dist train)")
    ap.add_argument("--train-labels", dest="labels", default=None, help=argparse.SUPPRESS)  # the old name of --labels
    ap.add_argument("--leak", nargs="+", default=[], help="leak files (Id,Target or Extra,Test,...,Target)")
    ap.add_argument("--leak-conflict", choices=["union", "first", "error"], default="union",
                    help="an Id with different leak labels: union of them, the first row, or refuse")
    ap.add_argument("--min-labels", type=int, default=None,
                    help="labels forced per row; overrides the thresholds file, which overrides the task's default")
    ap.add_argument("--max-labels", type=int, default=None,
                    help="cap on labels per row (0 = no cap); overrides the thresholds file and the task")
    ap.add_argument("--target-dist", default=None,
                    help=f"target class shares: a built-in name ({', '.join(BUILTIN_TARGETS)}), 'train' (the shares of "
                         f"--labels) or a CSV, one row per class (share column 'lb' or 'share')")
    ap.add_argument("--strict", action="store_true", help="with --check: warnings (empty, unsorted rows) are errors")
    add_task_argument(ap)
    return ap


def resolve_label_bounds(task: Task, record: dict | None = None, min_flag: int | None = None,
                         max_flag: int | None = None) -> tuple[int, int | None, dict]:
    """The per-row label rule, in rising precedence: task default < thresholds file < the flags.

    Parameters
    ----------
    task : Task
        ``task.min_labels`` / ``task.max_labels`` (None: no rule, i.e. min 0 and no cap).
    record : dict, optional
        The thresholds file; a ``min_labels`` / ``max_labels`` key that is present (even null, "no cap")
        overrides the task.
    min_flag, max_flag : int, optional
        ``--min-labels`` / ``--max-labels``; ``--max-labels 0`` means no cap.

    Returns
    -------
    min_labels : int in [0, K]
    max_labels : int >= max(1, min_labels), or None (no cap)
    sources : dict, ``{"min_labels": "task"|"thresholds"|"flag", "max_labels": …}``
    """
    record = record or {}
    min_labels, max_labels = task.min_labels or 0, task.max_labels
    sources = {"min_labels": "task", "max_labels": "task"}
    if record.get("min_labels") is not None:
        min_labels, sources["min_labels"] = int(record["min_labels"]), "thresholds"
    if "max_labels" in record:
        max_labels, sources["max_labels"] = record["max_labels"], "thresholds"
    if min_flag is not None:
        min_labels, sources["min_labels"] = min_flag, "flag"
    if max_flag is not None:
        max_labels, sources["max_labels"] = (max_flag or None), "flag"
    K = task.n_classes
    check_param("min_labels", min_labels, f"an int in [0, {K}]", 0 <= min_labels <= K, prog(NAME))
    if max_labels is not None:
        check_param("max_labels", max_labels, "0/None (no cap) or an int >= max(1, min_labels)",
                    max_labels >= max(1, min_labels), prog(NAME))
    return int(min_labels), None if max_labels is None else int(max_labels), sources


def plan_submission(args: argparse.Namespace) -> SubmitPlan:
    """Read and check every input the parsed flags name; raises before any output is touched."""
    from ..contract import read_target_shares, read_thresholds
    from ..labels import read_labels, read_sample_submission
    from ..leak import leak_labels

    for name in ("pred", "out"):
        if getattr(args, name) is None:
            raise ParameterError(f"The '--{name}' option of {prog(NAME)} is required unless --check is given. Got None "
                                 f"instead.")
    if (args.thresholds is None) == (args.threshold is None):
        raise ParameterError(f"The '--thresholds' and '--threshold' options of {prog(NAME)} exclude each other and one "
                             f"is required. Got {'both' if args.thresholds else 'neither'} instead.")
    task = load_task(args.task)
    ids = read_sample_submission(args.sample_submission)
    probs, pred_record = load_test_probs(args.pred, ids, task)
    provenance: dict = {"pred": pred_record, "task": task.to_meta()}
    rank_by, posterior = DEFAULT_RANK_RULE, None
    if args.thresholds is not None:
        record = read_thresholds(args.thresholds, task)  # refuses thresholds made for another class list
        problem = thresholds_problem(record, pred_record, args.thresholds)
        if problem and not args.allow_other_pred:
            raise ContractError(problem)
        thresholds, rank_by = np.asarray(record.thresholds, dtype=np.float64), record.rank_by
        posterior = Posterior.from_record(record)
        rule = {"min_labels": record.min_labels, "max_labels": record.max_labels}
        provenance["thresholds"] = {"path": args.thresholds, "method": record.method, "rank_by": rank_by,
                                    "tuned_on": record.prediction_set, "matches_pred": problem is None,
                                    "allow_other_pred": bool(args.allow_other_pred),
                                    "problem": problem}
    else:
        check_param("threshold", args.threshold, "a finite float", bool(np.isfinite(args.threshold)), prog(NAME))
        thresholds, rule = np.full(task.n_classes, float(args.threshold)), None
        provenance["thresholds"] = {"constant": float(args.threshold)}
    min_labels, max_labels, provenance["label_bounds"] = resolve_label_bounds(task, rule, args.min_labels,
                                                                              args.max_labels)
    train_labels = read_labels(args.labels, task=task) if args.labels else None
    plan = SubmitPlan(task, ids, probs, thresholds, min_labels, max_labels, train_labels=train_labels,
                      rank_by=rank_by, posterior=posterior, provenance=provenance)
    if args.duplicates:
        plan.test_pairs, plan.train_pairs, provenance["duplicates"] = load_duplicates(args.duplicates,
                                                                                      args.max_distance)
        if len(plan.train_pairs) and train_labels is None:
            raise ParameterError(f"The '--labels' option of {prog(NAME)} is required: {args.duplicates} has "
                                 f"{len(plan.train_pairs)} train-test pairs. Got None instead.")
    if args.leak:
        leak_y, leak_src, provenance["leak"] = leak_labels(args.leak, ids, args.leak_conflict)
        if leak_y.shape[1] != task.n_classes:
            raise ParameterError(f"The '--leak' files of {prog(NAME)} hold {leak_y.shape[1]} classes but task "
                                 f"{task.name!r} has {task.n_classes}. Got {args.leak} instead.")
        plan.leak = (leak_y, leak_src)
    if args.target_dist == "train":
        if train_labels is None:
            raise ParameterError(f"The '--labels' option of {prog(NAME)} is required with --target-dist train. "
                                 f"Got None instead.")
        plan.target = train_labels.to_numpy(dtype=np.float64).mean(axis=0)
    elif args.target_dist:
        plan.target = read_target_shares(args.target_dist, task)
    return plan


def _print_summary(steps: dict, shares: pd.DataFrame, out: Path) -> None:
    from rich.table import Table

    table = Table(title=f"submission steps -> {out}")
    table.add_column("step")
    table.add_column("rows", justify="right")
    for name, n in steps.items():
        table.add_row(name, str(n))
    console.print(table)
    share = Table(title="predicted class shares")
    for col in shares.columns:
        share.add_column(str(col), justify="right" if col not in ("name",) else "left")
    for rec in shares.itertuples(index=False):
        share.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in rec])
    console.print(share)


def _check(args: argparse.Namespace) -> int:
    """``--check``: validate a submission file, one line."""
    report = check_submission(args.check, args.sample_submission, args.task)
    warnings = {k: report[k] for k in ("n_empty", "n_unsorted", "n_spacing") if report[k]}
    if warnings and args.strict:
        raise ContractError(f"{args.check}: {', '.join(f'{v} rows {k[2:]}' for k, v in warnings.items())} (--strict).")
    note = ("; warnings: " + ", ".join(f"{v} rows {k[2:]}" for k, v in warnings.items())) if warnings else ""
    console.print(f"{args.check}: OK, {report['n_rows']} rows, {report['mean_labels']:.3f} labels per image{note}",
                  soft_wrap=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.check:
        return _check(args)
    plan = plan_submission(args)
    frame, changes, summary = make_submission(plan)
    summary = write_submission(args.out, frame, changes, summary)
    _print_summary(summary["steps"], pd.DataFrame(summary["shares"]), Path(args.out))
    thr = summary["provenance"]["thresholds"]
    if thr.get("problem"):
        console.print(f"[yellow]warning:[/yellow] {thr['problem']} (applied: --allow-other-pred)", soft_wrap=True)
    console.print(f"wrote {args.out} ({len(frame)} rows, {summary['mean_labels']:.3f} labels per image) and "
                  f"{summary['changes']} ({len(changes)} changes)", soft_wrap=True)
    return 0
