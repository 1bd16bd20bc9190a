"""PNG decode vs the uint8 memmap cache, build time included (target: a cached epoch >= 10x faster).

Writes ``--n`` images (4 PNG channels each) at ``--png-size`` px into a temp folder, then times, with
the same number of decoding threads on both sides: building the cache (``base_models.data.build_cache``,
decode included, once); reopening it; a *cold* first epoch from it (its pages evicted from the OS cache
with ``posix_fadvise``, once); then an epoch that decodes and resizes every image to ``--size`` (no
cache) and a *warm* later epoch from the cache (random batches of 32), timed the same way: one warm-up
each, then ``--repeats`` interleaved epochs, the median of each. The end-to-end line compares
``--epochs`` epochs of decoding with build + cold epoch + warm epochs.

Neither ratio is the same work: a warm epoch reads pixels the build already decoded (the build is
left out of the first ratio and paid once in the second); each figure's ``differs`` says so.

    .venv/bin/python benchmarks/bench_cache.py [--quick] [--png-size 512] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from base_models.data import build_cache, read_image  # noqa: E402
from hpa_ens.classes import CHANNELS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit, time_same_way  # noqa: E402


def write_pngs(folder: Path, n: int, size: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = [f"img{i:05d}" for i in range(n)]
    # smooth-ish content compresses like microscopy rather than like white noise
    base = rng.integers(0, 255, (n, 4, size // 8, size // 8), dtype=np.uint8)
    for i, image_id in enumerate(ids):
        for c, channel in enumerate(CHANNELS):
            img = Image.fromarray(base[i, c]).resize((size, size), Image.Resampling.BILINEAR)
            img.save(folder / f"{image_id}_{channel}.png", compress_level=3)
    return ids


def evict(path: Path) -> bool:
    """Drop ``path``'s pages from the OS page cache (this file only, no root), so the next read is cold."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return True
    except (AttributeError, OSError):
        return False


def epoch(cache, n: int, rng) -> float:
    """Seconds to read every image once in random batches of 32 (what an epoch does with the cache)."""
    t0 = time.perf_counter()
    order = rng.permutation(n)
    for start in range(0, n, 32):
        np.ascontiguousarray(cache[np.sort(order[start:start + 32])])
    return time.perf_counter() - t0


def decode_epoch(folder: Path, ids, size: int, threads: int) -> float:
    """Seconds to decode and resize every image once with ``threads`` threads (an epoch without the cache)."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda i: read_image(folder, i, size), ids))
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer, smaller images (< 60 s)")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--png-size", type=int, default=None, help="PNG side (512 = competition)")
    ap.add_argument("--size", type=int, default=64, help="training resolution of the cache")
    ap.add_argument("--threads", type=int, default=2, help="decoding threads, with and without the cache")
    ap.add_argument("--epochs", type=int, default=10, help="epochs in the end-to-end comparison")
    ap.add_argument("--repeats", type=int, default=5, help="timed decode and warm epochs (medians), after a warm-up")
    args = ap.parse_args(argv)
    n = args.n or (100 if args.quick else 400)
    png_size = args.png_size or (256 if args.quick else 512)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "img").mkdir()
        ids = write_pngs(tmp / "img", n, png_size)
        sources = [(i, tmp / "img") for i in ids]

        t0 = time.perf_counter()
        build_cache(sources, args.size, tmp / "cache", n_threads=args.threads)
        build_s = time.perf_counter() - t0
        cache_file = next((tmp / "cache").glob("*.npy"))
        cold_ok = evict(cache_file)
        t0 = time.perf_counter()
        cache = build_cache(sources, args.size, tmp / "cache")  # reopened, as a later epoch/fold would
        open_s = time.perf_counter() - t0
        cold_s = epoch(cache, n, rng)
        timing = time_same_way({"decode": lambda: decode_epoch(tmp / "img", ids, args.size, args.threads),
                                "warm": lambda: epoch(cache, n, rng)}, repeats=args.repeats, warmup=1)
        decode_s, warm_s = timing["decode"]["wall"], timing["warm"]["wall"]
    e = args.epochs
    without = e * decode_s
    with_cache = build_s + open_s + cold_s + (e - 1) * warm_s
    print(f"{n} images, PNG {png_size}px -> {args.size}px, 4 channels, {args.threads} decoding threads both ways")
    print(f"epoch by PNG decode + resize:        {decode_s:8.2f} s  = {n / decode_s:10.1f} images/s")
    print(f"cache build (decode included):       {build_s:8.2f} s  = {n / build_s:10.1f} images/s")
    print(f"cache reopen (fingerprint check):    {open_s:8.3f} s")
    print(f"first epoch from the cache (cold{'' if cold_ok else ', eviction unavailable: warm'}): {cold_s:8.3f} s  = "
          f"{n / cold_s:10.1f} images/s ({1000 * cold_s:.2f} ms)")
    print(f"later epoch from the cache (warm):   {warm_s:8.4f} s  = {n / warm_s:10.1f} images/s")
    ratio = decode_s / warm_s
    print(f"warm read vs decode: {ratio:.0f}x (target >= 10x) -> {'OK' if ratio >= 10 else 'BELOW TARGET'}")
    print(f"{e} epochs: decode every epoch {without:.1f} s; cache (build + reopen + cold + {e - 1} warm) "
          f"{with_cache:.1f} s -> {without / with_cache:.1f}x")
    emit("cache: warm epoch vs PNG decode epoch", warm_s, "s", baseline=decode_s,
         baseline_name=f"decode + resize, {args.threads} threads",
         differs="configuration: an epoch read from the already-built cache (its build left out) vs decoding and "
                 "resizing every PNG; same images, size and threads",
         note=f"{n} images {png_size}->{args.size}px; median of {args.repeats} epochs each after a warm-up; cold "
              f"epoch {cold_s:.3f} s; build {build_s:.2f} s")
    emit(f"cache: {e} epochs including the build vs decoding every epoch", with_cache, "s", baseline=without,
         baseline_name=f"{e} decode epochs",
         differs=f"configuration: build the cache once + {e} epochs from it vs decoding the PNGs in each of {e} "
                 "epochs; same images, size and threads",
         note=f"build {build_s:.2f} s + cold {cold_s:.3f} s + {e - 1} warm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
