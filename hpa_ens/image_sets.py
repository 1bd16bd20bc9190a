"""Image sets: a folder of channel files plus its Ids and labels (Kaggle train/test, HPAv18 external).

An image is one file per channel, ``{Id}_{channel}.{png,jpg,jpeg,tif,tiff}`` (the Kaggle layout; the
HPAv18 downloads are usually JPG, and the widely used download script saved JPEG bytes under a
``.png`` name, which :mod:`hpa_ens.images` decodes by content). This module

- lists a folder in one directory scan (:func:`scan_images`, :func:`list_image_ids`) instead of one
  ``stat`` per channel and extension: the HPAv18 folder holds about 300,000 files;
- re-exports the contract's record of a folder's provenance (:func:`folder_record`: sha256 of the sorted
  listing of image file names and sizes, :mod:`hpa_ens.contract.image_folders`), so a file derived from
  the images (``duplicates.csv``, ``channel_stats.json``) can be checked against the folder later;
- reads the external set (:func:`load_external`): HPAv18 ``Id,Target`` with Ids such as
  ``10580_1610_C1_1`` (through :func:`hpa_ens.labels.read_labels`, K from the task). Ids of the labels
  file without all their channel files are counted and shown, then refused, or dropped with
  ``skip_missing=True`` (the count is kept in the result).

Decoding is never done here: every pixel is read through :mod:`hpa_ens.images`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from .contract.image_folders import IMAGE_EXTENSIONS, folder_record, image_files  # noqa: F401 - re-exported
from .validation import ContractError, _preview
from .task import Task, load_task

__all__ = ["ExternalSet", "scan_images", "list_image_ids", "image_files", "folder_record", "missing_images",
           "load_external", "hpav18_id"]


# ------------------------------------------------------------------------------------ listing
def _scan_names(folder: Path, channels: Sequence[str], extensions: Sequence[str]) -> dict[str, dict[str, str]]:
    """Id -> {channel: file name}, unordered; the first extension of ``extensions`` wins."""
    if not folder.is_dir():
        raise ContractError(f"{folder}: not a folder of {{Id}}_{{channel}} image files.")
    rank = {ext: k for k, ext in enumerate(extensions)}
    wanted = set(channels)
    simple = not any("_" in c for c in channels)  # then the channel is the text after the last "_"
    found: dict[str, dict[str, str]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            stem, dot, ext = name.rpartition(".")
            if not dot or "." + ext.lower() not in rank:
                continue
            if simple:
                image_id, sep, channel = stem.rpartition("_")
                if not sep or channel not in wanted:
                    continue
            else:
                channel = next((c for c in channels if stem.endswith("_" + c)), None)
                if channel is None:
                    continue
                image_id = stem[: -len(channel) - 1]
            if not image_id:
                continue
            have = found.setdefault(image_id, {})
            old = have.get(channel)
            if old is None or rank["." + ext.lower()] < rank["." + old.rpartition(".")[2].lower()]:
                have[channel] = name
    return found


def scan_images(folder: str | os.PathLike, channels: Sequence[str],
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> dict[str, dict[str, Path]]:
    """Every ``{Id}_{channel}{ext}`` file of ``folder``, in one directory scan.

    Parameters
    ----------
    folder : path-like
    channels : sequence of str
        Channel names (``task.channels``), e.g. red, green, blue, yellow.
    extensions : sequence of str
        Accepted extensions (lower case, with the dot); when one channel exists under several, the
        first in this order wins (the same rule as :func:`hpa_ens.images.channel_path`).

    Returns
    -------
    found : dict Id -> {channel: path} (channels in ``channels`` order), Ids sorted; an Id may lack
        channels (see :func:`list_image_ids`).
    """
    folder = Path(folder)
    names = _scan_names(folder, channels, extensions)
    return {i: {c: folder / names[i][c] for c in channels if c in names[i]} for i in sorted(names)}


def list_image_ids(folder: str | os.PathLike, channels: Sequence[str],
                   extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Ids of ``folder`` with every channel present, sorted.

    Refuses an empty folder and an Id that has some channels but not all (a half-copied folder), in one
    line naming the Id and the missing channels.
    """
    found = scan_images(folder, channels, extensions)
    if not found:
        wanted = ",".join(e.lstrip(".") for e in extensions)
        raise ContractError(f"{folder}: no images named {{Id}}_{{{','.join(channels)}}}.{{{wanted}}}.")
    for image_id, have in found.items():
        if len(have) != len(channels):
            missing = [c for c in channels if c not in have]
            raise ContractError(f"{folder}: Id {image_id!r} lacks channel(s) {', '.join(missing)}. "
                                f"Got only {', '.join(have)} instead.")
    return list(found)


# ----------------------------------------------------------------------------------- external
def hpav18_id(image_id: str) -> str:
    """The HPAv18 Id of an external Id as the team leak files write it.

    ``ENSG00000001497_44431_556_B9_1`` (``Extra`` column of ``test_matches_omlos.csv``: gene, antibody,
    plate, well, field) -> ``44431_556_B9_1`` (the Id of ``HPAv18RBGY_wodpl.csv``); other Ids unchanged.
    """
    head, sep, rest = image_id.partition("_")
    return rest if sep and head.startswith("ENSG") and head[4:].isdigit() else image_id


def missing_images(folder: str | os.PathLike, ids: Sequence[str], channels: Sequence[str],
                   extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """The Ids of ``ids`` that lack at least one channel file in ``folder`` (order of ``ids``)."""
    found = _scan_names(Path(folder), channels, extensions)
    return [i for i in ids if len(found.get(i, ())) != len(channels)]


@dataclass
class ExternalSet:
    """Labelled external images (HPAv18) ready for training.

    Attributes
    ----------
    labels : DataFrame of shape (n_images, K), uint8, indexed by Id
        Only the Ids whose every channel file exists (with ``skip_missing``) or all of them.
    folder : Path
    missing : list of str
        Ids of the labels file dropped because a channel file is missing (empty unless ``skip_missing``).
    record : dict
        Provenance: ``labels`` (path), ``folder`` (:func:`folder_record`), ``n_images``, ``n_missing``.
    """

    labels: pd.DataFrame
    folder: Path
    missing: list[str] = field(default_factory=list)
    record: dict = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return self.labels.index.tolist()

    def sources(self) -> list[tuple[str, Path]]:
        """``(Id, folder)`` per image, the form of the base-model cache builder."""
        return [(i, self.folder) for i in self.labels.index]


def load_external(images: str | os.PathLike, labels: str | os.PathLike, task: Task | str | None = None,
                  skip_missing: bool = False, train_ids: Sequence[str] | None = None,
                  allow_empty: bool = True) -> ExternalSet:
    """Read an external labels file and check that its images exist (``--extra-images --extra-labels``).

    Parameters
    ----------
    images : path-like
        Folder of ``{Id}_{channel}.{png,jpg,tif}`` files (channels of the task).
    labels : path-like
        ``Id,Target`` (the HPAv18 ``HPAv18RBGY_wodpl.csv`` layout), class ids of the task.
    task : Task, name or file, optional
    skip_missing : bool
        Drop Ids without all their channel files (counted in ``missing``) instead of refusing them.
    train_ids : sequence of str, optional
        Refuse external Ids that are also train Ids (one Id would name two images).

    Raises
    ------
    ContractError
        Ids without images (count and first examples, unless ``skip_missing``), every Id missing, an Id
        shared with train, or a bad labels file.
    """
    from .labels import read_labels

    task = load_task(task)
    frame = read_labels(labels, allow_empty=allow_empty, task=task)
    if train_ids is not None:
        shared = frame.index.intersection(pd.Index(list(train_ids)))
        if len(shared):
            raise ContractError(f"{labels}: {len(shared)} external Ids are also train Ids (one Id would name two "
                                f"images); first: {_preview(shared.tolist())}.")
    missing = missing_images(images, frame.index.tolist(), task.channels)
    if missing and (not skip_missing or len(missing) == len(frame)):
        hint = "" if len(missing) == len(frame) else "; pass --skip-missing to train without them"
        raise ContractError(f"{labels}: {len(missing)} of {len(frame)} Ids have no complete set of "
                            f"{'/'.join(task.channels)} files in {images}{hint}. First: {_preview(missing)}.")
    kept = frame.drop(index=missing) if missing else frame
    record = {"labels": str(labels), "folder": folder_record(images), "n_images": int(len(kept)),
              "n_missing": len(missing)}
    return ExternalSet(kept, Path(images), missing, record)
