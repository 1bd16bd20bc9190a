"""Process settings of the base-model commands, decided in one place.

timm reaches the Hugging Face hub through ``huggingface_hub``, which reads ``HF_HUB_OFFLINE`` once, when it
is first imported. No command downloads anything today (every backbone is built with ``pretrained=False``;
weights come from local files through the ``weights`` config key), so the commands run offline unless the
user set the variable. When a ``pretrained`` key arrives, whether a run may go online is decided here.
"""

from __future__ import annotations

import importlib.util
import os

__all__ = ["offline_hub", "require_train_extra"]


def offline_hub() -> None:
    """Set ``HF_HUB_OFFLINE=1`` unless the user has set it. Call before timm is first imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def require_train_extra() -> None:
    """Refuse to load a command whose library needs torch and timm when either is not installed.

    Raises the ``ModuleNotFoundError`` an import would raise, without importing anything (timm must
    not be imported before :func:`offline_hub`), so the dispatcher (:mod:`hpa_ens.commands`) turns it
    into its one-line "needs the [train] extra" error when the command module is loaded.
    """
    for name in ("torch", "timm"):
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
