"""Train and predict images/s at 512 px on a CUDA device, AMP and channels-last, for two backbones.

``.venv/bin/python benchmarks/bench_gpu.py [--quick] [--size 512] [--backbones resnet34 efficientnet_b0]
[--batch 64] [--amp-dtype bfloat16] [--compile]``

For each backbone, with the trainer's own pieces (``base_models.models.build_model``, 4 input
channels, 28 outputs, ``channels_last``, ``torch.autocast``, a ``GradScaler`` for float16), it times

- **train**: forward + backward + AdamW steps at ``--batch``, against a float32 baseline at the same
  batch in the same process (the AMP speed-up);
- **predict**: inference-mode forward passes at ``2 * --batch``, AMP, no TTA.

Random uint8 images are normalised on the device, as the trainer does (decoding is not timed: see
``benchmarks/bench_loader.py`` for the loaders). Without a CUDA device it says so and exits 0.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit  # noqa: E402

AMP = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": None}


def batch_on_device(batch: int, size: int) -> torch.Tensor:
    x = torch.randint(0, 256, (batch, 4, size, size), dtype=torch.uint8, device="cuda")
    return ((x.float() / 255.0 - 0.1) / 0.15).contiguous(memory_format=torch.channels_last)


def time_steps(step, n_steps: int, n_images: int) -> float:
    for _ in range(3):  # warm-up: cudnn autotuning, compile
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(n_steps):
        step()
    torch.cuda.synchronize()
    return n_images * n_steps / (time.perf_counter() - started)


def build(backbone: str, compile_model: bool):
    from base_models.models import build_model

    torch.cuda.empty_cache()
    model = build_model(backbone, n_classes=28).cuda().to(memory_format=torch.channels_last)
    return torch.compile(model) if compile_model else model


def train_rate(backbone, size, batch, amp_dtype, n_steps, compile_model=False) -> float:
    model = build(backbone, compile_model).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype is torch.float16 else None
    x, y = batch_on_device(batch, size), (torch.rand(batch, 28, device="cuda") > 0.9).float()

    def step():
        with torch.autocast("cuda", dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
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

    return time_steps(step, n_steps, batch)


def predict_rate(backbone, size, batch, amp_dtype, n_steps) -> float:
    model = build(backbone, False).eval()
    x = batch_on_device(batch, size)

    @torch.inference_mode()
    def step():
        with torch.autocast("cuda", dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            torch.sigmoid(model(x).float())

    return time_steps(step, n_steps, batch)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed steps")
    ap.add_argument("--backbones", nargs="+", default=["resnet34", "efficientnet_b0"])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--amp-dtype", default="bfloat16", choices=["bfloat16", "float16"])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (train)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: bench_gpu measures GPU speed and has nothing to do on this machine (skipped)")
        return 0
    torch.backends.cudnn.benchmark = True
    amp_dtype, n_steps = AMP[args.amp_dtype], (5 if args.quick else 20)
    device = torch.cuda.get_device_name(0)
    print(f"device: {device} (torch {torch.__version__}), {args.size}px, channels_last, "
          f"train batch {args.batch}, predict batch {2 * args.batch}")
    print(f"{'backbone':<18} {'train AMP':>10} {'train fp32':>11} {'AMP x':>6} {'predict AMP':>12}  images/s")
    for backbone in args.backbones:
        amp = train_rate(backbone, args.size, args.batch, amp_dtype, n_steps)
        try:
            fp32 = train_rate(backbone, args.size, args.batch, None, n_steps)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            fp32 = float("nan")
        pred = predict_rate(backbone, args.size, 2 * args.batch, amp_dtype, n_steps)
        print(f"{backbone:<18} {amp:10.1f} {fp32:11.1f} {amp / fp32:6.2f} {pred:12.1f}")
        note = (f"{device}, {args.size} px, channels_last, train batch {args.batch}, predict batch {2 * args.batch}, "
                f"{args.amp_dtype}")
        emit(f"gpu: {backbone} training, AMP vs float32", amp, "images/s", baseline=fp32, baseline_name="float32",
             ratio=amp / fp32 if fp32 == fp32 else None, note=note,
             differs=f"configuration: {args.amp_dtype} autocast vs float32; same model, batch, size, 3 warm-up "
                     f"and {n_steps} timed steps each")  # fp32 is nan after an out-of-memory
        cols = [("train AMP", amp, "images/s"), ("train fp32", fp32, "images/s"),
                ("AMP speed-up", amp / fp32, "×"), ("predict AMP", pred, "images/s")]
        if args.compile:
            compiled = train_rate(backbone, args.size, args.batch, amp_dtype, n_steps, compile_model=True)
            print(f"{'  + torch.compile':<18} {compiled:10.1f}  ({compiled / amp:.2f}x of eager AMP)")
            cols.append(("train AMP + torch.compile", compiled, "images/s"))
        for col, value, unit in cols:
            emit(f"gpu table: {backbone}, {col}", value, unit, table="gpu", row=backbone, col=col, note=note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
