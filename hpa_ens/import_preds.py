"""Import what teams saved as a prediction set: ``python -m hpa_ens.import_preds`` (the command:
:mod:`hpa_ens.commands.import_preds`).

::

    python -m hpa_ens.import_preds --test FILE [--oof FILE] [--ids FILE] [--oof-ids FILE] \\
        [--columns MAP] [--key NAME] [--task T] [--from-logits | --from-percent] --out DIR

Accepted files (``--test``, and ``--oof`` for out-of-fold train rows; a set without ``--oof`` is a
test-only set):

- **CSV** or **parquet** with an Id column and one column per class, named ``0..K-1``, ``P00..`` (any one
  prefix followed by the class number: ``P00``, ``class_3``, ``pred7``), or by the task's class names.
  ``--columns`` renames columns first (see below); a parquet Id may also be the index.
- **.npy** matrices of shape (n_rows, K), columns in class order, with the row Ids in a separate file
  (``--ids`` / ``--oof-ids``): a CSV with an ``Id`` column (e.g. ``sample_submission.csv``) or a ``.npy``
  of strings. Rows are never matched by a guessed order: an array without Ids is refused.
- **.npz** archives: the only 2-D numeric array (or ``--key NAME``), with its Ids from ``--ids`` or from
  a 1-D string array named ``Id``/``ids`` inside the archive.

Values are checked before anything is written: NaN or infinite values are refused; values below 0 or
above 100 look like **logits** and values in [0, 100] with some above 1 look like **percentages**; both
are refused unless converted with an explicit ``--from-logits`` (sigmoid) or ``--from-percent`` (/100).
The number of class columns must equal the task's K. ``meta.json`` records each source file's sha256,
format, the columns used and the conversion applied.

``--columns MAP`` maps the file's column names to ``Id``, to a class (its id or its name in the task), or
to ``-`` (ignore the column): inline ``"image=Id,P_nuc=0,junk=-"``, or a ``.json`` object, or a CSV
``column,class``. Naming a column the file does not have is an error.

``--out`` must be a new or empty folder, or an existing prediction set (which is replaced); any other
folder is refused, so a typo never overwrites a user's data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .validation import ContractError, ParameterError, check_ids, read_csv_checked, read_csv_strings, read_json_object
from .task import Task

ARRAY_SUFFIXES = (".npy", ".npz")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".txt", ".tsv")
SKIP = "-"
_ID_KEYS = ("Id", "id", "ids", "Ids", "ID")

__all__ = ["Imported", "parse_column_map", "read_id_list", "class_columns", "to_probabilities", "read_matrix",
           "import_predictions", "ARRAY_SUFFIXES", "TABLE_SUFFIXES"]


@dataclass
class Imported:
    """One imported file: Ids, probabilities and what was done to get them."""

    ids: list[str]
    probs: np.ndarray  # (n_rows, K), float64 in [0, 1]
    info: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.probs, index=pd.Index(self.ids, name="Id"), columns=range(self.probs.shape[1]))


# ------------------------------------------------------------------------------------- column maps
def parse_column_map(spec: str | Path | None, task: Task) -> dict[str, str]:
    """Read ``--columns``: source column -> ``"Id"``, a class column ``"0".."K-1"``, or ``"-"`` (ignore).

    Parameters
    ----------
    spec : str or Path or None
        Inline ``"a=Id,b=0,c=Nucleoplasm,d=-"``, a ``.json`` object, or a CSV file ``column,class``.
    task : Task
        Class names are resolved to their ids through it.

    Returns
    -------
    mapping : dict, source column name -> target (``"Id"``, ``"k"`` or ``"-"``)
    """
    if spec is None:
        return {}
    text = str(spec)
    path = Path(text)
    source = f"--columns {text}"
    if path.suffix.lower() == ".json" and path.is_file():
        source = str(path)
        raw = read_json_object(path, "a column map (a JSON object column -> class)")
        pairs = [(str(k), str(v)) for k, v in raw.items()]
    elif path.suffix.lower() == ".csv" and path.is_file():
        source = str(path)
        df = read_csv_strings(path, "a header column,class and one row per mapped column")
        if list(df.columns[:2]) != ["column", "class"]:
            raise ContractError(f"{path}: expected columns column,class. Got {','.join(map(str, df.columns))} instead.")
        pairs = list(zip(df["column"].tolist(), df["class"].tolist()))
    else:
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            if "=" not in item:
                raise ParameterError(f"The 'spec' parameter of parse_column_map must be 'column=class,…', a .json or a "
                                     f".csv file. Got {item!r} instead.")
            name, _, target = item.rpartition("=")
            pairs.append((name.strip(), target.strip()))
    by_name = {name: str(k) for k, name in enumerate(task.class_names)}
    mapping: dict[str, str] = {}
    used: dict[str, str] = {}
    for name, target in pairs:
        if name in mapping:
            raise ContractError(f"{source}: column {name!r} is mapped twice.")
        if target in ("Id", SKIP):
            resolved = target
        elif target.isdigit() and int(target) < task.n_classes:
            resolved = str(int(target))
        elif target in by_name:
            resolved = by_name[target]
        else:
            raise ContractError(f"{source}: column {name!r} maps to {target!r}, which is neither Id, '-', a class id "
                                f"0..{task.n_classes - 1} nor a class name of task {task.name!r}.")
        if resolved != SKIP and resolved in used:
            raise ContractError(f"{source}: columns {used[resolved]!r} and {name!r} both map to {resolved!r}.")
        mapping[name] = resolved
        used[resolved] = name
    return mapping


def class_columns(names: Sequence[str], task: Task, source: str) -> dict[str, int]:
    """Which class each column holds, from its name: ``0..K-1``, ``<prefix>NN`` or the task's class names.

    Refuses (one line naming ``source``) columns it cannot read and a class count other than the task's.

    Returns
    -------
    classes : dict, column name -> class id (0..K-1), every class exactly once
    """
    names = [str(n) for n in names]
    if not names:
        raise ContractError(f"{source}: no class columns; expected one column per class besides Id.")
    K = task.n_classes
    result: dict[str, int] | None = None
    if all(n.isdigit() for n in names):
        result = {n: int(n) for n in names}
        style = "0..K-1"
    else:
        matches = [re.fullmatch(r"([^\d]+?)_?(\d+)", n) for n in names]
        prefixes = {m.group(1) for m in matches if m}
        if all(matches) and len(prefixes) == 1:
            result = {n: int(m.group(2)) for n, m in zip(names, matches)}
            style = f"{prefixes.pop()}NN"
        else:
            by_name = {c.strip().casefold(): k for k, c in enumerate(task.class_names)}
            if all(n.strip().casefold() in by_name for n in names):
                result = {n: by_name[n.strip().casefold()] for n in names}
                style = "class names"
            else:
                # Name the columns that fit none of the layouts the others follow.
                common = max(prefixes, key=lambda x: sum(bool(m) and m.group(1) == x for m in matches)) if prefixes else None
                unknown = [n for n, m in zip(names, matches) if not n.isdigit() and n.strip().casefold() not in by_name
                           and not (m and m.group(1) == common)] or names
                raise ContractError(
                    f"{source}: cannot tell which class column(s) {unknown[:3]} hold; expected Id plus columns named "
                    f"0..{K - 1}, P00..P{K - 1:02d} or by the class names of task {task.name!r}. Map them with "
                    f"--columns (e.g. '{unknown[0]}=0', or '{unknown[0]}=-' to ignore it).")
    values = sorted(result.values())
    if len(values) != len(set(values)):
        rep = next(v for v in values if values.count(v) > 1)
        raise ContractError(f"{source}: two columns hold class {rep} ({style}).")
    if len(values) != K or values != list(range(K)):
        raise ContractError(
            f"{source}: {len(values)} class columns ({style}: {', '.join(names[:3])}…) but task {task.name!r} has {K} "
            f"classes 0..{K - 1}. Got classes {values[:3]}…{values[-1]} instead; pass the right --task.")
    return result


# ------------------------------------------------------------------------------------------ Id lists
def read_id_list(path: str | Path) -> list[str]:
    """Row Ids for an array: a CSV with an ``Id`` column (other columns ignored) or a ``.npy`` of strings."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: Id list not found.")
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path)
        if arr.ndim != 1 or arr.dtype.kind not in "US":
            raise ContractError(f"{path}: an Id list must be a 1-D array of strings. Got {arr.dtype} of shape "
                                f"{arr.shape} instead.")
        ids = [x.decode() if isinstance(x, bytes) else str(x) for x in arr.tolist()]
    else:
        df = read_csv_strings(path, "a header with an Id column and one row per array row")
        if "Id" not in df.columns:
            raise ContractError(f"{path}: an Id list needs a header with an 'Id' column. Got "
                                f"{','.join(map(str, df.columns))[:80]} instead.")
        ids = df["Id"].tolist()
    if not ids:
        raise ContractError(f"{path}: the Id list is empty.")
    check_ids(ids, str(path))
    return ids


# ------------------------------------------------------------------------------------------- values
def to_probabilities(values: np.ndarray, source: str, ids: Sequence[str] | None = None,
                     from_logits: bool = False, from_percent: bool = False) -> tuple[np.ndarray, str | None]:
    """Check a score matrix is probabilities, or convert it as explicitly asked.

    Parameters
    ----------
    values : ndarray of shape (n_rows, K)
    from_logits : apply a sigmoid (refused when every value already lies in [0, 1])
    from_percent : divide by 100 (refused outside [0, 100] or when every value is <= 1)

    Returns
    -------
    probs : ndarray of shape (n_rows, K), float64 in [0, 1]
    transform : None, ``"sigmoid"`` or ``"percent"``
    """
    if from_logits and from_percent:
        raise ParameterError("The 'from_logits' and 'from_percent' parameters of to_probabilities exclude each other. "
                             "Got both instead.")
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        r, c = (int(v[0]) for v in np.nonzero(~finite))
        who = f"Id {ids[r]!r}" if ids is not None else f"row {r + 1}"
        raise ContractError(f"{source}: {int((~finite).sum())} values are NaN or infinite; first at {who}, class {c}. "
                            f"Got {values[r, c]!r} instead of a probability.")
    lo, hi = float(values.min()), float(values.max())
    span = f"min {lo:.4g}, max {hi:.4g}"
    if from_logits:
        if lo >= 0.0 and hi <= 1.0:
            raise ContractError(f"{source}: --from-logits given, but every value lies in [0, 1] ({span}): these look "
                                f"like probabilities already; drop --from-logits.")
        from .utils import expit

        return expit(values), "sigmoid"
    if from_percent:
        if lo < 0.0 or hi > 100.0 or hi <= 1.0:
            raise ContractError(f"{source}: --from-percent needs values in [0, 100] with some above 1. Got {span} "
                                f"instead.")
        return values / 100.0, "percent"
    if lo < 0.0 or hi > 100.0:
        raise ContractError(f"{source}: values lie outside [0, 1] ({span}); these look like logits. Pass --from-logits "
                            f"to apply a sigmoid.")
    if hi > 1.0:
        raise ContractError(f"{source}: values lie in [0, 100] with some above 1 ({span}); these look like "
                            f"percentages. Pass --from-percent to divide by 100 (or --from-logits if they are logits).")
    return values, None


def _value_warnings(probs: np.ndarray, source: str) -> list[str]:
    out = []
    if np.isin(probs, (0.0, 1.0)).all():
        out.append(f"{source}: every value is 0 or 1; these are labels, not probabilities (thresholds cannot be tuned).")
    elif probs.shape[1] > 1 and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
        out.append(f"{source}: every row sums to 1; a softmax over classes, not per-class probabilities?")
    return out


# ------------------------------------------------------------------------------------------ readers
def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)  # never unpickle a user's file
    except ValueError as err:
        raise ContractError(f"{path}: cannot read it without unpickling (object arrays are refused): {err}.") from None
    except (OSError, EOFError) as err:
        raise ContractError(f"{path}: not a readable .npy file ({err}).") from None


def _read_array(path: Path, key: str | None) -> tuple[np.ndarray, list[str] | None, str]:
    """The matrix of a .npy/.npz file, its embedded Ids (npz only) and the key used."""
    if path.suffix.lower() == ".npy":
        if key is not None:
            raise ParameterError(f"The 'key' parameter of read_matrix applies to .npz archives. Got {key!r} with {path} "
                                 f"instead.")
        return _load_npy(path), None, ""
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {k: archive[k] for k in archive.files}
    except ValueError as err:
        raise ContractError(f"{path}: cannot read it without unpickling (object arrays are refused): {err}.") from None
    except (OSError, EOFError, KeyError) as err:
        raise ContractError(f"{path}: not a readable .npz archive ({err}).") from None
    embedded = None
    id_keys = [k for k in _ID_KEYS if k in arrays]
    if id_keys:
        ids_arr = arrays[id_keys[0]]
        if ids_arr.ndim != 1 or ids_arr.dtype.kind not in "US":
            raise ContractError(f"{path}: array {id_keys[0]!r} must be a 1-D array of string Ids. Got {ids_arr.dtype} "
                                f"of shape {ids_arr.shape} instead.")
        embedded = [x.decode() if isinstance(x, bytes) else str(x) for x in ids_arr.tolist()]
    if key is None:
        candidates = [k for k, a in arrays.items() if a.ndim == 2 and a.dtype.kind in "biuf"]
        if len(candidates) != 1:
            raise ContractError(f"{path}: {len(candidates)} 2-D numeric arrays ({candidates[:4]}); name the one to "
                                f"import with --key. Got keys {sorted(arrays)} instead.")
        key = candidates[0]
    elif key not in arrays:
        raise ContractError(f"{path}: no array {key!r}. Got keys {sorted(arrays)} instead.")
    return arrays[key], embedded, key


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except ImportError:  # no parquet engine: pandas reads parquet through pyarrow, an extra
            raise ContractError(f"{path}: reading parquet needs the [parquet] extra (pyarrow is not installed); "
                                f"run `pip install 'hpa-ens[parquet]'`.") from None
        except Exception as err:  # pyarrow raises several types; name the file, keep the reason
            raise ContractError(f"{path}: not a readable parquet file ({type(err).__name__}: "
                                f"{str(err).splitlines()[0] if str(err) else ''}).") from None
        if df.index.name is not None and str(df.index.name).lower() == "id":
            df = df.reset_index()
        return df
    sep = "\t" if suffix == ".tsv" else ","
    expected, hint = "a header Id,<one column per class>", "Arrays must end in .npy or .npz, tables in .csv or .parquet."
    header = read_csv_checked(path, expected, hint, nrows=0, sep=sep)
    str_cols = {c: str for c in header.columns if str(c).lower() == "id"}
    return read_csv_checked(path, expected, hint, sep=sep, dtype=str_cols, keep_default_na=False,
                            na_values=["", "nan", "NaN", "NA"])


def _table_matrix(df: pd.DataFrame, source: str, task: Task, mapping: Mapping[str, str]) -> tuple[list | None, np.ndarray, dict]:
    columns = [str(c) for c in df.columns]
    df = df.set_axis(columns, axis=1)
    missing = [c for c in mapping if c not in columns]
    if missing:
        raise ContractError(f"{source}: --columns names column {missing[0]!r}, which the file does not have. Got "
                            f"columns {', '.join(columns[:6])}{'…' if len(columns) > 6 else ''} instead.")
    renamed = [mapping.get(c, c) for c in columns]
    ignored = [c for c, r in zip(columns, renamed) if r == SKIP]
    id_cols = [c for c, r in zip(columns, renamed) if r == "Id" or (c not in mapping and r.lower() == "id")]
    if len(id_cols) > 1:
        raise ContractError(f"{source}: several Id columns {id_cols}; map the others to '-' with --columns.")
    id_col = id_cols[0] if id_cols else None
    value_cols = [c for c, r in zip(columns, renamed) if r != SKIP and c != id_col]
    mapped = {c: int(mapping[c]) for c in value_cols if c in mapping}
    rest = [c for c in value_cols if c not in mapping]
    if mapped and rest:
        # A partial map: the unmapped columns must still be readable by their names.
        by_name = _partial_detect(rest, task, source)
        classes = {**mapped, **by_name}
    elif mapped:
        classes = mapped
    else:
        classes = class_columns(value_cols, task, source)
    counts = sorted(classes.values())
    if counts != list(range(task.n_classes)):
        have = set(counts)
        lacking = [k for k in range(task.n_classes) if k not in have]
        raise ContractError(f"{source}: {len(counts)} class columns but task {task.name!r} has {task.n_classes} "
                            f"classes; class {lacking[0] if lacking else counts[-1]} is "
                            f"{'missing' if lacking else 'out of range'}. Got {len(counts)} instead; check --columns/--task.")
    order = sorted(classes, key=classes.get)
    if len(df) == 0:
        raise ContractError(f"{source}: the file has a header but no rows.")
    block = df[order]
    for col in order:
        if not pd.api.types.is_numeric_dtype(block[col]):
            bad = pd.to_numeric(block[col], errors="coerce").isna().to_numpy()
            row = int(np.flatnonzero(bad)[0])
            who = f"Id {df[id_col].iloc[row]!r}" if id_col else f"row {row + 1}"
            raise ContractError(f"{source}: column {col!r} holds non-numeric values; first at {who}. Got "
                                f"{block[col].iloc[row]!r} instead of a number.")
    ids = df[id_col].astype(str).tolist() if id_col else None
    info = {"id_column": id_col, "class_columns": order, "ignored_columns": ignored}
    return ids, block.to_numpy(dtype=np.float64), info


def _partial_detect(names: list[str], task: Task, source: str) -> dict[str, int]:
    """Class ids of unmapped columns when --columns mapped only some (each name must say its class)."""
    by_name = {c.strip().casefold(): k for k, c in enumerate(task.class_names)}
    out = {}
    for n in names:
        m = re.fullmatch(r"(?:[^\d]+?_?)?(\d+)", n)
        if m and int(m.group(1)) < task.n_classes:
            out[n] = int(m.group(1))
        elif n.strip().casefold() in by_name:
            out[n] = by_name[n.strip().casefold()]
        else:
            raise ContractError(f"{source}: cannot tell which class column {n!r} holds; map it with --columns "
                                f"('{n}=<class>' or '{n}=-').")
    return out


def read_matrix(path: str | Path, task: Task, ids: Sequence[str] | None = None, ids_source: str | None = None,
                mapping: Mapping[str, str] | None = None, key: str | None = None, from_logits: bool = False,
                from_percent: bool = False, role: str = "test") -> Imported:
    """Read one team file as Ids plus an (n_rows, K) probability matrix in class order.

    Parameters
    ----------
    path : a .csv/.parquet table or a .npy/.npz array
    task : the classes (K and their names)
    ids : the row Ids from ``--ids``, required for an array without embedded Ids; for a table with an Id
        column they must be the same set (the table's rows are then put in this order)
    mapping : from :func:`parse_column_map` (tables only)
    role : ``"test"`` or ``"oof"`` (names the flags in messages)

    Returns
    -------
    Imported
    """
    path = Path(path)
    source = str(path)
    ids_flag = "--ids" if role == "test" else "--oof-ids"
    if not path.is_file():
        raise ContractError(f"{path}: file not found.")
    if path.stat().st_size == 0:
        raise ContractError(f"{path}: the file is empty.")
    from .io import sha256_file

    suffix = path.suffix.lower()
    info: dict = {"path": str(path), "sha256": sha256_file(path), "format": suffix.lstrip(".")}
    if suffix in ARRAY_SUFFIXES:
        if mapping:
            raise ParameterError(f"The 'mapping' parameter of read_matrix applies to CSV/parquet tables; the columns of "
                                 f"{path} are classes 0..K-1 in order. Got a map instead.")
        values, embedded, used_key = _read_array(path, key)
        info["key"] = used_key or None
        if values.ndim != 2 or values.dtype.kind not in "biuf":
            raise ContractError(f"{path}: expected a 2-D numeric array (n_rows, K). Got {values.dtype} of shape "
                                f"{values.shape} instead.")
        if values.shape[1] != task.n_classes:
            raise ContractError(f"{path}: {values.shape[1]} columns but task {task.name!r} has {task.n_classes} classes. "
                                f"Got shape {values.shape} instead; pass the right --task.")
        if embedded is not None and ids is not None and list(embedded) != list(ids):
            raise ContractError(f"{path}: its embedded Ids differ from {ids_source} ({ids_flag}); give one of them.")
        row_ids = list(ids) if ids is not None else embedded
        if row_ids is None:
            raise ParameterError(f"The 'ids' parameter of read_matrix is required for {path}: an array holds no Ids "
                                 f"and rows are never matched by a guessed order. Got None instead.")
        if len(row_ids) != len(values):
            raise ContractError(f"{path}: {len(values)} rows but {ids_source or 'its Id array'} lists {len(row_ids)} "
                                f"Ids. Got {len(values)} instead of {len(row_ids)}.")
        info["ids_from"] = ids_source if ids is not None else f"{path}:{'Id array'}"
        info["class_columns"] = "array columns 0..K-1"
    elif suffix in TABLE_SUFFIXES:
        table = _read_table(path)
        row_ids, values, table_info = _table_matrix(table, source, task, mapping or {})
        info.update(table_info)
        if row_ids is None:
            if ids is None:
                raise ParameterError(f"The 'ids' parameter of read_matrix is required for {path}: it has no Id column "
                                     f"and rows are never matched by a guessed order. Got None instead.")
            if len(ids) != len(values):
                raise ContractError(f"{path}: {len(values)} rows but {ids_source} lists {len(ids)} Ids. Got "
                                    f"{len(values)} instead of {len(ids)}.")
            row_ids = list(ids)
            info["ids_from"] = ids_source
    else:
        raise ContractError(f"{path}: unknown file type {suffix!r}; expected .csv, .parquet, .npy or .npz.")
    check_ids(row_ids, source)
    probs, transform = to_probabilities(values, source, row_ids, from_logits, from_percent)
    if row_ids is not None and ids is not None and info.get("id_column"):
        # A table with its own Ids and an Id list: the same Ids, put in the list's order.
        from .validation import check_same_ids

        check_same_ids(row_ids, list(ids), source, ids_source)
        position = {i: k for k, i in enumerate(row_ids)}
        probs = probs[[position[i] for i in ids]]
        row_ids = list(ids)
    info.update({"n_rows": len(row_ids), "transform": transform, "warnings": _value_warnings(probs, source)})
    return Imported(list(row_ids), probs, info)


# ------------------------------------------------------------------------------------------- output
def import_predictions(test, task: Task, oof=None, ids=None, oof_ids=None, columns=None, key: str | None = None,
                       from_logits: bool = False, from_percent: bool = False, name: str | None = None,
                       argv: Sequence[str] | None = None) -> tuple[pd.DataFrame | None, pd.DataFrame, dict]:
    """Read the team files and build the set's frames and ``meta.json`` record (nothing is written).

    Parameters
    ----------
    test : path-like
        Test predictions: a .csv/.parquet table or a .npy/.npz array (see the module docstring).
    task : Task
    oof : path-like, optional
        Out-of-fold train predictions (omit for a test-only set).
    ids, oof_ids : path-like, optional
        Row Ids of ``test`` / ``oof`` (:func:`read_id_list`), required for an array without embedded Ids.
    columns : str or path-like, optional
        A column map (:func:`parse_column_map`), tables only.
    key : str, optional
        The array of an .npz archive (default: its only 2-D numeric array).
    from_logits, from_percent : bool
        Convert logits (sigmoid) or percentages (/100); see :func:`to_probabilities`.
    name, argv
        Recorded in ``meta.json``.

    Returns
    -------
    oof : DataFrame of shape (n_train, K) indexed by Id, or None (a test-only set)
    test : DataFrame of shape (n_test, K) indexed by Id
    meta : dict for ``meta.json`` (source files' sha256, formats, conversions, the task)
    """
    from .contract import build_meta

    if oof is None and oof_ids is not None:
        raise ParameterError(f"The 'oof_ids' parameter of import_predictions needs 'oof'. Got {oof_ids} alone instead.")
    mapping = parse_column_map(columns, task)
    parts = {}
    for role, path, id_path in (("test", test, ids), ("oof", oof, oof_ids)):
        if path is None:
            continue
        id_list = read_id_list(id_path) if id_path is not None else None
        parts[role] = read_matrix(path, task, id_list, str(id_path) if id_path else None, mapping, key, from_logits,
                                  from_percent, role)
    if "oof" in parts:
        both = set(parts["oof"].ids) & set(parts["test"].ids)
        if both:
            raise ContractError(f"{oof}: {len(both)} Ids are in both the OOF and the test file (first "
                                f"{sorted(both)[0]!r}); a row is either a train row or a test row.")
    inputs = {role: p for role, p in (("test", test), ("oof", oof), ("ids", ids), ("oof_ids", oof_ids)) if p is not None}
    if columns is not None and Path(str(columns)).is_file():
        inputs["columns"] = columns
    params = {"from_logits": from_logits, "from_percent": from_percent, "key": key, "columns": mapping or None}
    meta = build_meta("hpa_ens.import_preds", inputs, params=params, argv=argv, name=name,
                      sources={role: part.info for role, part in parts.items()}, task=task.to_meta(),
                      test_only="oof" not in parts)
    oof_frame = parts["oof"].frame() if "oof" in parts else None
    return oof_frame, parts["test"].frame(), meta


if __name__ == "__main__":  # python -m hpa_ens.import_preds: the command lives in hpa_ens.commands.import_preds
    from hpa_ens.commands import launch

    launch("import", __spec__.name)
