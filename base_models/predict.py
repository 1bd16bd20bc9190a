"""Inference alone: trained checkpoints in, an ``Id,0..K-1`` probability CSV out, images/s printed.

:func:`predict_checkpoints` is the library entry point; the command is ``python -m base_models.predict
--checkpoint oof/resnet18/fold0 [more ...] --data DIR [--split test|train] [--batch-size 128] [--n-jobs N]
[--tta none|flips|d8] [--out probs.csv]``, also ``hpa-ens predict`` (:mod:`base_models.commands.predict`).

Without ``--out`` the probabilities go to ``predict_{split}.csv`` beside the first checkpoint's fold
folder (``OUT/NAME/predict_test.csv``), so nothing computed is thrown away.

A checkpoint is a fold folder (``best.pt`` is used) or a ``.pt`` file inside one; the fold's
``config.yaml`` (backbone, head, size, normalisation) and ``metrics.json`` (dataset channel
statistics) are read beside it. Several checkpoints are averaged in probability space (a fold or
model ensemble). Images are decoded once into the same uint8 cache as training; the printed
images/s is the model time alone (decoding is reported separately, and is cached for later runs).
"""

from __future__ import annotations

# python -m base_models.predict: the command lives in base_models.commands.predict. Its guard comes first, before
# this module imports torch, so that without the [train] extra it ends in the one-line error, not a traceback.
if __name__ == "__main__":
    from hpa_ens.commands import launch

    launch("predict", __spec__.name)

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import yaml

from hpa_ens.labels import read_sample_submission
from hpa_ens.task import load_task
from hpa_ens.validation import ContractError, ParameterError

from . import checkpoint
from .config import load_config
from .data import IMAGE_FORMATS, Sources, default_cache_dir, open_images
from .infer import Normalizer, predict
from .models import build_model

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


def predict_checkpoints(checkpoints: Sequence, data_dir, split: str = "test", batch_size: int = 128,
                        threads: int = 0, tta: str = "flips", device: str = "auto", cache_dir=None,
                        progress=None) -> tuple[list[str], np.ndarray, float, float, torch.device]:
    """Load the predictors, open the images (one cache per size) and predict them, averaged.

    Parameters
    ----------
    checkpoints : fold folders or ``.pt`` files (:func:`resolve_checkpoint`), averaged in probability space
    data_dir : Kaggle-layout folder (``sample_submission.csv`` + ``test/``, or ``train.csv`` + ``train/``)
    split : test | train
    threads : torch CPU threads (0 = every core); sets torch's process-wide thread count on the CPU
    tta : none | flips | d8 (= dihedral)
    device : auto | cpu | cuda
    cache_dir : image caches (default ``DATA/.cache``)
    progress : rich-``Progress``-like object showing the caches being built, or None

    Returns
    -------
    ids : list of str, n Ids of the split
    probs : ndarray of shape (n, K)
    seconds : model time; cache_seconds : decoding/caching time
    device : torch.device predicted on
    """
    from .train import resolve_device

    if batch_size < 1:
        raise ParameterError(f"The 'batch_size' parameter must be >= 1. Got {batch_size} instead.")
    device = resolve_device(device)
    if device.type == "cpu":
        torch.set_num_threads(threads or os.cpu_count() or 1)
    predictors = [load_predictor(c, device) for c in checkpoints]
    if len({tuple(load_task(p.config["task"]).class_names) for p in predictors}) > 1:
        raise ContractError(f"{checkpoints[0]}: the checkpoints were trained for different class lists.")
    ids, sources = split_sources(data_dir, split, predictors[0].config)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(data_dir)
    t0 = time.perf_counter()
    images_by_size = {s: open_images(sources, s, cache_dir, "cache", tag=split, progress=progress)
                      for s in sorted({p.config["image_size"] for p in predictors})}
    cache_seconds = time.perf_counter() - t0
    probs, seconds = predict_ensemble(predictors, images_by_size, tta, batch_size)
    return ids, probs, seconds, cache_seconds, device

