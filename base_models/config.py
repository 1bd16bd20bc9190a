"""Training configs: flat YAML mappings, every key also a command-line flag of the same name.

A config file holds any subset of :data:`DEFAULTS`; unknown keys are refused with the valid ones
listed. Flags are generated from the keys (``image_size`` -> ``--image-size``), their values parsed
as YAML (``--loss "{focal: 1.0, soft_f1: 0.5}"``, ``--weights null``).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
from pathlib import Path
from typing import Mapping

import yaml
from hpa_ens._validation import ContractError, ParameterError  # noqa: E402

DEFAULTS: dict = {
    "name": None,              # prediction-set name; default: the config file's stem
    "backbone": "resnet18",    # any timm model name
    "head": "linear",          # registry in models.HEADS
    "weights": None,           # local .safetensors / torch.save file; a 3-channel stem is adapted to 4
    "dropout": 0.2,            # before the classifier
    "global_pool": "avg",      # timm pooling: avg | max | avgmax | catavgmax
    "loss": "bce",             # name or {name: weight} (losses.LOSSES)
    "sampler": "shuffle",      # shuffle | balanced (data.SAMPLERS)
    "sampler_power": 0.5,      # balanced: image weight = rarest label's frequency ** -power
    "image_size": 64,          # training resolution (and the cache's)
    "batch_size": 32,
    "eval_batch_size": 128,
    "epochs": 4,
    "optimizer": "adamw",      # adamw | adam | sgd
    "lr": 0.002,
    "weight_decay": 0.0001,
    "momentum": 0.9,           # sgd only
    "scheduler": "cosine",     # cosine | constant (both after linear warm-up)
    "warmup_epochs": 0.3,      # may be fractional
    "seed": 0,
    "monitor": "f1",           # early stopping on fold macro F1 (per-class best thresholds) or 'loss'
    "patience": 3,             # epochs without improvement before stopping
    "tta": "flips",            # none | flips (4) | dihedral (8), averaged in probability space
    "augment_dihedral": True,  # one of the 8 flips/rotations per training image
    "augment_crop_scale": 0.85,  # random crop of side fraction in [crop_scale, 1] resized back; 1 = off
    "augment_brightness": 0.1,   # per-channel additive jitter (0..1 intensity scale)
    "augment_contrast": 0.1,     # per-channel multiplicative jitter
    "normalize": "dataset",    # dataset (channel_stats file, else computed from the train cache) | per_image
    "channel_stats": None,     # JSON from `python -m hpa_ens.eda`
    "extra_images": None,      # folder of extra labelled images (HPAv18-style), training only
    "extra_labels": None,      # their Id,Target csv
    "cache_dir": None,         # default DATA/.cache
    "threads": 0,              # torch CPU threads; 0 = all cores
    "device": "auto",          # auto | cpu | cuda
    "channels_last": True,     # faster convolutions on CPU and CUDA
    "amp": True,               # autocast on CUDA (ignored on CPU)
    "amp_dtype": "bfloat16",   # bfloat16 | float16 (float16 adds a GradScaler)
    "compile": False,          # torch.compile the training model (CUDA; slow to start, off by default)
    "deterministic": True,     # torch.use_deterministic_algorithms (same seed -> same bytes on CPU)
    "stop_after_epoch": None,  # debugging: exit (code 3) right after this epoch's checkpoint
    # issue-6 variants (base_models/variants.py, docs/variants.md); at these defaults nothing changes
    "single_weight": 2.0,      # sampler single_label: single-label images drawn this many times as often
    "phase1_epochs": 1,        # sampler single_label_first: epochs on the single-label images only
    "center_loss": 0.0,        # weight of the center loss on the pooled features (0 = off)
    "tiles": 0,                # 0 = whole images; g >= 2: train and predict on g x g tiles
    "tile_combine": "max",     # max | mean | noisy_or: tile probabilities -> image probability
    "cells": False,            # train on cell crops (multiple-instance, the image's labels)
    "cell_pooling": "max",     # max | mean | noisy_or (fixed) | lse | attention (learned)
    "cells_per_image": 4,      # cells per bag, a square (4, 9, 16): the largest cells, repeated if fewer
    "cell_params": None,       # mapping of cells.CellParams overrides (default: scaled to image_size)
    "attention_maps": 0,       # head attention: save attention PNGs of this many held-out images
    "train_eval_rows": 0,      # F1 on this many training rows after the fit (over-fitting gap)
}

# Keys that may change between a run and its --resume without invalidating the checkpoint.
RESUME_FREE = {"threads", "stop_after_epoch", "cache_dir", "device", "patience", "epochs"}
# Keys that never change results (a finished fold trained with other values is still current).
OPERATIONAL = {"threads", "stop_after_epoch", "cache_dir", "device"}


def parse_value(text: str):
    """A flag's text parsed as YAML (numbers, booleans, null, mappings); plain text stays a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _check_keys(keys, source: str) -> None:
    unknown = [k for k in keys if k not in DEFAULTS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(DEFAULTS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ContractError(f"{source}: unknown config key {unknown[0]!r}.{hint} Valid keys: {', '.join(DEFAULTS)}.")


def _coerce(key: str, value):
    default = DEFAULTS[key]
    if value is None or default is None or key == "loss":
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParameterError(f"The '{key}' parameter must be true or false. Got {value!r} instead.")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"The '{key}' parameter must be an integer. Got {value!r} instead.")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"The '{key}' parameter must be a number. Got {value!r} instead.")
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ParameterError(f"The '{key}' parameter must be a string. Got {value!r} instead.")
    return value


def load_config(path=None, overrides: Mapping | None = None) -> dict:
    """Defaults, then the YAML file, then overrides; type-checked.

    Returns
    -------
    config : dict with every key of DEFAULTS (``name`` filled from the file stem if unset)
    """
    config = dict(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ContractError(f"{path}: config file not found.")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ContractError(f"{path}: a config must be a YAML mapping of keys to values.")
        _check_keys(loaded, str(path))
        config.update(loaded)
    if overrides:
        _check_keys(overrides, "command line")
        config.update(overrides)
    for key in config:
        config[key] = _coerce(key, config[key])
    if not config["name"]:
        config["name"] = path.stem if path is not None else config["backbone"]
    for key, choices in (("monitor", ("f1", "loss")), ("normalize", ("dataset", "per_image")),
                         ("device", ("auto", "cpu", "cuda")), ("amp_dtype", ("bfloat16", "float16"))):
        if config[key] not in choices:
            raise ParameterError(f"The '{key}' parameter must be one of {', '.join(choices)}. Got {config[key]!r} instead.")
    for key in ("image_size", "batch_size", "eval_batch_size", "epochs"):
        if config[key] < 1:
            raise ParameterError(f"The '{key}' parameter must be >= 1. Got {config[key]!r} instead.")
    _check_variant_keys(config)
    if not 0 < config["augment_crop_scale"] <= 1:
        raise ParameterError(f"The 'augment_crop_scale' parameter must be in (0, 1]. Got {config['augment_crop_scale']!r} instead.")
    return config


# Variant keys left at their defaults stay out of the config hash, so configs written before they
# existed keep their hash (finished folds stay current, checkpoints resume).
VARIANT_KEYS = ("single_weight", "phase1_epochs", "center_loss", "tiles", "tile_combine", "cells", "cell_pooling",
                "cells_per_image", "cell_params", "attention_maps", "train_eval_rows")


def _check_variant_keys(config: dict) -> None:
    """Choices and combinations of the issue-6 variant keys."""
    for key, choices in (("tile_combine", ("max", "mean", "noisy_or")),
                         ("cell_pooling", ("max", "mean", "noisy_or", "lse", "attention"))):
        if config[key] not in choices:
            raise ParameterError(f"The '{key}' parameter must be one of {', '.join(choices)}. Got {config[key]!r} instead.")
    if config["tiles"] == 1 or config["tiles"] < 0:
        raise ParameterError(f"The 'tiles' parameter must be 0 (off) or >= 2. Got {config['tiles']!r} instead.")
    root = round(config["cells_per_image"] ** 0.5)
    if config["cells_per_image"] < 1 or root * root != config["cells_per_image"]:
        raise ParameterError(f"The 'cells_per_image' parameter must be a square (1, 4, 9, 16, ...). "
                         f"Got {config['cells_per_image']!r} instead.")
    if config["cell_params"] is not None and not isinstance(config["cell_params"], Mapping):
        raise ParameterError(f"The 'cell_params' parameter must be a mapping. Got {config['cell_params']!r} instead.")
    for key in ("center_loss", "single_weight"):
        if config[key] < 0:
            raise ParameterError(f"The '{key}' parameter must be >= 0. Got {config[key]!r} instead.")
    if config["cells"] and config["tiles"]:
        raise ParameterError("The 'cells' and 'tiles' parameters cannot be combined; choose one.")
    if config["cells"] and config["head"] != "linear":
        raise ParameterError(f"The 'head' parameter must be linear with 'cells' (the cell pooling is "
                         f"'cell_pooling'). Got {config['head']!r} instead.")
    if config["cells"] and config["augment_crop_scale"] < 1:
        raise ParameterError("The 'augment_crop_scale' parameter must be 1 with 'cells' (a crop of the cell "
                         f"mosaic would cut across cells). Got {config['augment_crop_scale']!r} instead.")
    if config["attention_maps"] > 0 and (config["head"] not in ("attention", "attention8") or config["tiles"]
                                         or config["cells"]):
        raise ParameterError("The 'attention_maps' parameter needs 'head: attention' (or attention8) on whole "
                         "images (no tiles or cells).")


def add_config_flags(ap: argparse.ArgumentParser) -> None:
    """One ``--key-name`` flag (also accepted as ``--key_name``) per config key, default: not given."""
    group = ap.add_argument_group("config overrides (values parsed as YAML)")
    for key, default in DEFAULTS.items():
        flags = [f"--{key.replace('_', '-')}"] + ([f"--{key}"] if "_" in key else [])
        group.add_argument(*flags, dest=f"cfg_{key}", type=parse_value, default=argparse.SUPPRESS,
                           metavar=type(default).__name__.upper() if default is not None else "VALUE",
                           help=f"config default: {default!r}")


def overrides_from_args(args: argparse.Namespace) -> dict:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")}


def config_hash(config: Mapping, ignore=RESUME_FREE) -> str:
    """sha256 of the config's training-relevant keys (for --resume consistency checks)."""
    relevant = {k: v for k, v in sorted(config.items())
                if k not in ignore and not (k in VARIANT_KEYS and v == DEFAULTS[k])}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def dump_config(config: Mapping) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False)
