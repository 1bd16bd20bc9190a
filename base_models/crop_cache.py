"""Per-image cell crops on disk (uint8 ``.npz``, no pickle), and fixed-size bags of them; numpy only."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from hpa_ens.validation import ParameterError
from hpa_ens.io import atomic_open

from .segment import CellCrops, CellParams, extract_cells

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


