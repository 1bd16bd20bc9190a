"""Duplicate groups: read duplicate files in the formats seen for HPA 2018 and merge them into groups.

Accepted CSV layouts (header names are matched case-insensitively; spaces, ``_`` and ``-`` are ignored):

=====================================  ===========================================================
header                                 meaning
=====================================  ===========================================================
``ID,Group Id`` (or ``Id,group``)      one row per image; rows with the same group id are
                                       duplicates (``leak/pedrodiamel_dupes.csv``)
``Id1,Id2``                            one duplicate pair per row
``Id_a,Id_b[,kind,...]``               one pair per row: the synthetic set's
                                       ``truth/duplicates.csv`` and ``python -m hpa_ens.dedup``
``Extra,Test[,...]``                   matches of test Ids to train/external Ids (team leak files)
=====================================  ===========================================================

Pairs from every file are merged with connected components (a union-find over a sparse graph), so
A~B in one file and B~C in another put A, B and C in one group. Chains through Ids outside ``ids``
(a test image matching two train images) still join the train images, because the merge happens
before the restriction to ``ids``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .validation import ContractError, check_id, read_csv_strings

__all__ = [
    "read_pairs",
    "merge_pairs",
    "read_groups",
    "group_codes",
    "group_members",
    "duplicate_groups",
]

_PAIR_HEADERS: tuple[tuple[str, str], ...] = (("id1", "id2"), ("ida", "idb"), ("extra", "test"))
_GROUP_HEADERS: tuple[tuple[str, str], ...] = (("id", "groupid"), ("id", "group"))


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def _find(columns: Sequence[str], wanted: tuple[str, str]) -> tuple[str, str] | None:
    normed = {_norm(c): c for c in columns}
    if all(w in normed for w in wanted):
        return normed[wanted[0]], normed[wanted[1]]
    return None


def read_pairs(path: str | os.PathLike, kinds: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Read one duplicate file as a list of ``(id_a, id_b)`` pairs.

    A group file (``ID,Group Id``) becomes a chain of pairs linking each member to the group's first
    member (same connected components).

    Parameters
    ----------
    path : path-like
        A CSV in one of the layouts of the module docstring.
    kinds : iterable of str, optional
        Keep only rows whose ``kind`` column is one of these (e.g. ``{"test-test"}``); the file must
        then have a ``kind`` column.

    Returns
    -------
    pairs : list of (str, str), in file order
    """
    path = Path(path)
    df = read_csv_strings(path, "a duplicate file with a header")
    columns = list(map(str, df.columns))
    if kinds is not None:
        kind_col = next((c for c in columns if _norm(c) == "kind"), None)
        if kind_col is None:
            raise ContractError(f"{path}: a 'kind' filter was given but the file has no kind column. Got columns {','.join(columns)} instead.")
        df = df[df[kind_col].isin(set(kinds))]

    for wanted in _PAIR_HEADERS:
        found = _find(columns, wanted)
        if found:
            a_col, b_col = found
            pairs = []
            for row, (a, b) in enumerate(zip(df[a_col].tolist(), df[b_col].tolist()), start=1):
                pairs.append((check_id(a.strip(), str(path), row), check_id(b.strip(), str(path), row)))
            return pairs

    for wanted in _GROUP_HEADERS:
        found = _find(columns, wanted)
        if found:
            id_col, group_col = found
            first_of: dict[str, str] = {}
            pairs = []
            for row, (member, group) in enumerate(zip(df[id_col].tolist(), df[group_col].tolist()), start=1):
                member = check_id(member.strip(), str(path), row)
                if group.strip() == "":
                    raise ContractError(f"{path}, row {row}: column {group_col!r} must hold a group id. Got '' instead.")
                head = first_of.setdefault(group.strip(), member)
                if head != member:
                    pairs.append((head, member))
            return pairs

    raise ContractError(
        f"{path}: unknown duplicate-file layout; expected a header 'ID,Group Id', 'Id1,Id2', 'Id_a,Id_b' "
        f"or 'Extra,Test'. Got {','.join(columns)} instead."
    )


def merge_pairs(pairs: Iterable[tuple[str, str]], ids: Sequence[str] | None = None) -> dict[str, int]:
    """Merge duplicate pairs into groups (connected components).

    Parameters
    ----------
    pairs : iterable of (str, str)
    ids : sequence of str, optional
        When given, the result covers exactly these Ids, in this order: Ids in no pair get a group of
        their own, Ids outside ``ids`` are dropped after merging, and group numbers follow the first
        appearance in ``ids``. When omitted, the result covers the Ids seen in ``pairs`` and group
        numbers follow the sorted order of each group's smallest Id.

    Returns
    -------
    groups : dict str -> int
        Group number 0..G-1 for each Id; two Ids are duplicates iff their numbers are equal.
    """
    pairs = list(pairs)
    universe: dict[str, int] = {}
    if ids is not None:
        for value in ids:
            universe.setdefault(value, len(universe))
    for a, b in pairs:
        universe.setdefault(a, len(universe))
        universe.setdefault(b, len(universe))
    n = len(universe)
    if pairs:
        rows = np.fromiter((universe[a] for a, _ in pairs), dtype=np.int64, count=len(pairs))
        cols = np.fromiter((universe[b] for _, b in pairs), dtype=np.int64, count=len(pairs))
        graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (rows, cols)), shape=(n, n))
        _, component = connected_components(graph, directed=False)
    else:
        component = np.arange(n)

    if ids is not None:
        keep = list(dict.fromkeys(ids))
    else:
        keep = sorted(universe)
    renumber: dict[int, int] = {}
    result: dict[str, int] = {}
    for value in keep:
        comp = int(component[universe[value]])
        result[value] = renumber.setdefault(comp, len(renumber))
    return result


def read_groups(paths: str | os.PathLike | Sequence[str | os.PathLike], ids: Sequence[str] | None = None,
                kinds: Iterable[str] | None = None) -> dict[str, int]:
    """Read one or more duplicate files and merge them into groups.

    Parameters
    ----------
    paths : path-like or sequence of path-like
    ids : sequence of str, optional
        Restrict to (and cover every one of) these Ids; see :func:`merge_pairs`.
    kinds : iterable of str, optional
        Keep only rows of these kinds (files with a ``kind`` column only).

    Returns
    -------
    groups : dict str -> int

    Examples
    --------
    >>> groups = read_groups(["leak/pedrodiamel_dupes.csv"], ids=train_ids)  # doctest: +SKIP
    >>> codes = group_codes(groups, train_ids)                               # doctest: +SKIP
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    pairs: list[tuple[str, str]] = []
    for path in paths:
        pairs.extend(read_pairs(path, kinds=kinds))
    return merge_pairs(pairs, ids=ids)


def group_codes(groups: dict[str, int], ids: Sequence[str]) -> np.ndarray:
    """Group numbers for ``ids`` as an int array of shape (n_ids,); Ids missing from ``groups`` get
    fresh numbers of their own (singletons)."""
    codes = np.empty(len(ids), dtype=np.int64)
    next_code = max(groups.values(), default=-1) + 1
    for i, value in enumerate(ids):
        code = groups.get(value)
        if code is None:
            code, next_code = next_code, next_code + 1
        codes[i] = code
    return codes


def group_members(groups: dict[str, int]) -> list[list[str]]:
    """Groups with two or more members, as lists of Ids (members in mapping order, groups by number)."""
    members: dict[int, list[str]] = {}
    for value, code in groups.items():
        members.setdefault(code, []).append(value)
    return [m for _, m in sorted(members.items()) if len(m) > 1]


def duplicate_groups(ids: Sequence[str], pairs: Iterable[tuple[str, str]], through_outside: bool = True) -> np.ndarray:
    """Duplicate-group number of each of ``ids``: connected components of the pair graph.

    The one grouping rule of the project (folds keep a group in one fold; submit averages a group of
    test images).

    Parameters
    ----------
    ids : sequence of str, length n
    pairs : iterable of (Id, Id)
    through_outside : bool
        True (folds): pairs naming Ids outside ``ids`` still join, so two train images that each
        duplicate one test image form a group. False (submit's test-test averaging): only pairs with
        both Ids in ``ids`` count.

    Returns
    -------
    codes : ndarray of shape (n,), int64; equal values = one group, numbered 0.. by first member in ``ids``
    """
    ids = list(ids)
    pairs = list(pairs)
    if not through_outside:
        known = set(ids)
        pairs = [(a, b) for a, b in pairs if a in known and b in known]
    return group_codes(merge_pairs(pairs, ids=ids), ids)
