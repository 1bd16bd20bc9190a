"""Score a submission against a truth file (the ``hpa-ens score`` command is :mod:`hpa_ens.commands.score`).

:func:`score_submission` gives macro F1 with its bootstrap interval and the per-class report. Rows are
matched by Id: the submission's Ids must be exactly the truth's, or, with ``--partial-truth`` (a truth that labels only
some test rows, e.g. the leaked ones), a superset of them, scored on the truth's Ids only. Any task:
``--task`` gives K and the class names (default HPA 2018).
"""

from __future__ import annotations

from pathlib import Path

from .contract import align
from .labels import read_labels, read_submission
from .metrics import bootstrap_macro_f1, class_report
from .task import Task, load_task

__all__ = ["score_submission"]


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


if __name__ == "__main__":  # python -m hpa_ens.score: the command lives in hpa_ens.commands.score
    from hpa_ens.commands import launch

    launch("score", __spec__.name)
