"""From probabilities to label sets: thresholds plus the min/max-labels rule.

This is the single implementation used when tuning thresholds (scoring OOF) and when writing the
submission, so what was tuned is exactly what is applied.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_param, check_thresholds

_EPS = 1e-12


def apply_thresholds(
    probs: np.ndarray,
    thresholds,
    min_labels: int = 1,
    max_labels: int | None = None,
) -> np.ndarray:
    """Predict class k where ``probs[:, k] > thresholds[k]`` (strictly), then enforce label counts.

    An image with fewer than ``min_labels`` labels gets its best remaining classes by the ratio
    score / threshold; an image with more than ``max_labels`` keeps its top ones by that ratio.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
    thresholds : float or array-like of shape (n_classes,)
    min_labels : int, default 1
    max_labels : int or None, default None (no cap)

    Returns
    -------
    y_pred : ndarray of shape (n_samples, n_classes), bool
    """
    probs = np.asarray(probs, dtype=np.float64)
    thr = check_thresholds(thresholds, probs.shape[1])
    check_param("min_labels", min_labels, "an int in [0, n_classes]", isinstance(min_labels, (int, np.integer))
                and 0 <= min_labels <= probs.shape[1], "apply_thresholds")
    if max_labels is not None:
        check_param("max_labels", max_labels, "None or an int >= max(1, min_labels)",
                    isinstance(max_labels, (int, np.integer)) and max_labels >= max(1, min_labels), "apply_thresholds")
    y_pred = probs > thr
    if min_labels == 0 and max_labels is None:
        return y_pred
    counts = y_pred.sum(axis=1)
    fix = counts < min_labels
    if max_labels is not None:
        fix |= counts > max_labels
    if not fix.any():
        return y_pred
    ratio = probs[fix] / np.maximum(thr, _EPS)
    # Rank classes by (predicted first, then ratio) so topping up never drops a predicted class and
    # trimming keeps the strongest predicted ones.
    sub = y_pred[fix]
    order = np.lexsort((-ratio, ~sub), axis=-1)
    n_keep = sub.sum(axis=1)
    n_keep = np.maximum(n_keep, min_labels)
    if max_labels is not None:
        n_keep = np.minimum(n_keep, max_labels)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :].repeat(len(order), 0), axis=1)
    y_pred[fix] = ranks < n_keep[:, None]
    return y_pred
