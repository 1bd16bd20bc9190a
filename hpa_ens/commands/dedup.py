"""``hpa-ens dedup``: near-duplicate images between train, test and external (HPAv18) images.

Checks the options before any image is read, hashes every set (:func:`hpa_ens.dedup.run_dedup`, one
progress bar per set), writes ``duplicates.csv`` and its provenance sidecar through the contract, and
prints one summary line.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from ..contract.duplicates import DUPLICATE_KINDS, write_duplicates
from ..dedup import check_options, default_kinds, run_dedup
from ..image_sets import load_external
from ..io import sha256_file
from ..task import load_task
from ..validation import ParameterError, check_param
from ._cli import (add_n_jobs_argument, add_task_argument, console, parser, progress, progress_callback, prog,
                   resolve_n_jobs)

NAME = "dedup"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Find near-duplicate images (train, test and external HPAv18 images) by perceptual hash.")
    ap.add_argument("--train-dir", required=True, help="folder of {Id}_{red,green,blue,yellow}.png/.jpg/.tif train images")
    ap.add_argument("--test-dir", required=True, help="folder of test images")
    ap.add_argument("--extra-images", dest="extra_images", default=None, metavar="DIR",
                    help="folder of external (HPAv18) images; adds the external-train and external-test kinds")
    # The old name, as every other command says --extra-images:
    ap.add_argument("--extra-dir", dest="extra_images", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--extra-labels", default=None, metavar="FILE",
                    help="Id,Target of the external images: hash only these Ids (default: every image of the folder)")
    ap.add_argument("--skip-missing", action="store_true",
                    help="skip --extra-labels Ids without image files instead of refusing them")
    ap.add_argument("--kinds", nargs="+", default=None, choices=DUPLICATE_KINDS,
                    help="pair kinds to search (default: train-test test-test, plus external-train external-test "
                         "with --extra-images)")
    ap.add_argument("--out", required=True, help="output CSV Id_a,Id_b,distance,kind (+ .meta.json provenance beside it)")
    ap.add_argument("--max-distance", type=int, default=8, help="largest Hamming distance (of 64 bits) kept")
    ap.add_argument("--min-std", type=float, default=2.0,
                    help="skip images whose 32x32 green or channel-mean std (0..255) is below this (near-blank)")
    ap.add_argument("--no-transforms", action="store_true", help="do not try the 8 flips/rotations")
    ap.add_argument("--cache", default=None, help="hash cache (.npz), reused when files are unchanged")
    add_task_argument(ap)
    add_n_jobs_argument(ap)
    return ap


def _kinds(args: argparse.Namespace) -> list[str]:
    """The kinds to search, checked against the folders given, before any image is read."""
    check_options(args.max_distance, args.min_std, args.cache, owner=prog(NAME))
    external = bool(args.extra_images)
    if args.extra_labels and not external:
        raise ParameterError(f"The '--extra-labels' option of {prog(NAME)} needs '--extra-images DIR'. Got no "
                             f"--extra-images instead.")
    kinds = list(args.kinds) if args.kinds else default_kinds(external)
    for kind in kinds:
        check_param("kinds", kind, f"one of {list(DUPLICATE_KINDS)}", kind in DUPLICATE_KINDS, prog(NAME))
        if "external" in kind and not external:
            raise ParameterError(f"The 'kinds' parameter of {prog(NAME)} asks for {kind!r}, which needs "
                                 f"'--extra-images DIR'. Got no --extra-images instead.")
    return list(dict.fromkeys(kinds))


def _summary_line(pairs, info: dict, out) -> str:
    counts = pairs["kind"].value_counts()
    sets = ", ".join(f"{c['images']} {n}" for n, c in info["counts"].items())
    blank = ", ".join(f"{c['near_blank']} {n}" for n, c in info["counts"].items())
    found = ", ".join(f"{int(counts.get(k, 0))} {k}" for k in info["provenance"]["kinds"])
    return (f"{sets} images hashed in {info['seconds_hash']:.1f} s ({info['new_hashes']} new); skipped near-blank: "
            f"{blank}; pairs in {info['seconds_pairs']:.1f} s: {found} -> {out}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    task, n_jobs = load_task(args.task), resolve_n_jobs(args.n_jobs)
    kinds = _kinds(args)
    folders = {"train": args.train_dir, "test": args.test_dir}
    ids = {}
    if args.extra_images:
        folders["external"] = args.extra_images
        if args.extra_labels:
            ids["external"] = load_external(args.extra_images, args.extra_labels, task,
                                            skip_missing=args.skip_missing).ids
    with progress() as bar:
        pairs, info = run_dedup(folders, kinds, args.max_distance, args.min_std, not args.no_transforms, args.cache,
                                n_jobs, ids, task.channels, progress=progress_callback(bar))
    if args.extra_labels:
        info["provenance"]["external_labels"] = {"path": str(args.extra_labels), "sha256": sha256_file(args.extra_labels)}
    write_duplicates(args.out, pairs, info["provenance"])
    console.print(_summary_line(pairs, info, args.out))
    return 0
