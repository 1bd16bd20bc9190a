"""``folds.extra.csv``: which training folds may use each external (HPAv18) image.

External images have no OOF row: they are training data only. But an external image that is a
near-copy of a train image must not train the model that predicts that train image out of fold, or the
held-out label leaks into the OOF predictions. ``python -m hpa_ens.folds --extra-labels FILE`` therefore
writes, beside ``folds.csv``, ``Id,fold`` for every external Id:

- ``fold = k`` (0..K-1): the image is in a duplicate group with train images of fold k; the model of
  fold k must not train on it (every other fold's model may);
- ``fold = -1``: no train duplicate; every fold's model may train on it.

``folds.csv`` itself is unchanged (train Ids only), so every reader of it keeps working.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..validation import ContractError, ParameterError, check_ids, check_same_ids, read_csv_strings

__all__ = ["NO_FOLD", "read_extra_folds", "write_extra_folds", "extra_fit_mask", "extra_folds_path"]

#: The fold value of an external image with no train duplicate.
NO_FOLD = -1


def extra_folds_path(folds_path: str | os.PathLike) -> Path:
    """``folds.csv`` -> ``folds.extra.csv`` beside it."""
    path = Path(folds_path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}.extra.csv")


def write_extra_folds(path: str | os.PathLike, folds: pd.Series) -> None:
    """Write ``Id,fold`` (fold -1..K-1) atomically; ``folds`` is indexed by external Id."""
    from ..io import atomic_open

    values = np.asarray(folds, dtype=np.int64)
    if (values < NO_FOLD).any():
        raise ParameterError(f"The 'folds' parameter must hold -1 or fold numbers 0..K-1. Got {int(values.min())} "
                             f"instead.")
    frame = pd.DataFrame({"Id": folds.index.astype(str), "fold": values})
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")


def read_extra_folds(path: str | os.PathLike, ids: Sequence[str] | None = None,
                     n_folds: int | None = None) -> pd.Series:
    """Read ``folds.extra.csv`` as an int Series indexed by external Id.

    Parameters
    ----------
    path : path-like
    ids : sequence of str, optional
        The external Ids a caller trains on (e.g. after ``--skip-missing``); each must be in the file
        (the file may hold more), and the result follows this order.
    n_folds : int, optional
        K of ``folds.csv``; folds must lie in -1..K-1.

    Raises
    ------
    ContractError
        Wrong header, a bad or repeated Id, a fold that is not an integer >= -1 or not below ``n_folds``,
        an asked Id missing (file and row named).
    """
    path = Path(path)
    df = read_csv_strings(path, "a header Id,fold and one row per external Id")
    if list(df.columns[:2]) != ["Id", "fold"]:
        raise ContractError(f"{path}: expected columns Id,fold. Got {','.join(map(str, df.columns))} instead.")
    ids_list = [str(i) for i in df["Id"].tolist()]
    check_ids(ids_list, str(path))
    text = df["fold"].str.strip()
    ok = text.str.fullmatch(r"-1|\d+").to_numpy()
    limit = n_folds if n_folds is not None else np.inf
    values = np.where(ok, pd.to_numeric(text.where(ok, "0")), NO_FOLD - 1)
    bad = ~ok | (values >= limit)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        allowed = f"-1..{n_folds - 1}" if n_folds is not None else "-1 or a fold number"
        raise ContractError(f"{path}, row {row + 1}: fold must be {allowed} (-1: no train duplicate). "
                            f"Got {df['fold'].iloc[row]!r} instead.")
    folds = pd.Series(values.astype(np.int64), index=pd.Index(ids_list, name="Id"), name="fold")
    if ids is not None:
        ids = list(ids)
        missing = [i for i in ids if i not in folds.index]
        if missing:
            check_same_ids(folds.index.intersection(ids).tolist(), ids, str(path), "the external labels")
        folds = folds.loc[ids]
    return folds


def extra_fit_mask(extra_folds: pd.Series | np.ndarray, fold: int) -> np.ndarray:
    """Which external images the model of ``fold`` may train on: those not tied to a train image of it.

    Returns
    -------
    mask : ndarray of shape (n_external,), bool
    """
    values = np.asarray(extra_folds, dtype=np.int64)
    return values != int(fold)
