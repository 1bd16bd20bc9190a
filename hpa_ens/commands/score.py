"""``hpa-ens score``: macro F1 of a submission against a truth file, with a bootstrap interval.

Prints macro F1 with its interval and the per-class table. Rows are matched by Id: the submission's Ids
must be exactly the truth's, or, with ``--partial-truth`` (a truth that labels only some test rows, e.g.
the leaked ones), a superset of them, scored on the truth's Ids only. Any task: ``--task`` gives K and
the class names (default HPA 2018).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..io import atomic_write_json
from ..metrics import report_table
from ..score import score_submission
from ..task import load_task
from ..validation import ParameterError
from ._cli import add_task_argument, console, parser, prog

NAME = "score"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Score a submission against a truth file (macro F1 with a bootstrap interval).")
    ap.add_argument("--truth", type=Path, default=None, help="test truth, Id,Target")
    ap.add_argument("--labels", dest="truth_alias", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--submission", required=True, type=Path, help="submission, Id,Predicted")
    ap.add_argument("--partial-truth", action="store_true", help="the truth labels some test Ids only: score those")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the interval")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ap.add_argument("--json", type=Path, default=None, help="also write the scores here")
    add_task_argument(ap)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    truth = args.truth or args.truth_alias
    if truth is None:
        raise ParameterError(f"The '--truth' parameter of {prog(NAME)} is required. Got None instead.")
    task = load_task(args.task)
    result = score_submission(truth, args.submission, args.n_boot, args.seed, task, args.partial_truth)
    report = result["report"]
    console.print(report_table(report, title=f"{args.submission.name} vs {truth.name}", names=task.class_names))
    ignored = f"; {result['n_ignored']} submission rows not in the truth ignored" if args.partial_truth else ""
    # The score line is the command's result: on stdout, whatever the verbosity.
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
