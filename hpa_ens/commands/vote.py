"""``hpa-ens vote``: vote label by label across submission files (the 4th place's way).

::

    hpa-ens vote --submissions a.csv b.csv c.csv [--weights 2 1 1] [--vote-threshold 0.5] [--min-labels 1] \
        [--sample-submission sample_submission.csv] --out submission.csv

Label k is predicted for an image when the weight share of the submissions predicting it is above
``--vote-threshold``; an image left with fewer than ``--min-labels`` labels is topped up by vote share.
Writes a validated ``Id,Predicted`` file and prints each submission's agreement with the vote.
``hpa-ens blend --submissions …`` (its older spelling) runs this same code.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from ..ensemble import normalize_weights, vote
from ..validation import ParameterError
from ._cli import console, parser, prog

NAME = "vote"


def add_vote_arguments(ap: argparse.ArgumentParser, required: bool) -> None:
    """The vote's flags but ``--out`` (``required``: ``--submissions`` must be given, as in ``hpa-ens vote``)."""
    ap.add_argument("--submissions", nargs="+", required=required, help="submission files Id,Predicted to vote across")
    ap.add_argument("--weights", nargs="+", type=float, default=None, help="one vote weight per submission")
    ap.add_argument("--vote-threshold", type=float, default=0.5,
                    help="predict a label when the weight share voting for it is above this")
    ap.add_argument("--min-labels", type=int, default=1, help="top up images with fewer labels by vote share")
    ap.add_argument("--sample-submission", help="Id order of the voted submission (default: the first file's)")


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Vote label by label across submission files.")
    add_vote_arguments(ap, required=True)
    ap.add_argument("--out", required=True, help="the voted submission CSV (Id,Predicted)")
    return ap


def vote_submissions(args: argparse.Namespace, command: str = NAME) -> int:
    """Read ``args.submissions``, vote, write ``args.out`` and print the agreement table.

    ``command`` names the command in error messages: ``vote``, or ``blend`` for ``hpa-ens blend --submissions``.
    """
    from rich.table import Table

    from ..labels import read_sample_submission, read_submission, write_labels
    from ..validation import check_same_ids

    frames = [read_submission(p) for p in args.submissions]
    if args.sample_submission:
        ids = read_sample_submission(args.sample_submission).tolist()
        against = str(args.sample_submission)
    else:
        ids = frames[0].index.tolist()
        against = str(args.submissions[0])
    for path, frame in zip(args.submissions, frames):
        check_same_ids(frame.index.tolist(), ids, str(path), against)
    if args.weights is not None and len(args.weights) != len(frames):
        raise ParameterError(f"The '--weights' parameter of {prog(command)} must give one weight per submission "
                             f"({len(frames)}). Got {len(args.weights)} instead.")
    matrices = [frame.loc[ids].to_numpy() for frame in frames]
    y_pred = vote(matrices, args.weights, args.vote_threshold, args.min_labels)
    write_labels(args.out, ids, y_pred.astype(np.uint8), column="Predicted")
    table = Table(title="Submission vote")
    for col in ("submission", "weight", "labels/image", "agreement with vote"):
        table.add_column(col, justify="right" if col != "submission" else "left")
    w = normalize_weights(args.weights, len(frames))
    for path, m, wi in zip(args.submissions, matrices, w):
        agree = float((m.astype(bool) == y_pred).all(axis=1).mean())
        table.add_row(Path(path).name, f"{wi:.3f}", f"{m.sum(1).mean():.3f}", f"{agree:.3f}")
    table.add_row("[bold]vote[/bold]", "", f"{y_pred.sum(1).mean():.3f}", "")
    console.print(table)
    console.print(f"wrote {args.out} ({len(ids)} Ids)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return vote_submissions(build_parser().parse_args(argv))
