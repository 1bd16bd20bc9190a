"""The submission vote: label by label, across submission files (the 4th place's way)."""

from __future__ import annotations

import numpy as np

from ..validation import check_param
from ._sets import normalize_weights

__all__ = ["vote"]


def vote(matrices, weights=None, threshold: float = 0.5, min_labels: int = 1) -> np.ndarray:
    """Weighted per-label vote across submissions.

    Label k is predicted for an image when the weight share of the submissions predicting it is
    strictly above ``threshold`` (0.5: a strict majority). An image left with fewer than
    ``min_labels`` labels gets its labels with the largest (non-zero) vote shares, class id breaking ties.

    Parameters
    ----------
    matrices : sequence of ndarray of shape (n_samples, n_classes), 0/1, aligned by Id
    weights : array-like of shape (n_submissions,), optional
    threshold : float in [0, 1)
    min_labels : int >= 0

    Returns
    -------
    y_pred : ndarray of shape (n_samples, n_classes), bool
    """
    arr = np.stack([np.asarray(m, dtype=np.float64) for m in matrices])
    w = normalize_weights(weights, len(arr))
    check_param("threshold", threshold, "a float in [0, 1)", 0.0 <= threshold < 1.0, "vote")
    share = np.tensordot(w, arr, axes=1)
    y_pred = share > threshold + 1e-12
    short = y_pred.sum(axis=1) < min_labels
    if short.any() and min_labels > 0:
        order = np.argsort(-share[short], axis=1, kind="stable")[:, :min_labels]
        top = np.zeros_like(y_pred[short])
        np.put_along_axis(top, order, True, axis=1)
        y_pred[short] |= top & (share[short] > 0)
    return y_pred
