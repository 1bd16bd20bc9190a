"""Checkpoints as plain tensors and containers: written atomically, read with ``weights_only=True``."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from hpa_ens.io import atomic_write_bytes
from hpa_ens._validation import ContractError  # noqa: E402


def save(path, state: dict) -> None:
    """``torch.save`` into memory, then an atomic replace: a kill never leaves half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path) -> dict:
    """Load a checkpoint without unpickling objects (tensors, dicts, lists, numbers, strings only)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ContractError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err}).") from None
