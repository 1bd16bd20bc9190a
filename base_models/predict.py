"""Inference alone: trained checkpoints in, an ``Id,0..K-1`` probability CSV out, images/s printed.

``python -m base_models.predict --checkpoint oof/resnet18/fold0 [more ...] --data DIR [--split test|train]
[--batch-size 128] [--threads N] [--tta none|flips|d8] [--out probs.csv]``

Without ``--out`` the probabilities go to ``predict_{split}.csv`` beside the first checkpoint's fold
folder (``OUT/NAME/predict_test.csv``), so nothing computed is thrown away.

A checkpoint is a fold folder (``best.pt`` is used) or a ``.pt`` file inside one; the fold's
``config.yaml`` (backbone, head, size, normalisation) and ``metrics.json`` (dataset channel
statistics) are read beside it. Several checkpoints are averaged in probability space (a fold or
model ensemble). Images are decoded once into the same uint8 cache as training; the printed
images/s is the model time alone (decoding is reported separately, and is cached for later runs).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from hpa_ens import cli  # noqa: E402
from hpa_ens.contract import probs_frame, write_probs  # noqa: E402
from hpa_ens.labels import read_sample_submission  # noqa: E402
from hpa_ens.task import load_task  # noqa: E402

from . import checkpoint  # noqa: E402
from .config import load_config  # noqa: E402
from .data import IMAGE_FORMATS, Sources, default_cache_dir, open_images  # noqa: E402
from .infer import Normalizer, predict  # noqa: E402
from .models import build_model  # noqa: E402
from hpa_ens.validation import ContractError, ParameterError  # noqa: E402

TTA_ALIASES = {"none": "none", "flips": "flips", "d8": "dihedral", "dihedral": "dihedral"}


@dataclass
class Predictor:
    """One trained model ready for inference."""

    model: torch.nn.Module
    normalizer: Normalizer
    config: dict
    source: Path


def resolve_checkpoint(path) -> tuple[Path, Path]:
    """``(weights file, fold folder)`` for a fold folder or a checkpoint file inside one."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "checkpoint.pt"):
            if (path / name).exists():
                return path / name, path
        raise ContractError(f"{path}: no best.pt or checkpoint.pt in this folder.")
    if not path.exists():
        raise ContractError(f"{path}: checkpoint not found.")
    return path, path.parent


def load_predictor(path, device: str | torch.device = "cpu") -> Predictor:
    """Build the fold's model from its ``config.yaml`` and load the checkpoint's weights."""
    weights, folder = resolve_checkpoint(path)
    config_path = folder / "config.yaml"
    if not config_path.exists():
        raise ContractError(f"{config_path}: the fold's resolved config is needed beside {weights.name}.")
    saved = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    # Keys a newer or older trainer added are dropped rather than refused: inference needs few of them.
    from .config import DEFAULTS

    kept = {k: v for k, v in saved.items() if k in DEFAULTS}
    # How the epoch was chosen does not matter for inference; a fold trained under an older rule
    # (monitor without an inner split) still predicts.
    kept["monitor"] = "none"
    config = load_config(None, kept, check_names=False)
    device = torch.device(device)
    task = load_task(config["task"])
    model = build_model(config["backbone"], config["head"], config["dropout"], None, n_classes=task.n_classes,
                        global_pool=config["global_pool"], in_chans=len(task.channels))
    state = checkpoint.load(weights)
    if config["tiles"] or config["cells"] or config["center_loss"] > 0:
        raise ContractError(f"{config_path}: a tiles/cells/center-loss model; base_models.predict serves plain "
                            f"models only (its fold's test.csv holds its predictions).")
    model.load_state_dict(state["model"])
    model = model.to(device).eval()
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    if config["normalize"] == "per_image":
        normalizer = Normalizer(None, None, device, config["channels_last"])
    else:
        from hpa_ens.contract import read_fold_metrics

        metrics_path = folder / "metrics.json"
        info = read_fold_metrics(metrics_path, verify_outputs=False).get("normalization", {}) \
            if metrics_path.exists() else {}
        if "mean" not in info:
            raise ContractError(f"{metrics_path}: the fold's channel statistics (normalization.mean/std) are needed "
                             f"for normalize: dataset.")
        normalizer = Normalizer(info["mean"], info["std"], device, config["channels_last"])
    return Predictor(model, normalizer, config, weights)


def predict_ensemble(predictors: Sequence[Predictor], images_by_size: dict, tta: str = "flips",
                     batch_size: int = 128, amp: bool = True) -> tuple[np.ndarray, float]:
    """Mean probability of several models over the same images.

    Parameters
    ----------
    images_by_size : dict image_size -> uint8 array of shape (n, 4, S, S), same rows for every size
    tta : none | flips | d8 (= dihedral)

    Returns
    -------
    probs : ndarray of shape (n, K), float64
    seconds : model time (all predictors)
    """
    tta = TTA_ALIASES.get(tta, tta)
    total, seconds = None, 0.0
    for p in predictors:
        images = images_by_size[p.config["image_size"]]
        started = time.perf_counter()
        probs, _ = predict(p.model, images, np.arange(len(images)), p.normalizer, tta, batch_size, amp,
                           amp_dtype=p.config.get("amp_dtype", "bfloat16"))
        seconds += time.perf_counter() - started
        total = probs if total is None else total + probs
    return total / len(predictors), seconds


def split_sources(data_dir, split: str, config: dict) -> tuple[list[str], Sources]:
    """The Ids and image files of ``split`` (test: sample_submission.csv; train: train.csv)."""
    data_dir = Path(data_dir)
    if split == "test":
        ids = read_sample_submission(data_dir / "sample_submission.csv").tolist()
    elif split == "train":
        from .train import read_label_matrix

        ids = read_label_matrix(data_dir / "train.csv", load_task(config["task"])).index.tolist()
    else:
        raise ParameterError(f"The 'split' parameter must be test or train. Got {split!r} instead.")
    task = load_task(config["task"])
    return ids, Sources([(i, data_dir / split) for i in ids], task.channels, IMAGE_FORMATS[config["image_format"]])


def default_out(checkpoints: Sequence, split: str) -> Path:
    """``predict_{split}.csv`` beside the first checkpoint's fold folder."""
    _, folder = resolve_checkpoint(checkpoints[0])
    return folder.parent / f"predict_{split}.csv"


def build_parser():
    ap = cli.parser("python -m base_models.predict", "Predict probabilities with trained checkpoints "
                    "(averaged); write them and print images/s.")
    ap.add_argument("--checkpoint", required=True, nargs="+", help="fold folders or .pt files (averaged)")
    ap.add_argument("--data", required=True, help="Kaggle-layout folder (sample_submission.csv + test/, or "
                    "train.csv + train/)")
    ap.add_argument("--split", default="test", choices=["test", "train"])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = all cores)")
    ap.add_argument("--tta", default="flips", choices=sorted(TTA_ALIASES), help="d8 = all 8 flips/rotations")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--cache-dir", default=None, help="default DATA/.cache")
    ap.add_argument("--out", type=Path, default=None, help="Id,0..K-1 probabilities (default: "
                    "predict_{split}.csv beside the first checkpoint's fold folder)")
    return ap


def run(args) -> tuple[list[str], np.ndarray, float, float, torch.device]:
    """Load the predictors, open the images (one cache per size), predict; (ids, probs, model s, cache s, device)."""
    from .train import resolve_device

    if args.batch_size < 1:
        raise ParameterError(f"The 'batch_size' parameter must be >= 1. Got {args.batch_size} instead.")
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    predictors = [load_predictor(c, device) for c in args.checkpoint]
    if len({tuple(load_task(p.config["task"]).class_names) for p in predictors}) > 1:
        raise ContractError(f"{args.checkpoint[0]}: the checkpoints were trained for different class lists.")
    ids, sources = split_sources(args.data, args.split, predictors[0].config)
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir(args.data)
    t0 = time.perf_counter()
    with cli.progress(transient=True) as bar:
        images_by_size = {s: open_images(sources, s, cache_dir, "cache", tag=args.split, progress=bar)
                          for s in sorted({p.config["image_size"] for p in predictors})}
    cache_seconds = time.perf_counter() - t0
    probs, seconds = predict_ensemble(predictors, images_by_size, args.tta, args.batch_size)
    return ids, probs, seconds, cache_seconds, device


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or default_out(args.checkpoint, args.split)
    ids, probs, seconds, cache_seconds, device = run(args)
    write_probs(out, probs_frame(ids, probs))
    rate = len(ids) / max(seconds, 1e-9)
    where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else str(device)
    cli.console.print(f"{len(ids)} images, {len(args.checkpoint)} checkpoint(s), tta {args.tta}, batch "
                      f"{args.batch_size}, {where}: {rate:.1f} images/s (model time {seconds:.2f} s; decode/cache "
                      f"{cache_seconds:.2f} s) -> {out}")
    print(f"images_per_s={rate:.3f}")
    return 0


if __name__ == "__main__":
    cli.entry(main)
