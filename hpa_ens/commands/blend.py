"""``hpa-ens blend``: blend prediction sets (mean, rank, weighted, caruana), or vote submission files.

::

    hpa-ens blend --labels train.csv --pred DIR [DIR ...] --method mean|rank --out DIR
    hpa-ens blend --labels train.csv --folds folds.csv --pred DIR [DIR ...] --method weighted|caruana --out DIR
    hpa-ens blend --submissions a.csv b.csv ... [--weights 2 1 1] --out submission.csv

The first two write an ordinary prediction set (so thresholds, submit or a stack can take it) whose
``meta.json`` holds the weights. Weighted and caruana need ``--folds``: each fold's OOF rows are blended
with weights fitted on the other folds, so the OOF blend (and its score) is cross-fitted; weights fitted
on every OOF row and applied to those same rows would flatter it. Without ``--labels`` the output is a
test-only set (no ``oof.csv``), said in one line; ``--require-oof`` refuses instead. Test-only sets (no
``oof.csv``) are taken by mean and rank, whose output is then test-only. The third form is ``hpa-ens
vote`` (the same code), kept under blend's name.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..contract import build_meta, check_output_folder
from ..contract.inputs import StageInputs, meta_inputs, read_stage_inputs, write_stage_set
from ..ensemble import METHODS, OBJECTIVES, Blender
from ..thresholds import exact_macro_f1
from ..utils import resolve_n_jobs
from ..validation import ParameterError
from ._cli import add_deprecated_pred_alias, add_n_jobs_argument, add_task_argument, console, parser, prog, warn
from .vote import add_vote_arguments, vote_submissions

NAME = "blend"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Blend prediction sets (or vote submission files).")
    ap.add_argument("--pred", nargs="+", help="prediction-set folders to blend (test-only sets: mean and rank only)")
    add_deprecated_pred_alias(ap)
    ap.add_argument("--labels", help="train labels Id,Target (needed for OOF rows; weighted and caruana fit on them)")
    ap.add_argument("--require-oof", action="store_true",
                    help="refuse to write a test-only set (no --labels, or a test-only input set)")
    ap.add_argument("--method", choices=METHODS, default="mean")
    ap.add_argument("--objective", choices=OBJECTIVES, default=None,
                    help="what weighted/caruana optimise on OOF (default: logloss for weighted, f1 for caruana)")
    ap.add_argument("--n-iter", type=int, default=25, help="caruana: models added after the first")
    ap.add_argument("--folds", help="folds.csv (required by weighted and caruana): each fold blended with weights "
                    "fitted on the other folds, so the OOF blend is cross-fitted")
    add_task_argument(ap)
    add_n_jobs_argument(ap)
    ap.add_argument("--name", default=None, help="name recorded in meta.json (default: the --out folder's name)")
    add_vote_arguments(ap, required=False)
    ap.add_argument("--out", required=True, help="prediction-set folder, or the submission CSV when voting")
    return ap


def check_blend_args(args: argparse.Namespace) -> None:
    """Which mode, and the flags it needs (one-line errors before any file is read)."""
    if args.submissions and args.pred:
        raise ParameterError("Give either --pred (blend prediction sets) or --submissions (vote). Got both instead.")
    if not args.submissions and not args.pred:
        raise ParameterError(f"The '--pred' parameter of {prog(NAME)} is required unless voting --submissions. "
                             f"Got none instead.")
    if args.pred and args.method in ("weighted", "caruana") and not args.labels:
        raise ParameterError(f"The '--labels' parameter of {prog(NAME)} is required by the {args.method} blend (it "
                             f"fits weights on OOF rows). Got none instead.")
    if args.pred and args.method in ("weighted", "caruana") and not args.folds:
        raise ParameterError(f"The '--folds' parameter of {prog(NAME)} is required by the {args.method} blend: its "
                             f"weights are fitted on OOF rows, and those rows blended with them would flatter the OOF "
                             f"score, so each fold is blended with weights fitted on the other folds. Got none instead.")
    if args.pred and args.require_oof and not args.labels:
        raise ParameterError(f"The '--labels' parameter of {prog(NAME)} is required with --require-oof (the OOF rows "
                             f"are aligned to it). Got none instead.")


def blend_sets(inputs: StageInputs, method: str, objective=None, n_iter: int = 25,
               n_jobs: int | None = None) -> tuple:
    """Blend what ``read_stage_inputs`` read. Returns (oof or None, test, weights or None, OOF scores or {})."""
    # The command line has always taken --objective and --n-iter with every method (meta.json records
    # them); Blender refuses an objective its method does not use, so only the method's own options go in.
    tuned = method in ("weighted", "caruana")
    blender = Blender(method, objective if tuned else None, n_iter if method == "caruana" else 25, n_jobs)
    blender.fit(inputs.oof_list, inputs.Y, inputs.folds)
    test = blender.predict(inputs.test_list)
    if inputs.oof_list is None:
        return None, test, blender.weights_, {}
    scores = {n: exact_macro_f1(inputs.Y, o) for n, o in zip(inputs.names, inputs.oof_list)}
    return blender.oof_, test, blender.weights_, {**scores, "blend": exact_macro_f1(inputs.Y, blender.oof_)}


def _blend_meta(args, argv, inputs: StageInputs, weights, scores) -> dict:
    params = {"method": args.method, "objective": args.objective, "n_iter": args.n_iter,
              "cross_fitted": inputs.folds is not None, "test_only": inputs.oof_list is None}
    weight_map = None if weights is None else {n: float(w) for n, w in zip(inputs.names, weights)}
    return build_meta("hpa_ens.blend", meta_inputs(inputs), folds=args.folds, params=params, argv=argv,
                      name=args.name or Path(args.out).name, weights=weight_map, task=inputs.task.to_meta(),
                      oof_macro_f1_exact_thresholds=scores or None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv_list = list(argv) if argv is not None else None
    check_blend_args(args)
    if args.submissions:
        return vote_submissions(args, NAME)
    check_output_folder(args.out)
    needs = f"the {args.method} blend" if args.method in ("weighted", "caruana") else None
    if needs is None and args.require_oof:
        needs = "--require-oof"
    hint = "Give sets with oof.csv, or drop --require-oof." if args.require_oof and args.method not in (
        "weighted", "caruana") else "Give sets with oof.csv, or use a mean/rank blend."
    inputs = read_stage_inputs(args.pred, args.labels, args.folds, args.task, needs_oof=needs, hint=hint)
    for message in inputs.warnings:
        warn(message)
    if args.labels is None:
        warn(f"writing a test-only set (no oof.csv) to {args.out} because no --labels was given; give --labels to "
             f"blend the OOF rows too, or --require-oof to refuse.")
    oof, test, weights, scores = blend_sets(inputs, args.method, args.objective, args.n_iter,
                                            resolve_n_jobs(args.n_jobs))
    write_stage_set(args.out, inputs, oof, test, _blend_meta(args, argv_list, inputs, weights, scores))
    for i, n in enumerate(inputs.names):
        w = "" if weights is None else f"  weight {weights[i]:.3f}"
        console.print(f"{n}: OOF macro F1 at exact thresholds {scores[n]:.4f}{w}" if scores else f"{n}{w}")
    tail = f"OOF macro F1 at exact thresholds {scores['blend']:.4f}" if scores else "test rows only (no OOF rows)"
    console.print(f"[bold]{args.method} blend[/bold]: {tail} -> {args.out}")
    return 0
