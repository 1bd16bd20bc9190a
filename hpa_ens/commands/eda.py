"""``hpa-ens eda``: label exploration plots and per-channel image statistics.

Computes everything first (:func:`hpa_ens.eda.explore`: label numbers, and with ``--images`` the
channel statistics of :mod:`hpa_ens.channel_stats`), then creates ``--out`` and writes the plots,
``summary.json``, the index pages and ``channel_stats.json`` (:func:`hpa_ens.eda.write_report`), so a bad
input leaves nothing behind. Prints the channel statistics and the key numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..contract.thresholds import BUILTIN_TARGETS
from ..eda import explore, key_numbers, write_report
from ..validation import ParameterError, check_param
from ._cli import (add_n_jobs_argument, add_task_argument, console, parser, progress, progress_callback, prog,
                   resolve_n_jobs)

NAME = "eda"


def build_parser() -> argparse.ArgumentParser:
    p = parser(NAME, "Label exploration plots and per-channel image statistics.")
    p.add_argument("--labels", help="train.csv (Id,Target)")
    p.add_argument("--target-dist", help=f"target class shares: a built-in name ({', '.join(BUILTIN_TARGETS)}) or a "
                                         f"CSV with one share per class")
    p.add_argument("--target-column", default=None, help="column of --target-dist (default: lb, else share)")
    p.add_argument("--images", help="folder of {Id}_{channel}.png/.jpg/.tif for channel mean/std")
    p.add_argument("--max-images", type=int, default=None, help="channel stats on a seeded subset of Ids")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dpi", type=int, default=100)
    p.add_argument("--out", required=True, help="output folder (created only once everything is computed)")
    add_task_argument(p)
    add_n_jobs_argument(p)
    return p


def _check_options(args: argparse.Namespace) -> None:
    if args.labels is None and args.images is None:
        raise ParameterError(f"The '--labels' parameter of {prog(NAME)} must be given (or '--images'). Got neither "
                             f"instead.")
    check_param("--dpi", args.dpi, "an integer >= 10", args.dpi >= 10, prog(NAME))
    check_param("--max-images", args.max_images, "a positive integer", args.max_images is None or args.max_images > 0,
                prog(NAME))
    if args.target_dist and not args.labels:
        raise ParameterError(f"The '--target-dist' parameter of {prog(NAME)} needs '--labels'. Got no --labels "
                             f"instead.")


def _summary_lines(result: dict) -> list[str]:
    lines = []
    stats = result["stats"]
    if stats is not None:
        lines.append(f"channel stats over {stats['n_images']:,} images: mean "
                     + " ".join(f"{m:.4f}" for m in stats["mean"]) + ", std " + " ".join(f"{s:.4f}" for s in stats["std"]))
    if result["summary"] is not None:
        lines += [f"{key}: {value}" for key, value in key_numbers(result["summary"])]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_options(args)
    with progress(transient=True) as bar:
        result = explore(args.labels, args.images, args.task, args.target_dist, args.target_column, args.max_images,
                         resolve_n_jobs(args.n_jobs), args.seed, progress=progress_callback(bar))
    write_report(result, Path(args.out), args.dpi)
    for line in _summary_lines(result):
        console.print(line)
    console.print(f"wrote {args.out}/")
    return 0
