"""Training-loop throughput vs a bare forward/backward loop of the same model (target: >= 80 %).

The bare loop feeds one pre-built normalised batch repeatedly (model + loss + optimiser only). The
real loop is ``base_models.train.train_one_epoch``: sampler, memmap reads (prefetched), augmentation
(dihedral, crop/resize, brightness/contrast), normalisation, scheduler. Both use the same model,
batch size, threads and channels_last setting, in this process, and are timed the same way: a warm-up
(3 steps / one epoch), then one timed pass over the same number of images. The ratio compares
configurations (the data path against none), not the same work: its ``differs`` says so.

    .venv/bin/python benchmarks/bench_train_loop.py [--quick] [--backbone resnet18] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before timm is imported (a script sets it, as the commands do)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from base_models.config import load_config  # noqa: E402
from base_models.infer import Normalizer  # noqa: E402
from base_models.losses import build_loss  # noqa: E402
from base_models.models import build_model  # noqa: E402
from base_models.optim import OPTIMIZERS, SCHEDULERS  # noqa: E402
from base_models.train import FoldData, train_one_epoch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backbone", default="mobilenetv3_small_100")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=None, help="images per epoch")
    args = ap.parse_args(argv)
    n = args.n or (320 if args.quick else 1280)
    torch.set_num_threads(args.threads)
    config = load_config(None, {"backbone": args.backbone, "image_size": args.size, "batch_size": args.batch_size,
                                "epochs": 2, "threads": args.threads})
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        images = np.lib.format.open_memmap(Path(tmp) / "c.npy", mode="w+", dtype=np.uint8,
                                           shape=(n, 4, args.size, args.size))
        images[:] = rng.integers(0, 255, images.shape, dtype=np.uint8)
        labels = (rng.random((n, 28)) > 0.9).astype(np.uint8)
        data = FoldData([], [], labels, images, images[:0], np.arange(n), np.arange(0), 2, "", {}, 0.0)
        normalizer = Normalizer([0.1] * 4, [0.1] * 4, "cpu", channels_last=True)

        def fresh():
            torch.manual_seed(0)
            model = build_model(args.backbone).to(memory_format=torch.channels_last)
            opt = OPTIMIZERS.get("adamw")(model.parameters(), config)
            sched = SCHEDULERS.get("cosine")(opt, config, n // args.batch_size)
            return model, opt, sched, build_loss("bce")

        # bare loop: same batch every step, no data path at all
        model, opt, _, loss_fn = fresh()
        model.train()
        x = normalizer.standardize(normalizer.to_unit(images[:args.batch_size]))
        y = torch.as_tensor(labels[:args.batch_size], dtype=torch.float32)
        steps = n // args.batch_size
        for _ in range(3):  # warm-up
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        bare_ips = steps * args.batch_size / (time.perf_counter() - t0)

        model, opt, sched, loss_fn = fresh()
        train_one_epoch(model, opt, sched, loss_fn, data, normalizer, config, epoch=0)  # warm-up epoch
        stats = train_one_epoch(model, opt, sched, loss_fn, data, normalizer, config, epoch=1)
        loop_ips = stats["images"] / stats["seconds"]
    ratio = loop_ips / bare_ips
    print(f"{args.backbone} @ {args.size}px, batch {args.batch_size}, {args.threads} threads, channels_last")
    print(f"bare forward/backward loop: {bare_ips:8.1f} images/s")
    print(f"train_one_epoch (full data path): {loop_ips:8.1f} images/s")
    print(f"ratio: {ratio:.0%} (target >= 80%) -> {'OK' if ratio >= 0.8 else 'BELOW TARGET'}")
    emit("training loop (sampler, memmap reads, augmentation, scheduler) vs a bare forward/backward loop", loop_ips,
         "images/s", baseline=bare_ips, baseline_name="bare loop, one pre-built batch", ratio=ratio,
         differs="configuration: the full data path (sampler, memmap reads, augmentation, normalisation, scheduler) "
                 "vs one pre-built batch fed again; same model, batch, threads, both warmed up",
         note=f"{args.backbone} at {args.size} px, batch {args.batch_size}, {args.threads} threads, {n} images; "
              "target >= 0.80")
    return 0


if __name__ == "__main__":
    sys.exit(main())
