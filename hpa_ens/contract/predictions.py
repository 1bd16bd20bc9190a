"""The prediction contract: the only door between stages.

A *prediction set* is a folder holding

- ``oof.csv``: every train Id, each predicted by the fold model that did not see it;
- ``test.csv``: every test Id;
- ``meta.json``: schema version, producer, command line, sha256 of inputs and outputs, folds hash, time.

Both CSVs are ``Id,0,1,…,K-1`` (K from the task; 28 for HPA 2018) with probabilities written at full
precision (``.parquet`` with the same columns is read too). Rows are always aligned **by Id** to an
expected Id order, never by position. A *test-only* set holds ``test.csv`` and ``meta.json`` alone (a
team's published test probabilities): stages that need out-of-fold rows refuse it, the others accept it.

``meta.json`` is the set's seal: it records the task's class list and the sha256 of every output, and
it is written last. A set whose files do not match it (a crash mid-write, a hand edit), or a set with
no seal at all, is refused when read (``verify=False`` reads it anyway, on the caller's word).

Two processes writing the same set take turns: :func:`write_prediction_set` replaces the files under the
set's lock file ``<folder>/.lock`` (:func:`prediction_set_lock`), so the set is always the whole of one
writer's output, never half of each.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..io import atomic_open, atomic_write_json, file_lock, sha256_file
from ..validation import ContractError, _preview, check_ids, check_probabilities, check_same_ids, read_csv_checked
from ..task import Task, check_same_task, load_task, task_from_meta

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
    "read_prediction_sets",
    "align",
    "build_meta",
    "check_output_folder",
    "prediction_set_lock",
    "LOCK_TIMEOUT",
]

#: Seconds a writer waits for another process writing the same prediction set before it gives up.
LOCK_TIMEOUT = 600.0


@dataclass
class PredictionSet:
    """Out-of-fold and test probabilities of one model (or stack, or blend).

    ``oof`` (None for a test-only set) and ``test`` are DataFrames indexed by Id with integer columns
    ``0..K-1`` (float64); ``task`` is the task the set was made for.
    """

    oof: pd.DataFrame | None
    test: pd.DataFrame
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    task: Task | None = None

    @property
    def name(self) -> str:
        return self.meta.get("name") or (self.path.name if self.path is not None else "predictions")

    @property
    def has_oof(self) -> bool:
        return self.oof is not None


def _locate(path: Path) -> Path:
    """``x.csv`` or, failing that, ``x.parquet``."""
    if path.exists():
        return path
    alt = path.with_suffix(".parquet")
    if alt.exists():
        return alt
    raise ContractError(f"{path}: file not found (nor {alt.name}).")


def _header_text(task: Task) -> str:
    return f"Id,0,1,…,{task.n_classes - 1}"


def _check_columns(columns: Sequence, source: str, task: Task) -> None:
    names = [str(c) for c in columns]
    expected = _header_text(task)
    if "Id" not in names:
        raise ContractError(f"{source}: no 'Id' column; expected {expected}. Got {','.join(names[:6])}… instead.")
    classes = [c for c in names if c != "Id"]
    missing = [c for c in task.columns if c not in classes]
    extra = [c for c in classes if c not in task.columns]
    if missing or extra or len(classes) != task.n_classes:
        parts = []
        if missing:
            parts.append(f"missing class columns {_preview(missing, 5)}")
        if extra:
            parts.append(f"unexpected columns {_preview(extra, 5)}")
        if not parts:
            parts.append("repeated class columns")
        raise ContractError(
            f"{source}: {'; '.join(parts)}; expected exactly {expected} (class ids of task {task.name!r} as "
            f"column names; hpa_ens.import_preds converts other layouts)."
        )


def _read_table(path: Path, source: str, task: Task) -> pd.DataFrame:
    expected = f"a header {_header_text(task)} and one row per Id"
    if path.stat().st_size == 0:
        raise ContractError(f"{source}: the file is empty; expected {expected}.")
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except ImportError:  # no parquet engine: pandas reads parquet through pyarrow, an extra
            raise ContractError(f"{source}: reading parquet needs the [parquet] extra (pyarrow is not installed); "
                                f"run `pip install 'hpa-ens[parquet]'`.") from None
        except Exception as err:  # pyarrow raises several unrelated types for a bad file
            raise ContractError(f"{source}: cannot read this parquet file ({type(err).__name__}).") from None
        if "Id" not in df.columns and df.index.name == "Id":
            df = df.reset_index()
        return df
    if path.suffix in (".npy", ".npz", ".pkl", ".pickle"):
        raise ContractError(f"{source}: a {path.suffix} file is not a prediction CSV; convert it with "
                            f"`python -m hpa_ens.import_preds --test {path} --ids IDS.csv --out DIR`.")
    # Floats are parsed exactly, on every supported pandas (read_csv_checked; tested).
    return read_csv_checked(path, expected, dtype={"Id": str}, keep_default_na=False,
                            na_values=["", "nan", "NaN", "NA"])


def read_probs(path, ids: Sequence[str] | None = None, against: str = "the expected Ids",
               task: Task | str | None = None) -> pd.DataFrame:
    """Read ``Id,0..K-1`` probabilities and align them to ``ids``.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` (or ``.parquet``) file.
    ids : sequence of str, optional
        The Id order to align to (e.g. the labels' or the sample submission's). Missing, extra or
        duplicated Ids are refused.
    task : Task or str, optional
        The task whose K class columns are expected (default HPA 2018).

    Returns
    -------
    probs : DataFrame of shape (n_samples, K), indexed by Id, integer columns 0..K-1, float64
    """
    task = load_task(task)
    path = _locate(Path(path))
    source = str(path)
    df = _read_table(path, source, task)
    _check_columns(df.columns, source, task)
    df.columns = [str(c) for c in df.columns]
    if len(df) == 0:
        raise ContractError(f"{source}: the file has a header but no rows.")
    id_list = df["Id"].astype(str).tolist()
    check_ids(id_list, source)
    block = df[list(task.columns)]
    non_numeric = [c for c in task.columns if not pd.api.types.is_numeric_dtype(block[c])]
    if non_numeric:
        col = non_numeric[0]
        bad = pd.to_numeric(block[col], errors="coerce").isna()
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ContractError(
            f"{source}: column '{col}' holds non-numeric values; first at Id {id_list[row]!r}. "
            f"Got {block[col].iloc[row]!r} instead of a probability."
        )
    values = check_probabilities(block.to_numpy(dtype=np.float64), source, id_list)
    out = pd.DataFrame(values, index=pd.Index(id_list, name="Id"), columns=range(task.n_classes))
    if ids is not None:
        out = align(out, ids, source, against)
    return out


def align(frame: pd.DataFrame, ids: Sequence[str], source: str, against: str = "the expected Ids") -> pd.DataFrame:
    """Reorder ``frame`` (indexed by Id) to ``ids``, refusing missing or extra Ids."""
    ids = list(ids)
    check_same_ids(frame.index.tolist(), ids, source, against)
    return frame.loc[ids]


def _n_class_columns(frame: pd.DataFrame) -> int:
    return int(frame.shape[1])


def _frame_to_csv(frame: pd.DataFrame, handle) -> None:
    out = frame.copy()
    out.columns = [str(k) for k in range(_n_class_columns(frame))]
    out.index.name = "Id"
    # pandas writes floats with repr (shortest round-trip), i.e. full precision.
    out.to_csv(handle, lineterminator="\n")


def write_probs(path, frame: pd.DataFrame) -> None:
    """Write an Id-indexed (n, K) probability frame atomically, full precision (K from its columns)."""
    path = Path(path)
    K = _n_class_columns(frame)
    if [str(c) for c in frame.columns] != [str(k) for k in range(K)]:
        raise ContractError(f"{path}: class columns must be 0..{K - 1} in order. "
                            f"Got {[str(c) for c in frame.columns][:6]} instead.")
    check_probabilities(frame.to_numpy(dtype=np.float64), str(path), frame.index.tolist())
    check_ids(frame.index.tolist(), str(path))
    if path.suffix == ".parquet":
        out = frame.copy()
        out.columns = [str(k) for k in range(K)]
        out.index.name = "Id"
        out = out.reset_index()
        with atomic_open(path, "wb") as handle:
            out.to_parquet(handle, index=False)
    else:
        with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
            _frame_to_csv(frame, handle)


def probs_frame(ids: Sequence[str], probs: np.ndarray) -> pd.DataFrame:
    """Wrap an (n, K) array and its Ids as a prediction frame (K from the array)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != len(ids):
        raise ContractError(
            f"The 'probs' parameter must have shape ({len(ids)}, n_classes). Got shape {probs.shape} instead."
        )
    return pd.DataFrame(probs, index=pd.Index(list(ids), name="Id"), columns=range(probs.shape[1]))


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
            record = {}
            for fname in (OOF_FILE, TEST_FILE):
                try:
                    record[fname] = sha256_file(_locate(p / fname))
                except ContractError:
                    if fname == TEST_FILE:
                        raise
            input_hashes[str(key)] = record | ({META_FILE: sha256_file(meta_path)} if meta_path.exists() else {})
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


def check_output_folder(folder, what: str = "a prediction set") -> Path:
    """Refuse to write into an existing folder that is not a prediction set (nor empty).

    Stages replace files inside their own output folders only: a folder that holds files but no
    ``meta.json`` was not made by hpa-ens, and nothing in it is touched (what a killed writer of this
    project leaves, its lock file and staging folder, does not count). Stages whose ``--out`` a user
    names (stack, blend, import) call this before any work.
    """
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise ContractError(f"{folder}: exists and is not a folder; expected a folder for {what}.")
        ours = [p for p in folder.iterdir() if p.name != LOCK_FILE and not p.name.startswith(STAGING_PREFIX)]
        if ours and not (folder / META_FILE).is_file():
            raise ContractError(f"{folder}: the folder holds files but no {META_FILE}, so it is not a prediction set "
                                f"this project wrote; refusing to replace it. Choose another --out.")
    return folder


_HELD = threading.local()


#: The write lock inside a set's folder (a dot file: ``oof/*`` globs and readers never see it).
LOCK_FILE = ".lock"
#: Prefix of the staging folder a write fills before it moves the files into place.
STAGING_PREFIX = ".staging-"


def _lock_path(folder: Path) -> Path:
    return folder.resolve() / LOCK_FILE


@contextlib.contextmanager
def prediction_set_lock(folder, timeout: float | None = LOCK_TIMEOUT):
    """Hold the write lock of the prediction set ``folder`` (the lock file ``<folder>/.lock``; the folder is created).

    :func:`write_prediction_set` takes it for the replacement of the files; a command that writes more
    files into the set's folder (the stack's report) holds it around the whole write, so that another
    process's set never lands between them. A second writer **waits** for the first, then writes its own
    set (the same result as running the two one after the other; refusing would throw away the second
    run's work, and the lock is held only while files are replaced). The lock is ``flock``: a holder killed
    with ``kill -9`` releases it at once. Re-entrant within one thread.

    Parameters
    ----------
    folder : path-like, the prediction set's folder (it need not exist yet)
    timeout : float or None, seconds to wait for another writer (None: as long as it takes)

    Raises
    ------
    ContractError
        When another process holds the lock for longer than ``timeout`` (naming its pid).
    """
    key = str(_lock_path(Path(folder)))
    held = _HELD.__dict__.setdefault("paths", {})
    if held.get(key):
        held[key] += 1
        try:
            yield Path(key)
        finally:
            held[key] -= 1
        return
    with file_lock(key, timeout, what=f"{folder} (a prediction set being written)"):
        held[key] = 1
        try:
            yield Path(key)
        finally:
            del held[key]


def write_prediction_set(folder, oof: pd.DataFrame | None, test: pd.DataFrame, meta: Mapping,
                         task: Task | str | None = None) -> Path:
    """Write ``oof.csv`` (unless None: a test-only set), ``test.csv`` then ``meta.json`` into ``folder``.

    The files are first written in full into a staging folder inside ``folder``, then moved into
    place with ``meta.json`` last. The old seal stays until the new one replaces it, so a crash
    leaves either the old set or files that do not match their seal — refused when read, never
    read as if sealed. The whole write holds the set's lock (:func:`prediction_set_lock`): a second
    process writing the same folder waits, then replaces the whole set.
    """
    folder = Path(folder)
    task = load_task(task if task is not None else task_from_meta(dict(meta)))
    for label, frame in (("oof", oof), ("test", test)):
        if frame is not None and frame.shape[1] != task.n_classes:
            raise ContractError(f"{folder}: the {label} frame has {frame.shape[1]} class columns but task "
                                f"{task.name!r} has {task.n_classes}.")
    with prediction_set_lock(folder):
        _replace_prediction_set(folder, oof, test, meta, task)
    return folder


def _replace_prediction_set(folder: Path, oof, test, meta: Mapping, task: Task) -> None:
    import shutil
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    try:
        outputs = {}
        if oof is not None:
            write_probs(staging / OOF_FILE, oof)
            outputs[OOF_FILE] = sha256_file(staging / OOF_FILE)
        write_probs(staging / TEST_FILE, test)
        outputs[TEST_FILE] = sha256_file(staging / TEST_FILE)
        full = dict(meta)
        full.setdefault("schema_version", SCHEMA_VERSION)
        full["task"] = task.to_meta()
        full["outputs"] = outputs
        full["n_oof"], full["n_test"] = (int(len(oof)) if oof is not None else 0), int(len(test))
        atomic_write_json(staging / META_FILE, full)
        for fname in (*outputs, META_FILE):
            os.replace(staging / fname, folder / fname)
        if oof is None:  # a stale oof.csv of an earlier run would not match the new seal
            for stale in (folder / OOF_FILE, folder / "oof.parquet"):
                if stale.exists():
                    stale.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_meta(folder) -> dict:
    from ..validation import read_json_object

    path = Path(folder) / META_FILE
    return read_json_object(path, "a prediction set's seal (meta.json)") if path.exists() else {}


def _verify_seal(folder: Path, meta: dict) -> None:
    if not meta:
        raise ContractError(f"{folder}: no {META_FILE}, so the set cannot be checked against its seal (it may be "
                            f"half-written). Rewrite it, or import it with hpa-ens import (in Python: verify=False skips the check).")
    outputs = meta.get("outputs")
    if not isinstance(outputs, dict) or TEST_FILE not in outputs:
        raise ContractError(f"{folder / META_FILE}: no 'outputs' hashes; the seal is incomplete. Rewrite the set "
                            f"(in Python: verify=False skips the check).")
    for fname, digest in outputs.items():
        actual = folder / fname
        if not actual.exists() or sha256_file(actual) != digest:
            state = "is missing" if not actual.exists() else "sha256 differs from the one in " + str(folder / META_FILE)
            raise ContractError(f"{actual}: {state}; the set was half-written or edited. Rewrite it (in Python: "
                                f"verify=False skips the check).")
    if OOF_FILE not in outputs and (folder / OOF_FILE).exists():
        raise ContractError(f"{folder / OOF_FILE}: not in the seal of {folder / META_FILE} (a test-only set); the "
                            f"set was edited. Rewrite it (in Python: verify=False skips the check).")


def read_prediction_set(
    folder,
    train_ids: Sequence[str] | None = None,
    test_ids: Sequence[str] | None = None,
    verify: bool = True,
    task: Task | str | None = None,
    require_oof: bool | str = False,
) -> PredictionSet:
    """Read a prediction set, aligning ``oof`` to ``train_ids`` and ``test`` to ``test_ids``.

    Parameters
    ----------
    folder : str or Path
    train_ids, test_ids : sequence of str, optional
        Id orders to align to; missing or extra Ids are refused.
    verify : bool
        Refuse a set without ``meta.json`` or whose files differ from the sha256 it recorded.
    task : Task or str, optional
        The task the caller works on. A set recorded for another class list is refused. Default:
        the task the set recorded, else HPA 2018.
    require_oof : bool or str
        Refuse a test-only set; a string names the stage in the message (e.g. ``"stack"``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ContractError(f"{folder}: not a prediction-set folder (expected oof.csv, test.csv, meta.json).")
    meta = read_meta(folder)
    if verify:
        _verify_seal(folder, meta)
    recorded = task_from_meta(meta, str(folder / META_FILE))
    wanted = load_task(task) if task is not None else (recorded or load_task(None))
    if recorded is not None and not recorded.same_classes(wanted):
        raise ContractError(
            f"{folder}: made for task {recorded.name!r} ({recorded.n_classes} classes: "
            f"{', '.join(recorded.class_names[:2])}…), but the task given is {wanted.name!r} ({wanted.n_classes} "
            f"classes: {', '.join(wanted.class_names[:2])}…); pass the set's task file with --task.")
    has_oof = (folder / OOF_FILE).exists() or (folder / "oof.parquet").exists()
    if not has_oof and require_oof:
        stage = require_oof if isinstance(require_oof, str) else "this stage"
        raise ContractError(f"{folder}: a test-only prediction set (no {OOF_FILE}); {stage} needs out-of-fold rows "
                            f"to learn from, so it cannot use this set.")
    oof = read_probs(folder / OOF_FILE, train_ids, "the train labels", wanted) if has_oof else None
    test = read_probs(folder / TEST_FILE, test_ids, "the test Ids", wanted)
    return PredictionSet(oof=oof, test=test, meta=meta, path=folder, task=wanted)


def read_prediction_sets(folders: Sequence, train_ids: Sequence[str] | None = None,
                         test_ids: Sequence[str] | None = None, verify: bool = True,
                         task: Task | str | None = None, require_oof: bool | str = False) -> list[PredictionSet]:
    """Read several prediction sets for one stage, refusing sets made for different class lists."""
    sets = [read_prediction_set(f, train_ids, test_ids, verify, task, require_oof) for f in folders]
    check_same_task([(str(s.path), s.task) for s in sets])
    return sets


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
