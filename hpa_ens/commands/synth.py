"""``hpa-ens synth``: write the synthetic HPA-like image set in the Kaggle layout, truth kept apart.

Generates the set (:func:`hpa_ens.synth.generate`, with a progress bar) and/or a preview grid of
composites (:func:`hpa_ens.synth.generate.preview`), and prints what it wrote.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

from ..contract.thresholds import BUILTIN_TARGETS
from ..synth.generate import generate, preview
from ..validation import ParameterError
from ._cli import add_n_jobs_argument, console, parser, progress, progress_callback, prog, resolve_n_jobs

NAME = "synth"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Write a synthetic HPA-like image set in the Kaggle layout, truth kept apart.")
    ap.add_argument("--out", type=Path, help="output folder (train/, test/, CSVs, truth/)")
    ap.add_argument("--n-train", type=int, default=2500)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--size", type=int, default=128, help="image side in pixels (512 = competition format)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-dist", type=Path, default=None,
                    help=f"the 28 class shares the test labels are drawn toward: a built-in name "
                         f"({', '.join(BUILTIN_TARGETS)}) or a CSV (row k = class k, column lb/share)")
    add_n_jobs_argument(ap)
    ap.add_argument("--dup-rate", type=float, default=0.015, help="share of test images that are near-copies of train images")
    ap.add_argument("--leak-rate", type=float, default=0.02, help="share of test Ids whose labels go to leak.csv")
    ap.add_argument("--overwrite", action="store_true", help="replace a data set this generator wrote in --out")
    ap.add_argument("--preview", type=Path, default=None, help="also write a PNG grid of composites with label names")
    ap.add_argument("--preview-kind", choices=("classes", "random"), default="classes",
                    help="classes: one tile per class alone; random: label sets drawn like train")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is None and args.preview is None:
        raise ParameterError(f"The '--out' parameter of {prog(NAME)} must be given (or --preview). Got None instead.")
    if args.out is not None:
        start = time.perf_counter()
        with progress() as bar:
            plan = generate(args.out, args.n_train, args.n_test, args.size, args.seed, args.target_dist,
                            resolve_n_jobs(args.n_jobs), dup_rate=args.dup_rate, leak_rate=args.leak_rate,
                            overwrite=args.overwrite, progress=progress_callback(bar))
        console.print(f"{args.out}: {args.n_train} train + {args.n_test} test images at {args.size} px, "
                      f"{len(plan.duplicates)} planted duplicates, {len(plan.leak_index)} leaked labels "
                      f"in {time.perf_counter() - start:.1f} s")
    if args.preview is not None:
        preview(args.preview, size=args.size, seed=args.seed, kind=args.preview_kind)
        console.print(f"{args.preview}: preview written")
    return 0
