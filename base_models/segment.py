"""Find the cells of an image and crop one window per cell; numpy and scipy only (no torch).

All on uint8 (C, H, W) images in ``CHANNELS`` order (red, green, blue, yellow), as the base-model
image cache stores them:

1. :func:`segment_nuclei` - the blue (DAPI) channel: Gaussian smoothing, Otsu threshold, hole filling,
   then a distance-transform watershed seeded by the peaks of the distance map, which splits
   touching nuclei.
2. :func:`segment_cells` - each nucleus grows into its cell over the red + yellow (microtubule + ER)
   cytoplasm mask, by a second watershed on the inverted cytoplasm intensity seeded by the nuclei.
3. :func:`crop_cells` / :func:`extract_cells` - a fixed-size window centred on each nucleus (zero
   padding at the border).
4. :func:`pool_cell_probs` - image scores from cell scores (ragged bags, numpy).
5. :func:`save_overlay` - a PNG of the borders found, for checking the parameters by eye.

The watershed is scikit-image's (``CellParams.watershed = "skimage"``, the default): on real
512-px HPA channels it gives the same nuclei, pixel for pixel, as the hand-written flooding
(:func:`flood_watershed`, kept as ``watershed: flood`` for machines without scikit-image) and is
6-10x faster (``benchmarks/bench_cells.py``). Cell borders differ on 10-25 % of the pixels: the
flooding quantises the cost into 64 bands and grows by distance inside a band, scikit-image floods
in exact cost order. ``scipy.ndimage.watershed_ift`` is not used: with scipy 1.17 it lets a label
cross a ridge (on the cost row 0,10,..,50,..,10,0 with markers at both ends it gives the first marker
nine of eleven pixels), and a cost equal to the dtype's maximum floods everything (scipy #19575).
The crop cache is :mod:`base_models.crop_cache`; the torch modules (MIL pooling, the cell model) are
:mod:`base_models.mil`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from hpa_ens.validation import ParameterError
from hpa_ens.images import composite_rgb, otsu_threshold

RED, GREEN, BLUE, YELLOW = range(4)
CACHE_VERSION = 1
WATERSHEDS = ("skimage", "flood")

# ---------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class CellParams:
    """Segmentation and crop parameters, in pixels of the image they are applied to.

    Attributes
    ----------
    sigma : float
        Gaussian smoothing of the blue channel before thresholding (removes nuclear texture).
    min_distance : int
        Half-width of the peak-finding window on the distance map: two nuclei whose centres are
        closer than this become one. About half the typical nucleus radius.
    min_area : int
        Nuclei (after splitting) smaller than this many pixels are dropped as debris.
    split_ratio : float
        Two distance-map peaks stay two nuclei only if the map dips between them below this
        fraction of the lower peak (a neck); otherwise they are one nucleus.
    threshold_scale : float
        Multiplies the Otsu threshold of the blue channel (< 1 keeps dimmer nuclei).
    cell_sigma : float
        Smoothing of red + yellow before the cytoplasm threshold.
    cell_threshold_scale : float
        Multiplies the Otsu threshold of the cytoplasm; the cell mask is also capped at
        ``max_cell_radius`` pixels from its nucleus.
    max_cell_radius : int
        A cell never reaches further than this from its nucleus (keeps a dim field from merging).
    crop_size : int
        Side of the square window cropped around each nucleus centre.
    max_cells : int
        At most this many cells per image are kept (the largest ones).
    mask_others : bool
        Zero the pixels of the crop that belong to other cells.
    watershed : {'skimage', 'flood'}
        scikit-image's watershed (exact, fast) or the hand-written banded flooding.
    """

    sigma: float = 1.5
    min_distance: int = 3
    min_area: int = 20
    split_ratio: float = 1.0
    threshold_scale: float = 1.0
    cell_sigma: float = 1.5
    cell_threshold_scale: float = 0.5
    max_cell_radius: int = 40
    crop_size: int = 48
    max_cells: int = 32
    mask_others: bool = False
    watershed: str = "skimage"

    def key(self) -> str:
        """Short stable hash of the parameters (names the crop cache folder)."""
        record = asdict(self)
        if record["watershed"] == "flood":  # crops cached before the choice existed keep their folder
            del record["watershed"]
        blob = json.dumps({"v": CACHE_VERSION, **record}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @classmethod
    def from_mapping(cls, values) -> "CellParams":
        """Build from a config mapping, refusing unknown keys by name."""
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(f"The 'cell_params' parameter has unknown keys {unknown}; valid keys are "
                                 f"{sorted(known)}. Got {values!r} instead.")
        if values.get("watershed", "skimage") not in WATERSHEDS:
            raise ParameterError(f"The 'cell_params.watershed' parameter must be one of {', '.join(WATERSHEDS)}. "
                                 f"Got {values['watershed']!r} instead.")
        return cls(**values)


# ------------------------------------------------------------------------------- segmentation
def _grow(labels: np.ndarray) -> np.ndarray:
    """Largest label among each pixel and its 4 neighbours (a cross-shaped grey dilation).

    Five shifted ``np.maximum`` calls: about 5x faster than ``ndi.grey_dilation`` with a footprint.
    """
    out = labels.copy()
    np.maximum(out[1:], labels[:-1], out=out[1:])
    np.maximum(out[:-1], labels[1:], out=out[:-1])
    np.maximum(out[:, 1:], labels[:, :-1], out=out[:, 1:])
    np.maximum(out[:, :-1], labels[:, 1:], out=out[:, :-1])
    return out


def watershed(cost: np.ndarray, markers: np.ndarray, mask: np.ndarray | None = None,
              method: str = "skimage") -> np.ndarray:
    """Marker-based watershed: labels grow from ``markers`` over ``cost`` (low first), 4-connected.

    ``method='skimage'``: :func:`skimage.segmentation.watershed` (exact priority flooding);
    ``'flood'``: :func:`flood_watershed`.

    Returns
    -------
    labels : ndarray of shape (H, W), int32; pixels outside ``mask`` are 0
    """
    if method == "flood":
        return flood_watershed(cost, markers, mask)
    try:
        from skimage.segmentation import watershed as sk_watershed
    except ImportError:
        raise ParameterError("The 'cell_params.watershed' parameter is 'skimage' but scikit-image is not "
                             "installed. Install it (pip install scikit-image) or set watershed: flood.") from None
    mask = None if mask is None else np.asarray(mask, dtype=bool)
    markers = np.asarray(markers) if mask is None else np.where(mask, markers, 0)
    return sk_watershed(np.asarray(cost, dtype=np.float64), markers, mask=mask, connectivity=1).astype(np.int32)


def flood_watershed(cost: np.ndarray, markers: np.ndarray, mask: np.ndarray | None = None, levels: int = 64) -> np.ndarray:
    """Marker-based watershed by flooding (no scikit-image): labels grow from the markers in order of rising cost.

    The cost is cut into ``levels`` bands; at each band every label grows (4-connected geodesic
    dilation, repeated until nothing changes) into the unlabelled pixels of cost up to that band.
    A pixel is reached first by the label whose lowest-cost path to it (the largest cost along the
    path) is smallest, which is what puts the border on the ridge between two markers. Two labels
    reaching a pixel in the same dilation step: the larger label wins (a one-pixel bias).

    Parameters
    ----------
    cost : ndarray of shape (H, W), float; low cost is flooded first
    markers : ndarray of shape (H, W), int; 0 = unlabelled, k > 0 = seed of region k
    mask : ndarray of shape (H, W), bool, optional; pixels outside stay 0
    levels : int, number of cost bands (more = finer borders, slower)

    Returns
    -------
    labels : ndarray of shape (H, W), int32
    """
    cost = np.asarray(cost, dtype=np.float64)
    mask = np.ones(cost.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    labels = np.where(mask, markers, 0).astype(np.int32)
    if not mask.any() or labels.max() == 0:
        return labels
    lo, hi = cost[mask].min(), cost[mask].max()
    band = np.zeros(cost.shape, dtype=np.int32) if hi <= lo else \
        np.minimum(((cost - lo) / (hi - lo) * levels).astype(np.int32), levels - 1)
    for level in range(levels):
        allowed = mask & (band <= level)
        while True:
            todo = allowed & (labels == 0)
            if not todo.any():
                break
            grown = _grow(labels)
            new = todo & (grown > 0)
            if not new.any():
                break
            labels[new] = grown[new]
    return labels


def _relabel_by_size(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Drop objects under ``min_area`` pixels and number the rest 1..n in raster order of first pixel."""
    counts = np.bincount(labels.ravel())
    keep = counts >= min_area
    keep[0] = False
    mapping = np.zeros(len(counts), dtype=np.int32)
    # np.unique on the raster-ordered labels keeps the numbering independent of watershed label ids.
    flat = labels.ravel()
    _, first = np.unique(flat, return_index=True)
    ids = np.unique(flat)
    ordered = [int(i) for i in ids[np.argsort(first)] if keep[i]]
    mapping[ordered] = np.arange(1, len(ordered) + 1, dtype=np.int32)
    return mapping[labels]


def _merge_shallow_peaks(markers: np.ndarray, n_markers: int, distance: np.ndarray, split_ratio: float):
    """Merge two distance peaks unless the map dips between them below ``split_ratio`` x the lower peak.

    Two touching nuclei meet at a neck narrower than either; texture or a rough border gives a
    second peak with no such neck. The dip is read along the straight segment between the peaks.
    """
    if n_markers < 2:
        return markers, n_markers
    index = np.arange(1, n_markers + 1)
    where = np.asarray(ndi.maximum_position(distance, markers, index), dtype=np.float64)
    height = np.asarray(ndi.maximum(distance, markers, index), dtype=np.float64)
    parent = np.arange(n_markers + 1)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(n_markers):
        for b in range(a + 1, n_markers):
            gap = np.hypot(*(where[a] - where[b]))
            if gap > 2.5 * (height[a] + height[b]):
                continue  # far apart: not one blob
            steps = max(int(np.ceil(gap)) + 1, 2)
            line = np.linspace(where[a], where[b], steps)
            dip = ndi.map_coordinates(distance, line.T, order=1).min()
            if dip > split_ratio * min(height[a], height[b]):
                parent[root(b + 1)] = root(a + 1)
    roots = np.array([root(i) for i in range(n_markers + 1)])
    _, relabelled = np.unique(roots, return_inverse=True)  # root 0 (background) stays 0
    return relabelled.reshape(roots.shape)[markers].astype(np.int32), int(relabelled.max())


def segment_nuclei(blue: np.ndarray, params: CellParams = CellParams()) -> np.ndarray:
    """Label the nuclei of a blue (DAPI) channel; touching nuclei are split.

    Parameters
    ----------
    blue : ndarray of shape (H, W), uint8 or float
    params : CellParams

    Returns
    -------
    nuclei : ndarray of shape (H, W), int32; 0 = background, 1..n = nuclei
    """
    blue = np.asarray(blue, dtype=np.float32)
    if blue.ndim != 2:
        raise ParameterError(f"The 'blue' parameter must be a 2-D channel. Got shape {blue.shape} instead.")
    smooth = ndi.gaussian_filter(blue, params.sigma)
    if smooth.max() - smooth.min() < 1e-6:
        return np.zeros(blue.shape, dtype=np.int32)
    mask = smooth > otsu_threshold(smooth) * params.threshold_scale
    mask = ndi.binary_fill_holes(ndi.binary_opening(mask, iterations=1))
    if not mask.any():
        return np.zeros(blue.shape, dtype=np.int32)
    # Smoothing the distance map merges the small ridges a rough border creates into one peak.
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(mask), 1.0)
    size = 2 * int(params.min_distance) + 1
    peaks = (distance == ndi.maximum_filter(distance, size=size)) & mask & (distance > 1.0)
    markers, n_markers = ndi.label(peaks, structure=np.ones((3, 3)))  # a plateau is one marker
    markers, n_markers = _merge_shallow_peaks(markers, n_markers, distance, params.split_ratio)
    # Every mask component gets a marker, even a small one without a sharp peak.
    components, n_components = ndi.label(mask)
    has_marker = np.zeros(n_components + 1, dtype=bool)
    has_marker[np.unique(components[markers > 0])] = True
    for comp in np.flatnonzero(~has_marker[1:]) + 1:
        where = np.flatnonzero(components.ravel() == comp)
        n_markers += 1
        markers.ravel()[where[np.argmax(distance.ravel()[where])]] = n_markers
    flooded = watershed(-distance, markers, mask, params.watershed)
    return _relabel_by_size(flooded, params.min_area)


def segment_cells(image: np.ndarray, nuclei: np.ndarray, params: CellParams = CellParams()) -> np.ndarray:
    """Grow each nucleus into its cell over the red + yellow cytoplasm.

    Parameters
    ----------
    image : ndarray of shape (4, H, W), channels red, green, blue, yellow
    nuclei : ndarray of shape (H, W), int; labels from :func:`segment_nuclei`
    params : CellParams

    Returns
    -------
    cells : ndarray of shape (H, W), int32; cell k contains nucleus k, 0 = background
    """
    image = np.asarray(image)
    if nuclei.max() == 0:
        return np.zeros(nuclei.shape, dtype=np.int32)
    cyto = ndi.gaussian_filter(image[RED].astype(np.float32) + image[YELLOW].astype(np.float32), params.cell_sigma)
    mask = cyto > otsu_threshold(cyto) * params.cell_threshold_scale
    near = ndi.distance_transform_edt(nuclei == 0) <= params.max_cell_radius
    mask = (mask & near) | (nuclei > 0)
    # Flood from the nuclei over dark-is-expensive costs: cell borders (dimmer gaps) become ridges.
    cost = np.where(nuclei > 0, cyto.min() - 1.0, -cyto)
    cells = watershed(cost, nuclei, mask, params.watershed)
    # A cell keeps only the connected piece that holds its nucleus (no islands across background).
    out = np.zeros_like(cells, dtype=np.int32)
    for label, box in enumerate(ndi.find_objects(cells), start=1):
        if box is None:
            continue
        pieces, _ = ndi.label(cells[box] == label)
        own = pieces[nuclei[box] == label]
        if own.size == 0:
            continue
        keep = pieces == np.bincount(own[own > 0]).argmax() if (own > 0).any() else pieces > 0
        out[box][keep] = label
    return out


def centroids(labels: np.ndarray) -> np.ndarray:
    """Centre of mass (row, col) of objects 1..n, shape (n, 2) float64."""
    n = int(labels.max())
    if n == 0:
        return np.zeros((0, 2))
    return np.asarray(ndi.center_of_mass(np.ones_like(labels), labels, range(1, n + 1)), dtype=np.float64)


# -------------------------------------------------------------------------------------- crops
def crop_cells(image: np.ndarray, centres: np.ndarray, crop_size: int, cells: np.ndarray | None = None,
               labels: Sequence[int] | None = None) -> np.ndarray:
    """Fixed-size windows centred on each point, zero-padded where they leave the image.

    Parameters
    ----------
    image : ndarray of shape (C, H, W)
    centres : ndarray of shape (n, 2), (row, col)
    crop_size : int
    cells : ndarray of shape (H, W), optional
        With ``labels``, pixels of the window not in cell ``labels[i]`` (nor background) are zeroed.
    labels : sequence of int, optional

    Returns
    -------
    crops : ndarray of shape (n, C, crop_size, crop_size), image's dtype
    """
    image = np.asarray(image)
    channels, height, width = image.shape
    half = crop_size // 2
    padded = np.pad(image, ((0, 0), (half, crop_size), (half, crop_size)))
    if cells is not None:
        padded_cells = np.pad(cells, ((half, crop_size), (half, crop_size)))
    out = np.zeros((len(centres), channels, crop_size, crop_size), dtype=image.dtype)
    for i, (row, col) in enumerate(np.asarray(centres)):
        # The padding shifts the image by ``half``, so the window starting at padded[row] is centred on row.
        top = int(np.clip(np.round(row), 0, height - 1))
        left = int(np.clip(np.round(col), 0, width - 1))
        window = padded[:, top:top + crop_size, left:left + crop_size]
        if cells is not None and labels is not None:
            owner = padded_cells[top:top + crop_size, left:left + crop_size]
            window = window * ((owner == 0) | (owner == labels[i]))[None].astype(image.dtype)
        out[i] = window
    return out


@dataclass
class CellCrops:
    """The cells of one image.

    Attributes
    ----------
    crops : ndarray of shape (n, 4, crop, crop), uint8
    centres : ndarray of shape (n, 2), float32 (row, col) of each nucleus
    areas : ndarray of shape (n,), int32, pixels of each cell
    fallback : bool
        True when no nucleus was found and the single crop is the image centre.
    """

    crops: np.ndarray
    centres: np.ndarray
    areas: np.ndarray
    fallback: bool = False


def extract_cells(image: np.ndarray, params: CellParams = CellParams(), return_labels: bool = False):
    """Segment one image and crop its cells.

    Parameters
    ----------
    image : ndarray of shape (C, H, W), uint8, channels red, green, blue, yellow first
    params : CellParams
    return_labels : bool
        Also return the nucleus and cell label images.

    Returns
    -------
    cells : CellCrops, with at least one crop (the image centre if no nucleus is found,
        so that every image stays a non-empty bag)
    nuclei, cell_labels : ndarray of shape (H, W), int32, only with ``return_labels``
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] < 4:
        raise ParameterError(f"The 'image' parameter must have shape (4, H, W). Got {image.shape} instead.")
    nuclei = segment_nuclei(image[BLUE], params)
    cell_labels = segment_cells(image, nuclei, params)
    centres = centroids(nuclei)
    areas = np.bincount(cell_labels.ravel(), minlength=len(centres) + 1)[1:len(centres) + 1]
    if len(centres):
        # The largest cells, then raster order of the nucleus: deterministic and position-sorted.
        keep = np.sort(np.argsort(-areas, kind="stable")[:params.max_cells])
        keep = keep[np.lexsort((centres[keep, 1], centres[keep, 0]))]
        crops = crop_cells(image, centres[keep], params.crop_size,
                           cell_labels if params.mask_others else None, (keep + 1).tolist())
        result = CellCrops(crops.astype(np.uint8), centres[keep].astype(np.float32), areas[keep].astype(np.int32))
    else:
        centre = np.array([[(image.shape[1] - 1) / 2, (image.shape[2] - 1) / 2]])
        result = CellCrops(crop_cells(image, centre, params.crop_size).astype(np.uint8),
                           centre.astype(np.float32), np.zeros(1, dtype=np.int32), fallback=True)
    return (result, nuclei, cell_labels) if return_labels else result


# -------------------------------------------------------------------------------- pooling
def pool_cell_probs(cell_probs: np.ndarray, bag: np.ndarray, n_bags: int | None = None, method: str = "max",
                    temperature: float = 5.0) -> np.ndarray:
    """Image scores from cell scores (ragged bags).

    Parameters
    ----------
    cell_probs : ndarray of shape (n_cells, n_classes), in [0, 1]
    bag : ndarray of shape (n_cells,), int; the image row of each cell
    n_bags : int, optional; default ``bag.max() + 1``
    method : {'max', 'mean', 'noisy_or', 'lse'}
        ``noisy_or`` is ``1 - prod(1 - p)`` (any cell shows it); ``lse`` is
        ``log(mean(exp(t * p))) / t``, between mean (t -> 0) and max (t -> inf).
    temperature : float, for ``lse``

    Returns
    -------
    image_probs : ndarray of shape (n_bags, n_classes), float64; an image without cells gets 0
    """
    cell_probs = np.asarray(cell_probs, dtype=np.float64)
    bag = np.asarray(bag, dtype=np.int64)
    if cell_probs.ndim != 2 or bag.shape != (cell_probs.shape[0],):
        raise ParameterError(f"The 'bag' parameter must have one entry per row of cell_probs "
                         f"({cell_probs.shape}). Got shape {bag.shape} instead.")
    n_bags = int(bag.max()) + 1 if n_bags is None else int(n_bags)
    counts = np.bincount(bag, minlength=n_bags)[:, None].astype(np.float64)
    if method == "max":
        out = np.full((n_bags, cell_probs.shape[1]), -np.inf)
        np.maximum.at(out, bag, cell_probs)
        return np.where(counts > 0, out, 0.0)
    if method == "mean":
        out = np.zeros((n_bags, cell_probs.shape[1]))
        np.add.at(out, bag, cell_probs)
        return out / np.maximum(counts, 1)
    if method == "noisy_or":
        log_miss = np.zeros((n_bags, cell_probs.shape[1]))
        np.add.at(log_miss, bag, np.log1p(-np.clip(cell_probs, 0, 1 - 1e-12)))
        return np.where(counts > 0, -np.expm1(log_miss), 0.0)
    if method == "lse":
        t = float(temperature)
        shifted = np.exp(t * (cell_probs - 1.0))  # p <= 1, so no overflow
        out = np.zeros((n_bags, cell_probs.shape[1]))
        np.add.at(out, bag, shifted)
        return np.where(counts > 0, 1.0 + np.log(np.maximum(out / np.maximum(counts, 1), 1e-300)) / t, 0.0)
    raise ParameterError(f"The 'method' parameter must be one of max, mean, noisy_or, lse. Got {method!r} instead.")


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """One-pixel inner border of every object (also between two touching objects)."""
    return (labels > 0) & (ndi.grey_erosion(labels, size=3) != labels)


def save_overlay(path, images: Sequence[np.ndarray], params: CellParams = CellParams(),
                 titles: Sequence[str] | None = None, true_centres: Sequence[np.ndarray] | None = None) -> Path:
    """One PNG showing, per image, the composite with nucleus (cyan) and cell (white) borders,
    the found nucleus centres (+) and optionally the true centres (o).

    Parameters
    ----------
    path : output PNG (written atomically)
    images : sequence of ndarray (4, H, W), uint8
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hpa_ens.report import save_figure

    n = len(images)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, image in enumerate(images):
        cells, nuclei, cell_labels = extract_cells(image, params, return_labels=True)
        rgb = composite_rgb(image)
        rgb[_boundaries(cell_labels)] = (1.0, 1.0, 1.0)
        rgb[_boundaries(nuclei)] = (0.0, 1.0, 1.0)
        ax = axes.ravel()[i]
        ax.imshow(rgb, interpolation="nearest")
        found = centroids(nuclei)
        if len(found):
            ax.plot(found[:, 1], found[:, 0], "+", color="magenta", ms=6, mew=1.5)
        if true_centres is not None and len(true_centres[i]):
            tc = np.asarray(true_centres[i])
            ax.plot(tc[:, 1], tc[:, 0], "o", mfc="none", mec="yellow", ms=7, mew=1)
        label = titles[i] if titles is not None else f"image {i}"
        ax.set_title(f"{label}: {int(nuclei.max())} nuclei", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)

