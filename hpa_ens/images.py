"""Reading microscopy channels: one reader for every stage (PNG, JPG, TIFF; 8- and 16-bit).

An image is four single-channel files ``{Id}_{red,green,blue,yellow}.{png,jpg,jpeg,tif,tiff}`` (the
Kaggle layout; HPAv18 downloads are JPG). Every reader here returns **uint8**: 16-bit channels are
scaled by 255/65535 (a fixed scale, not the image's own maximum, so intensities stay comparable
between images). HPAv18 serves each channel as a *colour* JPG with the signal in the channel's own
plane (red in R, green in G, blue in B, yellow in R and G); a colour file of a known channel is read
from that plane, not converted to luminance (which would dim blue to 11 %). A file that cannot be
decoded raises :class:`ImageError` naming its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .classes import CHANNELS
from .contract.image_folders import IMAGE_EXTENSIONS  # the channel-file extensions, in the order tried
from .validation import ContractError, check_param

__all__ = ["IMAGE_EXTENSIONS", "ImageError", "channel_path", "channel_paths", "composite_rgb", "otsu_threshold",
           "read_channel", "read_image"]


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


def _channel_of(path: Path) -> str | None:
    """The channel a file holds, from its ``_{channel}`` suffix (None when not a known stain)."""
    stem = path.stem.lower()
    return next((c for c in ("red", "green", "blue", "yellow") if stem.endswith("_" + c)), None)


def _colour_plane(img, channel: str | None) -> np.ndarray | None:
    """The channel's own plane of a colour image (HPAv18 layout), or None to fall back to grey."""
    if img.mode not in ("RGB", "RGBA", "P", "CMYK", "YCbCr") or channel is None:
        return None
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint16)
    if channel == "yellow":
        return ((rgb[..., 0] + rgb[..., 1] + 1) // 2).astype(np.uint8)
    return rgb[..., ("red", "green", "blue").index(channel)].astype(np.uint8)


def _to_uint8(img, channel: str | None = None) -> np.ndarray:
    """A PIL image as (H, W) uint8: grey kept, 16-bit scaled by 255/65535, colour read from the
    channel's own plane when the channel is known, else converted to grey."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        return np.clip(np.rint(arr * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    plane = _colour_plane(img, channel)
    if plane is not None:
        return plane
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def read_channel(path: str | os.PathLike, size: int | None = None, channel: str | None = None) -> np.ndarray:
    """Decode one channel file to uint8, resized to ``(size, size)`` when given.

    Parameters
    ----------
    path : str or Path
        A PNG, JPG or TIFF file, 8- or 16-bit, grey (colour is converted to grey).
    size : int, optional
        Output side. Downsampling uses a box filter (the mean of the pixels a target pixel covers),
        upsampling bilinear. A JPEG is decoded at reduced scale first when that is still >= size.
    channel : str, optional
        The stain the file holds (red, green, blue, yellow); default from the ``_{channel}`` suffix.
        Decides which plane of a colour file is read.

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
            if size is not None and img.format == "JPEG":
                img.draft(img.mode, (size, size))  # DCT-domain downscale: ~2x faster decode of a 2048-px JPG
            img.load()
            arr = _to_uint8(img, channel if channel is not None else _channel_of(path))
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


# ------------------------------------------------------------------------------- intensity threshold
#: How :func:`otsu_threshold` bins the values, and which of several equally good cuts it returns.
OTSU_BINNINGS = ("range", "unit")
OTSU_TIES = ("middle", "first")


def otsu_threshold(values, bins: int = 256, binning: str = "range", ties: str = "middle") -> float:
    """Otsu's threshold: the cut between two histogram bins that maximises the between-class variance.

    One implementation for cell segmentation (``base_models.segment``: ``binning="range"``,
    ``ties="middle"``, the defaults) and the feature model's nuclei (``base_models.features``:
    ``binning="unit"``, ``ties="first"``); each keeps the thresholds it always had.

    Parameters
    ----------
    values : array-like of any shape, real
    bins : int >= 2
    binning : {'range', 'unit'}
        ``range``: ``bins`` equal bins over ``[min, max]`` of the values (:func:`numpy.histogram`, in
        float64); a cut is the edge between two bins. ``unit``: for values in [0, 1], each value
        rounded to the nearest centre ``k / (bins - 1)`` (outside values go to the end bins, computed
        in the values' own float precision); a cut is the midpoint of two neighbouring centres.
    ties : {'middle', 'first'}
        ``middle``: every cut scoring within a relative 1e-9 of the best is a best cut (in an empty
        gap between two modes every cut scores the same) and the threshold is the middle of the
        first and the last of them; ``first``: the first cut with the highest score.

    Returns
    -------
    threshold : float; values strictly above it are foreground. Constant values (no cut) return
        that value: nothing is above it.
    """
    check_param("bins", bins, "an integer >= 2", isinstance(bins, (int, np.integer)) and not isinstance(bins, bool)
                and bins >= 2, "otsu_threshold")
    check_param("binning", binning, f"one of {', '.join(OTSU_BINNINGS)}", binning in OTSU_BINNINGS, "otsu_threshold")
    check_param("ties", ties, f"one of {', '.join(OTSU_TIES)}", ties in OTSU_TIES, "otsu_threshold")
    values = np.asarray(values)
    if binning == "range":
        values = values.astype(np.float64).ravel()
    elif not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return hi
    if binning == "range":
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
        centres = (edges[:-1] + edges[1:]) / 2
        cuts = edges[1:-1]
    else:
        index = np.clip((values.ravel() * (bins - 1)).round().astype(np.int64), 0, bins - 1)
        counts = np.bincount(index, minlength=bins)
        centres = np.arange(bins) / (bins - 1)
        cuts = (centres[:-1] + centres[1:]) / 2
    # Class weights and means below / above the cut after bin k, for k = 0 .. bins - 2.
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = (weight_low * weight_high * (mean_low - mean_high) ** 2)[:-1]
    if ties == "first":
        return float(cuts[int(np.argmax(between))])
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float((cuts[best[0]] + cuts[best[-1]]) / 2)
