"""From probabilities to label sets: thresholds plus the min/max-labels rule, and the row fill rules.

This is the single implementation used when tuning thresholds (scoring OOF) and when writing the
submission, so what was tuned is exactly what is applied.
"""

from __future__ import annotations

import numpy as np

from ..contract.thresholds import DEFAULT_RANK_RULE, RANK_RULES
from ..utils import logit
from ..validation import ParameterError, check_param, check_thresholds
from ._calibration import Posterior

__all__ = ["RANK_RULES", "DEFAULT_RANK_RULE", "default_rank_rule", "rank_scores", "apply_thresholds",
           "resolve_fill_rule", "oof_predictions"]

_EPS = 1e-12


def default_rank_rule(has_oof: bool, has_target: bool) -> str:
    """The fill rule ``benchmarks/shift.py`` ranks first (docs/thresholds.md).

    ``posterior`` with OOF rows (to calibrate on) and a target share (the shift it corrects for); else
    ``ratio``, which is as good as any rule without a shift and needs nothing but the thresholds.
    """
    return "posterior" if has_oof and has_target else DEFAULT_RANK_RULE


def _check_posterior(posterior, n_classes: int) -> None:
    check_param("posterior", None if posterior is None else type(posterior).__name__,
                "a fitted hpa_ens.thresholds.Posterior when rank_by='posterior'",
                posterior is not None and getattr(posterior, "n_classes", None) == n_classes, "apply_thresholds")


def rank_scores(probs: np.ndarray, thresholds: np.ndarray, rank_by: str = DEFAULT_RANK_RULE,
                posterior=None) -> np.ndarray:
    """The score by which :func:`apply_thresholds` orders classes when it tops up or trims a row.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
    thresholds : ndarray of shape (n_classes,)
    rank_by : one of :data:`RANK_RULES`
    posterior : hpa_ens.thresholds.Posterior, required for ``rank_by="posterior"``

    Returns
    -------
    ndarray of shape (n_samples, n_classes)
    """
    check_param("rank_by", rank_by, f"one of {RANK_RULES}", rank_by in RANK_RULES, "apply_thresholds")
    if rank_by == "posterior":
        _check_posterior(posterior, probs.shape[1])
        return posterior.transform(probs)
    if rank_by == "ratio":
        return probs / np.maximum(thresholds, _EPS)
    if rank_by == "margin":
        return probs - thresholds
    if rank_by == "prob":
        return probs.copy()
    return logit(probs) - logit(thresholds)


def apply_thresholds(
    probs: np.ndarray,
    thresholds,
    min_labels: int = 1,
    max_labels: int | None = None,
    rank_by: str = DEFAULT_RANK_RULE,
    posterior=None,
) -> np.ndarray:
    """Predict class k where ``probs[:, k] > thresholds[k]`` (strictly), then enforce label counts.

    An image with fewer than ``min_labels`` labels gets its best remaining classes by ``rank_by``
    (default the ratio score / threshold; :func:`default_rank_rule` says which rule ``benchmarks/shift.py``
    ranks first); an image with more than ``max_labels`` keeps its top ones by the same score.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
    thresholds : float or array-like of shape (n_classes,)
    min_labels : int, default 1
    max_labels : int or None, default None (no cap)
    rank_by : {"ratio", "margin", "logit", "prob", "posterior"}, default "ratio"
    posterior : hpa_ens.thresholds.Posterior, required for ``rank_by="posterior"``

    Returns
    -------
    y_pred : ndarray of shape (n_samples, n_classes), bool
    """
    probs = np.asarray(probs, dtype=np.float64)
    thr = check_thresholds(thresholds, probs.shape[1])
    check_param("rank_by", rank_by, f"one of {RANK_RULES}", rank_by in RANK_RULES, "apply_thresholds")
    if rank_by == "posterior":  # checked before any work, even when no row needs it
        _check_posterior(posterior, probs.shape[1])
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
    ratio = rank_scores(probs[fix], thr, rank_by, posterior)
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


def resolve_fill_rule(rank_by: str | None, oof=None, y=None, target=None) -> tuple[str, Posterior | None]:
    """The fill rule to use and, for ``posterior``, its calibration.

    Parameters
    ----------
    rank_by : one of :data:`RANK_RULES`, or None for :func:`default_rank_rule`
    oof, y : array-like of shape (n, K), the OOF rows and their labels, optional
    target : array-like of shape (K,), optional (without it the calibration corrects toward the train shares,
        i.e. not at all)

    Returns
    -------
    rank_by : str
    posterior : Posterior fitted on ``oof``/``y`` toward ``target`` for ``posterior``, else None
    """
    rank_by = rank_by or default_rank_rule(oof is not None, target is not None)
    check_param("rank_by", rank_by, f"one of {RANK_RULES}", rank_by in RANK_RULES)
    if rank_by != "posterior":
        return rank_by, None
    if oof is None:
        raise ParameterError("The 'rank_by' parameter must name a rule other than posterior without OOF rows: "
                             "posterior calibrates on OOF rows. Got 'posterior' instead.")
    return rank_by, Posterior.fit(oof, y, target)


def oof_predictions(oof, y, target, thresholds, min_labels, max_labels, rank_by, n_splits: int = 5) -> np.ndarray:
    """OOF label sets ``(n, K)`` under the thresholds and the fill rule, for reports.

    A ``posterior`` fill is cross-fitted: each of ``n_splits`` interleaved parts of the OOF rows is filled by
    a calibration fitted on the other parts, so the reported OOF F1 is not flattered by a calibration that
    saw the very rows it fills (rows are independent under the rule, so the parts simply concatenate).
    """
    if rank_by != "posterior":
        return apply_thresholds(oof, thresholds, min_labels, max_labels, rank_by=rank_by)
    out = np.zeros(oof.shape, dtype=bool)
    part = np.arange(len(oof)) % n_splits
    for j in range(min(n_splits, len(oof))):
        rows = part == j
        posterior = Posterior.fit(oof[~rows], y[~rows], target) if (~rows).any() else None
        out[rows] = apply_thresholds(oof[rows], thresholds, min_labels, max_labels, rank_by, posterior)
    return out
