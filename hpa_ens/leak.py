"""Leak files: test Ids whose labels are known from elsewhere (HPA v18 matches, train duplicates).

Two real formats are read:

- ``Id,Target`` (e.g. the 3rd place ``pudae_leak.csv``): the Id is a test Id; an Id may repeat, with
  the same or different labels;
- ``Extra,Test,SimR,SimG,SimB,Target,Target_noisey`` (``test_matches_omlos.csv``,
  ``vpp_leak_test_matches_new.csv``): ``Test`` is the test Id, ``Extra`` the matched image (an HPA v18
  external Id, or a *train* Id in the vpp file) and ``Target`` that image's labels. ``Target_noisey``
  is a second opinion given for 2 rows and equal to ``Target`` there; it is not used.

A duplicate-group file (``ID,Group Id``, e.g. ``pedrodiamel_dupes.csv``: train images that are near-copies
of each other) is not a leak file, and is refused in one line pointing at ``folds --groups``
(docs/leaks.md has each published file and what becomes of it).

Rows whose Id is not a test Id are skipped and counted. Several rows for one test Id (within a file or
across files) are resolved by a policy: ``union`` of their labels, the ``first`` row (files in the
order given, rows in file order), or ``error``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .validation import ContractError, check_id, check_param, read_csv_strings
from .labels import targets_to_matrix
from .task import Task, load_task

POLICIES = ("union", "first", "error")


def read_leak(path, task: Task | str | None = None) -> pd.DataFrame:
    """Read one leak file in either real format, for a task of K classes (default HPA 2018).

    Returns
    -------
    leak : DataFrame with one row per file row and columns
        ``Id`` (the test Id), ``match`` (the matched image's Id, "" for ``Id,Target`` files),
        ``row`` (1-based data row), ``source`` (file name) and class columns 0..K-1 (uint8).
    """
    path = Path(path)
    df = read_csv_strings(path, "a header Id,Target or Extra,Test,…,Target")
    columns = [str(c) for c in df.columns]
    if "Target" not in columns and "Group Id" in columns:
        raise ContractError(f"{path}: a duplicate-group file ({','.join(columns)}: images that are near-copies of each "
                            f"other), not a leak file: it holds no test Ids with labels. Give it to `hpa-ens folds "
                            f"--groups` to keep each group in one fold.")
    if "Target" not in columns:
        raise ContractError(f"{path}: no 'Target' column; expected Id,Target or Extra,Test,…,Target. "
                            f"Got {','.join(columns)} instead.")
    if "Test" in columns:
        id_column, match = "Test", df["Extra"].tolist() if "Extra" in columns else [""] * len(df)
    elif "Id" in columns:
        id_column, match = "Id", [""] * len(df)
    else:
        raise ContractError(f"{path}: cannot tell which column holds the test Ids; expected 'Id' or 'Test'. "
                            f"Got {','.join(columns)} instead.")
    if len(df) == 0:
        raise ContractError(f"{path}: the file has a header but no rows.")
    ids = df[id_column].str.strip().tolist()
    for row, image_id in enumerate(ids, start=1):
        check_id(image_id, f"{path}, column {id_column!r}", row)
    Y = targets_to_matrix(df["Target"].tolist(), f"{path}, column 'Target'", task=load_task(task))
    out = pd.DataFrame(Y, columns=range(Y.shape[1]))
    out.insert(0, "source", path.name)
    out.insert(0, "row", np.arange(1, len(df) + 1))
    out.insert(0, "match", [str(m) for m in match])
    out.insert(0, "Id", ids)
    return out


def resolve_conflicts(leak: pd.DataFrame, policy: str = "union") -> tuple[pd.DataFrame, pd.Series, int]:
    """One label set per test Id.

    Parameters
    ----------
    leak : DataFrame as returned by :func:`read_leak` (possibly several concatenated)
    policy : {"union", "first", "error"}

    Returns
    -------
    labels : DataFrame indexed by Id (first-appearance order), columns 0..K-1, uint8
    sources : Series indexed by Id, "file:row[+file:row...]" of the rows used
    n_conflicts : int, number of Ids whose rows disagree
    """
    check_param("leak_conflict", policy, f"one of {POLICIES}", policy in POLICIES, "resolve_conflicts")
    classes = [c for c in leak.columns if isinstance(c, (int, np.integer))]
    if len(leak) == 0:
        return (pd.DataFrame(np.zeros((0, len(classes)), np.uint8), index=pd.Index([], name="Id"), columns=classes),
                pd.Series([], index=pd.Index([], name="Id"), dtype=object), 0)
    where = leak["source"].astype(str) + ":" + leak["row"].astype(str)
    keyed = leak.assign(where=where, code=[bytes(r) for r in leak[classes].to_numpy(np.uint8)])
    grouped = keyed.groupby("Id", sort=False)
    n_codes = grouped["code"].nunique()
    conflicting = n_codes[n_codes > 1].index
    if policy == "error" and len(conflicting):
        first = conflicting[0]
        rows = keyed.loc[keyed["Id"] == first]
        shown = "; ".join(f"{w} -> {' '.join(map(str, np.flatnonzero(r)))}"
                          for w, r in zip(rows["where"], rows[classes].to_numpy()))
        raise ContractError(f"{len(conflicting)} leak Ids have conflicting labels (--leak-conflict error); "
                            f"first {first!r}: {shown}.")
    if policy == "first":
        chosen = grouped.head(1).set_index("Id")
        labels = chosen[classes].astype(np.uint8)
        sources = chosen["where"]
    else:
        labels = grouped[classes].max().astype(np.uint8)
        sources = grouped["where"].agg("+".join)
    labels.index.name = sources.index.name = "Id"
    return labels, sources.rename("source"), int(len(conflicting))


def leak_labels(
    paths: Sequence,
    test_ids: Sequence[str],
    policy: str = "union",
    task: Task | str | None = None,
) -> tuple[pd.DataFrame, pd.Series, dict]:
    """Read leak files, keep test Ids, resolve repeated Ids.

    Returns
    -------
    labels : DataFrame indexed by test Id, columns 0..K-1 uint8 (K of ``task``, default HPA 2018)
    sources : Series indexed by test Id ("file:row" of the rows used)
    info : dict with ``rows`` (per file), ``skipped_not_test`` (rows whose Id is not a test Id, per
        file), ``conflicts`` (Ids whose rows disagree), ``ids`` (test Ids labelled)
    """
    check_param("leak_conflict", policy, f"one of {POLICIES}", policy in POLICIES, "leak_labels")
    test_set = set(test_ids)
    frames, rows, skipped = [], {}, {}
    task = load_task(task)
    for p in paths:
        frame = read_leak(p, task)
        known = frame["Id"].isin(test_set)
        rows[str(p)] = int(len(frame))
        skipped[str(p)] = int((~known).sum())
        frames.append(frame.loc[known])
    leak = pd.concat(frames, ignore_index=True) if frames else read_empty(task.n_classes)
    labels, sources, n_conflicts = resolve_conflicts(leak, policy)
    return labels, sources, {"rows": rows, "skipped_not_test": skipped, "conflicts": n_conflicts, "ids": int(len(labels))}


def read_empty(n_classes: int | None = None) -> pd.DataFrame:
    """An empty leak frame with K class columns (K of the default task when not given)."""
    n_classes = load_task(None).n_classes if n_classes is None else n_classes
    cols = {"Id": pd.Series(dtype=object), "match": pd.Series(dtype=object), "row": pd.Series(dtype=np.int64),
            "source": pd.Series(dtype=object)}
    cols.update({k: pd.Series(dtype=np.uint8) for k in range(n_classes)})
    return pd.DataFrame(cols)
