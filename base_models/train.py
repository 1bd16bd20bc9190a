"""Train one fold of one config and write its OOF rows, test predictions, checkpoint and metrics.

:func:`fit_fold` is the library entry point. ``python -m base_models.train --config
base_models/configs/examples/resnet18.yaml --data DIR --folds folds.csv --fold 0 [--out oof] [--resume]
[--epochs 3] [--image-size 64] ...`` (every config key is a flag) is the command
:mod:`base_models.commands.train`, also ``hpa-ens train``.

**Honest OOF.** The rows of the held-out fold never choose anything about their own model: by
default the schedule is fixed (every one of ``epochs`` is trained and the last one kept); with
``monitor: f1|loss`` the epoch (and early stopping) is chosen on an inner split carved from the
*training* folds (``inner_val_fraction``). The held-out fold is predicted once, after training.

Per fold, under ``OUT/NAME/fold{K}/``: ``config.yaml`` (resolved), ``checkpoint.pt`` (every epoch,
atomic: model, optimiser, scheduler, RNG state, epoch, history), ``best.pt`` (the kept weights),
``oof.csv`` (this fold's held-out rows), ``test.csv`` and, last, ``metrics.json`` (scores, timing,
hashes of inputs and outputs, and the fingerprint that makes it the fold's freshness stamp).
"""

from __future__ import annotations

# python -m base_models.train: the command lives in base_models.commands.train. Its guard comes first, before
# this module imports torch, so that without the [train] extra it ends in the one-line error, not a traceback.
if __name__ == "__main__":
    from hpa_ens.commands import launch

    launch("train", __spec__.name)

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from hpa_ens.validation import ContractError, ParameterError
from hpa_ens.contract import probs_frame, read_folds, write_fold_metrics, write_probs
from hpa_ens.io import atomic_write_text, sha256_file
from hpa_ens.labels import read_labels, read_sample_submission
from hpa_ens.task import Task, load_task
from hpa_ens.thresholds import exact_thresholds

from . import checkpoint, distributed, wrappers
from .config import config_hash, dump_config
from .data import (IMAGE_FORMATS, Sources, augment, batches, channel_stats, check_files, default_cache_dir,
                   load_batches, missing_images, open_images, read_channel_stats)
from .freshness import fold_fingerprint, input_hashes
from .infer import Normalizer, autocast, pin_for, predict
from .losses import build_loss
from .models import build_model
from .optim import OPTIMIZERS, SCHEDULERS
from .registry import SAMPLERS

CHECKPOINT_FORMAT = 2  # 2: honest OOF (no held-out predictions inside the checkpoint)


class _NoProgress:
    """The progress reporter of a run without one (``progress=None``): every call does nothing."""

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def advance(self, *args, **kwargs) -> None:
        pass

    def remove_task(self, *args, **kwargs) -> None:
        pass


def _say(log: Callable[[str], None] | None, line: str) -> None:
    if log is not None:
        log(line)


@dataclass
class FoldData:
    """Everything one fold trains and predicts on.

    ``train_images`` rows are the train Ids (in ``train.csv`` order) followed by any extra images;
    ``labels`` has one row per ``train_images`` row.
    """

    train_ids: list
    test_ids: list
    labels: np.ndarray          # (n_train + n_extra, K) uint8
    train_images: np.ndarray    # (n_train + n_extra, C, S, S) uint8 memmap or StreamImages
    test_images: np.ndarray     # (n_test, C, S, S)
    fit_rows: np.ndarray        # rows trained on (other folds minus the inner split, + extra)
    val_rows: np.ndarray        # rows of this fold (its OOF predictions; never used to choose anything)
    n_folds: int
    folds_sha256: str
    inputs: dict                # name -> sha256, for provenance
    cache_seconds: float
    monitor_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # inner split
    class_names: tuple = ()


def read_label_matrix(path, task: Task) -> pd.DataFrame:
    """``Id,Target`` labels as an (n, K) uint8 frame for the task's K (``hpa_ens.labels.read_labels``)."""
    return read_labels(path, task=task)


def inner_split(fit_rows: np.ndarray, n_train: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Carve the monitoring rows out of the training rows (own images only, never extra ones).

    Returns
    -------
    fit_rows, monitor_rows : int arrays; together they are the input ``fit_rows``
    """
    own = fit_rows[fit_rows < n_train]
    n_monitor = int(round(len(own) * fraction))
    if fraction <= 0 or n_monitor == 0:
        return fit_rows, fit_rows[:0]
    picked = np.sort(np.random.default_rng([seed, 7_771]).permutation(own)[:n_monitor])
    return np.setdiff1d(fit_rows, picked), picked


def extra_sources(config: dict, channels, log: Callable[[str], None] | None = None) -> tuple[Sources, np.ndarray, dict]:
    """The extra (HPAv18) images and labels; Ids without images refused (count, first examples) or skipped.

    ``log`` receives a line naming the skipped Ids.

    Returns
    -------
    sources : Sources of the kept extra images
    labels : ndarray of shape (n_extra, K), uint8
    info : dict with the extra labels' sha256 and the number skipped
    """
    task = load_task(config["task"])
    extra = read_label_matrix(config["extra_labels"], task)
    sources = Sources([(i, Path(config["extra_images"])) for i in extra.index], channels,
                      IMAGE_FORMATS[config["extra_image_format"]])
    missing = missing_images(sources)
    if missing and not config["skip_missing"]:
        raise ContractError(f"{config['extra_labels']}: {len(missing)} of {len(extra)} Ids have no image files in "
                            f"{config['extra_images']} (first: {', '.join(missing[:3])}); add them or pass "
                            f"--skip-missing.")
    if missing:
        keep = ~extra.index.isin(missing)
        extra = extra[keep]
        sources = Sources([s for s, k in zip(sources, keep) if k], channels, sources.extensions)
        _say(log, f"{config['extra_labels']}: skipped {len(missing)} Ids without images "
                  f"(first: {', '.join(missing[:3])})")
    return sources, extra.to_numpy(dtype=np.uint8), {"extra_skipped": len(missing)}


def extra_allowed(folds_path, extra_ids: list, fold: int, n_folds: int,
                  log: Callable[[str], None] | None = None) -> np.ndarray:
    """Which extra images the model of ``fold`` may train on (``folds.extra.csv`` beside the folds file).

    An external image that near-copies a train image of fold k is kept out of fold k's model, so no
    held-out label leaks through it (``python -m hpa_ens.folds --extra-labels`` writes the file).
    Without the file every fold trains on every extra image, and a line to ``log`` says so.
    """
    from hpa_ens.contract import extra_fit_mask, extra_folds_path, read_extra_folds

    path = extra_folds_path(folds_path)
    if not path.is_file():
        _say(log, f"{path}: absent, so every fold trains on every external image; run python -m hpa_ens.folds "
                  f"--extra-labels to keep near-copies of train images out of their fold")
        return np.ones(len(extra_ids), dtype=bool)
    return extra_fit_mask(read_extra_folds(path, ids=extra_ids, n_folds=n_folds), fold)


def prepare_data(config: dict, data_dir, folds_path, fold: int, progress=None,
                 log: Callable[[str], None] | None = None) -> FoldData:
    """Read labels, folds and test Ids; check every channel file; open the images (cache or stream).

    ``progress`` (see :func:`fit_fold`) shows the image caches being built; ``log`` receives notes.
    """
    data_dir = Path(data_dir)
    task = load_task(config["task"])
    labels = read_label_matrix(data_dir / "train.csv", task)
    train_ids = labels.index.tolist()
    folds = read_folds(folds_path, ids=train_ids)
    n_folds = int(folds.max()) + 1
    if not isinstance(fold, int) or not 0 <= fold < n_folds:
        raise ParameterError(f"The 'fold' parameter must be an integer in 0..{n_folds - 1}. Got {fold!r} instead.")
    test_ids = read_sample_submission(data_dir / "sample_submission.csv").tolist()
    ext = IMAGE_FORMATS[config["image_format"]]
    train_sources = Sources([(i, data_dir / "train") for i in train_ids], task.channels, ext)
    test_sources = Sources([(i, data_dir / "test") for i in test_ids], task.channels, ext)
    Y = labels.to_numpy(dtype=np.uint8)
    inputs = input_hashes(data_dir, config, folds_path)
    check_files(train_sources)
    check_files(test_sources)  # every file of every split is checked before any decoding starts
    allowed = np.zeros(0, dtype=bool)
    if config["extra_images"]:
        extra, extra_Y, info = extra_sources(config, task.channels, log)
        allowed = extra_allowed(folds_path, [i for i, _ in extra], fold, n_folds, log)
        train_sources = Sources(list(train_sources) + list(extra), task.channels, ext + extra.extensions)
        Y = np.concatenate([Y, extra_Y])
        inputs.update(info)
    cache_dir = Path(config["cache_dir"]) if config["cache_dir"] else default_cache_dir(data_dir)
    started = time.perf_counter()
    size, loader = config["image_size"], config["loader"]
    tag = "train" if len(train_sources) == len(train_ids) else "train_extra"
    train_images = open_images(train_sources, size, cache_dir, loader, tag=tag, progress=progress)
    test_images = open_images(test_sources, size, cache_dir, loader, tag="test", progress=progress)
    fold_of = folds.to_numpy()
    val_rows = np.flatnonzero(fold_of == fold)
    fit_rows = np.concatenate([np.flatnonzero(fold_of != fold), len(train_ids) + np.flatnonzero(allowed)])
    fit_rows, monitor_rows = inner_split(fit_rows, len(train_ids), config["inner_val_fraction"], config["seed"])
    return FoldData(train_ids, test_ids, Y, train_images, test_images, fit_rows, val_rows, n_folds,
                    sha256_file(folds_path), inputs, time.perf_counter() - started, monitor_rows,
                    tuple(task.class_names))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParameterError("The 'device' parameter is 'cuda' but no CUDA device is available. Use auto or cpu.")
    return torch.device(name)


def setup_torch(config: dict, device: torch.device) -> None:
    """Threads and determinism (same seed on CPU -> same bytes)."""
    if device.type == "cpu":
        torch.set_num_threads(config["threads"] or os.cpu_count() or 1)
    if config["deterministic"]:
        # warn_only: a few CUDA kernels have no deterministic version; the CPU path is exact.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def make_normalizer(config: dict, data: FoldData, device: torch.device) -> tuple[Normalizer, dict]:
    if config["normalize"] == "per_image":
        return Normalizer(None, None, device, config["channels_last"]), {"normalize": "per_image"}
    if config["channel_stats"]:
        mean, std = read_channel_stats(config["channel_stats"], load_task(config["task"]).channels)
        source = str(config["channel_stats"])
    else:
        mean, std = channel_stats(data.train_images)
        source = "train images"
    return (Normalizer(mean, std, device, config["channels_last"]),
            {"normalize": "dataset", "source": source, "mean": mean.tolist(), "std": std.tolist()})


def seed_epoch(seed: int, epoch: int) -> tuple[np.random.Generator, torch.Generator]:
    """Per-epoch random streams derived from (seed, epoch) alone, so a resumed run replays exactly."""
    torch.manual_seed(seed * 100_003 + epoch + 1)  # dropout and other global draws
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch + 50_000)
    return np.random.default_rng([seed, epoch]), gen


def train_one_epoch(model, optimizer, scheduler, loss_fn, data: FoldData, normalizer: Normalizer, config: dict,
                    epoch: int, on_batch=None, batch_loss=None, scaler=None,
                    dist: distributed.DistInfo = distributed.DistInfo()) -> dict:
    """One pass over the sampler's order. Returns ``{'loss', 'images', 'seconds'}``.

    ``batch_loss(logits, rows, targets) -> loss``, when given, replaces ``loss_fn(logits, targets)``
    (``rows`` index ``data.train_images``): the soft-target hook of ``base_models.distill``.
    ``scaler`` is a ``torch.amp.GradScaler`` (float16 AMP). Under torchrun (``dist``) every rank
    draws the same order and trains on its own shard of it.
    """
    model.train()
    rng, gen = seed_epoch(config["seed"], epoch)
    fit_labels = data.labels[data.fit_rows]
    sampler = SAMPLERS.get(config["sampler"])
    order = data.fit_rows[sampler(fit_labels, rng, power=config["sampler_power"], epoch=epoch,
                                  single_weight=config["single_weight"], phase1_epochs=config["phase1_epochs"])]
    if dist.enabled:
        order = distributed.shard_order(order, dist.rank, dist.world_size)
        gen.manual_seed(config["seed"] * 100_003 + epoch + 50_000 + 7_919 * dist.rank)  # own augmentations
    # Dropping a ragged last batch keeps BatchNorm away from batches of one.
    chunks = batches(order, config["batch_size"], drop_last=True)
    device = normalizer.device
    total, seen = 0.0, 0
    started = time.perf_counter()
    workers = config["loader_workers"] if config["loader"] == "stream" else 0
    for rows, batch in zip(chunks, load_batches(data.train_images, chunks, workers)):
        target = data.labels[rows]
        x = normalizer.to_unit(pin_for(batch, device))
        x = augment(x, gen, config["augment_dihedral"], config["augment_crop_scale"],
                    config["augment_brightness"], config["augment_contrast"])
        x = normalizer.standardize(x)
        y = torch.as_tensor(target, dtype=torch.float32, device=device)
        with autocast(device, config["amp"], config.get("amp_dtype", "bfloat16")):
            logits = model(x)
        loss = loss_fn(logits.float(), y) if batch_loss is None else batch_loss(logits.float(), rows, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        scheduler.step()
        total += float(loss.detach()) * len(rows)
        seen += len(rows)
        if on_batch is not None:
            on_batch(len(rows), total / seen, seen / max(time.perf_counter() - started, 1e-9))
    seconds = time.perf_counter() - started
    return {"loss": total / max(seen, 1), "images": seen, "seconds": seconds}


@dataclass
class Trainer:
    """The model and everything that steps it, for one fold."""

    model: torch.nn.Module          # plain weights (saved, evaluated)
    train_model: torch.nn.Module    # what the loop calls (DDP / compiled wrapper, or ``model``)
    loss_fn: torch.nn.Module
    step_loss: object               # batch_loss hook or None
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    normalizer: Normalizer
    norm_info: dict


def build_trainer(config: dict, data: FoldData, device, dist, normalizer: Normalizer, norm_info: dict,
                  make_batch_loss=None) -> Trainer:
    """Model (head size K, C input channels), loss, optimiser, schedule; seeded."""
    torch.manual_seed(config["seed"])
    n_classes, in_chans = data.labels.shape[1], data.train_images.shape[1]
    model = build_model(config["backbone"], config["head"], config["dropout"], config["weights"],
                        n_classes=n_classes, global_pool=config["global_pool"], in_chans=in_chans,
                        pretrained=config["pretrained"]).to(device)
    model = wrappers.wrap_model(model, config, n_classes, in_chans).to(device)  # tiles / cells / center loss
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    train_model = distributed.wrap(model, dist, device)
    if config["compile"]:
        train_model = torch.compile(train_model)
    scaler = (torch.amp.GradScaler("cuda") if device.type == "cuda" and config["amp"]
              and config["amp_dtype"] == "float16" else None)
    loss_fn = build_loss(config["loss"], class_freq=data.labels[data.fit_rows].mean(axis=0)).to(device)
    step_loss = make_batch_loss(loss_fn) if make_batch_loss is not None else None
    step_loss = wrappers.batch_loss(model, loss_fn, step_loss)
    optimizer = OPTIMIZERS.get(config["optimizer"])(model.parameters(), config)
    n_rank_rows = len(data.fit_rows) // dist.world_size  # each rank's shard (whole order when alone)
    steps = len(batches(np.arange(n_rank_rows), config["batch_size"], drop_last=True))
    scheduler = SCHEDULERS.get(config["scheduler"])(optimizer, config, steps)
    return Trainer(model, train_model, loss_fn, step_loss, optimizer, scheduler, scaler, normalizer, norm_info)


def monitor_score(config: dict, t: Trainer, data: FoldData) -> dict:
    """Loss and macro F1 (per-class best thresholds) on the inner split; {} with ``monitor: none``."""
    if config["monitor"] == "none" or not len(data.monitor_rows):
        return {}
    probs, loss = predict(t.model, data.train_images, data.monitor_rows, t.normalizer, "none",
                          config["eval_batch_size"], config["amp"], targets=data.labels[data.monitor_rows],
                          loss_fn=t.loss_fn, amp_dtype=config["amp_dtype"])
    f1 = float(exact_thresholds(data.labels[data.monitor_rows], probs)[1].mean())
    return {"monitor_loss": loss, "monitor_f1": f1, "score": f1 if config["monitor"] == "f1" else -loss}


def resume_state(ckpt_path: Path, t: Trainer, cfg_sha: str, folds_sha: str) -> dict:
    """Restore model, optimiser, schedule and RNG from ``checkpoint.pt``; the loop's state."""
    state = checkpoint.load(ckpt_path)
    if state.get("format") != CHECKPOINT_FORMAT or state.get("config_sha256") != cfg_sha:
        raise ContractError(f"{ckpt_path}: was trained with another config or trainer; rerun without --resume.")
    if state.get("folds_sha256") != folds_sha:
        raise ContractError(f"{ckpt_path}: was trained on another folds file; rerun without --resume.")
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    t.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_torch"])
    return {"epoch": int(state["epoch"]), "history": list(state["history"]), "best": dict(state["best"]),
            "stopped": bool(state["stopped"])}


def run_epochs(config: dict, t: Trainer, data: FoldData, paths: dict, loop: dict, dist, bar, label: str) -> dict:
    """Train the remaining epochs; keep the best weights by the inner split, or the last ones.

    ``bar`` is a progress reporter (see :func:`fit_fold`; not None).
    """
    task = bar.add_task(label, total=max(config["epochs"] - loop["epoch"], 0) * len(data.fit_rows))
    for epoch in range(loop["epoch"], config["epochs"]):
        if loop["stopped"]:
            break
        text = f"{label} ep {epoch + 1}/{config['epochs']}"
        stats = train_one_epoch(t.train_model, t.optimizer, t.scheduler, t.loss_fn, data, t.normalizer, config, epoch,
                                lambda n, loss, ips: bar.update(task, advance=n, description=f"{text} loss {loss:.4f} "
                                                                f"{ips:.0f} img/s"),
                                batch_loss=t.step_loss, scaler=t.scaler, dist=dist)
        distributed.sync_buffers(t.model, dist)  # rank 0's BatchNorm statistics on every rank
        record = {"epoch": epoch + 1, "train_loss": stats["loss"], "train_seconds": stats["seconds"],
                  "train_images_per_s": stats["images"] / max(stats["seconds"], 1e-9),
                  "lr": t.optimizer.param_groups[0]["lr"]}
        record.update(monitor_score(config, t, data) if dist.is_main else {})
        score = record.pop("score", float(epoch))  # monitor none: the latest epoch is the best
        if dist.is_main and score > loop["best"]["score"]:
            loop["best"] = {"score": float(score), "epoch": epoch + 1}
            checkpoint.save(paths["best"], {"model": t.model.state_dict(), "epoch": epoch + 1})
        loop["history"].append(record)
        loop["stopped"] = (config["monitor"] != "none" and epoch + 1 < config["epochs"]
                           and (epoch + 1) - loop["best"]["epoch"] >= config["patience"])
        loop["stopped"] = distributed.broadcast_flag(loop["stopped"], dist)  # rank 0's early-stopping decision
        loop["epoch"] = epoch + 1
        if dist.is_main:
            checkpoint.save(paths["checkpoint"], {
                "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "model": t.model.state_dict(),
                "optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
                "rng_torch": torch.get_rng_state(), "history": loop["history"], "best": loop["best"],
                "stopped": loop["stopped"], "config_sha256": paths["cfg_sha"], "folds_sha256": data.folds_sha256})
        if config["stop_after_epoch"] is not None and epoch + 1 >= config["stop_after_epoch"]:
            raise SystemExit(f"stopped after epoch {epoch + 1} as asked (--stop-after-epoch); continue with --resume")
    bar.remove_task(task)
    return loop


def predict_fold(config: dict, t: Trainer, data: FoldData, best_path: Path, bar, label: str) -> tuple:
    """The kept weights' probabilities on the held-out fold (OOF) and the test images, with TTA."""
    if not best_path.exists():
        raise ContractError(f"{best_path}: missing; the fold never finished an epoch. Rerun without --resume.")
    t.model.load_state_dict(checkpoint.load(best_path)["model"])
    ptask = bar.add_task(f"{label} predict (tta {config['tta']})", total=len(data.val_rows) + len(data.test_ids))
    kw = dict(batch_size=config["eval_batch_size"], amp=config["amp"], amp_dtype=config["amp_dtype"],
              on_batch=lambda n: bar.advance(ptask, n))
    oof, _ = predict(t.model, data.train_images, data.val_rows, t.normalizer, config["tta"], **kw)
    test, _ = predict(t.model, data.test_images, np.arange(len(data.test_ids)), t.normalizer, config["tta"], **kw)
    bar.remove_task(ptask)
    return oof, test


def fit_fold(config: dict, data_dir, folds_path, fold: int, out_root="oof", resume: bool = False,
             argv: Sequence[str] | None = None, make_batch_loss=None, data_hook=None, fingerprint=None,
             progress=None, log: Callable[[str], None] | None = None) -> dict:
    """Train (or resume) one fold and write its outputs. Returns the fold's metrics dict.

    Hooks (``base_models.distill``): ``data_hook(FoldData) -> FoldData`` runs after the normaliser is
    fitted (e.g. adds test images as training rows); ``make_batch_loss(loss_fn)`` returns the
    ``batch_loss(logits, rows, targets)`` that ``train_one_epoch`` uses; ``fingerprint``
    (a JSON-able dict) joins the fold's fingerprint and the config hash checked by ``--resume``.
    Under torchrun, every rank trains and only rank 0 writes; other ranks return ``{}``.

    Reporting (nothing is printed here): ``progress`` is a rich-``Progress``-like object (``add_task``,
    ``update``, ``advance``, ``remove_task``) that shows caching, epochs and prediction, or None;
    ``log(line)`` receives notes (resuming, skipped extra images). The finished fold's line is
    :func:`fold_line` of the returned metrics.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_root) / config["name"] / f"fold{fold}"
    paths = {"metrics": out_dir / "metrics.json", "checkpoint": out_dir / "checkpoint.pt", "best": out_dir / "best.pt",
             "cfg_sha": config_hash({**config, **(fingerprint or {})})}
    dist, device = distributed.setup(resolve_device(config["device"]))
    setup_torch(config, device)
    label = f"{config['name']} f{fold}"
    bar = progress if progress is not None else _NoProgress()
    if not dist.is_main:
        distributed.barrier(dist)  # rank 0 builds the caches first
    data = prepare_data(config, data_dir, folds_path, fold, progress=progress, log=log)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in ([paths["metrics"]] if resume else [paths["metrics"], paths["checkpoint"], paths["best"]]):
            stale.unlink(missing_ok=True)
        atomic_write_text(out_dir / "config.yaml", dump_config(config))
        distributed.barrier(dist)
    if config["cells"]:  # each image becomes a mosaic of its cell crops (wrappers.cell_data)
        data = wrappers.cell_data(config, data, Path(config["cache_dir"]) if config["cache_dir"]
                                  else default_cache_dir(data_dir), progress=progress)
    normalizer, norm_info = make_normalizer(config, data, device)  # before the hook: own train images only
    data = data_hook(data) if data_hook is not None else data
    t = build_trainer(config, data, device, dist, normalizer, norm_info, make_batch_loss)
    loop = {"epoch": 0, "history": [], "best": {"score": -np.inf, "epoch": -1}, "stopped": False}
    if resume and paths["checkpoint"].exists():
        loop = resume_state(paths["checkpoint"], t, paths["cfg_sha"], data.folds_sha256)
        _say(log, f"{config['name']} fold {fold}: resuming after epoch {loop['epoch']}")
    loop = run_epochs(config, t, data, paths, loop, dist, bar, label)
    if not dist.is_main:
        return {}
    p0 = time.perf_counter()
    oof_probs, test_probs = predict_fold(config, t, data, paths["best"], bar, label)
    timing = {"cache_seconds": data.cache_seconds, "predict_seconds": time.perf_counter() - p0,
              "train_seconds": sum(h["train_seconds"] for h in loop["history"])}
    extra = wrappers.after_fit(t.model, data, t.normalizer, config, out_dir)
    return write_fold(config, data, fold, out_dir, oof_probs, test_probs, loop, t, timing, t0, dist, device,
                      folds_path, data_dir, fingerprint, extra, argv)


def write_fold(config, data: FoldData, fold, out_dir: Path, oof_probs, test_probs, loop, t: Trainer, timing, t0,
               dist, device, folds_path, data_dir, fingerprint, extra, argv) -> dict:
    """Write ``oof.csv``, ``test.csv`` and, last, ``metrics.json`` (the fold's freshness stamp)."""
    val_ids = [data.train_ids[i] for i in data.val_rows]
    write_probs(out_dir / "oof.csv", probs_frame(val_ids, oof_probs))
    write_probs(out_dir / "test.csv", probs_frame(data.test_ids, test_probs))
    # Reported only: the held-out rows score the kept weights, they chose nothing.
    thresholds, class_f1 = exact_thresholds(data.labels[data.val_rows], oof_probs)
    selection = "last_epoch" if config["monitor"] == "none" else f"inner_{config['monitor']}"
    metrics = {
        "status": "complete", "name": config["name"], "fold": fold, "n_folds": data.n_folds,
        "folds_path": str(Path(folds_path).resolve()), "folds_sha256": data.folds_sha256,
        "data_dir": str(Path(data_dir).resolve()), "inputs": data.inputs,
        "fingerprint": fold_fingerprint(config, fold, {k: v for k, v in data.inputs.items() if k != "extra_skipped"},
                                        data.folds_sha256, fingerprint),
        "config_sha256": config_hash({**config, **(fingerprint or {})}),
        "task": load_task(config["task"]).to_meta(),
        "epoch_selection": selection, "best_epoch": int(loop["best"]["epoch"]), "epochs_run": len(loop["history"]),
        "early_stopped": bool(loop["stopped"]), "n_monitor": int(len(data.monitor_rows)),
        "fold_macro_f1": float(class_f1.mean()), "fold_class_f1": class_f1.tolist(),
        "fold_thresholds": thresholds.tolist(), "normalization": t.norm_info, "history": loop["history"],
        "n_fit": int(len(data.fit_rows)), "n_val": int(len(data.val_rows)), "n_test": len(data.test_ids),
        "timing": {**timing, "total_seconds": time.perf_counter() - t0}, "world_size": dist.world_size,
        "outputs": {"oof.csv": sha256_file(out_dir / "oof.csv"), "test.csv": sha256_file(out_dir / "test.csv")},
        "environment": {"torch": torch.__version__, "timm": _timm_version(), "python": platform.python_version(),
                        "device": str(device), "threads": torch.get_num_threads()},
        "command": list(argv) if argv is not None else None,
    }
    metrics.update(extra)
    if config["pretrained"]:  # which ImageNet weights timm resolved (its default tag for the backbone)
        from .pretrained import pretrained_source

        metrics["pretrained_weights"] = pretrained_source(config["backbone"]).label
    if fingerprint:
        metrics["distill"] = fingerprint
    write_fold_metrics(out_dir / "metrics.json", metrics)
    return metrics


def _timm_version() -> str:
    import timm

    return timm.__version__


def fold_line(metrics: dict) -> str:
    """One plain line per finished fold: model, fold, epochs, fold F1, seconds (for logs)."""
    return (f"{metrics['name']} fold {metrics['fold']}: {metrics['epochs_run']} epochs "
            f"(kept {metrics['best_epoch']}, {metrics['epoch_selection']}), fold macro F1 "
            f"{metrics['fold_macro_f1']:.4f}, {metrics['timing']['total_seconds']:.1f} s")

