"""``channel_stats.json``: per-channel pixel mean and standard deviation, typed read/write.

Written by ``python -m hpa_ens.eda --images DIR`` and read by the base models (dataset normalisation).
Values are in 0..1 units of the uint8 pixels :mod:`hpa_ens.images` returns (16-bit channels are
scaled by 255/65535 first), population statistics over every pixel of a channel.

Layout::

    {"channels": ["red", "green", "blue", "yellow"], "mean": [4 floats], "std": [4 floats],
     "n_images": N, "n_files": [4 ints], "size": S | null, "sizes": [[h, w, count], ...] (when size is null),
     "images": {"path", "n_files", "listing_sha256"} (the folder's provenance, when read from a folder)}
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..validation import ContractError, ParameterError, read_json_object

__all__ = ["ChannelStats", "read_channel_stats", "write_channel_stats", "validate_channel_stats"]

REQUIRED = ("channels", "mean", "std", "n_images")


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel statistics, ordered as ``channels``.

    Attributes
    ----------
    channels : tuple of str, length C
    mean, std : ndarray of shape (C,), float64, 0..1 units
    n_images : int
    record : dict, the whole file
    """

    channels: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    n_images: int
    record: dict


def validate_channel_stats(stats: Mapping, source: str = "channel stats") -> None:
    """Refuse a record that is not a valid channel-stats object, in one line naming ``source``."""
    if not isinstance(stats, Mapping):
        raise ContractError(f"{source}: expected a JSON object. Got {type(stats).__name__} instead.")
    missing = [k for k in REQUIRED if k not in stats]
    if missing:
        raise ContractError(f"{source}: missing key(s) {missing}; expected {', '.join(REQUIRED)}.")
    channels = stats["channels"]
    if (not isinstance(channels, list) or not channels or not all(isinstance(c, str) and c for c in channels)
            or len(set(channels)) != len(channels)):
        raise ContractError(f"{source}: 'channels' must be a non-empty list of distinct names. Got {channels!r} instead.")
    for key, upper in (("mean", 1.0), ("std", 0.5)):
        values = stats[key]
        if not isinstance(values, list) or len(values) != len(channels):
            raise ContractError(f"{source}: {key!r} must hold {len(channels)} numbers (one per channel). "
                                f"Got {values!r} instead.")
        for channel, value in zip(channels, values):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 0.0 <= value <= upper:
                raise ContractError(f"{source}: {key} of channel {channel!r} must be a number in [0, {upper:g}] "
                                    f"(0..1 pixel units). Got {value!r} instead.")
    n = stats["n_images"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ContractError(f"{source}: 'n_images' must be a non-negative integer. Got {n!r} instead.")


def write_channel_stats(path: str | os.PathLike, stats: Mapping) -> None:
    """Validate ``stats`` and write it atomically as JSON."""
    from ..io import atomic_write_json

    validate_channel_stats(stats, "channel stats to write")
    atomic_write_json(path, dict(stats))


def read_channel_stats(path: str | os.PathLike, channels: Sequence[str] | None = None) -> ChannelStats:
    """Read and validate ``channel_stats.json``.

    Parameters
    ----------
    path : path-like
    channels : sequence of str, optional
        Return the statistics in this order (e.g. ``task.channels``); every one must be in the file with
        std > 0 (a constant or absent channel cannot normalise anything).

    Raises
    ------
    ContractError
        Missing file, not JSON, a missing key, wrong lengths, values out of range, an asked channel
        missing or with std 0 (file named).
    """
    path = Path(path)
    record = read_json_object(path, "a channel stats file")
    validate_channel_stats(record, str(path))
    have = record["channels"]
    order = list(have) if channels is None else list(channels)
    absent = [c for c in order if c not in have]
    if absent:
        raise ContractError(f"{path}: no statistics for channel(s) {absent}. Got {have} instead.")
    index = [have.index(c) for c in order]
    mean = np.asarray(record["mean"], dtype=np.float64)[index]
    std = np.asarray(record["std"], dtype=np.float64)[index]
    if channels is not None and not (std > 0).all():
        bad = order[int(np.flatnonzero(std <= 0)[0])]
        raise ContractError(f"{path}: channel {bad!r} has std 0 (no pixels, or all equal); it cannot be normalised.")
    if channels is not None and len(set(order)) != len(order):
        raise ParameterError(f"The 'channels' parameter must not repeat a channel. Got {order} instead.")
    return ChannelStats(tuple(order), mean, std, int(record["n_images"]), record)
