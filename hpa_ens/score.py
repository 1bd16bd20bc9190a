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

import numpy as np
import pandas as pd

from .cli import add_task_argument, console, entry, parser
from .contract import align
from .io import atomic_write_json
from .metrics import bootstrap_macro_f1, class_report, report_table
from .task import Task, load_task
from ._validation import ContractError, ParameterError, check_ids, read_csv_strings

__all__ = ["read_label_file", "score_submission", "main"]


def read_label_file(path, task: Task, column: str = "Target", allow_empty: bool = True) -> pd.DataFrame:
    """Read ``Id,<column>`` (space-separated class ids 0..K-1) as an indicator frame for ``task``.

    Interim K-aware reader (``hpa_ens.labels.read_labels`` reads 28 classes); rows with an empty label
    set are allowed unless ``allow_empty`` is False.

    Returns
    -------
    labels : DataFrame of shape (n_rows, K) indexed by Id, columns 0..K-1, uint8
    """
    path = Path(path)
    df = read_csv_strings(path, f"a header Id,{column} and one row per Id")
    if "Id" not in df.columns or column not in df.columns:
        raise ContractError(f"{path}: expected columns Id,{column}. Got {','.join(map(str, df.columns))} instead.")
    if len(df) == 0:
        raise ContractError(f"{path}: the file has a header but no rows.")
    ids = df["Id"].tolist()
    check_ids(ids, str(path))
    K = task.n_classes
    Y = np.zeros((len(df), K), dtype=np.uint8)
    for row, text in enumerate(df[column].tolist(), start=1):
        tokens = str(text).split()
        if not tokens and not allow_empty:
            raise ContractError(f"{path}, row {row}: the {column} is empty. Got {text!r} instead.")
        for tok in tokens:
            if not tok.isdigit() or int(tok) >= K:
                raise ContractError(f"{path}, row {row}: unknown class id {tok!r} in {column} {text!r}; expected "
                                    f"integers 0..{K - 1} (task {task.name!r}).")
            if Y[row - 1, int(tok)]:
                raise ContractError(f"{path}, row {row}: class id {tok} is repeated in {column}. Got {text!r} instead.")
            Y[row - 1, int(tok)] = 1
    return pd.DataFrame(Y, index=pd.Index(ids, name="Id"), columns=range(K))


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
    truth = read_label_file(truth_path, task, "Target")
    sub = read_label_file(submission_path, task, "Predicted")
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
