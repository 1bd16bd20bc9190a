"""Score a submission against a truth file: ``python -m hpa_ens.score --truth truth.csv --submission sub.csv``.

Prints macro F1 with its bootstrap interval and the per-class table. Rows are matched by Id: the
submission's Ids must be exactly the truth's, or, with ``--partial-truth`` (a truth that labels only
some test rows, e.g. the leaked ones), a superset of them, scored on the truth's Ids only. Any task:
``--task`` gives K and the class names (default HPA 2018).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from .cli import add_task_argument, console, entry, parser
from .contract import align
from .io import atomic_write_json
from .labels import read_labels, read_submission
from .metrics import bootstrap_macro_f1, class_report, report_table
from .task import Task, load_task
from ._validation import ParameterError

__all__ = ["score_submission", "main"]


def score_submission(truth_path, submission_path, n_boot: int = 1000, seed: int = 0, task: Task | None = None,
                     partial_truth: bool = False) -> dict:
    """Macro F1 (with CI) and the per-class report of a submission file against a truth file.

    Parameters
    ----------
    partial_truth : bool
        The truth labels only some of the submission's Ids: score those (each must be in the submission);
        the submission's other rows are ignored and counted in ``n_ignored``.
    """
    task = load_task(task)
    truth = read_labels(truth_path, allow_empty=True, task=task)
    sub = read_submission(submission_path, task=task)
    n_ignored = 0
    if partial_truth:
        known = sub.index.isin(truth.index)
        n_ignored = int((~known).sum())
        sub = sub.loc[known]
    sub = align(sub, truth.index, str(submission_path), f"the truth ({truth_path})")
    score, low, high = bootstrap_macro_f1(truth, sub, n_boot=n_boot, seed=seed)
    report = class_report(truth, sub)
    return {"macro_f1": score, "ci_low": low, "ci_high": high, "n": int(len(truth)), "n_ignored": n_ignored,
            "report": report}


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser("python -m hpa_ens.score", __doc__.splitlines()[0])
    ap.add_argument("--truth", type=Path, default=None, help="test truth, Id,Target")
    ap.add_argument("--labels", dest="truth_alias", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--submission", required=True, type=Path, help="submission, Id,Predicted")
    ap.add_argument("--partial-truth", action="store_true", help="the truth labels some test Ids only: score those")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the interval")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ap.add_argument("--json", type=Path, default=None, help="also write the scores here")
    add_task_argument(ap)
    args = ap.parse_args(argv)
    truth = args.truth or args.truth_alias
    if truth is None:
        raise ParameterError("The '--truth' parameter of python -m hpa_ens.score is required. Got None instead.")
    task = load_task(args.task)
    result = score_submission(truth, args.submission, args.n_boot, args.seed, task, args.partial_truth)
    report = result["report"]
    console.print(report_table(report, title=f"{args.submission.name} vs {truth.name}", names=task.class_names))
    ignored = f"; {result['n_ignored']} submission rows not in the truth ignored" if args.partial_truth else ""
    print(f"macro F1 {result['macro_f1']:.4f}  95% CI [{result['ci_low']:.4f}, {result['ci_high']:.4f}]  "
          f"(n={result['n']}{ignored})")
    if args.json:
        atomic_write_json(args.json, {
            "macro_f1": result["macro_f1"], "ci": [result["ci_low"], result["ci_high"]], "n": result["n"],
            "n_ignored": result["n_ignored"], "task": task.name, "per_class_f1": report.f1.tolist(),
            "precision": report.precision.tolist(), "recall": report.recall.tolist(),
            "support": report.support.tolist(),
        })
    return 0


if __name__ == "__main__":
    entry(main)
