"""The cut machinery: every distinct cut of every class, the exact F1 search, matching, robust rare-class cuts.

Macro F1 is the mean of the K per-class F1 scores, and class k's F1 depends only on column k's threshold,
so each class has an exact optimum that a sort and two cumulative sums find over *every* distinct cut.

Conventions
-----------
- ``probs``: ``(n_samples, n_classes)`` float64 in [0, 1]; ``y_true``: same shape, 0/1.
- Class k is predicted when ``probs[:, k] > thresholds[k]`` (strictly), as in
  :func:`hpa_ens.thresholds.apply_thresholds`.
- A *cut* "predict the top m rows of a column" is only realisable where the m-th and (m+1)-th scores
  differ (rows with equal scores fall on the same side). Its threshold is placed midway between those
  two neighbouring distinct scores; "predict nothing" is the cut m = 0 with threshold
  :data:`NEVER` = 1.0 (no probability is > 1).

:func:`sorted_cuts` is the primitive every rule that counts rows above a cut builds on (the exact search,
matching, the bootstrap and plug-in rules of :mod:`hpa_ens.thresholds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..validation import ParameterError, check_indicator, check_param, check_probabilities

#: Threshold that never predicts (probabilities are <= 1 and prediction is strict ``>``).
NEVER = 1.0
#: Threshold below every probability, for the "predict all rows" cut when the lowest score is 0.
_BELOW_ZERO = -1e-12

__all__ = [
    "NEVER",
    "SortedCuts",
    "sorted_cuts",
    "check_probs",
    "check_shares",
    "CutCurves",
    "f1_curves",
    "exact_thresholds",
    "exact_macro_f1",
    "match_thresholds",
    "match_thresholds_within",
    "predicted_share",
    "distribution_gap",
    "bootstrap_thresholds",
    "shrink_thresholds",
    "robust_thresholds",
]


# ---------------------------------------------------------------------------------------- checks
def check_probs(probs, y_true=None, name: str = "probs"):
    """``probs`` as a non-empty float64 ``(n_samples, n_classes)`` array in [0, 1] (and ``y_true`` as bool).

    Parameters
    ----------
    probs : array-like of shape (n_samples, n_classes)
    y_true : array-like of shape (n_samples, n_classes), 0/1, optional
    name : str, what ``probs`` is called in errors

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes), float64
    y : ndarray of shape (n_samples, n_classes), bool (only when ``y_true`` is given)
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ParameterError(f"The '{name}' parameter must be a non-empty 2-D array (n_samples, n_classes). "
                             f"Got shape {probs.shape} instead.")
    probs = check_probabilities(probs, name)
    if y_true is None:
        return probs
    y = check_indicator(y_true, "y_true", probs.shape[1])
    if y.shape != probs.shape:
        raise ParameterError(f"The 'y_true' parameter must have the shape of '{name}' {probs.shape}. "
                             f"Got {y.shape} instead.")
    return probs, y


def check_shares(share, n_classes: int, name: str = "target_share", open_interval: bool = False) -> np.ndarray:
    """``share`` as a float64 array of ``n_classes`` finite shares in [0, 1] (``open_interval``: in (0, 1))."""
    arr = np.asarray(share, dtype=np.float64)
    inside = (arr > 0) & (arr < 1) if open_interval else (arr >= 0) & (arr <= 1)
    check_param(name, arr.tolist() if arr.size <= 8 else f"array of shape {arr.shape}",
                f"an array of {n_classes} shares in {'(0, 1)' if open_interval else '[0, 1]'}",
                arr.shape == (n_classes,) and bool(np.isfinite(arr).all()) and bool(inside.all()))
    return arr


# ---------------------------------------------------------------------------------- sorted cuts
def _midpoints(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """A threshold t with ``lower <= t < upper`` (elementwise, ``upper > lower``), near the midpoint.

    ``(a + b) / 2`` can round up to ``a`` when a and b are adjacent floats; then ``b`` itself is used
    (strict ``>`` keeps ``b`` on the negative side, ``a`` on the positive one).
    """
    mid = lower + (upper - lower) / 2.0
    return np.where(mid < upper, mid, lower)


class SortedCuts(NamedTuple):
    """Every column sorted in descending order, and the threshold of each cut "predict the top m rows".

    Attributes
    ----------
    scores : ndarray of shape (n_classes, n_samples), each row descending (class-major)
    aligned : tuple of ndarrays of shape (n_classes, n_samples), the other arrays in the same row order
    thresholds : ndarray of shape (n_classes, n_samples + 1); cut m predicts exactly the top m rows
    valid : ndarray of shape (n_classes, n_samples + 1), bool; False where rows m-1 and m tie (not realisable)
    """

    scores: np.ndarray
    aligned: tuple
    thresholds: np.ndarray
    valid: np.ndarray


def sorted_cuts(probs: np.ndarray, *aligned: np.ndarray) -> SortedCuts:
    """Sort every column of ``probs`` in descending order (``aligned`` arrays follow) and place every cut.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes), checked by the caller
    *aligned : ndarrays of shape (n_samples, n_classes), e.g. the labels, reordered like ``probs``

    Returns
    -------
    SortedCuts
    """
    # Sorting rows of the transposed (contiguous) array is ~2x faster than sorting along axis 0.
    cols = np.ascontiguousarray(probs.T)
    # Unstable quicksort is fine: within a run of tied scores no cut is realisable, so the order of
    # their labels never matters.
    order = np.argsort(cols, axis=1)[:, ::-1]
    scores = np.take_along_axis(cols, order, axis=1)
    others = tuple(np.take_along_axis(np.ascontiguousarray(np.asarray(a).T), order, axis=1) for a in aligned)
    n_classes, n = scores.shape
    thresholds = np.empty((n_classes, n + 1))
    valid = np.ones((n_classes, n + 1), dtype=bool)
    thresholds[:, 0] = NEVER
    upper, lower = scores[:, :-1], scores[:, 1:]
    valid[:, 1:n] = upper > lower
    thresholds[:, 1:n] = _midpoints(upper, lower)
    last = scores[:, -1]
    thresholds[:, n] = np.where(last > 0, last / 2.0, _BELOW_ZERO)
    # A score of exactly 1.0 cannot be separated from "never": cut m=0 then predicts nothing only
    # if no score equals 1 -- which holds, since prediction is strict and 1.0 > 1.0 is False.
    return SortedCuts(scores, others, thresholds, valid)


def _f1_of_cuts(tp_cum: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """F1 = 2 tp / (m + P) for every cut m (0 where m + P == 0), shape (n_classes, n + 1)."""
    m = np.arange(tp_cum.shape[1], dtype=np.float64)[None, :]
    denom = m + n_pos[:, None]
    return np.divide(2.0 * tp_cum, denom, out=np.zeros(tp_cum.shape), where=denom > 0)


# ------------------------------------------------------------------------------------- exact search
@dataclass
class CutCurves:
    """Every realisable cut of every class, with its OOF F1 (class-major arrays).

    Attributes
    ----------
    thresholds : ndarray of shape (n_classes, n_samples + 1)
    f1 : ndarray of shape (n_classes, n_samples + 1); -1 where the cut is not realisable (ties)
    tp : ndarray of shape (n_classes, n_samples + 1), true positives among the top m rows
    n_pos : ndarray of shape (n_classes,)
    scores_asc : ndarray of shape (n_classes, n_samples), each row ascending (for counting)
    """

    thresholds: np.ndarray
    f1: np.ndarray
    tp: np.ndarray
    n_pos: np.ndarray
    scores_asc: np.ndarray = field(repr=False)

    @property
    def n_samples(self) -> int:
        return self.scores_asc.shape[1]

    def f1_at(self, thresholds) -> np.ndarray:
        """OOF F1 of each class at arbitrary thresholds (class k at ``thresholds[k]``), shape (n_classes,)."""
        thr = np.asarray(thresholds, dtype=np.float64)
        m = self.n_samples - np.array([np.searchsorted(row, t, side="right")
                                       for row, t in zip(self.scores_asc, thr)])
        tp = self.tp[np.arange(len(thr)), m]
        denom = m + self.n_pos
        return np.divide(2.0 * tp, denom, out=np.zeros(len(thr)), where=denom > 0)


def f1_curves(probs, y_true) -> CutCurves:
    """F1 of every distinct cut of every class (sort + cumulative counts, vectorised over classes).

    Parameters
    ----------
    probs : array-like of shape (n_samples, n_classes)
    y_true : array-like of shape (n_samples, n_classes), 0/1

    Returns
    -------
    CutCurves
    """
    probs, y = check_probs(probs, y_true)
    cuts = sorted_cuts(probs, y)
    (y_desc,) = cuts.aligned
    n_classes, n = cuts.scores.shape
    tp = np.zeros((n_classes, n + 1), dtype=np.int64)
    np.cumsum(y_desc, axis=1, out=tp[:, 1:])
    n_pos = tp[:, -1].astype(np.float64)
    f1 = _f1_of_cuts(tp, n_pos)
    f1[~cuts.valid] = -1.0
    return CutCurves(thresholds=cuts.thresholds, f1=f1, tp=tp, n_pos=n_pos, scores_asc=cuts.scores[:, ::-1])


def exact_thresholds(y_true, probs, curves: CutCurves | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class thresholds maximising OOF F1 over every distinct cut.

    Among equally good cuts the one predicting fewest rows (highest threshold) wins, so a class with
    no positives gets :data:`NEVER` (every cut has F1 = 0).

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_classes), 0/1
    probs : array-like of shape (n_samples, n_classes)
    curves : CutCurves, optional
        Precomputed :func:`f1_curves` of the same inputs.

    Returns
    -------
    thresholds : ndarray of shape (n_classes,)
    best_f1 : ndarray of shape (n_classes,), the F1 of each class at its threshold
    """
    curves = f1_curves(probs, y_true) if curves is None else curves
    best = np.argmax(curves.f1, axis=1)
    rows = np.arange(curves.f1.shape[0])
    return curves.thresholds[rows, best].copy(), curves.f1[rows, best].copy()


def exact_macro_f1(y_true, probs) -> float:
    """Macro F1 of ``probs`` at each class's exact best threshold (tuned on these same rows: optimistic)."""
    return float(exact_thresholds(y_true, probs)[1].mean())


# ------------------------------------------------------------------------------- distribution match
def predicted_share(probs, thresholds) -> np.ndarray:
    """Share of rows with ``probs[:, k] > thresholds[k]`` per class (no min/max rule), shape (n_classes,)."""
    probs = np.asarray(probs, dtype=np.float64)
    return (probs > np.asarray(thresholds, dtype=np.float64)[None, :]).mean(axis=0)


def distribution_gap(test_share, target_share) -> float:
    """Relative L1 distance ``sum|test - target| / sum(target)`` between two class distributions."""
    test_share = np.asarray(test_share, dtype=np.float64)
    target_share = np.asarray(target_share, dtype=np.float64)
    total = target_share.sum()
    return float(np.abs(test_share - target_share).sum() / total) if total > 0 else 0.0


def match_thresholds(test_probs, target_share) -> np.ndarray:
    """Per class, the threshold whose predicted positive share on ``test_probs`` is nearest the target.

    The target count ``share * n_test`` is met as closely as ties allow (among equally near cuts the
    one predicting fewer rows wins); a target of 0 gives :data:`NEVER`.

    Parameters
    ----------
    test_probs : array-like of shape (n_test, n_classes)
    target_share : array-like of shape (n_classes,), in [0, 1]

    Returns
    -------
    thresholds : ndarray of shape (n_classes,)
    """
    test_probs = check_probs(test_probs, name="test_probs")
    share = check_shares(target_share, test_probs.shape[1])
    cuts = sorted_cuts(test_probs)
    n = cuts.scores.shape[1]
    distance = np.abs(np.arange(n + 1)[None, :] - share[:, None] * n)
    distance[~cuts.valid] = np.inf
    best = np.argmin(distance, axis=1)
    return cuts.thresholds[np.arange(len(share)), best]


def match_thresholds_within(curves: CutCurves, test_probs, target_share, tolerance: float) -> np.ndarray:
    """Per class, the OOF-F1-best threshold whose test share lies within a band around the target.

    The band is relative: ``|test_share - target| <= tolerance * target``. Candidates are every
    distinct OOF cut plus the matched threshold of :func:`match_thresholds`, which is always admissible
    (so a band too narrow for any OOF cut falls back to plain matching). Among equal F1, the candidate
    whose test share is nearest the target wins.

    Parameters
    ----------
    curves : CutCurves
        :func:`f1_curves` of the OOF probabilities and labels.
    test_probs : array-like of shape (n_test, n_classes)
    target_share : array-like of shape (n_classes,)
    tolerance : float >= 0

    Returns
    -------
    thresholds : ndarray of shape (n_classes,)
    """
    check_param("tolerance", tolerance, "a float >= 0", np.isscalar(tolerance) and float(tolerance) >= 0)
    test_probs = check_probs(test_probs, name="test_probs")
    share = check_shares(target_share, test_probs.shape[1])
    matched = match_thresholds(test_probs, share)
    matched_f1 = curves.f1_at(matched)
    test_asc = np.sort(test_probs, axis=0).T
    n_test = test_asc.shape[1]
    out = np.empty(len(share))
    for k in range(len(share)):
        ok = curves.f1[k] >= 0
        thr = np.append(curves.thresholds[k, ok], matched[k])
        f1 = np.append(curves.f1[k, ok], matched_f1[k])
        test_share = (n_test - np.searchsorted(test_asc[k], thr, side="right")) / n_test
        gap = np.abs(test_share - share[k])
        admissible = gap <= tolerance * share[k] + 1e-12
        admissible[-1] = True
        # Best F1 first, then nearest share, then (stable) the earlier = higher threshold.
        order = np.lexsort((gap, -f1, ~admissible))
        out[k] = thr[order[0]]
    return out


# --------------------------------------------------------------------------------- rare classes
def bootstrap_thresholds(probs, y_true, classes=None, n_boot: int = 100, seed: int = 0) -> np.ndarray:
    """Exact thresholds averaged over stratified bootstrap resamples (positives and negatives apart).

    Resampling positives and negatives separately keeps each resample's positive count equal to the
    original, so no resample lacks positives and the average is not dragged to :data:`NEVER`.

    Parameters
    ----------
    probs : array-like of shape (n_samples, n_classes)
    y_true : array-like of shape (n_samples, n_classes), 0/1
    classes : sequence of int, optional
        The classes to bootstrap (default all); the others keep their exact threshold.
    n_boot : int
    seed : int

    Returns
    -------
    thresholds : ndarray of shape (n_classes,)
    """
    probs, y = check_probs(probs, y_true)
    check_param("n_boot", n_boot, "an int >= 1", isinstance(n_boot, (int, np.integer)) and n_boot >= 1)
    thresholds, _ = exact_thresholds(y, probs)
    classes = range(probs.shape[1]) if classes is None else classes
    rng = np.random.default_rng(seed)
    for k in classes:
        pos, neg = np.flatnonzero(y[:, k]), np.flatnonzero(~y[:, k])
        if len(pos) == 0 or len(neg) == 0:
            continue
        # One column per resample: the exact search is vectorised across columns.
        idx = np.concatenate([rng.choice(pos, size=(len(pos), n_boot)), rng.choice(neg, size=(len(neg), n_boot))])
        labels = np.zeros(idx.shape, dtype=bool)
        labels[: len(pos)] = True
        boot_thr, _ = exact_thresholds(labels, probs[idx, k])
        thresholds[k] = float(boot_thr.mean())
    return thresholds


def shrink_thresholds(thresholds, best_f1, n_pos, strength: float = 50.0) -> np.ndarray:
    """Shrink each threshold toward F1*/2, the optimum for calibrated scores (Lipton et al., 2014).

    ``t' = w t + (1 - w) F1*/2`` with ``w = n_pos / (n_pos + strength)``: a class with many positives
    keeps its exact cut, a class with 11 positives moves most of the way to F1*/2.

    Parameters
    ----------
    thresholds, best_f1, n_pos : array-like of shape (n_classes,)
    strength : float >= 0, the positive count at which exact cut and F1*/2 weigh equally

    Returns
    -------
    thresholds : ndarray of shape (n_classes,)
    """
    thr = np.asarray(thresholds, dtype=np.float64)
    f1 = np.asarray(best_f1, dtype=np.float64)
    n_pos = np.asarray(n_pos, dtype=np.float64)
    check_param("strength", strength, "a float >= 0", np.isscalar(strength) and strength >= 0)
    weight = np.divide(n_pos, n_pos + strength, out=np.ones_like(n_pos), where=(n_pos + strength) > 0)
    shrunk = weight * thr + (1.0 - weight) * f1 / 2.0
    return np.where(n_pos > 0, shrunk, thr)  # no positives: keep "never predict"


#: The robust variants of the exact search for rare classes.
ROBUST_METHODS = ("bootstrap", "shrink", "none")


def robust_thresholds(probs, y_true, method: str = "bootstrap", rare_max: int = 100, n_boot: int = 100,
                      strength: float = 50.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exact thresholds, with the robust variant applied to classes with 1..rare_max-1 positives.

    Parameters
    ----------
    probs, y_true : array-like of shape (n_samples, n_classes)
    method : {"bootstrap", "shrink", "none"}
    rare_max : int, classes with fewer positives than this count as rare
    n_boot, seed : for ``"bootstrap"``
    strength : for ``"shrink"``

    Returns
    -------
    thresholds : ndarray of shape (n_classes,)
    rare : ndarray of shape (n_classes,), bool, the classes the variant was applied to
    """
    check_param("method", method, "one of 'bootstrap', 'shrink', 'none'", method in ROBUST_METHODS)
    probs, y = check_probs(probs, y_true)
    curves = f1_curves(probs, y)
    thresholds, best_f1 = exact_thresholds(y, probs, curves)
    rare = (curves.n_pos > 0) & (curves.n_pos < rare_max)
    if method == "none" or not rare.any():
        return thresholds, np.zeros_like(rare) if method == "none" else rare
    if method == "bootstrap":
        boot = bootstrap_thresholds(probs, y, classes=np.flatnonzero(rare), n_boot=n_boot, seed=seed)
        thresholds[rare] = boot[rare]
    else:
        shrunk = shrink_thresholds(thresholds, best_f1, curves.n_pos, strength)
        thresholds[rare] = shrunk[rare]
    return thresholds, rare
