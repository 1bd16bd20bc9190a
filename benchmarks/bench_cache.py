"""PNG decode vs the uint8 memmap cache, in images/s (target: cache >= 10x faster).

Decodes ``--n`` images (4 PNG channels each) at ``--png-size`` px, resizing to ``--size`` (what a
training epoch would do without the cache), then reads the same images from the cache in random
batches of 32 (what an epoch does with it). Images are written first into a temp folder.

    .venv/bin/python benchmarks/bench_cache.py [--quick] [--png-size 512] [--size 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from base_models.data import build_cache, read_image  # noqa: E402
from hpa_ens.classes import CHANNELS  # noqa: E402


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer, smaller images (< 60 s)")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--png-size", type=int, default=None, help="PNG side (512 = competition)")
    ap.add_argument("--size", type=int, default=64, help="training resolution of the cache")
    args = ap.parse_args(argv)
    n = args.n or (100 if args.quick else 400)
    png_size = args.png_size or (256 if args.quick else 512)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "img").mkdir()
        ids = write_pngs(tmp / "img", n, png_size)
        sources = [(i, tmp / "img") for i in ids]

        t0 = time.perf_counter()
        for image_id in ids:
            read_image(tmp / "img", image_id, args.size)
        decode_ips = n / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        cache = build_cache(sources, args.size, tmp / "cache", n_threads=2)
        build_s = time.perf_counter() - t0

        cache = build_cache(sources, args.size, tmp / "cache")  # reopened, as a later epoch/fold would
        rng = np.random.default_rng(0)
        reps = 20
        t0 = time.perf_counter()
        total = 0
        for _ in range(reps):
            order = rng.permutation(n)
            for start in range(0, n, 32):
                batch = np.ascontiguousarray(cache[order[start:start + 32]])
                total += len(batch)
        cache_ips = total / (time.perf_counter() - t0)
    print(f"PNG decode + resize ({png_size}px -> {args.size}px, 4 channels): {decode_ips:10.1f} images/s")
    print(f"cache build (2 threads, decode included):            {n / build_s:10.1f} images/s")
    print(f"memmap cache, random batches of 32:                  {cache_ips:10.1f} images/s")
    ratio = cache_ips / decode_ips
    print(f"ratio cache / decode: {ratio:.0f}x (target >= 10x) -> {'OK' if ratio >= 10 else 'BELOW TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
