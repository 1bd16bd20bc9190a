"""Cross-fitted exact cuts: an OOF score that no set earns on the rows its cuts were tuned on.

:func:`~hpa_ens.thresholds.exact_macro_f1` tunes each class's cut on the very rows it scores, so it
flatters every set, and rare classes most (a class with 11 positives can nearly always be separated by
some cut). Cross-fitting keeps the folds apart: the rows of fold f are predicted with the exact cuts
tuned on the other folds, and the predictions of all folds together are scored once. That is the
number a leaderboard of prediction sets can rank on.

Every function takes ``(y_true, probs, folds)`` like its in-sample counterparts
(:func:`~hpa_ens.thresholds.exact_thresholds`, :func:`~hpa_ens.thresholds.exact_macro_f1`).
"""

from __future__ import annotations

import numpy as np

from ..metrics import per_class_f1
from ..validation import ParameterError
from ._cuts import check_probs, exact_thresholds

__all__ = ["cross_fitted_thresholds", "cross_fitted_predictions", "cross_fitted_exact_f1", "cross_fitted_macro_f1"]


def _check_folds(folds, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """``folds`` as an int array of length ``n_samples`` with at least two folds; returns it and its fold ids."""
    arr = np.asarray(folds)
    if arr.shape != (n_samples,) or arr.dtype.kind not in "iu":
        raise ParameterError(f"The 'folds' parameter must be an int array of shape ({n_samples},), one fold per row. "
                             f"Got {arr.dtype} of shape {arr.shape} instead.")
    ids = np.unique(arr)
    if len(ids) < 2:
        raise ParameterError(f"The 'folds' parameter must hold at least 2 folds to cross-fit. "
                             f"Got {len(ids)} fold{'s' if len(ids) != 1 else ''} instead.")
    return arr, ids


def cross_fitted_thresholds(y_true, probs, folds) -> np.ndarray:
    """For each fold, the exact per-class cuts tuned on the rows of every other fold.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_classes), 0/1
    probs : array-like of shape (n_samples, n_classes), in [0, 1]
    folds : array-like of shape (n_samples,), int, at least two distinct values

    Returns
    -------
    thresholds : ndarray of shape (n_folds, n_classes)
        Row i holds the cuts for the rows of fold ``np.unique(folds)[i]``.
    """
    probs, y = check_probs(probs, y_true)
    folds, ids = _check_folds(folds, len(probs))
    return np.stack([exact_thresholds(y[folds != f], probs[folds != f])[0] for f in ids])


def cross_fitted_predictions(y_true, probs, folds) -> np.ndarray:
    """Every row predicted at the exact cuts tuned on the other folds (class k where ``probs > cut``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_classes), 0/1
    probs : array-like of shape (n_samples, n_classes), in [0, 1]
    folds : array-like of shape (n_samples,), int, at least two distinct values

    Returns
    -------
    y_pred : ndarray of shape (n_samples, n_classes), bool
    """
    probs, y = check_probs(probs, y_true)
    folds, ids = _check_folds(folds, len(probs))
    thresholds = cross_fitted_thresholds(y, probs, folds)
    out = np.zeros(probs.shape, dtype=bool)
    for f, cuts in zip(ids, thresholds):
        rows = folds == f
        out[rows] = probs[rows] > cuts[None, :]
    return out


def cross_fitted_exact_f1(y_true, probs, folds) -> np.ndarray:
    """Per-class F1 of :func:`cross_fitted_predictions`, all folds pooled (scored once, not per fold).

    Returns
    -------
    f1 : ndarray of shape (n_classes,)
    """
    probs, y = check_probs(probs, y_true)
    return per_class_f1(y, cross_fitted_predictions(y, probs, folds))


def cross_fitted_macro_f1(y_true, probs, folds) -> float:
    """Macro F1 at cross-fitted exact cuts: the honest counterpart of :func:`exact_macro_f1`."""
    return float(cross_fitted_exact_f1(y_true, probs, folds).mean())
