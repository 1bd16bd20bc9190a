"""Training configs: flat YAML mappings; every key typed, bounded, documented and a flag of the same name.

A config file holds any subset of :data:`SPEC`; unknown keys are refused with the valid ones listed.
The commands make one flag per key (``image_size`` -> ``--image-size``, values parsed as YAML:
``--loss "{focal: 1.0, soft_f1: 0.5}"``, ``--weights null``; ``--help`` shows each key's type,
allowed values and one line of help; :mod:`base_models.commands._config_flags`). :func:`load_config`
checks the whole resolved config - types, ranges, choices, registry names (loss, head, sampler,
optimiser, scheduler), the backbone and the combinations - before anything is read or written, so
``--loss focl`` fails before a cache exists.

A YAML with ``kind: features`` is not a CNN config: ``base_models.run_all`` hands it to
``base_models.features``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from hpa_ens.validation import ContractError, ParameterError


@dataclass(frozen=True)
class Key:
    """One config key: its default, type, allowed values and help line.

    ``kind`` is one of ``bool``, ``int``, ``float``, ``str``, ``path`` (a string naming a file or
    folder, may be null), ``loss`` (a name or a mapping), ``mapping`` (may be null), ``int?`` (an int or
    null); ``choices`` lists the allowed strings; ``low``/``high`` bound numbers (``low_open``: strictly
    above ``low``); ``registry`` names the registry whose names are valid.
    """

    default: Any
    kind: str
    help: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    registry: str | None = None

    def describe(self) -> str:
        if self.choices:
            allowed = " | ".join(map(str, self.choices))
        elif self.registry:
            allowed = f"a registered {self.registry} name"
        elif self.low is not None or self.high is not None:
            lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
            hi = "" if self.high is None else f"<= {self.high:g}"
            allowed = f"{self.kind} {lo}{', ' if lo and hi else ''}{hi}"
        else:
            allowed = self.kind
        return f"{self.help} [{allowed}; default {self.default!r}]"


SPEC: dict[str, Key] = {
    "kind": Key("cnn", "str", "what this config trains: a CNN (feature-model configs say kind: features)", ("cnn",)),
    "name": Key(None, "str?", "prediction-set name; default: the config file's stem"),
    "task": Key(None, "str?", "class list: a built-in task name or a task file (default hpa2018); head size = K"),
    "backbone": Key("resnet18", "str", "any timm model name"),
    "head": Key("linear", "str", "classifier head", registry="head"),
    "weights": Key(None, "path", "local state dict (.safetensors, or .pth/.pt read with weights_only=True); a "
                                 "3-channel stem is adapted; not with pretrained"),
    "pretrained": Key(False, "bool", "start from timm's ImageNet weights for the backbone (downloaded once into "
                                     "the Hugging Face cache); the 3-channel stem is adapted to 4"),
    "dropout": Key(0.2, "float", "dropout before the classifier", low=0, high=1),
    "global_pool": Key("avg", "str", "timm pooling", ("avg", "max", "avgmax", "catavgmax")),
    "loss": Key("bce", "loss", "a loss name or {name: weight} (a weighted sum)", registry="loss"),
    "sampler": Key("shuffle", "str", "which training rows an epoch visits", registry="sampler"),
    "sampler_power": Key(0.5, "float", "balanced sampler: image weight = rarest label's frequency ** -power", low=0),
    "image_size": Key(64, "int", "training resolution (and the cache's)", low=8, high=4096),
    "batch_size": Key(32, "int", "training batch size", low=2),
    "eval_batch_size": Key(128, "int", "prediction batch size", low=1),
    "epochs": Key(4, "int", "epochs trained (with monitor none, the last one is kept)", low=1, high=10_000),
    "optimizer": Key("adamw", "str", "optimiser", ("adamw", "adam", "sgd")),
    "lr": Key(0.002, "float", "peak learning rate", low=0, low_open=True, high=10),
    "weight_decay": Key(0.0001, "float", "weight decay", low=0, high=1),
    "momentum": Key(0.9, "float", "sgd momentum", low=0, high=1),
    "scheduler": Key("cosine", "str", "learning-rate shape after linear warm-up", ("cosine", "constant")),
    "warmup_epochs": Key(0.3, "float", "linear warm-up length in epochs (may be fractional)", low=0),
    "seed": Key(0, "int", "random seed (same seed on CPU -> same bytes)", low=0),
    "monitor": Key("none", "str", "epoch choice: none = train every epoch and keep the last; f1/loss = best epoch "
                                  "on an inner split of the TRAINING folds (never the held-out fold)",
                   ("none", "f1", "loss")),
    "inner_val_fraction": Key(0.0, "float", "share of the training folds held out to monitor epochs (needs monitor "
                                            "f1 or loss)", low=0, high=0.5),
    "patience": Key(3, "int", "epochs without improvement on the inner split before stopping", low=1),
    "tta": Key("flips", "str", "test-time augmentation, averaged in probability space",
               ("none", "flips", "dihedral")),
    "augment_dihedral": Key(True, "bool", "one of the 8 flips/rotations per training image"),
    "augment_crop_scale": Key(0.85, "float", "random crop of side fraction in [scale, 1] resized back; 1 = off",
                              low=0, low_open=True, high=1),
    "augment_brightness": Key(0.1, "float", "per-channel additive jitter (0..1 intensity scale)", low=0, high=1),
    "augment_contrast": Key(0.1, "float", "per-channel multiplicative jitter", low=0, high=1),
    "normalize": Key("dataset", "str", "dataset: channel_stats file, else the train images; per_image",
                     ("dataset", "per_image")),
    "channel_stats": Key(None, "path", "JSON of per-channel mean/std from python -m hpa_ens.eda"),
    "loader": Key("cache", "str", "cache: decode once into a uint8 memmap; stream: decode files every epoch in "
                                  "DataLoader workers", ("cache", "stream")),
    "loader_workers": Key(2, "int", "stream loader: decoding worker processes (0 = a thread)", low=0, high=256),
    "image_format": Key("png", "str", "image files read (png, jpg, tif, or any of them)", ("png", "jpg", "tif", "any")),
    "extra_images": Key(None, "path", "folder of extra labelled images (HPAv18), training only"),
    "extra_labels": Key(None, "path", "their Id,Target csv"),
    "extra_image_format": Key("any", "str", "image files read for the extra images", ("png", "jpg", "tif", "any")),
    "skip_missing": Key(False, "bool", "extra labels whose Ids have no images are skipped (default: refused)"),
    "cache_dir": Key(None, "path", "image caches; default DATA/.cache"),
    "threads": Key(0, "int", "torch CPU threads; 0 = all cores", low=0),
    "device": Key("auto", "str", "where to train", ("auto", "cpu", "cuda")),
    "channels_last": Key(True, "bool", "channels-last memory format (faster convolutions)"),
    "amp": Key(True, "bool", "autocast on CUDA (ignored on CPU)"),
    "amp_dtype": Key("bfloat16", "str", "autocast type (float16 adds a GradScaler)", ("bfloat16", "float16")),
    "compile": Key(False, "bool", "torch.compile the training model (CUDA; slow to start)"),
    "deterministic": Key(True, "bool", "torch.use_deterministic_algorithms"),
    "stop_after_epoch": Key(None, "int?", "debugging: exit (code 3) right after this epoch's checkpoint", low=1),
    # Model variants (tiles, cells, center loss, attention maps; docs/variants.md); inert at their defaults.
    "single_weight": Key(2.0, "float", "sampler single_label: single-label images drawn this many times as often",
                         low=0),
    "phase1_epochs": Key(1, "int", "sampler single_label_first: epochs on the single-label images only", low=0),
    "center_loss": Key(0.0, "float", "weight of the center loss on the pooled features (0 = off)", low=0),
    "tiles": Key(0, "int", "0 = whole images; g >= 2: train and predict on g x g tiles", low=0, high=16),
    "tile_combine": Key("max", "str", "tile probabilities -> image probability", ("max", "mean", "noisy_or")),
    "cells": Key(False, "bool", "train on cell crops (multiple-instance, the image's labels)"),
    "cell_pooling": Key("max", "str", "cell scores -> image score", ("max", "mean", "noisy_or", "lse", "attention")),
    "cells_per_image": Key(4, "int", "cells per bag, a square (4, 9, 16): the largest cells, repeated if fewer",
                           low=1, high=64),
    "cell_params": Key(None, "mapping", "segment.CellParams overrides (default: scaled to image_size)"),
    "attention_maps": Key(0, "int", "head attention: save attention PNGs of this many held-out images", low=0),
    "train_eval_rows": Key(0, "int", "F1 on this many training rows after the fit (over-fitting gap)", low=0),
}
DEFAULTS: dict = {k: v.default for k, v in SPEC.items()}

# Keys that may change between a run and its --resume without invalidating the checkpoint.
RESUME_FREE = {"threads", "stop_after_epoch", "cache_dir", "device", "patience", "epochs", "loader",
               "loader_workers"}
# Keys that never change results (a finished fold trained with other values is still current).
OPERATIONAL = {"threads", "stop_after_epoch", "cache_dir", "device", "loader", "loader_workers"}
# Keys left at their defaults stay out of the config hash, so configs written before they existed keep
# their hash (checkpoints resume).
VARIANT_KEYS = ("single_weight", "phase1_epochs", "center_loss", "tiles", "tile_combine", "cells", "cell_pooling",
                "cells_per_image", "cell_params", "attention_maps", "train_eval_rows", "kind", "task",
                "inner_val_fraction", "image_format", "extra_image_format", "skip_missing", "pretrained")
# Keys added after folds recorded their configs: left at their defaults they are not written (config.yaml,
# meta.json params) nor fingerprinted, so earlier outputs keep their bytes and finished folds stay current.
UNRECORDED_AT_DEFAULT = ("pretrained",)


def check_known_keys(keys, valid, source: str) -> None:
    """Refuse the first key not in ``valid``, suggesting the closest valid one (shared by every config reader)."""
    unknown = [k for k in keys if k not in valid]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(valid), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ContractError(f"{source}: unknown config key {unknown[0]!r}.{hint} Valid keys: {', '.join(valid)}.")


def _check_keys(keys, source: str) -> None:
    check_known_keys(keys, SPEC, source)


def _bad(key: str, expected: str, value) -> ParameterError:
    return ParameterError(f"The '{key}' parameter must be {expected}. Got {value!r} instead.")


def check_value(key: str, value):
    """The value of ``key`` checked against its :class:`Key` (type, range, choices); returns it coerced."""
    spec = SPEC[key]
    if value is None and (spec.default is None or spec.kind.endswith("?") or spec.kind in ("path", "mapping")):
        return None
    kind = spec.kind.rstrip("?")
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(key, "true or false", value)
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(key, "an integer", value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise _bad(key, "a number", value)
        value = float(value)
    elif kind in ("str", "path"):
        if not isinstance(value, str) or not value:
            raise _bad(key, "a non-empty string", value)
    elif kind == "mapping":
        if not isinstance(value, Mapping):
            raise _bad(key, "a mapping", value)
    if spec.choices and value not in spec.choices:
        raise _bad(key, f"one of {', '.join(map(str, spec.choices))}", value)
    if spec.low is not None and (value < spec.low or (spec.low_open and value == spec.low)):
        raise _bad(key, f"{'>' if spec.low_open else '>='} {spec.low:g}", value)
    if spec.high is not None and value > spec.high:
        raise _bad(key, f"<= {spec.high:g}", value)
    return value


def read_config_file(path) -> dict:
    """The raw mapping of a config YAML (refuses a missing file, bad YAML, a non-mapping)."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: config file not found.")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ContractError(f"{path}: not valid YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(loaded, dict):
        raise ContractError(f"{path}: a config must be a YAML mapping of keys to values.")
    return loaded


def load_config(path=None, overrides: Mapping | None = None, check_names: bool = True) -> dict:
    """Defaults, then the YAML file, then overrides; every key checked (see the module docstring).

    Parameters
    ----------
    check_names : bool
        Also check registry names and the backbone (imports torch/timm); False for quick reads.

    Returns
    -------
    config : dict with every key of SPEC (``name`` filled from the file stem if unset)
    """
    config = dict(DEFAULTS)
    if path is not None:
        loaded = read_config_file(path)
        if loaded.get("kind", "cnn") != "cnn":
            raise ContractError(f"{path}: kind {loaded['kind']!r} is not a CNN config; base_models.run_all runs "
                                f"feature-model configs (kind: features) through base_models.features.")
        _check_keys(loaded, str(path))
        config.update(loaded)
    if overrides:
        _check_keys(overrides, "command line")
        config.update(overrides)
    for key in config:
        config[key] = check_value(key, config[key])
    if not config["name"]:
        config["name"] = Path(path).stem if path is not None else config["backbone"]
    from hpa_ens.task import DEFAULT_TASK

    if config["task"] == DEFAULT_TASK.name:  # one spelling of the default, so hashes do not depend on it
        config["task"] = None
    check_combinations(config)
    if check_names:
        check_names_exist(config)
    return config


def check_combinations(config: dict) -> None:
    """Keys that constrain each other (tiles vs cells, monitor vs inner split, ...)."""
    if config["tiles"] == 1:
        raise _bad("tiles", "0 (off) or >= 2", 1)
    root = round(config["cells_per_image"] ** 0.5)
    if root * root != config["cells_per_image"]:
        raise _bad("cells_per_image", "a square (1, 4, 9, 16, ...)", config["cells_per_image"])
    if config["monitor"] != "none" and config["inner_val_fraction"] <= 0:
        raise ParameterError(f"The 'inner_val_fraction' parameter must be > 0 with monitor {config['monitor']!r}: "
                             f"epochs are chosen on an inner split of the training folds, never on the held-out "
                             f"fold. Got {config['inner_val_fraction']!r} instead.")
    if config["monitor"] == "none" and config["inner_val_fraction"] > 0:
        raise ParameterError("The 'monitor' parameter must be f1 or loss when 'inner_val_fraction' is set. "
                             "Got 'none' instead.")
    if bool(config["extra_images"]) != bool(config["extra_labels"]):
        raise ParameterError("The 'extra_images' and 'extra_labels' parameters must be given together.")
    if config["cells"] and config["tiles"]:
        raise ParameterError("The 'cells' and 'tiles' parameters cannot be combined; choose one.")
    if config["cells"] and config["loader"] == "stream":
        raise ParameterError("The 'loader' parameter must be cache with 'cells' (cell crops are cut from the cache). "
                             "Got 'stream' instead.")
    if config["cells"] and config["head"] != "linear":
        raise _bad("head", "linear with 'cells' (the cell pooling is 'cell_pooling')", config["head"])
    if config["cells"] and config["augment_crop_scale"] < 1:
        raise _bad("augment_crop_scale", "1 with 'cells' (a crop of the cell mosaic would cut across cells)",
                   config["augment_crop_scale"])
    if config["attention_maps"] > 0 and (config["head"] not in ("attention", "attention8") or config["tiles"]
                                         or config["cells"]):
        raise ParameterError("The 'attention_maps' parameter needs 'head: attention' (or attention8) on whole "
                             "images (no tiles or cells).")
    if config["pretrained"] and config["weights"]:
        raise ParameterError("The 'pretrained' and 'weights' parameters cannot be combined: the model starts from "
                             "timm's ImageNet weights or from the weights file. Got both instead.")
    if config["cell_params"] is not None:
        from .segment import CellParams

        CellParams.from_mapping(config["cell_params"])


def check_names_exist(config: dict) -> None:
    """Registry names, the backbone and the task, checked before any cache or output is touched."""
    from hpa_ens.task import load_task

    from .losses import build_loss
    from .models import check_backbone
    from .registry import HEADS, SAMPLERS

    HEADS.check(config["head"])
    SAMPLERS.check(config["sampler"])
    check_backbone(config["backbone"])
    if config["pretrained"]:
        from .pretrained import pretrained_source

        pretrained_source(config["backbone"])  # refuses a backbone timm has no weights for
    load_task(config["task"])
    # Building the loss checks names, weights and options; class frequencies are a placeholder here.
    k = load_task(config["task"]).n_classes
    build_loss(config["loss"], class_freq=[0.5] * k)


def config_hash(config: Mapping, ignore=RESUME_FREE) -> str:
    """sha256 of the config's training-relevant keys (for --resume consistency checks)."""
    relevant = {k: v for k, v in sorted(config.items())
                if k not in ignore and not (k in VARIANT_KEYS and v == DEFAULTS.get(k))}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def result_record(config: Mapping) -> dict:
    """The config keys that change a fold's result (everything but :data:`OPERATIONAL`), for fingerprints.

    ``epochs`` and ``patience`` are in it: a fold trained for 4 epochs is not current for a config
    that asks for 6.
    """
    return {k: v for k, v in sorted(recorded(config).items()) if k not in OPERATIONAL}


def recorded(config: Mapping) -> dict:
    """The config as written and fingerprinted: :data:`UNRECORDED_AT_DEFAULT` keys left out at their defaults."""
    return {k: v for k, v in config.items() if not (k in UNRECORDED_AT_DEFAULT and v == DEFAULTS[k])}


def dump_config(config: Mapping) -> str:
    """The resolved config as YAML (``config.yaml`` of a fold), in :data:`SPEC` order; see :func:`recorded`."""
    return yaml.safe_dump(recorded(config), sort_keys=False)


