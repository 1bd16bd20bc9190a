"""What a stage that combines prediction sets reads and writes: one reader and one writer for every command.

:func:`read_stage_inputs` reads the labels, the folds and several prediction sets, aligned by Id and
checked against each other before any work; :func:`write_stage_set` writes the stage's own prediction
set back through the contract; :func:`meta_inputs` says what the output's ``meta.json`` hashes.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..validation import ContractError
from .predictions import META_FILE, OOF_FILE, probs_frame, read_folds, read_meta, read_prediction_set, write_prediction_set

__all__ = ["StageInputs", "read_stage_inputs", "write_stage_set", "meta_inputs", "has_oof"]


def has_oof(folder) -> bool:
    """Whether a prediction-set folder holds out-of-fold rows (``oof.csv`` or ``oof.parquet``)."""
    folder = Path(folder)
    return (folder / OOF_FILE).exists() or (folder / "oof.parquet").exists()


@dataclass
class StageInputs:
    """Prediction sets read for a stage, aligned by Id.

    Attributes
    ----------
    task : hpa_ens.task.Task
    names : list of str, one unique name per set (its folder's name, suffixed when repeated)
    sets : list of PredictionSet
    test_ids : list of str, the first set's test Id order (every set aligned to it)
    test_list : list of ndarray of shape (n_test, K)
    train_ids : list of str or None (no labels given, or a set is test-only)
    Y : ndarray of shape (n_train, K), 0/1, or None
    folds : ndarray of shape (n_train,), int, or None
    oof_list : list of ndarray of shape (n_train, K), or None (no labels, or a set is test-only)
    warnings : list of str, what reading the labels warned about (rows with no label), for the caller to print
    """

    task: object
    names: list
    sets: list
    test_ids: list
    test_list: list
    train_ids: list | None = None
    Y: np.ndarray | None = None
    folds: np.ndarray | None = None
    oof_list: list | None = None
    warnings: list = field(default_factory=list)


def read_stage_inputs(pred_dirs: Sequence, labels=None, folds=None, task=None, needs_oof: str | None = None,
                      hint: str = "Give sets with oof.csv, or use a mean/rank blend.") -> StageInputs:
    """Read the labels, folds and prediction sets a stage combines; everything checked before any work.

    A set with a different class list than another (or than ``task``) is refused in one line naming
    both; a test-only set (no ``oof.csv``) is refused in one line when ``needs_oof`` names the stage
    that needs OOF rows (``hint`` says what to do instead). When any set is test-only, ``oof_list`` is
    None (the output is test-only). Warnings the labels raise (rows with no label) are kept in
    ``warnings``, not shown.
    """
    from ..labels import read_labels
    from ..task import check_same_task, load_task, task_from_meta

    task = load_task(task)
    folders = [Path(p) for p in pred_dirs]
    for folder in folders:
        if not folder.is_dir():
            raise ContractError(f"{folder}: not a prediction-set folder (expected oof.csv, test.csv, meta.json).")
    # Sets against each other first, so the message names the two sets that disagree.
    check_same_task([(str(f), task_from_meta(read_meta(f), str(f / META_FILE)) or task) for f in folders])
    test_only = not all(has_oof(f) for f in folders)
    if test_only and needs_oof:
        bad = next(f for f in folders if not has_oof(f))
        raise ContractError(f"{bad}: a test-only prediction set (no oof.csv); {needs_oof} needs OOF rows (out-of-fold predictions) to fit on. "
                            f"{hint}")
    train_ids = Y = None
    notes: list[str] = []
    if labels is not None and not test_only:
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            frame = read_labels(labels, task=task)
        notes = [str(w.message) for w in caught]
        train_ids, Y = frame.index.tolist(), frame.to_numpy()
    sets, test_ids = [], None
    for folder in folders:
        ps = read_prediction_set(folder, train_ids, test_ids, task=task)
        test_ids = ps.test.index.tolist() if test_ids is None else test_ids
        sets.append(ps)
    inputs = StageInputs(task, _unique_names(folders), sets, test_ids, [ps.test.to_numpy() for ps in sets],
                         train_ids, Y, warnings=notes)
    if train_ids is not None:
        inputs.oof_list = [ps.oof.to_numpy() for ps in sets]
        if folds is not None:
            inputs.folds = read_folds(folds, train_ids).to_numpy()
    return inputs


def _unique_names(folders) -> list[str]:
    names: list[str] = []
    for folder in folders:
        base = folder.name or str(folder)
        name, i = base, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.append(name)
    return names


def write_stage_set(out, inputs: StageInputs, oof, test, meta: dict) -> Path:
    """Write a stage's output prediction set (test-only when ``oof`` is None) and return its folder.

    Parameters
    ----------
    oof : ndarray of shape (n_train, K) aligned to ``inputs.train_ids``, or None
    test : ndarray of shape (n_test, K) aligned to ``inputs.test_ids``
    """
    oof_frame = None if oof is None else probs_frame(inputs.train_ids, oof)
    return Path(write_prediction_set(out, oof_frame, probs_frame(inputs.test_ids, test), meta, task=inputs.task))


def meta_inputs(inputs: StageInputs) -> dict:
    """name -> what ``build_meta`` hashes: the set's folder, or its test file for a test-only set."""
    return {n: (ps.path if has_oof(ps.path) else Path(ps.path) / "test.csv")
            for n, ps in zip(inputs.names, inputs.sets)}
