"""One factory for every backbone: timm, C input channels (4 for HPA), K outputs, initial weights.

Heads are a registry (:data:`base_models.registry.HEADS`) so a new head needs no change to the
trainer: a head factory takes ``(backbone_name, n_classes, dropout, in_chans)`` (plus ``global_pool``
and ``pretrained`` when a config sets them) and returns an ``nn.Module`` mapping (batch, C, H, W)
images to (batch, K) logits. ``linear`` is here; the attention heads are in :mod:`base_models.heads`.
Every head builds its timm backbone through :func:`create_backbone`.

Initial weights: random (the default), timm's ImageNet weights (``pretrained=True``: timm downloads or
finds them in its cache and adapts the 3-channel stem; see :mod:`base_models.pretrained`), or a local
state dict (``weights=FILE``, :func:`load_weights`: the stem adapted with the same
``timm.models.adapt_input_conv``). Both adaptations are timm's, so a stem is adapted one way.

timm is imported where a model is built or a backbone checked, not with this module: timm (through
huggingface_hub) reads ``HF_HUB_OFFLINE`` when first imported, and the commands set it first
(:func:`base_models.commands._env.offline_hub`).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import nn

from hpa_ens.validation import ContractError, ParameterError
from hpa_ens.task import DEFAULT_TASK

from .registry import HEADS

IN_CHANS = len(DEFAULT_TASK.channels)
N_OUT = DEFAULT_TASK.n_classes  # default head size; the trainer passes the task's K


def check_backbone(name: str) -> str:
    """Refuse a name timm does not know, suggesting close ones."""
    import timm

    if not isinstance(name, str) or not timm.is_model(name):
        close = difflib.get_close_matches(str(name), timm.list_models(), n=5, cutoff=0.6)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ParameterError(f"The 'backbone' parameter must be a timm model name. Got {name!r} instead.{hint}")
    return name


def create_backbone(backbone: str, pretrained: bool = False, in_chans: int = IN_CHANS, **kwargs) -> nn.Module:
    """``timm.create_model`` for every head: the name checked, ``in_chans`` inputs, ImageNet weights if asked.

    With ``pretrained=True`` timm loads the weights of the backbone's default tag (from its cache, or
    downloaded into it), drops an ImageNet classifier of another size and adapts the 3-channel stem to
    ``in_chans`` (``timm.models.adapt_input_conv``). ``kwargs`` go to ``timm.create_model``
    (``num_classes``, ``drop_rate``, ``global_pool``).
    """
    import timm

    return timm.create_model(check_backbone(backbone), pretrained=bool(pretrained), in_chans=in_chans, **kwargs)


@HEADS.register("linear")
def linear_head(backbone: str, n_classes: int = N_OUT, dropout: float = 0.0, global_pool: str = "avg",
                in_chans: int = IN_CHANS, pretrained: bool = False) -> nn.Module:
    """timm's own global pooling (``avg``, ``max``, ``avgmax``, ``catavgmax``) + dropout + linear classifier."""
    return create_backbone(backbone, pretrained, in_chans, num_classes=n_classes, drop_rate=float(dropout),
                           global_pool=global_pool)


def build_model(backbone: str, head: str = "linear", dropout: float = 0.0, weights: str | None = None,
                n_classes: int = N_OUT, global_pool: str = "avg", in_chans: int = IN_CHANS,
                pretrained: bool = False) -> nn.Module:
    """Build a model: random, timm's ImageNet weights (``pretrained``) or a local state dict (``weights``).

    Returns
    -------
    model : nn.Module mapping float (batch, in_chans, H, W) to logits (batch, n_classes)
    """
    if pretrained and weights:
        raise ParameterError("The 'pretrained' and 'weights' parameters cannot be combined: the model starts from "
                             "timm's ImageNet weights or from the weights file. Got both instead.")
    # Only non-default options are passed on, so heads with the basic signature keep working.
    extra = {} if global_pool == "avg" else {"global_pool": global_pool}
    if pretrained:
        extra["pretrained"] = True
    model = HEADS.get(head)(backbone, n_classes=n_classes, dropout=dropout, in_chans=in_chans, **extra)
    if weights:
        load_weights(model, weights)
    return model


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or a ``torch.save`` file (``.pth``/``.pt``/``.bin``).

    A torch file is loaded with ``weights_only=True`` (:func:`base_models.checkpoint.load`): a file holding
    pickled Python objects is refused, never run. A checkpoint's ``state_dict``/``model``/``model_state_dict``
    entry is used when present; a DataParallel ``module.`` prefix is dropped.
    """
    path = Path(path)
    if not path.exists():
        raise ContractError(f"{path}: weights file not found.")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ContractError(f"{path}: not a readable .safetensors file ({str(err).splitlines()[0][:120]}).") from None
    else:
        from .checkpoint import load

        state = load(path, what="weights file")
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ContractError(f"{path}: expected a mapping of parameter names to tensors. Got {type(state).__name__} instead.")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Name prefixes of the model's classifier (timm's ``pretrained_cfg['classifier']`` and ``get_classifier()``)."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ()
    prefixes = {f"{n}." for n in ([names] if isinstance(names, str) else names)}
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(classifier, nn.Module):
        prefixes |= {f"{name}." for name, module in model.named_modules() if module is classifier and name}
    return tuple(sorted(prefixes))


def _stem_keys(model: nn.Module, own: dict) -> set[str]:
    """The weight of the input convolution (timm's ``pretrained_cfg['first_conv']``, else the first 4-D tensor)."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv") or ()
    keys = {f"{n}.weight" for n in ([names] if isinstance(names, str) else names)} & own.keys()
    return keys or {next((k for k, v in own.items() if v.ndim == 4), "")}


def _weights_target(model: nn.Module, state: dict) -> nn.Module:
    """The module the file's names fit: the model, or the timm backbone inside a head (attention, cells)."""
    candidates = [model] + [m for m in (getattr(model, "backbone", None),) if isinstance(m, nn.Module)]
    return max(candidates, key=lambda m: len(state.keys() & m.state_dict().keys()))


def load_weights(model: nn.Module, path) -> dict:
    """Load a local state dict: a 3-channel stem adapted to the model's channels, a classifier of another size
    skipped, any other shape mismatch refused.

    The file's names may be the model's own or those of the timm backbone inside a head (a timm or
    ImageNet state dict for an attention or cell model): the weights go where the names fit.

    Returns
    -------
    report : dict with ``adapted``, ``skipped``, ``missing`` key lists

    Raises
    ------
    ContractError
        One line naming the file, its first tensor whose shape does not fit and both shapes; or none of
        its names fit the model.
    """
    from timm.models import adapt_input_conv

    state = read_state_dict(path)
    model = _weights_target(model, state)
    own = model.state_dict()
    classifier = _classifier_prefixes(model)
    stem = _stem_keys(model, own)
    adapted, skipped = [], []
    for key, target in own.items():  # the model's order: the first mismatch reported is the earliest layer
        tensor = state.get(key)
        if tensor is None or tensor.shape == target.shape:
            continue
        if (key in stem and tensor.ndim == 4 and tensor.shape[0] == target.shape[0]
                and tensor.shape[2:] == target.shape[2:]):
            # timm's helper (as timm does for pretrained=True): repeats/rescales RGB filters so activations
            # keep their scale.
            state[key] = adapt_input_conv(target.shape[1], tensor.float(), base_chans=tensor.shape[1]).to(target.dtype)
            adapted.append(key)
        elif key.startswith(classifier):
            del state[key]  # e.g. an ImageNet 1000-class head
            skipped.append(key)
        else:
            raise ContractError(f"{path}: tensor {key!r} has shape {tuple(tensor.shape)} but the model expects "
                                f"{tuple(target.shape)} (the first mismatch; is the file for another backbone?).")
    loaded = [k for k in state if k in own]
    if not loaded:
        raise ContractError(f"{path}: none of its tensors match the model's parameter names.")
    result = model.load_state_dict(state, strict=False)
    return {"adapted": adapted, "skipped": skipped, "missing": list(result.missing_keys)}
