"""Score a submission against a truth file: ``python -m hpa_ens.score --labels truth.csv --submission sub.csv``.

Prints macro F1 with its bootstrap interval and the per-class table; Ids are matched by Id and must be
exactly the truth's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .cli import console, entry, parser
from .io import atomic_write_json
from .contract import align
from .labels import read_labels, read_submission
from .metrics import bootstrap_macro_f1, class_report, report_table


def score_submission(labels_path, submission_path, n_boot: int = 1000, seed: int = 0) -> dict:
    """Macro F1 (with CI) and the per-class report of a submission file against a truth file."""
    truth = read_labels(labels_path)
    sub = read_submission(submission_path)
    sub = align(sub, truth.index, str(submission_path), f"the truth ({labels_path})")
    y_true, y_pred = truth.to_numpy(), sub.to_numpy()
    score, low, high = bootstrap_macro_f1(y_true, y_pred, n_boot=n_boot, seed=seed)
    report = class_report(y_true, y_pred)
    return {"macro_f1": score, "ci_low": low, "ci_high": high, "n": int(len(truth)), "report": report}


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser("python -m hpa_ens.score", __doc__.splitlines()[0])
    ap.add_argument("--labels", required=True, type=Path, help="truth file, Id,Target")
    ap.add_argument("--submission", required=True, type=Path, help="submission, Id,Predicted")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the interval")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the scores here")
    args = ap.parse_args(argv)
    result = score_submission(args.labels, args.submission, args.n_boot, args.seed)
    report = result["report"]
    console.print(report_table(report, title=f"{args.submission.name} vs {args.labels.name}"))
    print(f"macro F1 {result['macro_f1']:.4f}  95% CI [{result['ci_low']:.4f}, {result['ci_high']:.4f}]  (n={result['n']})")
    if args.json:
        atomic_write_json(args.json, {
            "macro_f1": result["macro_f1"], "ci": [result["ci_low"], result["ci_high"]], "n": result["n"],
            "per_class_f1": report.f1.tolist(), "precision": report.precision.tolist(),
            "recall": report.recall.tolist(), "support": report.support.tolist(),
        })
    return 0


if __name__ == "__main__":
    entry(main)
