"""Train one fold of one config and write its OOF rows, test predictions, checkpoint and metrics.

``python -m base_models.train --config base_models/configs/examples/resnet18.yaml --data DIR --folds folds.csv
--fold 0 [--out oof] [--resume] [--epochs 3] [--image-size 64] ...`` (every config key is a flag).

Per fold, under ``OUT/NAME/fold{K}/``: ``config.yaml`` (resolved), ``checkpoint.pt`` (every epoch,
atomic: model, optimiser, scheduler, RNG state, epoch, history), ``best.pt`` (best epoch's weights),
``oof.csv`` (this fold's held-out rows), ``test.csv`` and, last, ``metrics.json`` (scores, timing,
hashes of inputs and outputs). ``metrics.json`` with ``status: complete`` marks a finished fold.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hpa_ens import cli  # noqa: E402
from hpa_ens.io import atomic_write_json, atomic_write_text, sha256_file  # noqa: E402
from hpa_ens.contract import probs_frame, read_folds, write_probs  # noqa: E402
from hpa_ens.labels import read_labels, read_sample_submission  # noqa: E402

from . import checkpoint  # noqa: E402
from . import distributed  # noqa: E402
from .config import OPERATIONAL, add_config_flags, config_hash, dump_config, load_config, overrides_from_args  # noqa: E402
from .data import (SAMPLERS, augment, batches, build_cache, channel_stats, check_files,  # noqa: E402
                   default_cache_dir, prefetch, read_channel_stats)
from .infer import Normalizer, autocast, best_threshold_f1, pin_for, predict  # noqa: E402
from .losses import build_loss  # noqa: E402
from .models import build_model  # noqa: E402
from . import variants  # noqa: E402
from .optim import OPTIMIZERS, SCHEDULERS  # noqa: E402
from hpa_ens._validation import ContractError, ParameterError  # noqa: E402

CHECKPOINT_FORMAT = 1


@dataclass
class FoldData:
    """Everything one fold trains and predicts on.

    ``train_images`` rows are the train Ids (in ``train.csv`` order) followed by any extra images;
    ``labels`` has one row per ``train_images`` row.
    """

    train_ids: list
    test_ids: list
    labels: np.ndarray          # (n_train + n_extra, 28) uint8
    train_images: np.ndarray    # (n_train + n_extra, 4, S, S) uint8 memmap
    test_images: np.ndarray     # (n_test, 4, S, S) uint8 memmap
    fit_rows: np.ndarray        # rows trained on (other folds + extra)
    val_rows: np.ndarray        # rows of this fold (its OOF predictions)
    n_folds: int
    folds_sha256: str
    inputs: dict                # name -> sha256, for provenance
    cache_seconds: float


def prepare_data(config: dict, data_dir, folds_path, fold: int, progress=None) -> FoldData:
    """Read labels, folds and test Ids; check every channel file; build or open the caches."""
    data_dir = Path(data_dir)
    labels_path = data_dir / "train.csv"
    sample_path = data_dir / "sample_submission.csv"
    labels = read_labels(labels_path)
    train_ids = labels.index.tolist()
    folds = read_folds(folds_path, ids=train_ids)
    n_folds = int(folds.max()) + 1
    if not isinstance(fold, int) or not 0 <= fold < n_folds:
        raise ParameterError(f"The 'fold' parameter must be an integer in 0..{n_folds - 1}. Got {fold!r} instead.")
    test_ids = read_sample_submission(sample_path).tolist()
    train_sources = [(i, data_dir / "train") for i in train_ids]
    test_sources = [(i, data_dir / "test") for i in test_ids]
    Y = labels.to_numpy(dtype=np.uint8)
    inputs = {"train.csv": sha256_file(labels_path), "sample_submission.csv": sha256_file(sample_path)}
    if config["extra_images"] or config["extra_labels"]:
        if not (config["extra_images"] and config["extra_labels"]):
            raise ParameterError("The 'extra_images' and 'extra_labels' parameters must be given together.")
        extra = read_labels(config["extra_labels"])
        train_sources += [(i, Path(config["extra_images"])) for i in extra.index]
        Y = np.concatenate([Y, extra.to_numpy(dtype=np.uint8)])
        inputs["extra_labels"] = sha256_file(config["extra_labels"])
    # Every file of every split is checked before any decoding or training starts.
    check_files(train_sources + test_sources)
    cache_dir = Path(config["cache_dir"]) if config["cache_dir"] else default_cache_dir(data_dir)
    started = time.perf_counter()
    size = config["image_size"]
    tag = "train" if len(train_sources) == len(train_ids) else "train_extra"
    train_images = build_cache(train_sources, size, cache_dir, tag=tag, progress=progress)
    test_images = build_cache(test_sources, size, cache_dir, tag="test", progress=progress)
    fold_of = folds.to_numpy()
    val_rows = np.flatnonzero(fold_of == fold)
    fit_rows = np.concatenate([np.flatnonzero(fold_of != fold), np.arange(len(train_ids), len(train_sources))])
    return FoldData(train_ids, test_ids, Y, train_images, test_images, fit_rows, val_rows, n_folds,
                    sha256_file(folds_path), inputs, time.perf_counter() - started)


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
        mean, std = read_channel_stats(config["channel_stats"])
        source = str(config["channel_stats"])
    else:
        mean, std = channel_stats(data.train_images)
        source = "train cache"
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
    loader = prefetch(((rows, pin_for(data.train_images[rows], device), data.labels[rows]) for rows in chunks))
    for rows, batch, target in loader:
        x = normalizer.to_unit(batch)
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


def _score(monitor: str, val_loss: float, val_f1: float) -> float:
    """Higher is better."""
    return val_f1 if monitor == "f1" else -val_loss


def fit_fold(config: dict, data_dir, folds_path, fold: int, out_root="oof", resume: bool = False,
             argv: Sequence[str] | None = None, make_batch_loss=None, data_hook=None, fingerprint=None) -> dict:
    """Train (or resume) one fold and write its outputs. Returns the fold's metrics dict.

    Hooks (``base_models.distill``): ``data_hook(FoldData) -> FoldData`` runs after the normaliser is
    fitted (e.g. adds test images as training rows); ``make_batch_loss(loss_fn)`` returns the
    ``batch_loss(logits, rows, targets)`` that ``train_one_epoch`` uses; ``fingerprint``
    (a JSON-able dict) joins the config hash checked by ``--resume`` and is recorded in ``metrics.json``.
    Under torchrun, every rank trains and only rank 0 writes; other ranks return ``{}``.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_root) / config["name"] / f"fold{fold}"
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path, ckpt_path, best_path = out_dir / "metrics.json", out_dir / "checkpoint.pt", out_dir / "best.pt"
    device = resolve_device(config["device"])
    dist, device = distributed.setup(device)
    setup_torch(config, device)
    cfg_sha = config_hash({**config, **(fingerprint or {})})

    with cli.progress() as bar:
        if not dist.is_main:
            distributed.barrier(dist)  # rank 0 builds the caches first
        data = prepare_data(config, data_dir, folds_path, fold, progress=bar)
        if dist.is_main:
            if not resume:
                for stale in (metrics_path, ckpt_path, best_path):
                    stale.unlink(missing_ok=True)
            atomic_write_text(out_dir / "config.yaml", dump_config(config))
            distributed.barrier(dist)
        if config["cells"]:  # issue 6: each image becomes a mosaic of its cell crops (variants.cell_data)
            data = variants.cell_data(config, data, Path(config["cache_dir"]) if config["cache_dir"]
                                      else default_cache_dir(data_dir), progress=bar)
        normalizer, norm_info = make_normalizer(config, data, device)
        if data_hook is not None:
            data = data_hook(data)

        torch.manual_seed(config["seed"])
        model = build_model(config["backbone"], config["head"], config["dropout"], config["weights"],
                            global_pool=config["global_pool"]).to(device)
        model = variants.wrap_model(model, config).to(device)  # tiles / cells / center loss; else unchanged
        if config["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        # ``model`` keeps the plain weights (saved, validated); ``train_model`` may wrap it.
        train_model = distributed.wrap(model, dist, device)
        if config.get("compile"):
            train_model = torch.compile(train_model)
        scaler = (torch.amp.GradScaler("cuda") if device.type == "cuda" and config["amp"]
                  and config.get("amp_dtype") == "float16" else None)
        class_freq = data.labels[data.fit_rows].mean(axis=0)
        loss_fn = build_loss(config["loss"], class_freq=class_freq).to(device)
        step_loss = make_batch_loss(loss_fn) if make_batch_loss is not None else None
        step_loss = variants.batch_loss(model, loss_fn, step_loss)
        optimizer = OPTIMIZERS.get(config["optimizer"])(model.parameters(), config)
        n_rank_rows = len(data.fit_rows) // dist.world_size  # each rank's shard (whole order when alone)
        steps = len(batches(np.arange(n_rank_rows), config["batch_size"], drop_last=True))
        scheduler = SCHEDULERS.get(config["scheduler"])(optimizer, config, steps)

        start_epoch, history, best, stopped = 0, [], {"score": -np.inf, "epoch": -1}, False
        if resume and ckpt_path.exists():
            state = checkpoint.load(ckpt_path)
            if state.get("config_sha256") != cfg_sha:
                raise ContractError(f"{ckpt_path}: was trained with another config; rerun without --resume "
                                 f"or restore the config in {out_dir / 'config.yaml'}.")
            if state.get("folds_sha256") != data.folds_sha256:
                raise ContractError(f"{ckpt_path}: was trained on another folds file; rerun without --resume.")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng_torch"])
            start_epoch, history, stopped = int(state["epoch"]), list(state["history"]), bool(state["stopped"])
            best = dict(state["best"])
            cli.console.print(f"{config['name']} fold {fold}: resuming after epoch {start_epoch}")

        n_fit = len(data.fit_rows)
        task = bar.add_task(f"{config['name']} f{fold}", total=max(config["epochs"] - start_epoch, 0) * n_fit)
        for epoch in range(start_epoch, config["epochs"]):
            if stopped:
                break
            label = f"{config['name']} f{fold} ep {epoch + 1}/{config['epochs']}"

            def on_batch(n, loss, ips, label=label):
                bar.update(task, advance=n, description=f"{label} loss {loss:.4f} {ips:.0f} img/s")

            train_stats = train_one_epoch(train_model, optimizer, scheduler, loss_fn, data, normalizer, config,
                                          epoch, on_batch, batch_loss=step_loss, scaler=scaler, dist=dist)
            if not dist.is_main:
                distributed.sync_buffers(model, dist)
                stopped = distributed.broadcast_flag(False, dist)  # rank 0's early-stopping decision
                if config["stop_after_epoch"] is not None and epoch + 1 >= config["stop_after_epoch"]:
                    raise SystemExit(f"stopped after epoch {epoch + 1} as asked (--stop-after-epoch)")
                continue
            distributed.sync_buffers(model, dist)  # rank 0's BatchNorm statistics on every rank
            v0 = time.perf_counter()
            val_probs, val_loss = predict(model, data.train_images, data.val_rows, normalizer, "none",
                                          config["eval_batch_size"], config["amp"],
                                          targets=data.labels[data.val_rows], loss_fn=loss_fn)
            val_f1 = best_threshold_f1(data.labels[data.val_rows], val_probs)[0]
            record = {"epoch": epoch + 1, "train_loss": train_stats["loss"], "val_loss": val_loss,
                      "val_f1": val_f1, "train_seconds": train_stats["seconds"],
                      "val_seconds": time.perf_counter() - v0,
                      "train_images_per_s": train_stats["images"] / max(train_stats["seconds"], 1e-9),
                      "lr": optimizer.param_groups[0]["lr"]}
            history.append(record)
            bar.update(task, description=f"{label} loss {train_stats['loss']:.4f} F1 {val_f1:.3f} "
                                         f"{record['train_images_per_s']:.0f} img/s")
            score = _score(config["monitor"], val_loss, val_f1)
            if score > best["score"]:
                best = {"score": float(score), "epoch": epoch + 1}
                checkpoint.save(best_path, {"model": model.state_dict(), "epoch": epoch + 1,
                                            "val_probs": torch.from_numpy(val_probs)})
            stopped = (epoch + 1) - best["epoch"] >= config["patience"] and epoch + 1 < config["epochs"]
            distributed.broadcast_flag(stopped, dist)
            checkpoint.save(ckpt_path, {
                "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng_torch": torch.get_rng_state(), "history": history, "best": best, "stopped": stopped,
                "config_sha256": cfg_sha, "folds_sha256": data.folds_sha256,
            })
            if config["stop_after_epoch"] is not None and epoch + 1 >= config["stop_after_epoch"]:
                raise SystemExit(f"stopped after epoch {epoch + 1} as asked (--stop-after-epoch); "
                                 f"continue with --resume")
        bar.remove_task(task)
        if not dist.is_main:
            return {}

        # Predict with the best epoch's weights.
        if not best_path.exists():
            raise ContractError(f"{best_path}: missing; the fold never finished an epoch. Rerun without --resume.")
        best_state = checkpoint.load(best_path)
        model.load_state_dict(best_state["model"])
        p0 = time.perf_counter()
        n_pred = len(data.val_rows) + len(data.test_ids)
        ptask = bar.add_task(f"{config['name']} f{fold} predict (tta {config['tta']})", total=n_pred)
        advance = lambda n: bar.advance(ptask, n)  # noqa: E731
        if config["tta"] == "none":
            oof_probs = best_state["val_probs"].numpy()
            bar.advance(ptask, len(data.val_rows))
        else:
            oof_probs, _ = predict(model, data.train_images, data.val_rows, normalizer, config["tta"],
                                  config["eval_batch_size"], config["amp"], on_batch=advance)
        test_probs, _ = predict(model, data.test_images, np.arange(len(data.test_ids)), normalizer, config["tta"],
                                config["eval_batch_size"], config["amp"], on_batch=advance)
        bar.remove_task(ptask)
        predict_seconds = time.perf_counter() - p0
        variant_metrics = variants.after_fit(model, data, normalizer, config, out_dir)

    val_ids = [data.train_ids[i] for i in data.val_rows]
    write_probs(out_dir / "oof.csv", probs_frame(val_ids, oof_probs))
    write_probs(out_dir / "test.csv", probs_frame(data.test_ids, test_probs))
    oof_f1, class_f1, thresholds = best_threshold_f1(data.labels[data.val_rows], oof_probs)
    train_seconds = sum(h["train_seconds"] + h["val_seconds"] for h in history)
    metrics = {
        "status": "complete",
        "name": config["name"],
        "fold": fold,
        "n_folds": data.n_folds,
        "folds_path": str(Path(folds_path).resolve()),
        "folds_sha256": data.folds_sha256,
        "data_dir": str(Path(data_dir).resolve()),
        "inputs": data.inputs,
        "config_sha256": cfg_sha,
        "config_full_sha256": config_hash(config, OPERATIONAL),
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "early_stopped": bool(stopped),
        "fold_macro_f1": oof_f1,
        "fold_class_f1": class_f1.tolist(),
        "fold_thresholds": thresholds.tolist(),
        "normalization": norm_info,
        "history": history,
        "n_fit": int(len(data.fit_rows)),
        "n_val": int(len(data.val_rows)),
        "n_test": len(data.test_ids),
        "timing": {"cache_seconds": data.cache_seconds, "train_seconds": train_seconds,
                   "predict_seconds": predict_seconds, "total_seconds": time.perf_counter() - t0},
        "world_size": dist.world_size,
        "outputs": {"oof.csv": sha256_file(out_dir / "oof.csv"), "test.csv": sha256_file(out_dir / "test.csv")},
        "environment": {"torch": torch.__version__, "timm": _timm_version(), "python": platform.python_version(),
                        "device": str(device), "threads": torch.get_num_threads()},
        "command": list(argv) if argv is not None else None,
    }
    metrics.update(variant_metrics)
    if fingerprint:
        metrics["fingerprint"] = fingerprint
    atomic_write_json(metrics_path, metrics)
    return metrics


def _timm_version() -> str:
    import timm

    return timm.__version__


def build_parser():
    ap = cli.parser("python -m base_models.train", "Train one fold of a timm backbone; write its OOF and test "
                     "probabilities, checkpoint and metrics under OUT/NAME/fold{K}/.")
    ap.add_argument("--config", help="YAML config (keys: see base_models/config.py); flags override it")
    ap.add_argument("--data", required=True, help="folder with train.csv, sample_submission.csv, train/, test/")
    ap.add_argument("--folds", required=True, help="Id,fold csv (python -m hpa_ens.folds)")
    ap.add_argument("--fold", required=True, type=int, help="which fold to hold out")
    ap.add_argument("--out", default="oof", help="OOF root; outputs go to OUT/NAME/fold{K}/")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/NAME/fold{K}/checkpoint.pt")
    add_config_flags(ap)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config(args.config, overrides_from_args(args))
    metrics = fit_fold(config, args.data, args.folds, args.fold, args.out, args.resume,
                       argv=list(argv) if argv is not None else None)
    distributed.cleanup(distributed.from_env())
    if not metrics:  # a torchrun rank other than 0: rank 0 reports
        return 0
    cli.console.print(f"{config['name']} fold {args.fold}: fold macro F1 {metrics['fold_macro_f1']:.4f} "
                       f"(best epoch {metrics['best_epoch']}), {metrics['timing']['total_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    cli.entry(main)
