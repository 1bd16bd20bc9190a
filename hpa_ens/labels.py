"""Targets ("16 0") <-> indicator matrices, and the Kaggle label and submission files.

Parameters and returns follow one convention: ``Y`` is an ``(n_samples, 28)`` uint8/bool indicator
matrix, rows in the order of ``ids``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ._validation import ContractError, check_ids, read_csv_strings
from .classes import N_CLASSES
from ._validation import ContractError, ParameterError


def parse_target(text, source: str = "Target", row: int | None = None, allow_empty: bool = False) -> list[int]:
    """Parse one space-separated Target string into sorted class ids.

    Refuses an unknown id, a repeated id, and (unless ``allow_empty``) an empty Target.
    """
    where = f"{source}, row {row}" if row is not None else source
    if text is None or (isinstance(text, float) and np.isnan(text)):
        text = ""
    text = str(text).strip()
    if text == "":
        if allow_empty:
            return []
        raise ContractError(f"{where}: the Target is empty; every image needs at least one label. Got {text!r} instead.")
    ids: list[int] = []
    for token in text.split():
        if not token.isdigit() or int(token) >= N_CLASSES:
            raise ContractError(
                f"{where}: unknown class id {token!r} in Target {text!r}; expected integers 0..{N_CLASSES - 1}."
            )
        ids.append(int(token))
    if len(set(ids)) != len(ids):
        rep = sorted({i for i in ids if ids.count(i) > 1})
        raise ContractError(f"{where}: class id {rep[0]} is repeated in Target {text!r}. Got {text!r} instead.")
    return sorted(ids)


def targets_to_matrix(targets: Sequence, source: str = "Target", allow_empty: bool = False) -> np.ndarray:
    """Parse Target strings into an indicator matrix.

    Returns
    -------
    Y : ndarray of shape (n_samples, 28), dtype uint8
    """
    Y = np.zeros((len(targets), N_CLASSES), dtype=np.uint8)
    for row, text in enumerate(targets, start=1):
        Y[row - 1, parse_target(text, source, row, allow_empty)] = 1
    return Y


def format_target(row: np.ndarray) -> str:
    """One indicator row -> "0 16" (ascending, space-separated; "" when empty)."""
    return " ".join(str(k) for k in np.flatnonzero(row))


def matrix_to_targets(Y: np.ndarray) -> list[str]:
    """Indicator matrix -> Target strings, class ids sorted ascending."""
    Y = np.asarray(Y).astype(bool)
    return [format_target(r) for r in Y]


def _read_csv(path, columns: Sequence[str]) -> pd.DataFrame:
    path = Path(path)
    df = read_csv_strings(path, f"a header {','.join(columns)} and rows")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ContractError(
            f"{path}: missing column(s) {missing}; expected {','.join(columns)}. Got {','.join(map(str, df.columns))} instead."
        )
    if len(df) == 0:
        raise ContractError(f"{path}: the file has a header but no rows.")
    return df


def read_labels(path, allow_empty: bool = False, id_column: str = "Id", target_column: str = "Target") -> pd.DataFrame:
    """Read a Kaggle-style label file (``train.csv``, HPAv18 external, leak files with ``Id,Target``).

    Returns
    -------
    labels : DataFrame indexed by Id, columns 0..27 (int), dtype uint8
    """
    df = _read_csv(path, [id_column, target_column])
    ids = df[id_column].tolist()
    check_ids(ids, str(path))
    Y = targets_to_matrix(df[target_column].tolist(), str(path), allow_empty=allow_empty)
    return pd.DataFrame(Y, index=pd.Index(ids, name="Id"), columns=range(N_CLASSES))


def read_sample_submission(path) -> pd.Index:
    """The test Ids, in the order a submission must follow."""
    df = _read_csv(path, ["Id", "Predicted"])
    ids = df["Id"].tolist()
    check_ids(ids, str(path))
    return pd.Index(ids, name="Id")


def read_submission(path) -> pd.DataFrame:
    """Read ``Id,Predicted`` (empty predictions allowed) as an indicator DataFrame indexed by Id."""
    df = _read_csv(path, ["Id", "Predicted"])
    ids = df["Id"].tolist()
    check_ids(ids, str(path))
    Y = targets_to_matrix(df["Predicted"].tolist(), str(path), allow_empty=True)
    return pd.DataFrame(Y, index=pd.Index(ids, name="Id"), columns=range(N_CLASSES))


def labels_frame(ids: Sequence[str], Y: np.ndarray, column: str = "Target") -> pd.DataFrame:
    """Build an ``Id,<column>`` frame from an indicator matrix (for writing)."""
    return pd.DataFrame({"Id": list(ids), column: matrix_to_targets(Y)})


def write_labels(path: str | os.PathLike, ids: Sequence[str], Y: np.ndarray, column: str = "Target") -> None:
    """Write ``Id,Target`` (or ``Id,Predicted``) atomically, labels sorted ascending."""
    from .io import atomic_write_text

    atomic_write_text(path, labels_frame(ids, Y, column).to_csv(index=False, lineterminator="\n"))


def read_target_distribution(source, column: str | None = None, labels: pd.DataFrame | None = None) -> np.ndarray:
    """Per-class target positive shares, shape (28,).

    ``source`` is ``"train"`` (the shares of ``labels``) or a CSV with one row per class (row k = class
    k) such as the leaderboard probe file (columns ``lb,train``). ``column`` picks the column; by
    default ``lb`` if present, else ``share``, else the only numeric column.
    """
    if isinstance(source, str) and source == "train":
        if labels is None:
            raise ParameterError("The 'labels' parameter must be given when the target distribution is 'train'. Got None instead.")
        return np.asarray(labels, dtype=np.float64).mean(axis=0)
    path = Path(source)
    if not path.exists():
        raise ContractError(f"{path}: file not found.")
    df = pd.read_csv(path)
    if column is None:
        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        for preferred in ("lb", "share"):
            if preferred in df.columns:
                column = preferred
                break
        else:
            if len(numeric) != 1:
                raise ContractError(f"{path}: cannot tell which column holds the shares; pass a column name. Got columns {list(df.columns)} instead.")
            column = numeric[0]
    if column not in df.columns:
        raise ContractError(f"{path}: no column {column!r}. Got {list(df.columns)} instead.")
    if len(df) != N_CLASSES:
        raise ContractError(f"{path}: expected {N_CLASSES} rows (row k = class k). Got {len(df)} instead.")
    shares = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(shares).all() or (shares < 0).any() or (shares > 1).any():
        raise ContractError(f"{path}: column {column!r} must hold shares in [0, 1]. Got {shares.tolist()[:5]}… instead.")
    return shares
