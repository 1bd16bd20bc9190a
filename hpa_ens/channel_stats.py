"""Per-channel pixel mean and standard deviation: of a folder of channel files, or of an in-memory array.

The one channel-statistics implementation of the project. Both forms reduce pixels to ``(count, mean,
M2)`` per channel with :func:`array_moments` and merge the pieces with :func:`merge_moments` (Chan et
al.'s parallel form of Welford's update), in a fixed order:

- :func:`channel_stats` streams a folder of ``{Id}_{channel}`` files (``python -m hpa_ens.eda --images``):
  each joblib worker decodes one file at a time with :mod:`hpa_ens.images`, so memory stays at one
  image per worker and the numbers do not depend on ``n_jobs``;
- :func:`array_channel_stats` reads an ``(n_images, n_channels, H, W)`` uint8 array (the base models'
  image cache) in blocks of evenly spaced images.

Values are in 0..1 units of the uint8 pixels every stage sees (16-bit channels scaled by 255/65535),
population statistics over every pixel of a channel; the record is the layout of
:mod:`hpa_ens.contract.channel_stats`, which writes and reads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .classes import CHANNELS
from .validation import ContractError, check_param

__all__ = ["merge_moments", "array_moments", "image_moments", "find_images", "channel_stats",
           "array_channel_stats"]

#: ``(count, mean, M2)`` of a set of pixel values; variance = M2 / count.
Moments = tuple[int, float, float]
_EMPTY: Moments = (0, 0.0, 0.0)


# ------------------------------------------------------------------------------------ the core
def merge_moments(a: Moments, b: Moments) -> Moments:
    """Merge two ``(count, mean, M2)`` summaries (Chan et al.'s parallel form of Welford's update).

    ``M2`` is the sum of squared deviations from the mean, so variance = M2 / count.
    """
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    if n == 0:
        return 0, 0.0, 0.0
    delta = mean_b - mean_a
    mean = mean_a + delta * n_b / n
    m2 = m2_a + m2_b + delta * delta * n_a * n_b / n
    return n, mean, m2


def array_moments(pixels: np.ndarray) -> tuple[Moments, tuple[int, int]]:
    """``(count, mean, M2)`` of a uint8 array in 0..1 units, and its last two dimensions (H, W).

    Parameters
    ----------
    pixels : ndarray of shape (..., H, W), uint8 (one channel of one image, or of a batch)
    """
    values = np.asarray(pixels, dtype=np.float64) / 255.0
    mean = float(values.mean())
    m2 = float(np.square(values - mean).sum())
    return (int(values.size), mean, m2), (int(values.shape[-2]), int(values.shape[-1]))


def image_moments(path: str | os.PathLike) -> tuple[Moments, tuple[int, int]]:
    """``(count, mean, M2)`` of one channel file in 0..1 units, and its (height, width).

    The file is decoded by :func:`hpa_ens.images.read_channel` (PNG/JPG/TIFF; 16-bit scaled to uint8 by
    ``round(value * 255 / 65535)``, colour converted to grey) and divided by 255, so the statistics are
    those of the pixels every other stage sees. A file that cannot be decoded raises
    :class:`hpa_ens.images.ImageError` naming it.
    """
    from .images import read_channel

    return array_moments(read_channel(path))


def _finish(totals: Sequence[Moments], sizes: dict[tuple[int, int], int], n_files: Sequence[int],
            channels: Sequence[str], n_images: int, min_std: float = 0.0) -> dict:
    stats: dict = {
        "channels": list(channels),
        "mean": [float(m) for _, m, _ in totals],
        "std": [max(float(np.sqrt(m2 / n)) if n else 0.0, min_std) for n, _, m2 in totals],
        "n_images": int(n_images),
    }
    square = {h for h, w in sizes if h == w}
    stats["size"] = int(next(iter(square))) if len(sizes) == 1 and square else None
    if stats["size"] is None:
        stats["sizes"] = [[h, w, c] for (h, w), c in sorted(sizes.items())]
    stats["n_files"] = list(n_files)
    return stats


# ------------------------------------------------------------------------------ in-memory array
def array_channel_stats(images: np.ndarray, max_images: int | None = 2000, channels: Sequence[str] = CHANNELS,
                        min_std: float = 0.0) -> dict:
    """:func:`channel_stats` of an in-memory image array (e.g. the base models' uint8 cache).

    Parameters
    ----------
    images : ndarray of shape (n_images, n_channels, H, W), uint8 (a memmap is fine)
    max_images : int or None
        Use this many evenly spaced images (deterministic; all when None).
    channels : sequence of str
        Names of the channels (the first n_channels); ``"0".."C-1"`` when fewer than n_channels.
    min_std : float >= 0
        Floor of every std (the base models normalise with 1e-3, so a constant channel never divides
        by zero); 0 reports the std as computed.

    Returns
    -------
    stats : dict, the layout of :func:`channel_stats` (``channels`` has n_channels names)
    """
    check_param("min_std", min_std, "a finite number >= 0", bool(np.isfinite(min_std)) and min_std >= 0,
                "array_channel_stats")
    n = len(images)
    n_channels = images.shape[1]
    channels = list(channels)[:n_channels] if len(channels) >= n_channels else [str(c) for c in range(n_channels)]
    take = n if max_images is None else min(max_images, n)
    rows = np.unique(np.linspace(0, n - 1, take).astype(int)) if n else np.zeros(0, int)
    totals = [_EMPTY] * n_channels
    for start in range(0, len(rows), 256):
        block = np.asarray(images[rows[start:start + 256]])
        for c in range(n_channels):
            totals[c] = merge_moments(totals[c], array_moments(block[:, c])[0])
    sizes = {(int(images.shape[2]), int(images.shape[3])): len(rows)} if len(rows) else {}
    return _finish(totals, sizes, [len(rows)] * n_channels, channels, len(rows), min_std)


# --------------------------------------------------------------------------------------- folder
def _chunk_moments(paths: list[tuple[int, str]], n_channels: int) -> tuple[list[Moments], dict]:
    acc = [_EMPTY] * n_channels
    sizes: dict[tuple[int, int], int] = {}
    for channel, path in paths:
        moments, shape = image_moments(path)
        acc[channel] = merge_moments(acc[channel], moments)
        sizes[shape] = sizes.get(shape, 0) + 1
    return acc, sizes


def _scan(image_dir: str | os.PathLike, channels: Sequence[str], complete: bool) -> dict[str, dict[str, Path]]:
    """:func:`hpa_ens.image_sets.scan_images`, refusing a folder without images (and incomplete ones)."""
    from .image_sets import scan_images

    found = scan_images(image_dir, channels)
    if not found:
        raise ContractError(
            f"{image_dir}: no images named {{Id}}_{{{','.join(channels)}}}.png/.jpg/.tif. Got "
            f"{len(os.listdir(image_dir))} other entries instead."
        )
    incomplete = [(i, [c for c in channels if c not in have]) for i, have in found.items() if len(have) < len(channels)]
    if incomplete and complete:
        image_id, missing = incomplete[0]
        raise ContractError(
            f"{Path(image_dir) / f'{image_id}_{missing[0]}'}.png: channel file not found ({len(incomplete)} image(s) "
            f"lack a channel; every image needs {'/'.join(channels)}). Got only {', '.join(found[image_id])} for "
            f"{image_id!r} instead."
        )
    return found


def find_images(image_dir: str | os.PathLike, channels: Sequence[str] = CHANNELS,
                complete: bool = False) -> dict[str, list[str]]:
    """``{Id: [channels present]}`` for files ``{Id}_{channel}.{png,jpg,tif}`` in ``image_dir`` (sorted by Id).

    ``complete`` refuses an image that lacks one of ``channels`` (the eda command's rule: a Kaggle
    folder with a missing channel file is a broken download, not a smaller data set).
    """
    return {i: list(have) for i, have in _scan(image_dir, channels, complete).items()}


def channel_stats(image_dir: str | os.PathLike, channels: Sequence[str] = CHANNELS, n_jobs: int = 1,
                  max_images: int | None = None, seed: int = 0, chunk_size: int = 32,
                  progress: Callable[[int, int, str], None] | None = None, complete: bool = False) -> dict:
    """Per-channel pixel mean and standard deviation over a folder of ``{Id}_{channel}`` image files.

    One streaming pass: each worker decodes one file at a time with :mod:`hpa_ens.images` and keeps
    only ``(count, mean, M2)`` per channel; chunk results are merged in a fixed order, so the numbers
    do not depend on ``n_jobs``.

    Parameters
    ----------
    image_dir : path-like
    channels : sequence of str
    n_jobs : int
        joblib workers decoding in parallel.
    max_images : int, optional
        Use a seeded random subset of this many Ids (all when None).
    seed : int
    chunk_size : int
        Files per joblib task.
    progress : callable, optional
        ``progress(n_files_done, n_files, "channel stats")`` (the convention of
        :func:`hpa_ens.commands._cli.progress`).
    complete : bool
        Refuse an image that lacks a channel file (see :func:`find_images`).

    Returns
    -------
    stats : dict
        ``{"channels": [...], "mean": [...], "std": [...], "n_images": N, "size": S, "n_files": [...],
        "images": folder record}`` with mean/std in 0..1 units (population std over all pixels);
        ``size`` is the side length when every image is S×S, else None with ``sizes`` listing
        ``[h, w, count]``. Written and read through :mod:`hpa_ens.contract.channel_stats`.

    Raises
    ------
    hpa_ens.images.ImageError
        A file that cannot be decoded (named), before anything is written.
    """
    from joblib import Parallel, delayed

    from .contract.image_folders import folder_record

    paths = _scan(image_dir, channels, complete)
    ids = list(paths)
    if max_images is not None and max_images < len(ids):
        rng = np.random.default_rng(seed)
        ids = sorted(rng.choice(ids, size=max_images, replace=False).tolist())
    jobs = [(ci, str(paths[i][c])) for i in ids for ci, c in enumerate(channels) if c in paths[i]]
    chunks = [jobs[s: s + chunk_size] for s in range(0, len(jobs), chunk_size)]
    totals = [_EMPTY] * len(channels)
    n_files = [0] * len(channels)
    for ci, _ in jobs:
        n_files[ci] += 1
    sizes: dict[tuple[int, int], int] = {}
    runner = Parallel(n_jobs=max(1, min(n_jobs, len(chunks))), return_as="generator")
    results = runner(delayed(_chunk_moments)(chunk, len(channels)) for chunk in chunks)
    done = 0
    if progress is not None:
        progress(done, len(jobs), "channel stats")
    for chunk, (acc, chunk_sizes) in zip(chunks, results):
        for ci in range(len(channels)):
            totals[ci] = merge_moments(totals[ci], acc[ci])
        for shape, count in chunk_sizes.items():
            sizes[shape] = sizes.get(shape, 0) + count
        done += len(chunk)
        if progress is not None:
            progress(done, len(jobs), "channel stats")
    stats = _finish(totals, sizes, n_files, channels, len(ids))
    stats["images"] = folder_record(image_dir)
    return stats
