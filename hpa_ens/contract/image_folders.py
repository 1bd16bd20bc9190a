"""Image folders: which files are images, and a folder's provenance (the hash of its listing).

An image is one file per channel, ``{Id}_{channel}.{png,jpg,jpeg,tif,tiff}`` (the Kaggle layout). Files
derived from a folder of images (``duplicates.csv``'s sidecar, ``channel_stats.json``) record
:func:`folder_record` of that folder, so a later stage can check that the folder is still the one
they were computed on (:func:`hpa_ens.contract.check_duplicates_provenance`). Listing a folder reads
no image: decoding is :mod:`hpa_ens.images`' job.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from ..validation import ContractError

__all__ = ["IMAGE_EXTENSIONS", "image_files", "folder_record"]

#: Extensions of channel files, in the order they are tried when a channel file is looked up without one.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def image_files(folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[tuple[str, int]]:
    """``(name, size in bytes)`` of every image file directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ContractError(f"{folder}: not a folder.")
    exts = {e.lower() for e in extensions}
    out = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() in exts and entry.is_file():
                out.append((entry.name, entry.stat().st_size))
    return sorted(out)


def folder_record(folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> dict:
    """Provenance of an image folder: its path, file count and the sha256 of its sorted listing.

    The listing is ``name<TAB>size<LF>`` per image file: adding, removing, renaming or resizing an image
    changes it; other files (notes, CSVs) do not. Cheap: one directory scan, no file is read.

    Returns
    -------
    record : dict ``{"path": str, "n_files": int, "listing_sha256": str}``
    """
    files = image_files(folder, extensions)
    digest = hashlib.sha256()
    for name, size in files:
        digest.update(f"{name}\t{size}\n".encode("utf-8", "surrogateescape"))
    return {"path": str(Path(folder)), "n_files": len(files), "listing_sha256": digest.hexdigest()}
