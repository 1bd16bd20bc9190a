"""Training images/s for resnet34 at 512 px on whatever CUDA device is present (AMP, channels_last).

``.venv/bin/python benchmarks/bench_gpu.py [--quick] [--size 512] [--backbone resnet34] [--amp-dtype bfloat16]
[--compile]``

Finds the largest batch that fits (doubling from 8 until CUDA runs out of memory), then times
forward + backward + optimizer steps at that batch with the same pieces as the trainer
(``channels_last``, autocast, ``GradScaler`` for float16), against a float32 baseline at the same
batch in the same process. Without a CUDA device it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def step_fn(model, optimizer, size, batch, amp_dtype, scaler):
    x = torch.randn(batch, 4, size, size, device="cuda").contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, 28, device="cuda") > 0.9).float()

    def step():
        with torch.autocast("cuda", dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    return step


def images_per_s(backbone, size, batch, amp_dtype, n_steps, compile_model=False):
    from base_models.models import build_model

    torch.cuda.empty_cache()
    model = build_model(backbone).cuda().to(memory_format=torch.channels_last)
    if compile_model:
        model = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype is torch.float16 else None
    step = step_fn(model, optimizer, size, batch, amp_dtype, scaler)
    for _ in range(3):  # warm-up (cudnn autotuning, compile)
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(n_steps):
        step()
    torch.cuda.synchronize()
    return batch * n_steps / (time.perf_counter() - started)


def largest_batch(backbone, size, amp_dtype, start=8, limit=1024):
    """Double the batch until a training step runs out of memory; the last that fitted."""
    best, batch = None, start
    while batch <= limit:
        try:
            images_per_s(backbone, size, batch, amp_dtype, n_steps=1)
            best = batch
            batch *= 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed steps")
    ap.add_argument("--backbone", default="resnet34")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--amp-dtype", default="bfloat16", choices=["bfloat16", "float16"])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: bench_gpu measures GPU training speed and has nothing to do on this machine (skipped)")
        return 0
    torch.backends.cudnn.benchmark = True
    amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[args.amp_dtype]
    name = torch.cuda.get_device_name(0)
    n_steps = 5 if args.quick else 20
    batch = largest_batch(args.backbone, args.size, amp_dtype)
    if batch is None:
        print(f"{name}: even a batch of 8 at {args.size}px does not fit")
        return 0
    amp_rate = images_per_s(args.backbone, args.size, batch, amp_dtype, n_steps)
    try:
        fp32_rate = images_per_s(args.backbone, args.size, batch, None, n_steps)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        fp32_rate = images_per_s(args.backbone, args.size, batch // 2, None, n_steps)
    print(f"device: {name} (torch {torch.__version__})")
    print(f"{args.backbone} {args.size}px train step, channels_last, largest batch with AMP: {batch}")
    print(f"  AMP {args.amp_dtype}: {amp_rate:8.1f} images/s")
    print(f"  float32 baseline: {fp32_rate:8.1f} images/s  -> AMP speed-up {amp_rate / fp32_rate:.2f}x")
    if args.compile:
        compiled = images_per_s(args.backbone, args.size, batch, amp_dtype, n_steps, compile_model=True)
        print(f"  AMP + torch.compile: {compiled:8.1f} images/s ({compiled / amp_rate:.2f}x of eager AMP)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
