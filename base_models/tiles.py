"""2x2 (or g x g) tiles: split images into sub-images, combine tile predictions per image.

A tile inherits its image's labels for training (weak, multiple-instance labels:
a pattern present in one cell may be absent from some tiles), and at inference the tile
probabilities of an image are combined by ``max`` (any tile shows it), ``mean`` or ``noisy_or``
(``1 - prod(1 - p)``, the probability that at least one tile is positive if tiles were independent).

Tiles of image i are rows ``i * g*g .. (i+1) * g*g - 1`` (row-major: top-left, top-right, ...), so
:func:`combine_tiles` needs no index. Works on numpy arrays and torch tensors alike.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from hpa_ens.validation import ContractError, ParameterError  # noqa: E402

COMBINE_METHODS = ("max", "mean", "noisy_or")


def tile_starts(length: int, grid: int) -> tuple[int, list[int]]:
    """Tile side and start offsets along one axis.

    The side is ``ceil(length / grid)``; with a length not divisible by ``grid`` the last tiles are
    shifted back so every tile lies inside the image (neighbours overlap by a pixel or so) and all
    tiles have the same shape.

    Returns
    -------
    side : int
    starts : list of int, ``grid`` offsets
    """
    if not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ParameterError(f"The 'grid' parameter must be an integer >= 1. Got {grid!r} instead.")
    if length < grid:
        raise ContractError(f"The image side must be at least 'grid' ({grid}) pixels. Got {length} instead.")
    side = -(-length // grid)
    starts = [min(k * side, length - side) for k in range(grid)]
    return side, starts


def split_tiles(images, grid: int = 2):
    """Cut each image into ``grid x grid`` tiles.

    Parameters
    ----------
    images : ndarray or Tensor of shape (n, C, H, W)
    grid : int

    Returns
    -------
    tiles : same type, shape (n * grid**2, C, ceil(H/grid), ceil(W/grid)); the tiles of image i are
        rows i*grid**2 ... in row-major order
    """
    if images.ndim != 4:
        raise ParameterError(f"The 'images' parameter must have shape (n, C, H, W). Got {tuple(images.shape)} instead.")
    height, width = images.shape[-2:]
    side_h, rows = tile_starts(height, grid)
    side_w, cols = tile_starts(width, grid)
    pieces = [images[:, :, r:r + side_h, c:c + side_w] for r in rows for c in cols]
    if isinstance(images, np.ndarray):
        stacked = np.stack(pieces, axis=1)
    else:
        import torch

        stacked = torch.stack(pieces, dim=1)
    return stacked.reshape((images.shape[0] * grid * grid, images.shape[1], side_h, side_w))


def merge_tiles(tiles, grid: int = 2):
    """Inverse of :func:`split_tiles` for sides divisible by ``grid`` (for checks and plots).

    Parameters
    ----------
    tiles : ndarray of shape (n * grid**2, C, h, w)

    Returns
    -------
    images : ndarray of shape (n, C, grid*h, grid*w)
    """
    tiles = np.asarray(tiles)
    n_tiles, channels, h, w = tiles.shape
    if n_tiles % (grid * grid):
        raise ParameterError(f"The 'tiles' parameter must hold a multiple of {grid * grid} rows. Got {n_tiles} instead.")
    blocks = tiles.reshape(n_tiles // (grid * grid), grid, grid, channels, h, w)
    return blocks.transpose(0, 3, 1, 4, 2, 5).reshape(n_tiles // (grid * grid), channels, grid * h, grid * w)


def tile_ids(ids: Sequence[str], grid: int = 2) -> list[str]:
    """Row names of the tiles: ``{Id}__t{k}`` for k in 0..grid**2-1, in :func:`split_tiles` order."""
    return [f"{image_id}__t{k}" for image_id in ids for k in range(grid * grid)]


def repeat_labels(labels, grid: int = 2):
    """Each image's label row repeated for its ``grid**2`` tiles: (n, K) -> (n * grid**2, K)."""
    if isinstance(labels, np.ndarray):
        return np.repeat(labels, grid * grid, axis=0)
    return labels.repeat_interleave(grid * grid, dim=0)


def combine_tiles(tile_probs, grid: int = 2, method: str = "max"):
    """Image probabilities from the probabilities of its tiles.

    Parameters
    ----------
    tile_probs : ndarray or Tensor of shape (n * grid**2, K), in [0, 1], in :func:`split_tiles` order
    grid : int
    method : {'max', 'mean', 'noisy_or'}

    Returns
    -------
    image_probs : same type, shape (n, K)
    """
    if method not in COMBINE_METHODS:
        raise ParameterError(f"The 'method' parameter must be one of {', '.join(COMBINE_METHODS)}. Got {method!r} instead.")
    per = grid * grid
    if tile_probs.ndim != 2 or tile_probs.shape[0] % per:
        raise ParameterError(f"The 'tile_probs' parameter must have shape (n * {per}, K). "
                         f"Got {tuple(tile_probs.shape)} instead.")
    blocks = tile_probs.reshape((tile_probs.shape[0] // per, per, tile_probs.shape[1]))
    if isinstance(blocks, np.ndarray):
        blocks = blocks.astype(np.float64)
        if method == "max":
            return blocks.max(axis=1)
        if method == "mean":
            return blocks.mean(axis=1)
        # In log space: the product of many (1 - p) would underflow in float32.
        return -np.expm1(np.log1p(-np.clip(blocks, 0.0, 1.0 - 1e-12)).sum(axis=1))
    if method == "max":
        return blocks.amax(dim=1)
    if method == "mean":
        return blocks.mean(dim=1)
    return -(blocks.clamp(0.0, 1.0 - 1e-7).neg().log1p().sum(dim=1)).expm1()
