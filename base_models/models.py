"""One factory for every backbone: timm, C input channels (4 for HPA), K outputs, optional local weights.

Heads are a registry (:data:`base_models.registry.HEADS`) so a new head needs no change to the
trainer: a head factory takes ``(backbone_name, n_classes, dropout, in_chans)`` (plus ``global_pool``
when a config sets one) and returns an ``nn.Module`` mapping (batch, C, H, W) images to (batch, K)
logits. ``linear`` is here; the attention heads are in :mod:`base_models.heads`.

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


@HEADS.register("linear")
def linear_head(backbone: str, n_classes: int = N_OUT, dropout: float = 0.0, global_pool: str = "avg",
                in_chans: int = IN_CHANS) -> nn.Module:
    """timm's own global pooling (``avg``, ``max``, ``avgmax``, ``catavgmax``) + dropout + linear classifier."""
    import timm

    return timm.create_model(check_backbone(backbone), pretrained=False, in_chans=in_chans,
                             num_classes=n_classes, drop_rate=float(dropout), global_pool=global_pool)


def build_model(backbone: str, head: str = "linear", dropout: float = 0.0, weights: str | None = None,
                n_classes: int = N_OUT, global_pool: str = "avg", in_chans: int = IN_CHANS) -> nn.Module:
    """Build a model and optionally load local weights into it.

    Returns
    -------
    model : nn.Module mapping float (batch, in_chans, H, W) to logits (batch, n_classes)
    """
    # Only a non-default pooling is passed on, so heads with the basic signature keep working.
    extra = {} if global_pool == "avg" else {"global_pool": global_pool}
    model = HEADS.get(head)(backbone, n_classes=n_classes, dropout=dropout, in_chans=in_chans, **extra)
    if weights:
        load_weights(model, weights)
    return model


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or a ``torch.save`` file (loaded with ``weights_only=True``)."""
    path = Path(path)
    if not path.exists():
        raise ContractError(f"{path}: weights file not found.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
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


def load_weights(model: nn.Module, path) -> dict:
    """Load local weights, adapting a 3-channel stem to 4 and skipping a classifier of another size.

    Returns
    -------
    report : dict with ``adapted``, ``skipped``, ``missing`` key lists
    """
    from timm.models import adapt_input_conv

    state = read_state_dict(path)
    own = model.state_dict()
    adapted, skipped = [], []
    for key, tensor in list(state.items()):
        if key not in own:
            continue
        target = own[key]
        if tensor.shape == target.shape:
            continue
        if (tensor.ndim == 4 and target.ndim == 4 and tensor.shape[0] == target.shape[0]
                and tensor.shape[2:] == target.shape[2:] and target.shape[1] != tensor.shape[1]):
            # timm's helper: repeats/rescales RGB filters so activations keep their scale.
            state[key] = adapt_input_conv(target.shape[1], tensor.float(), base_chans=tensor.shape[1]).to(target.dtype)
            adapted.append(key)
        else:
            del state[key]  # e.g. an ImageNet 1000-class head
            skipped.append(key)
    result = model.load_state_dict(state, strict=False)
    loaded = [k for k in state if k in own]
    if not loaded:
        raise ContractError(f"{path}: none of its tensors match the model's parameter names.")
    return {"adapted": adapted, "skipped": skipped, "missing": list(result.missing_keys)}

