"""The prediction contract: the only door between stages.

A *prediction set* is a folder holding

- ``oof.csv``: every train Id, each predicted by the fold model that did not see it;
- ``test.csv``: every test Id;
- ``meta.json``: schema version, producer, command line, sha256 of inputs and outputs, folds hash, time.

Both CSVs are ``Id,0,1,…,27`` with probabilities written at full precision (``.parquet`` with the same
columns is read too). Rows are always aligned **by Id** to an expected Id order, never by position.
Every write is atomic; ``meta.json`` is written last and records the outputs' hashes, so a set whose
files do not match its meta (a crash mid-write, a hand edit) is refused when read.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..io import atomic_open, atomic_write_json, sha256_file
from .._validation import ContractError, _preview, check_ids, check_probabilities, check_same_ids
from ..classes import CLASS_COLUMNS, N_CLASSES

SCHEMA_VERSION = 1
OOF_FILE = "oof.csv"
TEST_FILE = "test.csv"
META_FILE = "meta.json"

__all__ = [
    "ContractError",
    "PredictionSet",
    "read_probs",
    "write_probs",
    "read_prediction_set",
    "write_prediction_set",
    "read_folds",
    "write_folds",
    "align",
    "build_meta",
]


@dataclass
class PredictionSet:
    """Out-of-fold and test probabilities of one model (or stack, or blend).

    ``oof`` and ``test`` are DataFrames indexed by Id with integer columns 0..27 (float64).
    """

    oof: pd.DataFrame
    test: pd.DataFrame
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.meta.get("name") or (self.path.name if self.path is not None else "predictions")


def _locate(path: Path) -> Path:
    """``x.csv`` or, failing that, ``x.parquet``."""
    if path.exists():
        return path
    alt = path.with_suffix(".parquet")
    if alt.exists():
        return alt
    raise ContractError(f"{path}: file not found (nor {alt.name}).")


def _check_columns(columns: Sequence, source: str) -> None:
    names = [str(c) for c in columns]
    if "Id" not in names:
        raise ContractError(f"{source}: no 'Id' column; expected Id,0,1,…,27. Got {','.join(names[:6])}… instead.")
    classes = [c for c in names if c != "Id"]
    missing = [c for c in CLASS_COLUMNS if c not in classes]
    extra = [c for c in classes if c not in CLASS_COLUMNS]
    if missing or extra or len(classes) != N_CLASSES:
        parts = []
        if missing:
            parts.append(f"missing class columns {_preview(missing, 5)}")
        if extra:
            parts.append(f"unexpected columns {_preview(extra, 5)}")
        if not parts:
            parts.append("repeated class columns")
        raise ContractError(
            f"{source}: {'; '.join(parts)}; expected exactly Id,0,1,…,27 (class ids as column names)."
        )


def read_probs(path, ids: Sequence[str] | None = None, against: str = "the expected Ids") -> pd.DataFrame:
    """Read ``Id,0..27`` probabilities and align them to ``ids``.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` (or ``.parquet``) file.
    ids : sequence of str, optional
        The Id order to align to (e.g. the labels' or the sample submission's). Missing, extra or
        duplicated Ids are refused.

    Returns
    -------
    probs : DataFrame of shape (n_samples, 28), indexed by Id, integer columns 0..27, float64
    """
    path = _locate(Path(path))
    source = str(path)
    if path.stat().st_size == 0:
        raise ContractError(f"{source}: the file is empty; expected a header Id,0,1,…,27 and one row per Id.")
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
        if "Id" not in df.columns and df.index.name == "Id":
            df = df.reset_index()
    else:
        try:
            # pandas 3 parses floats round-trip exactly by default (tested).
            df = pd.read_csv(path, dtype={"Id": str}, keep_default_na=False,
                             na_values=["", "nan", "NaN", "NA"])
        except pd.errors.EmptyDataError:
            raise ContractError(f"{source}: the file is empty; expected a header Id,0,1,…,27 and one row per Id.") from None
    _check_columns(df.columns, source)
    df.columns = [str(c) for c in df.columns]
    if len(df) == 0:
        raise ContractError(f"{source}: the file has a header but no rows.")
    id_list = df["Id"].astype(str).tolist()
    check_ids(id_list, source)
    block = df[list(CLASS_COLUMNS)]
    non_numeric = [c for c in CLASS_COLUMNS if not pd.api.types.is_numeric_dtype(block[c])]
    if non_numeric:
        col = non_numeric[0]
        bad = pd.to_numeric(block[col], errors="coerce").isna()
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ContractError(
            f"{source}: column '{col}' holds non-numeric values; first at Id {id_list[row]!r}. "
            f"Got {block[col].iloc[row]!r} instead of a probability."
        )
    values = check_probabilities(block.to_numpy(dtype=np.float64), source, id_list)
    out = pd.DataFrame(values, index=pd.Index(id_list, name="Id"), columns=range(N_CLASSES))
    if ids is not None:
        out = align(out, ids, source, against)
    return out


def align(frame: pd.DataFrame, ids: Sequence[str], source: str, against: str = "the expected Ids") -> pd.DataFrame:
    """Reorder ``frame`` (indexed by Id) to ``ids``, refusing missing or extra Ids."""
    ids = list(ids)
    check_same_ids(frame.index.tolist(), ids, source, against)
    return frame.loc[ids]


def _frame_to_csv(frame: pd.DataFrame, handle) -> None:
    out = frame.copy()
    out.columns = list(CLASS_COLUMNS)
    out.index.name = "Id"
    # pandas writes floats with repr (shortest round-trip), i.e. full precision.
    out.to_csv(handle, lineterminator="\n")


def write_probs(path, frame: pd.DataFrame) -> None:
    """Write an Id-indexed (n, 28) probability frame atomically, full precision."""
    path = Path(path)
    _check_columns(["Id", *map(str, frame.columns)], str(path))
    check_probabilities(frame.to_numpy(dtype=np.float64), str(path), frame.index.tolist())
    check_ids(frame.index.tolist(), str(path))
    if path.suffix == ".parquet":
        out = frame.copy()
        out.columns = list(CLASS_COLUMNS)
        out = out.reset_index().rename(columns={"index": "Id"})
        with atomic_open(path, "wb") as handle:
            out.to_parquet(handle, index=False)
    else:
        with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
            _frame_to_csv(frame, handle)


def probs_frame(ids: Sequence[str], probs: np.ndarray) -> pd.DataFrame:
    """Wrap an (n, 28) array and its Ids as a prediction frame."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(ids), N_CLASSES):
        raise ContractError(
            f"The 'probs' parameter must have shape ({len(ids)}, {N_CLASSES}). Got shape {probs.shape} instead."
        )
    return pd.DataFrame(probs, index=pd.Index(list(ids), name="Id"), columns=range(N_CLASSES))


def build_meta(
    produced_by: str,
    inputs: Mapping[str, str | Path] | Sequence[str | Path] = (),
    folds: str | Path | None = None,
    params: Mapping | None = None,
    argv: Sequence[str] | None = None,
    name: str | None = None,
    **extra,
) -> dict:
    """The provenance record of a prediction set (hashes of every input file)."""
    if not isinstance(inputs, Mapping):
        inputs = {str(p): p for p in inputs}
    input_hashes = {}
    for key, p in inputs.items():
        p = Path(p)
        if p.is_dir():
            meta_path = p / META_FILE
            input_hashes[str(key)] = {
                OOF_FILE: sha256_file(_locate(p / OOF_FILE)),
                TEST_FILE: sha256_file(_locate(p / TEST_FILE)),
            } | ({META_FILE: sha256_file(meta_path)} if meta_path.exists() else {})
        else:
            input_hashes[str(key)] = sha256_file(p)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "produced_by": produced_by,
        "command": list(argv) if argv is not None else list(sys.argv),
        "inputs": input_hashes,
        "folds_sha256": sha256_file(folds) if folds is not None else None,
        "params": dict(params or {}),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    meta.update(extra)
    return meta


def write_prediction_set(folder, oof: pd.DataFrame, test: pd.DataFrame, meta: Mapping) -> Path:
    """Write ``oof.csv``, ``test.csv`` then ``meta.json`` (with the outputs' hashes) into ``folder``.

    Each file is replaced atomically and ``meta.json`` goes last, so a reader never accepts a mix.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / META_FILE
    if meta_path.exists():
        meta_path.unlink()  # a set without its meta is visibly incomplete until the new one lands
    write_probs(folder / OOF_FILE, oof)
    write_probs(folder / TEST_FILE, test)
    full = dict(meta)
    full.setdefault("schema_version", SCHEMA_VERSION)
    full["outputs"] = {OOF_FILE: sha256_file(folder / OOF_FILE), TEST_FILE: sha256_file(folder / TEST_FILE)}
    full["n_oof"], full["n_test"] = int(len(oof)), int(len(test))
    atomic_write_json(meta_path, full)
    return folder


def read_meta(folder) -> dict:
    path = Path(folder) / META_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ContractError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}).") from None


def read_prediction_set(
    folder,
    train_ids: Sequence[str] | None = None,
    test_ids: Sequence[str] | None = None,
    verify: bool = True,
) -> PredictionSet:
    """Read a prediction set, aligning ``oof`` to ``train_ids`` and ``test`` to ``test_ids``.

    With ``verify`` (default), files whose sha256 differs from the one ``meta.json`` recorded are
    refused: the set was half-written or edited after the fact.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ContractError(f"{folder}: not a prediction-set folder (expected oof.csv, test.csv, meta.json).")
    meta = read_meta(folder)
    if verify and meta.get("outputs"):
        for fname, digest in meta["outputs"].items():
            actual = folder / fname
            if actual.exists() and sha256_file(actual) != digest:
                raise ContractError(
                    f"{actual}: sha256 differs from the one in {folder / META_FILE}; the set was half-written or "
                    f"edited. Rewrite it, or read with verify=False."
                )
    oof = read_probs(folder / OOF_FILE, train_ids, "the train labels")
    test = read_probs(folder / TEST_FILE, test_ids, "the test Ids")
    return PredictionSet(oof=oof, test=test, meta=meta, path=folder)


# ----------------------------------------------------------------------------------------- folds
def read_folds(path, ids: Sequence[str] | None = None) -> pd.Series:
    """Read ``folds.csv`` (``Id,fold``) as an int Series indexed by Id, aligned to ``ids`` if given.

    Folds must be integers 0..K-1 with every fold non-empty.
    """
    path = Path(path)
    if not path.exists():
        raise ContractError(f"{path}: file not found.")
    if path.stat().st_size == 0:
        raise ContractError(f"{path}: the file is empty; expected a header Id,fold and one row per train Id.")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(df.columns[:2]) != ["Id", "fold"]:
        raise ContractError(f"{path}: expected columns Id,fold. Got {','.join(map(str, df.columns))} instead.")
    if len(df) == 0:
        raise ContractError(f"{path}: the file has a header but no rows.")
    ids_list = df["Id"].tolist()
    check_ids(ids_list, str(path))
    bad = ~df["fold"].str.fullmatch(r"\d+")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ContractError(
            f"{path}, row {row + 1}: fold must be a non-negative integer. Got {df['fold'].iloc[row]!r} instead."
        )
    folds = pd.Series(df["fold"].astype(int).to_numpy(), index=pd.Index(ids_list, name="Id"), name="fold")
    present = sorted(set(folds.tolist()))
    if present != list(range(len(present))) or len(present) < 2:
        raise ContractError(f"{path}: folds must be 0..K-1 with K >= 2, each non-empty. Got folds {present} instead.")
    if ids is not None:
        ids = list(ids)
        check_same_ids(folds.index.tolist(), ids, str(path), "the train labels")
        folds = folds.loc[ids]
    return folds


def write_folds(path, folds: pd.Series) -> None:
    """Write ``Id,fold`` atomically."""
    frame = pd.DataFrame({"Id": folds.index.astype(str), "fold": np.asarray(folds, dtype=int)})
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")


# ------------------------------------------------------------------------------------ freshness
def fingerprint_of(record: Mapping) -> str:
    """sha256 of a JSON-able record (config values, input hashes, code version, …), key order ignored."""
    import hashlib

    text = json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_current(stamp: str | Path, fingerprint: str, outputs: Sequence[str | Path] = ()) -> bool:
    """The one freshness rule of the project: a unit of work (a stage, a fold) is done when its stamp
    file records ``fingerprint`` and every one of its ``outputs`` exists.

    The fingerprint covers everything that changes the result (config values, input hashes, …) and
    nothing that does not (thread counts, paths of caches), so a rerun skips exactly what is done.
    """
    stamp = Path(stamp)
    if not stamp.is_file() or not all(Path(p).exists() for p in outputs):
        return False
    try:
        return json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def write_stamp(stamp: str | Path, fingerprint: str, **extra) -> None:
    """Record that the work behind ``fingerprint`` is done (atomically; write it after the outputs)."""
    atomic_write_json(stamp, {"fingerprint": fingerprint, **extra})
