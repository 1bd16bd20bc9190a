"""Reading microscopy channels: one reader for every stage (PNG, JPG, TIFF; 8- and 16-bit).

An image is four single-channel files ``{Id}_{red,green,blue,yellow}.{png,jpg,jpeg,tif,tiff}`` (the
Kaggle layout; HPAv18 downloads are JPG). Every reader here returns **uint8**: 16-bit channels are
scaled by 255/65535 (a fixed scale, not the image's own maximum, so intensities stay comparable
between images). A file that cannot be decoded raises :class:`ImageError` naming its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ._validation import ContractError
from .classes import CHANNELS

#: Extensions tried, in this order, when a channel file is looked up without one.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

__all__ = ["IMAGE_EXTENSIONS", "ImageError", "channel_path", "channel_paths", "composite_rgb", "read_channel",
           "read_image"]


class ImageError(ContractError):
    """A channel file is missing or cannot be decoded."""


def channel_path(folder: str | os.PathLike, image_id: str, channel: str,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS) -> Path:
    """The file of one channel, the first of ``extensions`` that exists.

    Raises
    ------
    ImageError
        When no file with any of the extensions exists.
    """
    folder = Path(folder)
    for ext in extensions:
        path = folder / f"{image_id}_{channel}{ext}"
        if path.is_file():
            return path
    wanted = "/".join(e.lstrip(".") for e in extensions)
    raise ImageError(f"{folder / f'{image_id}_{channel}'}.{{{wanted}}}: channel file not found; every image needs "
                     f"{'/'.join(CHANNELS)} channel files.")


def channel_paths(folder: str | os.PathLike, image_id: str, channels: Sequence[str] = CHANNELS,
                  extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """The files of every channel of one image, in ``channels`` order."""
    return [channel_path(folder, image_id, c, extensions) for c in channels]


def _to_uint8(img) -> np.ndarray:
    """A PIL image as (H, W) uint8: grey kept, 16-bit scaled by 255/65535, colour converted to grey."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        return np.clip(np.rint(arr * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def read_channel(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Decode one channel file to uint8, resized to ``(size, size)`` when given.

    Parameters
    ----------
    path : str or Path
        A PNG, JPG or TIFF file, 8- or 16-bit, grey (colour is converted to grey).
    size : int, optional
        Output side. Downsampling uses a box filter (the mean of the pixels a target pixel covers),
        upsampling bilinear.

    Returns
    -------
    channel : ndarray of shape (H, W) or (size, size), uint8
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: channel file not found.")
    try:
        with Image.open(path) as img:
            img.load()
            arr = _to_uint8(img)
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"{path}: cannot decode this image ({type(err).__name__}: {err}).") from None
    if size is not None and arr.shape != (size, size):
        shrink = min(arr.shape) >= size
        arr = np.asarray(Image.fromarray(arr).resize(
            (size, size), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR), dtype=np.uint8)
    return arr


def read_image(folder: str | os.PathLike, image_id: str, size: int | None = None,
               channels: Sequence[str] = CHANNELS, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> np.ndarray:
    """One image as uint8 ``(n_channels, H, W)``, channels in ``channels`` order (red, green, blue, yellow).

    Channels of different sizes are refused unless ``size`` resizes them all.
    """
    paths = channel_paths(folder, image_id, channels, extensions)
    arrays = [read_channel(p, size) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ImageError(f"{paths[0]}: the channels of image {image_id!r} differ in size. "
                         f"Got {sorted(shapes)} instead.")
    return np.stack(arrays)


def composite_rgb(image: np.ndarray) -> np.ndarray:
    """The usual HPA false-colour view: red + yellow/2 -> R, green + yellow/2 -> G, blue -> B.

    Parameters
    ----------
    image : ndarray of shape (4, H, W), uint8, channels red, green, blue, yellow

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), float32 in [0, 1]
    """
    red, green, blue, yellow = np.asarray(image, dtype=np.float32) / 255.0
    return np.clip(np.stack([red + yellow / 2, green + yellow / 2, blue], axis=-1), 0.0, 1.0)
