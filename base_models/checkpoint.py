"""Checkpoints as plain tensors and containers: written atomically, read with ``weights_only=True``."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from hpa_ens.validation import ContractError
from hpa_ens.io import atomic_write_bytes


def save(path, state: dict) -> None:
    """``torch.save`` into memory, then an atomic replace: a kill never leaves half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path, what: str = "checkpoint") -> dict:
    """Load a checkpoint without unpickling objects (tensors, dicts, lists, numbers, strings only).

    A file holding pickled objects is refused in one line; torch's own message is not repeated,
    because its advice (reload with ``weights_only=False``) would run the file's code.
    """
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: {what} not found.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ContractError(f"{path}: refused: this {what} holds pickled Python objects, not only tensors; "
                            f"nothing in it was run. Use a checkpoint written by base_models or a "
                            f".safetensors file.") from None
    except Exception as err:  # not a torch file at all, truncated, ...
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
        raise ContractError(f"{path}: not a readable {what} ({type(err).__name__}: {first}).") from None
