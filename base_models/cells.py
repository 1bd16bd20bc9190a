"""Find the cells of an image, crop one window per cell, score the image from its cells.

Pipeline (issue 6, item 1), all on uint8 (4, H, W) images in ``CHANNELS`` order (red, green, blue,
yellow) as the base-model image cache stores them:

1. :func:`segment_nuclei` - the blue (DAPI) channel: Gaussian smoothing, Otsu threshold, hole filling,
   then a distance-transform watershed seeded by the peaks of the distance map, which splits
   touching nuclei.
2. :func:`segment_cells` - each nucleus grows into its cell over the red + yellow (microtubule + ER)
   cytoplasm mask, by a second watershed on the inverted cytoplasm intensity seeded by the nuclei.
3. :func:`crop_cells` - a fixed-size window centred on each nucleus (zero padding at the border).
4. :class:`CropCache` - the crops of each image, as uint8 ``.npz`` (no pickle), keyed by Id + params.
5. Pooling cell scores into image scores: :func:`pool_cell_probs` (numpy, ragged bags: max, mean,
   noisy-or, log-sum-exp) and the torch modules :class:`MaskedPooling` / :class:`LSEPooling` /
   :class:`AttentionMILPooling` for fixed-size bags (batch, k cells) with a validity mask, and
   :class:`CellMILModel`, a timm backbone on the crops followed by one of those poolings.

scikit-image is not a dependency: ``scipy.ndimage`` gives smoothing, distance transforms, labelling
and maximum filters; Otsu, peak finding and the flooding watershed (:func:`watershed`, because
``scipy.ndimage.watershed_ift`` crosses ridges) are a few lines here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from hpa_ens.io import atomic_open  # noqa: E402
from hpa_ens.report import save_figure  # noqa: E402
from hpa_ens._validation import ParameterError  # noqa: E402

RED, GREEN, BLUE, YELLOW = range(4)
CACHE_VERSION = 1
POOLINGS = ("max", "mean", "noisy_or", "lse", "attention")


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

    def key(self) -> str:
        """Short stable hash of the parameters (names the crop cache folder)."""
        blob = json.dumps({"v": CACHE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @classmethod
    def from_mapping(cls, values) -> "CellParams":
        """Build from a config mapping, refusing unknown keys by name."""
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(f"The 'cells' parameter has unknown keys {unknown}; valid keys are "
                             f"{sorted(known)}. Got {values!r} instead.")
        return cls(**values)


# ------------------------------------------------------------------------------- segmentation
def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut maximising the between-class variance of a histogram.

    Parameters
    ----------
    values : ndarray of any shape, real
    bins : int

    Returns
    -------
    threshold : float; values strictly above it are foreground
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return hi
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    # Every cut inside an empty gap between the modes scores the same: take the middle of that run.
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float((edges[1:][best[0]] + edges[1:][best[-1]]) / 2)


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


def watershed(cost: np.ndarray, markers: np.ndarray, mask: np.ndarray | None = None, levels: int = 64) -> np.ndarray:
    """Marker-based watershed by flooding: labels grow from the markers in order of rising cost.

    The cost is cut into ``levels`` bands; at each band every label grows (4-connected geodesic
    dilation, repeated until nothing changes) into the unlabelled pixels of cost up to that band.
    A pixel is reached first by the label whose lowest-cost path to it (the largest cost along the
    path) is smallest, which is what puts the border on the ridge between two markers. Two labels
    reaching a pixel in the same dilation step: the larger label wins (a one-pixel bias).

    ``scipy.ndimage.watershed_ift`` is not used: with scipy 1.17 it lets a label cross a ridge
    (on the cost row 0,10,..,50,..,10,0 with markers at both ends it gives the first marker nine of
    eleven pixels), and a cost equal to the dtype's maximum floods everything (scipy #19575).

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
    flooded = watershed(-distance, markers, mask)
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
    cells = watershed(cost, nuclei, mask)
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
    image : ndarray of shape (4, H, W), uint8
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
    if image.ndim != 3 or image.shape[0] != 4:
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


# -------------------------------------------------------------------------------------- cache
class CropCache:
    """Per-image cell crops on disk: ``ROOT/cells_{params key}_{size}px/{Id}.npz`` (uint8, no pickle).

    The key holds every parameter, the image size and the cache version, so a change of any of them
    reads from a fresh folder. Files are written atomically, so a killed run leaves no half file.
    """

    def __init__(self, root, params: CellParams = CellParams()):
        self.root = Path(root)
        self.params = params

    def folder(self, size: int) -> Path:
        return self.root / f"cells_{self.params.key()}_{int(size)}px"

    def path(self, image_id: str, size: int) -> Path:
        if not image_id or "/" in image_id or image_id.startswith("."):
            raise ParameterError(f"The 'image_id' parameter must be a plain file-name Id. Got {image_id!r} instead.")
        return self.folder(size) / f"{image_id}.npz"

    def get(self, image_id: str, image: np.ndarray) -> CellCrops:
        """The cached crops of ``image_id``, computing and storing them on a miss."""
        path = self.path(image_id, image.shape[-1])
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                return CellCrops(data["crops"], data["centres"], data["areas"], bool(data["fallback"]))
        cells = extract_cells(image, self.params)
        with atomic_open(path, "wb") as handle:
            np.savez(handle, crops=cells.crops, centres=cells.centres, areas=cells.areas,
                     fallback=np.array(cells.fallback))
        return cells

    def build(self, ids: Sequence[str], images: np.ndarray, progress=None) -> list[CellCrops]:
        """Crops for every image (``images`` of shape (n, 4, S, S), e.g. the trainer's memmap)."""
        if len(ids) != len(images):
            raise ParameterError(f"The 'ids' parameter must have one Id per image ({len(images)}). "
                             f"Got {len(ids)} instead.")
        task = progress.add_task("cell crops", total=len(ids)) if progress is not None else None
        out = []
        for image_id, image in zip(ids, images):
            out.append(self.get(str(image_id), np.asarray(image)))
            if task is not None:
                progress.advance(task)
        return out


def fixed_bags(cell_sets: Sequence[CellCrops], k: int, rng: np.random.Generator | None = None):
    """Stack ragged per-image crops into fixed-size bags of ``k`` cells with a validity mask.

    An image with more than ``k`` cells gives ``k`` of them (a random subset with ``rng``, else the
    first ``k``); one with fewer is padded with zeros marked invalid.

    Returns
    -------
    bags : ndarray of shape (n_images, k, 4, crop, crop), uint8
    mask : ndarray of shape (n_images, k), bool
    """
    first = cell_sets[0].crops
    bags = np.zeros((len(cell_sets), k) + first.shape[1:], dtype=first.dtype)
    mask = np.zeros((len(cell_sets), k), dtype=bool)
    for i, cells in enumerate(cell_sets):
        n = len(cells.crops)
        rows = np.sort(rng.choice(n, size=k, replace=False)) if (rng is not None and n > k) else np.arange(min(n, k))
        bags[i, :len(rows)] = cells.crops[rows]
        mask[i, :len(rows)] = True
    return bags, mask


# ------------------------------------------------------------------------- pooling (numpy)
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


# -------------------------------------------------------------------------- pooling (torch)
def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.to(torch.bool)


class MaskedPooling(nn.Module):
    """Fixed pooling of cell logits (batch, k, n_classes) to image logits (batch, n_classes).

    ``max`` and ``mean`` pool logits; ``noisy_or`` pools probabilities ``1 - prod(1 - p)`` and
    returns its logit.
    """

    def __init__(self, method: str = "max"):
        super().__init__()
        if method not in ("max", "mean", "noisy_or"):
            raise ParameterError(f"The 'pooling' parameter must be one of max, mean, noisy_or. Got {method!r} instead.")
        self.method = method

    def forward(self, cell_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = _masked(cell_logits, mask)[..., None]
        if self.method == "max":
            return cell_logits.masked_fill(~mask, torch.finfo(cell_logits.dtype).min).amax(dim=1)
        if self.method == "mean":
            return (cell_logits * mask).sum(1) / mask.sum(1).clamp(min=1)
        # log P(no cell positive) = sum log sigmoid(-z); image logit = log(1 - e^s) - s.
        log_none = (F.logsigmoid(-cell_logits) * mask).sum(1).clamp(max=-1e-6)
        return torch.log(-torch.expm1(log_none)) - log_none


class LSEPooling(nn.Module):
    """Log-sum-exp pooling with a learned temperature per class.

    ``z_img = log(mean_i exp(r z_i)) / r`` with ``r = softplus(rho) + r_min``: r -> 0 is mean
    pooling, r -> inf is max pooling, and training picks the point between for each class.
    """

    def __init__(self, n_classes: int, init_temperature: float = 1.0, min_temperature: float = 0.05):
        super().__init__()
        init = max(float(init_temperature) - min_temperature, 1e-3)
        self.rho = nn.Parameter(torch.full((n_classes,), float(np.log(np.expm1(init)))))
        self.min_temperature = float(min_temperature)

    @property
    def temperature(self) -> torch.Tensor:
        return F.softplus(self.rho) + self.min_temperature

    def forward(self, cell_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = _masked(cell_logits, mask)[..., None]
        r = self.temperature
        scaled = (r * cell_logits).masked_fill(~mask, float("-inf"))
        count = mask.sum(1).clamp(min=1).to(cell_logits.dtype)
        return (torch.logsumexp(scaled, dim=1) - torch.log(count)) / r


class AttentionMILPooling(nn.Module):
    """Gated attention multiple-instance pooling (Ilse et al. 2018), one attention per class.

    Each cell gets a logit per class (a linear layer on its features) and an attention score per
    class (``w^T (tanh(V h) * sigmoid(U h))``); the image logit of class c is the softmax-over-cells
    (per class) weighted sum of the cells' class-c logits - the instance version of pudae's spatial
    attention head.

    Parameters
    ----------
    in_features : int
    n_classes : int
    hidden : int
    dropout : float, on the cell features before both branches
    """

    def __init__(self, in_features: int, n_classes: int, hidden: int = 128, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_features, n_classes)
        self.attention_v = nn.Linear(in_features, hidden)
        self.attention_u = nn.Linear(in_features, hidden)
        self.attention_w = nn.Linear(hidden, n_classes)
        self.last_attention: torch.Tensor | None = None

    def forward(self, cell_features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, k, in_features) [+ mask (batch, k)] -> image logits (batch, n_classes).

        The attention weights (batch, k, n_classes), summing to 1 over the valid cells, are kept in
        ``last_attention``.
        """
        mask = _masked(cell_features, mask)
        h = self.dropout(cell_features)
        cell_logits = self.classifier(h)
        scores = self.attention_w(torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h)))
        scores = scores.masked_fill(~mask[..., None], float("-inf"))
        attention = torch.softmax(scores, dim=1)
        attention = torch.nan_to_num(attention)  # a bag without valid cells: all zero
        self.last_attention = attention.detach()
        return (attention * cell_logits).sum(1)


def feature_dim(backbone: nn.Module) -> int:
    """Width of the pooled features a timm model (num_classes=0) returns."""
    # mobilenetv3 has a conv head after pooling: its output width is head_hidden_size, not num_features.
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


class CellMILModel(nn.Module):
    """A timm backbone on cell crops, pooled into image logits.

    Input ``(batch, k, 4, crop, crop)`` bags (see :func:`fixed_bags`) plus an optional validity
    mask ``(batch, k)``; output ``(batch, n_classes)`` logits. ``pooling`` is ``max``, ``mean`` or
    ``noisy_or`` (fixed, over the cells' logits), ``lse`` (learned temperature) or ``attention``
    (gated attention MIL). :meth:`cell_logits` scores single crops, for the post-hoc ragged
    scoring with :func:`pool_cell_probs`.
    """

    def __init__(self, backbone: str, n_classes: int = 28, pooling: str = "attention", dropout: float = 0.0,
                 in_chans: int = 4):
        super().__init__()
        import timm

        if pooling not in POOLINGS:
            raise ParameterError(f"The 'pooling' parameter must be one of {', '.join(POOLINGS)}. Got {pooling!r} instead.")
        self.pooling_name = pooling
        self.backbone = timm.create_model(backbone, pretrained=False, in_chans=in_chans, num_classes=0)
        width = feature_dim(self.backbone)
        self.dropout = nn.Dropout(dropout)
        if pooling == "attention":
            self.pool = AttentionMILPooling(width, n_classes, dropout=dropout)
            self.classifier = None
        else:
            self.classifier = nn.Linear(width, n_classes)
            self.pool = LSEPooling(n_classes) if pooling == "lse" else MaskedPooling(pooling)
        self.last_features: torch.Tensor | None = None

    def cell_features(self, crops: torch.Tensor) -> torch.Tensor:
        """(n, 4, crop, crop) -> (n, width)."""
        return self.backbone(crops)

    def cell_logits(self, crops: torch.Tensor) -> torch.Tensor:
        """(n, 4, crop, crop) -> (n, n_classes) logits of single cells."""
        h = self.cell_features(crops)
        if self.classifier is not None:
            return self.classifier(h)
        return self.pool.classifier(h)

    def forward(self, bags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, k = bags.shape[:2]
        h = self.cell_features(bags.reshape(batch * k, *bags.shape[2:])).reshape(batch, k, -1)
        valid = _masked(h, mask)
        # Image feature for auxiliary losses (center loss): mean over valid cells.
        self.last_features = (h * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        if self.classifier is None:
            return self.pool(h, valid)
        return self.pool(self.classifier(self.dropout(h)), valid)


# --------------------------------------------------------------------------------------- plots
def composite_rgb(image: np.ndarray) -> np.ndarray:
    """The usual HPA false-colour view: red + yellow/2 -> R, green + yellow/2 -> G, blue -> B.

    Parameters
    ----------
    image : ndarray of shape (4, H, W), uint8

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), float in [0, 1]
    """
    image = np.asarray(image, dtype=np.float32) / 255.0
    rgb = np.stack([image[RED] + image[YELLOW] / 2, image[GREEN] + image[YELLOW] / 2, image[BLUE]], axis=-1)
    return np.clip(rgb, 0, 1)


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
