"""Targets ("16 0") <-> indicator matrices, and the Kaggle label and submission files.

Parameters and returns follow one convention: ``Y`` is an ``(n_samples, K)`` uint8/bool indicator
matrix, rows in the order of ``ids``; K comes from the task (default HPA 2018, 28 classes).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .validation import ContractError, check_ids, read_csv_strings
from .task import Task, load_task


class EmptyTargetWarning(UserWarning):
    """A labels file holds rows with no label (allowed; common outside HPA)."""


def parse_target(text, source: str = "Target", row: int | None = None, allow_empty: bool = False,
                 n_classes: int | None = None) -> list[int]:
    """Parse one space-separated Target string into sorted class ids (``0..n_classes-1``).

    Refuses an unknown id, a repeated id, and (unless ``allow_empty``) an empty Target.
    """
    n_classes = load_task(None).n_classes if n_classes is None else n_classes
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
        if not token.isdigit() or int(token) >= n_classes:
            raise ContractError(
                f"{where}: unknown class id {token!r} in Target {text!r}; expected integers 0..{n_classes - 1}."
            )
        ids.append(int(token))
    if len(set(ids)) != len(ids):
        rep = sorted({i for i in ids if ids.count(i) > 1})
        raise ContractError(f"{where}: class id {rep[0]} is repeated in Target {text!r}. Got {text!r} instead.")
    return sorted(ids)


def targets_to_matrix(targets: Sequence, source: str = "Target", allow_empty: bool = False,
                      task: Task | str | None = None) -> np.ndarray:
    """Parse Target strings into an indicator matrix.

    Returns
    -------
    Y : ndarray of shape (n_samples, K), dtype uint8
    """
    n_classes = load_task(task).n_classes
    Y = np.zeros((len(targets), n_classes), dtype=np.uint8)
    for row, text in enumerate(targets, start=1):
        Y[row - 1, parse_target(text, source, row, allow_empty, n_classes)] = 1
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


def read_labels(path, allow_empty: bool = True, id_column: str = "Id", target_column: str = "Target",
                task: Task | str | None = None) -> pd.DataFrame:
    """Read a Kaggle-style label file (``train.csv``, HPAv18 external, leak files with ``Id,Target``).

    Rows with an empty Target (no label) are kept and counted in an :class:`EmptyTargetWarning`;
    ``allow_empty=False`` refuses them instead.

    Returns
    -------
    labels : DataFrame indexed by Id, columns 0..K-1 (int), dtype uint8
    """
    task = load_task(task)
    df = _read_csv(path, [id_column, target_column])
    ids = df[id_column].tolist()
    check_ids(ids, str(path))
    Y = targets_to_matrix(df[target_column].tolist(), str(path), allow_empty=allow_empty, task=task)
    n_empty = int((Y.sum(axis=1) == 0).sum())
    if n_empty:
        first = ids[int(np.flatnonzero(Y.sum(axis=1) == 0)[0])]
        warnings.warn(f"{path}: {n_empty} of {len(ids)} rows have no label (first: Id {first!r}); they are kept as "
                      f"all-negative rows.", EmptyTargetWarning, stacklevel=2)
    return pd.DataFrame(Y, index=pd.Index(ids, name="Id"), columns=range(task.n_classes))


def read_sample_submission(path) -> pd.Index:
    """The test Ids, in the order a submission must follow."""
    df = _read_csv(path, ["Id", "Predicted"])
    ids = df["Id"].tolist()
    check_ids(ids, str(path))
    return pd.Index(ids, name="Id")


def read_submission(path, task: Task | str | None = None) -> pd.DataFrame:
    """Read ``Id,Predicted`` (empty predictions allowed) as an indicator DataFrame indexed by Id."""
    task = load_task(task)
    df = _read_csv(path, ["Id", "Predicted"])
    ids = df["Id"].tolist()
    check_ids(ids, str(path))
    Y = targets_to_matrix(df["Predicted"].tolist(), str(path), allow_empty=True, task=task)
    return pd.DataFrame(Y, index=pd.Index(ids, name="Id"), columns=range(task.n_classes))


def labels_frame(ids: Sequence[str], Y: np.ndarray, column: str = "Target") -> pd.DataFrame:
    """Build an ``Id,<column>`` frame from an indicator matrix (for writing)."""
    return pd.DataFrame({"Id": list(ids), column: matrix_to_targets(Y)})


def write_labels(path: str | os.PathLike, ids: Sequence[str], Y: np.ndarray, column: str = "Target") -> None:
    """Write ``Id,Target`` (or ``Id,Predicted``) atomically, labels sorted ascending."""
    from .io import atomic_write_text

    atomic_write_text(path, labels_frame(ids, Y, column).to_csv(index=False, lineterminator="\n"))
