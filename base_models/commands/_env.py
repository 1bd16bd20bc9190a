"""Process settings of the base-model commands, decided in one place.

timm reaches the Hugging Face hub through ``huggingface_hub``, which reads ``HF_HUB_OFFLINE`` once, when it
is first imported; so the commands call :func:`offline_hub` before timm is. A run that needs no download
(no config asks for ``pretrained: true``; ``weights:`` files are local) runs offline unless the user set the
variable. A run that needs timm's ImageNet weights (:mod:`base_models.pretrained`):

- the user set ``HF_HUB_OFFLINE=1``: offline; the weights must be cached;
- otherwise the hub is tried with one short connection (:func:`base_models.pretrained.hub_reachable`,
  a few seconds at most): it answers -> online (timm downloads what is missing, or uses its cache);
  it does not -> offline (``HF_HUB_OFFLINE=1``, unless the user set ``HF_HUB_OFFLINE=0``: huggingface_hub
  would otherwise retry each file for about 46 s), and the weights must be cached.

Weights that must be cached and are not stop the command in one line (exit 2) naming the backbone, the
cache folder and the ``weights:`` alternative, before any data is read.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Iterable

from hpa_ens.validation import ContractError

__all__ = ["offline_hub", "pretrained_backbones", "require_train_extra"]

_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's spelling of true


def offline_hub(pretrained: Iterable[str] = ()) -> None:
    """Decide ``HF_HUB_OFFLINE`` for a run whose models need timm's weights for the backbones ``pretrained``.

    Call before timm is first imported. Without pretrained backbones: ``HF_HUB_OFFLINE=1`` unless the user
    has set it. With them: see the module docstring.

    Raises
    ------
    ContractError
        Weights that cannot be downloaded and are not cached (one line).
    """
    backbones = list(dict.fromkeys(pretrained))
    if not backbones:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return
    from ..pretrained import HUB_TIMEOUT_S, hub_endpoint, hub_reachable

    if os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE:
        why = f"HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']} is set"
    elif hub_reachable(timeout=HUB_TIMEOUT_S):
        return  # online: timm downloads what its cache lacks
    else:
        why = f"{hub_endpoint()} could not be reached within {HUB_TIMEOUT_S:g} s"
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the cache alone, without huggingface_hub's retries
    # Imported only now: timm (through huggingface_hub) reads the setting above.
    from ..pretrained import cached_copy, pretrained_source, unavailable_message

    for backbone in backbones:
        source = pretrained_source(backbone)
        if cached_copy(source) is None:
            raise ContractError(unavailable_message(source, why))


def pretrained_backbones(configs: Iterable[dict]) -> list[str]:
    """The backbones of the configs that ask for ``pretrained: true``, for :func:`offline_hub`."""
    return [c["backbone"] for c in configs if c.get("pretrained")]


def require_train_extra() -> None:
    """Refuse to load a command whose library needs torch and timm when either is not installed.

    Raises the ``ModuleNotFoundError`` an import would raise, without importing anything (timm must
    not be imported before :func:`offline_hub`), so the dispatcher (:mod:`hpa_ens.commands`) turns it
    into its one-line "needs the [train] extra" error when the command module is loaded.
    """
    for name in ("torch", "timm"):
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
