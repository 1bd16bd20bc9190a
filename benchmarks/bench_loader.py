"""Decode-once cache vs streaming loader: images/s at 512 px on the CPU, from real HPA PNG channels.

``.venv/bin/python benchmarks/bench_loader.py [--quick] [--n 48] [--sizes 512 256] [--workers 2] [--batch 16]
[--model NAME]``

The images are built from the real 512x512 8-bit channels in ``../shared/hpa/images/`` (copied
under new Ids, so every image decodes four real PNGs; random 512-px PNGs when that folder is absent,
and then every figure's name and the table's say "random PNGs": they never take the real ones' names).
Same images, same batches, same process for every row; every reading row is timed after one untimed
warm-up pass of its own (the build, a first epoch by definition, is timed once):

- cache build: decode every image once into the uint8 memmap (``loader: cache``, first epoch);
- cache read: a later epoch's batches from the memmap (shuffled rows);
- stream: every epoch's batches decoded from the files (``loader: stream``), in 0 (a thread) and
  ``--workers`` DataLoader worker processes;
- model: for scale, one forward + backward of ``--model`` at the first size and batch (the consumer).

Every training size (``--sizes``; the files stay 512 px, smaller sizes resize on the fly) gives one
column of the pivot table "loader" (``docs/base_models.md``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm is imported (a script sets it, as the commands do)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from base_models.data import Sources, StreamImages, batches, build_cache, load_batches  # noqa: E402
from hpa_ens.classes import CHANNELS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "hpa" / "images"


def make_images(folder: Path, n: int, size: int) -> list[str]:
    """``n`` Kaggle-layout images of real channels (or random PNGs when ../shared is absent)."""
    from PIL import Image

    folder.mkdir(parents=True)
    real = {c: sorted(SHARED.glob(f"*_{c}.png")) for c in CHANNELS} if SHARED.is_dir() else {}
    rng = np.random.default_rng(0)
    ids = [f"img{i:04d}" for i in range(n)]
    for i, image_id in enumerate(ids):
        for c in CHANNELS:
            target = folder / f"{image_id}_{c}.png"
            if real.get(c):
                shutil.copyfile(real[c][i % len(real[c])], target)
            else:
                Image.fromarray(rng.integers(0, 255, (size, size)).astype(np.uint8)).save(target)
    return ids


def rate(fn, n_images: int, warmup: int = 1) -> float:
    """Images/s of one timed call of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    started = time.perf_counter()
    fn()
    return n_images / (time.perf_counter() - started)


def loader_rates(tmp: Path, sources, n_images: int, size: int, batch: int, workers: int) -> dict:
    """Images/s of each loader at one training size, on the same images and batches."""
    chunks = batches(np.random.default_rng(0).permutation(n_images), batch)
    n = sum(len(c) for c in chunks)
    folder = tmp / f"cache{size}"
    build = rate(lambda: build_cache(sources, size, folder, n_threads=1), n_images, warmup=0)
    cache = build_cache(sources, size, folder)
    read = rate(lambda: [b.sum() for b in load_batches(cache, chunks)], n)
    stream = StreamImages(sources, size)
    s0 = rate(lambda: list(load_batches(stream, chunks, 0)), n)
    sw = rate(lambda: list(load_batches(stream, chunks, workers)), n)
    return {"build": build, "read": read, "stream": s0, "workers": sw}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--sizes", "--size", type=int, nargs="+", default=[512, 256],
                    help="training sizes (the files are 512 px; smaller resizes on the fly)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--model", default="resnet18", help="timm backbone timed for scale ('' to skip)")
    ap.add_argument("--quick", action="store_true", help="make bench: 16 images, no backbone timing")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.model = 16, ""
    source = "real HPA channels" if SHARED.is_dir() else "random PNGs"
    suffix, table = ("", "loader") if SHARED.is_dir() else (" (random PNGs)", "loader-random-pngs")
    rows = {"build": "cache build, first epoch (1 decoding thread)", "read": "cache read, later epochs",
            "stream": "stream, decoding in a thread", "workers": f"stream, {args.workers} DataLoader workers"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ids = make_images(tmp / "img", args.n, 512)
        sources = Sources([(i, tmp / "img") for i in ids])
        for path in (tmp / "img").iterdir():  # every row starts from files in the OS page cache
            path.read_bytes()
        for size in args.sizes:
            r = loader_rates(tmp, sources, args.n, size, args.batch, args.workers)
            gib = args.n * 4 * size ** 2 / 2 ** 30
            print(f"{args.n} images from {source}, {size}px, batch {args.batch}, cache {gib * 1024 / args.n:.2f} MiB/image")
            print(f"cache build (first epoch, 1 decoding thread): {r['build']:8.1f} images/s")
            print(f"cache read (later epochs):                    {r['read']:8.1f} images/s")
            print(f"stream, decoding in a thread:                 {r['stream']:8.1f} images/s  "
                  f"({r['stream'] / r['read']:.3f}x cache read)")
            print(f"stream, {args.workers} DataLoader workers:               {r['workers']:8.1f} images/s  "
                  f"({r['workers'] / r['stream']:.2f}x the thread)")
            note = f"{args.n} images from {source}, batch {args.batch}"
            for key, label in rows.items():
                emit(f"loader: {label}, {size} px{suffix}", r[key], "images/s", table=table, row=label,
                     col=f"{size} px", note=note)
            emit(f"loader: stream in a thread / cache read, {size} px{suffix}", r["stream"] / r["read"], "×",
                 table=table, row="stream in a thread ÷ cache read", col=f"{size} px", note=note)
    if args.model:
        import torch

        from base_models.models import build_model

        size = args.sizes[0]
        model = build_model(args.model, n_classes=28).train().to(memory_format=torch.channels_last)
        x = torch.randn(args.batch, 4, size, size).contiguous(memory_format=torch.channels_last)
        model(x).sum().backward()  # warm-up
        started = time.perf_counter()
        model(x).sum().backward()
        step = args.batch / (time.perf_counter() - started)
        threads = torch.get_num_threads()
        print(f"{args.model} forward+backward at {size}px on {threads} CPU threads: {step:8.1f} images/s "
              f"(the consumer: stream keeps up when its rate is above this)")
        emit(f"loader: {args.model} forward + backward, {size} px{suffix}", step, "images/s", table=table,
             row=f"{args.model} forward + backward, {threads} CPU threads (the consumer)", col=f"{size} px",
             note=f"batch {args.batch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
