"""``hpa-ens predict`` (``python -m base_models.predict``): predict images with trained checkpoints.

``--checkpoint oof/resnet18/fold0 [more ...] --data DIR [--split test|train] [--batch-size 128] [--n-jobs N]
[--tta none|flips|d8] [--out probs.csv]``: several checkpoints are averaged in probability space
(:func:`base_models.predict.predict_checkpoints`). Writes an ``Id,0..K-1`` CSV (default
``predict_{split}.csv`` beside the first checkpoint's fold folder), prints the model's images/s on the
console and ``images_per_s=…`` on stdout.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from hpa_ens.commands._cli import add_n_jobs_argument, console, parser, progress, resolve_n_jobs

from ._env import offline_hub, require_train_extra

NAME = "predict"

require_train_extra()


def build_parser() -> argparse.ArgumentParser:
    from ..predict import TTA_ALIASES

    ap = parser(NAME, "Predict probabilities with trained checkpoints (averaged); write them and print images/s.")
    ap.add_argument("--checkpoint", required=True, nargs="+", help="fold folders or .pt files (averaged)")
    ap.add_argument("--data", required=True, help="Kaggle-layout folder (sample_submission.csv + test/, or "
                    "train.csv + train/)")
    ap.add_argument("--split", default="test", choices=["test", "train"])
    ap.add_argument("--batch-size", type=int, default=128)
    add_n_jobs_argument(ap)  # torch's CPU threads on the CPU
    ap.add_argument("--threads", dest="n_jobs", type=int, help=argparse.SUPPRESS)  # old name of --n-jobs
    ap.add_argument("--tta", default="flips", choices=sorted(TTA_ALIASES), help="d8 = all 8 flips/rotations")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--cache-dir", default=None, help="default DATA/.cache")
    ap.add_argument("--out", type=Path, default=None, help="Id,0..K-1 probabilities (default: "
                    "predict_{split}.csv beside the first checkpoint's fold folder)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    offline_hub()
    import torch

    from hpa_ens.contract import probs_frame, write_probs

    from ..predict import default_out, predict_checkpoints

    args = build_parser().parse_args(argv)
    out = args.out or default_out(args.checkpoint, args.split)
    threads = resolve_n_jobs(args.n_jobs)  # torch's CPU threads
    with progress(transient=True) as bar:
        ids, probs, seconds, cache_seconds, device = predict_checkpoints(
            args.checkpoint, args.data, args.split, args.batch_size, threads, args.tta, args.device,
            args.cache_dir, progress=bar)
    write_probs(out, probs_frame(ids, probs))
    rate = len(ids) / max(seconds, 1e-9)
    where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else str(device)
    console.print(f"{len(ids)} images, {len(args.checkpoint)} checkpoint(s), tta {args.tta}, batch "
                  f"{args.batch_size}, {where}: {rate:.1f} images/s (model time {seconds:.2f} s; decode/cache "
                  f"{cache_seconds:.2f} s) -> {out}")
    # The measurement is the command's result: on stdout, whatever the verbosity.
    print(f"images_per_s={rate:.3f}")
    return 0
