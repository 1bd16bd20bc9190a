"""Input validation in one place. Every refusal is one line that names the file, row or column.

Parameter errors follow scikit-learn's shape: "The 'x' parameter of f must be …. Got … instead."
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np



class HpaEnsError(Exception):
    """Base of the errors hpa-ens expects (bad input): the command line prints them as one line, exit 2."""


class ContractError(HpaEnsError, ValueError):
    """A file or array breaks the contract between stages (ids, columns, values)."""


class ParameterError(HpaEnsError, ValueError):
    """A parameter (a function argument or a command-line flag) is outside its allowed values."""


def _preview(items: Iterable, k: int = 3) -> str:
    items = list(items)
    shown = ", ".join(repr(str(x)) for x in items[:k])
    return shown + (", …" if len(items) > k else "")


def check_param(name: str, value, expected: str, ok: bool, owner: str | None = None) -> None:
    """Raise ``ValueError`` in scikit-learn's shape unless ``ok``."""
    if not ok:
        where = f" of {owner}" if owner else ""
        raise ParameterError(f"The '{name}' parameter{where} must be {expected}. Got {value!r} instead.")


def check_id(value, source: str, row: int | None = None) -> str:
    """An Id is a non-empty string with no path separator (it becomes part of file names)."""
    where = f"{source}, row {row}" if row is not None else source
    if not isinstance(value, str) or value.strip() == "":
        raise ContractError(f"{where}: an Id must be a non-empty string. Got {value!r} instead.")
    if "/" in value or "\\" in value or value in (".", "..") or (os.sep in value):
        raise ContractError(
            f"{where}: Id {value!r} contains a path separator; Ids become file names. Got {value!r} instead."
        )
    return value


def check_ids(ids: Sequence, source: str) -> None:
    """Every Id valid and unique (rows are 1-based data rows, header excluded)."""
    seen: dict[str, int] = {}
    dupes: list[str] = []
    for row, value in enumerate(ids, start=1):
        check_id(value, source, row)
        if value in seen:
            dupes.append(value)
        seen[value] = row
    if dupes:
        raise ContractError(
            f"{source}: {len(dupes)} duplicated Ids (each Id must appear once); first: {_preview(dupes)}."
        )


def check_same_ids(got: Sequence[str], expected: Sequence[str], source: str, against: str) -> None:
    """Refuse missing or extra Ids, with counts and the first few of each."""
    got_set, exp_set = set(got), set(expected)
    missing = [i for i in expected if i not in got_set]
    extra = [i for i in got if i not in exp_set]
    if missing:
        raise ContractError(
            f"{source}: {len(missing)} Ids of {against} are missing (expected {len(exp_set)} Ids, "
            f"got {len(got_set)}); first: {_preview(missing)}."
        )
    if extra:
        raise ContractError(
            f"{source}: {len(extra)} Ids are not in {against} (expected {len(exp_set)} Ids, "
            f"got {len(got_set)}); first: {_preview(extra)}."
        )


def check_probabilities(values: np.ndarray, source: str, ids: Sequence[str] | None = None) -> np.ndarray:
    """Refuse NaN/inf and values outside [0, 1]; return ``values`` as float64.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_classes)
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        rows, cols = np.nonzero(~finite)
        r, c = int(rows[0]), int(cols[0])
        who = f"Id {ids[r]!r}" if ids is not None else f"row {r + 1}"
        raise ContractError(
            f"{source}: {int((~finite).sum())} values are NaN or infinite; first at {who}, column '{c}'. "
            f"Got {float(values[r, c])!r} instead of a probability."
        )
    bad = (values < 0.0) | (values > 1.0)
    if bad.any():
        rows, cols = np.nonzero(bad)
        r, c = int(rows[0]), int(cols[0])
        who = f"Id {ids[r]!r}" if ids is not None else f"row {r + 1}"
        raise ContractError(
            f"{source}: {int(bad.sum())} values lie outside [0, 1] (min {values.min():.4g}, max {values.max():.4g}); "
            f"these look like logits: apply a sigmoid first. First at {who}, column '{c}': {values[r, c]!r}."
        )
    return values


def check_indicator(y: np.ndarray, name: str = "y", n_classes: int | None = None) -> np.ndarray:
    """An (n_samples, n_classes) 0/1 matrix, returned as bool (any number of classes when ``n_classes`` is None)."""
    arr = np.asarray(y)
    if arr.ndim != 2 or (n_classes is not None and arr.shape[1] != n_classes):
        raise ParameterError(
            f"The '{name}' parameter must be an indicator matrix of shape (n_samples, {n_classes or 'n_classes'}). "
            f"Got shape {arr.shape} instead."
        )
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ParameterError(f"The '{name}' parameter must hold only 0 and 1. Got other values instead.")
        arr = arr.astype(bool)
    return arr


def check_thresholds(thresholds, n_classes: int, name: str = "thresholds") -> np.ndarray:
    arr = np.asarray(thresholds, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n_classes, float(arr))
    if arr.shape != (n_classes,) or not np.isfinite(arr).all():
        raise ParameterError(
            f"The '{name}' parameter must be a finite scalar or a list of {n_classes} floats. Got {thresholds!r} instead."
        )
    return arr


def read_csv_strings(path, expected: str):
    """Read a CSV with every cell as a string, refusing a missing, empty or malformed file.

    ``expected`` describes the header for the messages, e.g. ``"a header Id,Target and rows"``.
    """
    path = Path(path)
    if not path.exists():
        raise ContractError(f"{path}: file not found.")
    if path.is_dir():
        raise ContractError(f"{path}: is a folder; expected a CSV file with {expected}.")
    return read_csv_checked(path, expected, dtype=str, keep_default_na=False)


def read_csv_checked(path, expected: str, binary_hint: str = "Binary formats (.npy, .npz, .parquet) go through "
                     "hpa_ens.import_preds.", **read_csv_kwargs):
    """``pandas.read_csv`` with its failures (empty, malformed, not text) as one-line ContractErrors naming the file.

    ``expected`` describes the header for the messages; ``read_csv_kwargs`` go to pandas, and floats are
    parsed exactly (the bits that were written) on every supported pandas.
    """
    import pandas as pd

    try:
        return pd.read_csv(path, **_exact_floats(pd.__version__), **read_csv_kwargs)
    except pd.errors.EmptyDataError:
        raise ContractError(f"{path}: the file is empty; expected {expected}.") from None
    except pd.errors.ParserError as err:
        raise ContractError(f"{path}: not a valid CSV ({str(err).strip().splitlines()[-1]}).") from None
    except UnicodeDecodeError:
        raise ContractError(f"{path}: not a text CSV file (cannot decode it as UTF-8); expected {expected}. "
                            f"{binary_hint}") from None


def _exact_floats(pandas_version: str) -> dict:
    """The ``read_csv`` keywords that parse floats exactly: before pandas 3.1 the default parser can be an ulp
    off, so ``round_trip`` is asked for; from 3.1 on exact parsing is the default and the keyword deprecated."""
    major, minor = (int(part) for part in re.match(r"(\d+)\.(\d+)", pandas_version).groups())
    return {"float_precision": "round_trip"} if (major, minor) < (3, 1) else {}


def read_json_object(path, what: str) -> dict:
    """A JSON file holding one object, refusing a missing file, undecodable text, invalid JSON or a non-object.

    ``what`` names the file's role in the messages, e.g. ``"a thresholds file"``.
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: {what} not found.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ContractError(f"{path}: not a text JSON file (cannot decode it as UTF-8); expected {what}.") from None
    except json.JSONDecodeError as err:
        raise ContractError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); expected {what}.") from None
    if not isinstance(doc, dict):
        raise ContractError(f"{path}: expected {what} (a JSON object). Got {type(doc).__name__} instead.")
    return doc
