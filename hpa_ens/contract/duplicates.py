"""``duplicates.csv``: near-duplicate image pairs, typed read/write with validation and provenance.

The file is ``Id_a,Id_b,distance,kind`` (extra columns, such as the synthetic truth file's
``transform``, are kept). ``kind`` names the two image sets, in the order of the Ids:

=====================  ==========================================================
kind                   Id_a / Id_b
=====================  ==========================================================
``train-test``         train Id / test Id
``test-test``          two test Ids (Id_a sorts first)
``train-train``        two train Ids (Id_a sorts first)
``external-train``     external (HPAv18) Id / train Id
``external-test``      external Id / test Id
``external-external``  two external Ids (Id_a sorts first)
=====================  ==========================================================

``distance`` is the Hamming distance (0..64) of the perceptual hashes. It is optional (a hand-made pair
file may have none), but when present every value must be an integer 0..64: an unparseable distance
is refused, never read as 0 (an exact twin). ``max_distance`` on a file without a distance column is
refused too, instead of being ignored.

Provenance: :func:`write_duplicates` writes ``<stem>.meta.json`` beside the CSV, last, with the CSV's
sha256 and, per image set, :func:`.image_folders.folder_record` (sha256 of the folder's sorted listing
of image names and sizes). :func:`check_duplicates_provenance` recomputes those listings for
the folders a caller has and refuses a mismatch (the pairs were found on other images).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ..validation import ContractError, ParameterError, check_id, read_csv_strings, read_json_object

__all__ = ["DUPLICATE_COLUMNS", "DUPLICATE_KINDS", "read_duplicates", "write_duplicates", "duplicates_meta_path",
           "read_duplicates_meta", "check_duplicates_provenance", "empty_duplicates"]

DUPLICATE_COLUMNS = ["Id_a", "Id_b", "distance", "kind"]
DUPLICATE_KINDS: tuple[str, ...] = ("train-test", "test-test", "train-train", "external-train", "external-test",
                                    "external-external")
MAX_HASH_DISTANCE = 64
META_SCHEMA = 1


def empty_duplicates() -> pd.DataFrame:
    """A frame with the four columns and no rows (distance int64)."""
    return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == "distance" else object) for c in DUPLICATE_COLUMNS})


def duplicates_meta_path(path: str | os.PathLike) -> Path:
    """``duplicates.csv`` -> ``duplicates.meta.json`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.meta.json")


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def read_duplicates(path: str | os.PathLike, max_distance: int | None = None,
                    kinds: Iterable[str] | None = None) -> pd.DataFrame:
    """Read and validate a duplicates file.

    Parameters
    ----------
    path : path-like
    max_distance : int, optional
        Keep pairs with ``distance <= max_distance``; refused when the file has no distance column.
    kinds : iterable of str, optional
        Keep only these kinds.

    Returns
    -------
    pairs : DataFrame with columns Id_a, Id_b, kind, distance (int64, when the file has it) and any
        extra columns, rows in file order (index reset).

    Raises
    ------
    ContractError
        Missing Id_a/Id_b/kind, an unknown kind, a pair joining an Id to itself, a bad Id, a distance
        that is not an integer 0..64 (file and row named).
    ParameterError
        ``max_distance`` outside 0..64 or given for a file without distances; an unknown kind asked for.
    """
    path = Path(path)
    df = read_csv_strings(path, "a header " + ",".join(DUPLICATE_COLUMNS))
    columns = [str(c) for c in df.columns]
    missing = [c for c in ("Id_a", "Id_b", "kind") if c not in columns]
    if missing:
        raise ContractError(f"{path}: missing column(s) {missing}; expected {','.join(DUPLICATE_COLUMNS)}. "
                            f"Got {','.join(columns)} instead.")
    for column in ("Id_a", "Id_b"):
        for row, value in enumerate(df[column].tolist(), start=1):
            check_id(value, f"{path}, column {column!r}", row)
    bad = ~df["kind"].isin(DUPLICATE_KINDS).to_numpy()
    if bad.any():
        row = _first_bad(bad)
        raise ContractError(f"{path}, row {row + 1}: kind must be one of {', '.join(DUPLICATE_KINDS)}. "
                            f"Got {df['kind'].iloc[row]!r} instead.")
    same = (df["Id_a"] == df["Id_b"]).to_numpy()
    if same.any():
        row = _first_bad(same)
        raise ContractError(f"{path}, row {row + 1}: a pair must join two different Ids. "
                            f"Got {df['Id_a'].iloc[row]!r} twice instead.")
    if "distance" in columns:
        text = df["distance"].str.strip()
        ok = text.str.fullmatch(r"\d{1,3}").to_numpy()
        values = np.where(ok, pd.to_numeric(text.where(ok, "0")), -1).astype(np.int64)
        bad = ~ok | (values > MAX_HASH_DISTANCE)
        if bad.any():
            row = _first_bad(bad)
            raise ContractError(f"{path}, row {row + 1}: distance must be an integer 0..{MAX_HASH_DISTANCE} "
                                f"(Hamming distance of the hashes). Got {df['distance'].iloc[row]!r} instead.")
        df["distance"] = values
    if max_distance is not None:
        if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)) \
                or not 0 <= max_distance <= MAX_HASH_DISTANCE:
            raise ParameterError(f"The 'max_distance' parameter must be an int in [0, {MAX_HASH_DISTANCE}]. "
                                 f"Got {max_distance!r} instead.")
        if "distance" not in columns:
            raise ParameterError(f"The 'max_distance' parameter cannot apply to {path}: the file has no distance "
                                 f"column. Got max_distance={max_distance} instead; drop it to use every pair.")
        df = df.loc[df["distance"] <= max_distance]
    if kinds is not None:
        kinds = list(kinds)
        unknown = [k for k in kinds if k not in DUPLICATE_KINDS]
        if unknown:
            raise ParameterError(f"The 'kinds' parameter must name kinds of {', '.join(DUPLICATE_KINDS)}. "
                                 f"Got {unknown} instead.")
        df = df.loc[df["kind"].isin(kinds)]
    return df.reset_index(drop=True)


def write_duplicates(path: str | os.PathLike, pairs: pd.DataFrame, provenance: Mapping | None = None) -> None:
    """Write ``pairs`` (Id_a, Id_b, distance, kind) atomically, then the ``.meta.json`` sidecar.

    Parameters
    ----------
    pairs : DataFrame with the four columns (others are dropped)
    provenance : mapping, optional
        Recorded in the sidecar: ``folders`` ({set name: folder record}), parameters, producer.
    """
    from ..io import atomic_open, atomic_write_json, sha256_file

    path = Path(path)
    missing = [c for c in DUPLICATE_COLUMNS if c not in pairs.columns]
    if missing:
        raise ParameterError(f"The 'pairs' parameter must have columns {DUPLICATE_COLUMNS}. Got {list(pairs.columns)} "
                             f"instead.")
    bad = ~pairs["kind"].isin(DUPLICATE_KINDS)
    if bad.any():
        raise ParameterError(f"The 'pairs' parameter has an unknown kind. Got {pairs['kind'][bad].iloc[0]!r} instead.")
    frame = pairs[DUPLICATE_COLUMNS].copy()
    frame["distance"] = frame["distance"].astype(np.int64)
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")
    meta = {"schema_version": META_SCHEMA, "file": path.name, "sha256": sha256_file(path),
            "n_pairs": {k: int(v) for k, v in frame["kind"].value_counts().sort_index().items()}}
    meta.update(dict(provenance or {}))
    atomic_write_json(duplicates_meta_path(path), meta)


def read_duplicates_meta(path: str | os.PathLike) -> dict | None:
    """The sidecar of a duplicates file, or None when it has none (a hand-made or older file).

    Raises
    ------
    ContractError
        The sidecar is not JSON, or it records another CSV (its sha256 differs: the CSV was edited or
        replaced after it was written).
    """
    from ..io import sha256_file

    path = Path(path)
    meta_path = duplicates_meta_path(path)
    if not meta_path.exists():
        return None
    meta = read_json_object(meta_path, "a duplicates provenance record")
    if "sha256" not in meta:
        raise ContractError(f"{meta_path}: expected an object with 'sha256'. Got {type(meta).__name__} instead.")
    if path.exists() and meta["sha256"] != sha256_file(path):
        raise ContractError(f"{path}: the file changed after {meta_path.name} was written (sha256 differs); "
                            f"rerun hpa_ens.dedup, or delete {meta_path.name} to use it without provenance.")
    return meta


def check_duplicates_provenance(path: str | os.PathLike, folders: Mapping[str, str | os.PathLike]) -> dict:
    """Check that ``path`` was computed on these image folders (their listings are unchanged).

    Parameters
    ----------
    path : path-like
        A duplicates file written by :func:`write_duplicates`.
    folders : mapping set name -> folder
        The folders the caller has, e.g. ``{"train": "data/train", "test": "data/test"}``; names are
        those of the sidecar's ``folders`` (train, test, external).

    Returns
    -------
    meta : dict, the sidecar

    Raises
    ------
    ContractError
        No sidecar, a set the file was not computed on, or a folder whose listing hash differs (one
        line naming the folder, both file counts).
    """
    from .image_folders import folder_record

    meta = read_duplicates_meta(path)
    if meta is None:
        raise ContractError(f"{path}: no provenance record ({duplicates_meta_path(path).name}); it cannot be checked "
                            f"against the image folders. Rerun hpa_ens.dedup.")
    recorded = meta.get("folders") or {}
    for name, folder in folders.items():
        if name not in recorded:
            raise ContractError(f"{path}: was not computed on a {name!r} folder (it records "
                                f"{', '.join(sorted(recorded)) or 'none'}); got {folder}.")
        now = folder_record(folder)
        if now["listing_sha256"] != recorded[name].get("listing_sha256"):
            raise ContractError(f"{path}: was computed on other {name} images ({recorded[name].get('path')}, "
                                f"{recorded[name].get('n_files')} files) than {folder} ({now['n_files']} files): "
                                f"the listing (names, sizes) differs. Rerun hpa_ens.dedup.")
    return meta
