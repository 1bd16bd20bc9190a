"""Speed of the synthetic data generator (issue 3).

Target: 3,000 images at 128 px in <= 60 s on 2 cores. The baseline in the same process is the
single-worker run on the *same* images (same count, same seed), so the ratio is the parallel speed-up
(configuration: n_jobs). Both are timed the same way: a warm-up run of 8 images with the same n_jobs
(lazy imports, PNG encoder), then one timed run each.

    .venv/bin/python benchmarks/bench_synth.py            # full: 3,000 images at 128 px, n_jobs=1 and 2
    .venv/bin/python benchmarks/bench_synth.py --quick    # 200 images each, 3,000 extrapolated (< 60 s)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HPA_ENS_NO_PROGRESS", "1")

from hpa_ens.synth import generate  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit  # noqa: E402


def timed(n_images: int, size: int, n_jobs: int) -> float:
    n_test = max(1, n_images // 4)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate(Path(tmp) / "synth", n_images - n_test, n_test, size=size, seed=0, n_jobs=n_jobs)
        return time.perf_counter() - start


def cpu_per_image(n_images: int, size: int) -> float:
    """CPU seconds per image (draw + 4 PNG encodes) in this process: a figure the machine's load
    from other programs does not inflate, unlike the wall-clock runs."""
    import numpy as np

    from hpa_ens.synth import encode_png, make_plan, render_image

    plan = make_plan(n_images, 1, seed=0)
    start = time.process_time()
    for index in range(n_images):
        for channel in render_image(0, 0, index, plan.y_train[index], size):
            encode_png(np.ascontiguousarray(channel))
    return (time.process_time() - start) / n_images


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args(argv)
    n_full = 3000
    n_one = n_two = 200 if args.quick else n_full  # the same images for both runs
    timed(8, args.size, 1), timed(8, args.size, 2)  # warm-up of both sides
    one = timed(n_one, args.size, 1)
    two = timed(n_two, args.size, 2)
    cpu = cpu_per_image(60 if args.quick else 300, args.size)
    rate_one, rate_two = n_one / one, n_two / two
    projected = n_full / rate_two
    print(f"size {args.size} px, cpu_count {os.cpu_count()}")
    print(f"n_jobs=1: {n_one} images in {one:.1f} s = {rate_one:.0f} img/s")
    print(f"n_jobs=2: {n_two} images in {two:.1f} s = {rate_two:.0f} img/s (x{rate_two / rate_one:.2f} vs n_jobs=1)")
    print(f"CPU time per image: {1000 * cpu:.1f} ms -> 3,000 images on 2 fully free cores: "
          f"{3000 * cpu / 2:.1f} s of drawing (plus worker start-up)")
    status = "OK" if projected <= 60 else "SLOW"
    print(f"3,000 images at {args.size} px with n_jobs=2: {projected:.1f} s "
          f"({'measured' if n_two == n_full else 'extrapolated'}; target <= 60 s) {status}")
    emit(f"synth: {n_two} images at {args.size} px, 2 jobs vs 1 job", two, "s", baseline=one, baseline_name="n_jobs=1",
         differs="configuration: n_jobs=2 vs n_jobs=1 on the same images and seed (the parallel speed-up)",
         note=f"3,000 images with 2 jobs: {projected:.1f} s ({'measured' if n_two == n_full else 'extrapolated'}; "
              f"target <= 60 s)")
    emit(f"synth: CPU time per image at {args.size} px (draw + 4 PNG encodes)", 1000 * cpu, "ms/image",
         note=f"time.process_time in one process over {60 if args.quick else 300} images: the machine's load from "
              f"other programs does not inflate it, unlike the wall-clock runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
