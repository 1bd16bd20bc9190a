"""Per-class decision thresholds: exact F1 search, distribution matching, robust rare classes, Optuna coupling.

Macro F1 is the mean of the K per-class F1 scores, and class k's F1 depends only on column k's threshold,
so each class has an exact optimum that a sort and two cumulative sums find over *every* distinct cut.
What couples the classes (the min/max-labels rule, a global shift, the pull toward a target class
distribution) is left to a small Optuna search on top (:func:`tune_coupled`).

Conventions
-----------
- ``probs``: ``(n_samples, n_classes)`` float64 in [0, 1]; ``y_true``: same shape, 0/1.
- Class k is predicted when ``probs[:, k] > thresholds[k]`` (strictly), as in
  :func:`hpa_ens.decision.apply_thresholds`.
- A *cut* "predict the top m rows of a column" is only realisable where the m-th and (m+1)-th scores
  differ (rows with equal scores fall on the same side). Its threshold is placed midway between those
  two neighbouring distinct scores; "predict nothing" is the cut m = 0 with threshold
  :data:`NEVER` = 1.0 (no probability is > 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .validation import check_indicator, check_param, check_probabilities
from .decision import apply_thresholds
from .metrics import per_class_f1
from .validation import ParameterError

#: Threshold that never predicts (probabilities are <= 1 and prediction is strict ``>``).
NEVER = 1.0
#: Threshold below every probability, for the "predict all rows" cut when the lowest score is 0.
_BELOW_ZERO = -1e-12
_LOGIT_CLIP = 1e-6

__all__ = [
    "NEVER",
    "CutCurves",
    "f1_curves",
    "exact_thresholds",
    "match_thresholds",
    "match_thresholds_within",
    "predicted_share",
    "bootstrap_thresholds",
    "shrink_thresholds",
    "robust_thresholds",
    "coupled_thresholds",
    "evaluate_thresholds",
    "tune_coupled",
]


# ------------------------------------------------------------------------------------------ helpers
def _check_xy(probs, y_true=None, name: str = "probs"):
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


def _midpoints(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """A threshold t with ``lower <= t < upper`` (elementwise, ``upper > lower``), near the midpoint.

    ``(a + b) / 2`` can round up to ``a`` when a and b are adjacent floats; then ``b`` itself is used
    (strict ``>`` keeps ``b`` on the negative side, ``a`` on the positive one).
    """
    mid = lower + (upper - lower) / 2.0
    return np.where(mid < upper, mid, lower)


def _sorted_desc(probs: np.ndarray, *others: np.ndarray):
    """Sort every column in descending order; returns class-major ``(n_classes, n_samples)`` arrays."""
    # Sorting rows of the transposed (contiguous) array is ~2x faster than sorting along axis 0.
    cols = np.ascontiguousarray(probs.T)
    # Unstable quicksort is fine: within a run of tied scores no cut is realisable, so the order of
    # their labels never matters.
    order = np.argsort(cols, axis=1)[:, ::-1]
    out = [np.take_along_axis(cols, order, axis=1)]
    for other in others:
        out.append(np.take_along_axis(np.ascontiguousarray(np.asarray(other).T), order, axis=1))
    return out


def _cut_thresholds(scores_desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds and realisability of the cuts m = 0..n of descending class-major scores.

    Parameters
    ----------
    scores_desc : ndarray of shape (n_classes, n_samples), each row descending

    Returns
    -------
    thresholds : ndarray of shape (n_classes, n_samples + 1); cut m predicts exactly the top m rows
    valid : ndarray of shape (n_classes, n_samples + 1), bool; False where rows m-1 and m tie
    """
    n_classes, n = scores_desc.shape
    thresholds = np.empty((n_classes, n + 1))
    valid = np.ones((n_classes, n + 1), dtype=bool)
    thresholds[:, 0] = NEVER
    upper, lower = scores_desc[:, :-1], scores_desc[:, 1:]
    valid[:, 1:n] = upper > lower
    thresholds[:, 1:n] = _midpoints(upper, lower)
    last = scores_desc[:, -1]
    thresholds[:, n] = np.where(last > 0, last / 2.0, _BELOW_ZERO)
    # A score of exactly 1.0 cannot be separated from "never": cut m=0 then predicts nothing only
    # if no score equals 1 -- which holds, since prediction is strict and 1.0 > 1.0 is False.
    return thresholds, valid


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
    probs, y = _check_xy(probs, y_true)
    scores_desc, y_desc = _sorted_desc(probs, y)
    n_classes, n = scores_desc.shape
    tp = np.zeros((n_classes, n + 1), dtype=np.int64)
    np.cumsum(y_desc, axis=1, out=tp[:, 1:])
    n_pos = tp[:, -1].astype(np.float64)
    thresholds, valid = _cut_thresholds(scores_desc)
    f1 = _f1_of_cuts(tp, n_pos)
    f1[~valid] = -1.0
    return CutCurves(thresholds=thresholds, f1=f1, tp=tp, n_pos=n_pos, scores_asc=scores_desc[:, ::-1])


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


def _check_shares(target_share, n_classes: int) -> np.ndarray:
    share = np.asarray(target_share, dtype=np.float64)
    check_param("target_share", target_share, f"an array of {n_classes} shares in [0, 1]",
                share.shape == (n_classes,) and bool(np.isfinite(share).all())
                and bool(((share >= 0) & (share <= 1)).all()))
    return share


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
    test_probs = _check_xy(test_probs, name="test_probs")
    share = _check_shares(target_share, test_probs.shape[1])
    (scores_desc,) = _sorted_desc(test_probs)
    thresholds, valid = _cut_thresholds(scores_desc)
    n = scores_desc.shape[1]
    distance = np.abs(np.arange(n + 1)[None, :] - share[:, None] * n)
    distance[~valid] = np.inf
    best = np.argmin(distance, axis=1)
    return thresholds[np.arange(len(share)), best]


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
    test_probs = _check_xy(test_probs, name="test_probs")
    share = _check_shares(target_share, test_probs.shape[1])
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
    probs, y = _check_xy(probs, y_true)
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
    check_param("method", method, "one of 'bootstrap', 'shrink', 'none'", method in ("bootstrap", "shrink", "none"))
    probs, y = _check_xy(probs, y_true)
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


# -------------------------------------------------------------------------------- coupled (Optuna)
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def coupled_thresholds(base, matched, mix: float = 0.0, offset: float = 0.0, class_offsets=None) -> np.ndarray:
    """Blend exact and matched thresholds and shift them, in logit space.

    ``logit(t) = (1 - mix) logit(base) + mix logit(matched) + offset + class_offsets``. Working in logit
    space keeps thresholds inside (0, 1) and makes one offset mean the same for rare and common
    classes. A class never predicted by both ``base`` and ``matched`` stays at :data:`NEVER`.

    Parameters
    ----------
    base, matched : array-like of shape (n_classes,)
    mix : float in [0, 1]
    offset : float
    class_offsets : array-like of shape (n_classes,), optional

    Returns
    -------
    thresholds : ndarray of shape (n_classes,)
    """
    base = np.asarray(base, dtype=np.float64)
    matched = np.asarray(matched, dtype=np.float64)
    no_offsets = offset == 0 and (class_offsets is None or not np.any(class_offsets))
    if no_offsets and mix in (0, 1):
        # Exactly the input cuts (a logit round trip would move them by rounding, and clip 0 and 1).
        return (base if mix == 0 else matched).copy()
    z = (1.0 - mix) * _logit(base) + mix * _logit(matched) + offset
    if class_offsets is not None:
        z = z + np.asarray(class_offsets, dtype=np.float64)
    out = 1.0 / (1.0 + np.exp(-z))
    return np.where((base >= NEVER) & (matched >= NEVER), NEVER, out)


def evaluate_thresholds(oof_probs, y_true, thresholds, min_labels: int = 1, max_labels: int | None = None,
                        test_probs=None) -> dict:
    """Score thresholds on OOF after the min/max-labels rule; predicted shares on test.

    Returns
    -------
    dict with ``macro_f1`` (float), ``per_class_f1`` (n_classes,), ``oof_share`` (n_classes,) and,
    when ``test_probs`` is given, ``test_share`` (n_classes,) and ``test_labels_per_image`` (float).
    """
    y_pred = apply_thresholds(oof_probs, thresholds, min_labels, max_labels)
    f1 = per_class_f1(y_true, y_pred)
    out = {"macro_f1": float(f1.mean()), "per_class_f1": f1, "oof_share": y_pred.mean(axis=0)}
    if test_probs is not None:
        test_pred = apply_thresholds(test_probs, thresholds, min_labels, max_labels)
        out["test_share"] = test_pred.mean(axis=0)
        out["test_labels_per_image"] = float(test_pred.sum(axis=1).mean())
    return out


def distribution_gap(test_share, target_share) -> float:
    """Relative L1 distance ``sum|test - target| / sum(target)`` between two class distributions."""
    test_share = np.asarray(test_share, dtype=np.float64)
    target_share = np.asarray(target_share, dtype=np.float64)
    total = target_share.sum()
    return float(np.abs(test_share - target_share).sum() / total) if total > 0 else 0.0


def tune_coupled(
    oof_probs,
    y_true,
    test_probs,
    base,
    matched,
    target_share,
    *,
    n_trials: int = 100,
    seed: int = 0,
    tolerance: float | None = 0.25,
    min_labels_range: tuple[int, int] = (0, 1),
    max_labels_range: tuple[int, int] = (1, 5),
    offset_range: float = 1.0,
    class_offset_range: float = 0.0,
    storage=None,
    study_name: str | None = None,
    show_progress: bool = False,
) -> dict:
    """Optuna TPE over what couples the classes, maximising OOF macro F1 after the min/max rule.

    Searched: ``mix`` (exact → matched, [0, 1]), a global logit ``offset`` (±offset_range),
    ``min_labels`` and ``max_labels`` (int ranges) and, when ``class_offset_range`` > 0, one small logit
    offset per class around its base cut. With ``tolerance``, a trial is feasible only when the
    predicted test distribution is close to the target: ``distribution_gap(test_share, target) <=
    tolerance``, passed to TPE through ``trial.set_constraint`` (Optuna 5).

    Parameters
    ----------
    oof_probs, y_true : array-like of shape (n_samples, n_classes)
    test_probs : array-like of shape (n_test, n_classes)
    base, matched, target_share : array-like of shape (n_classes,)
    n_trials : int, trials run by this call (a shared study may hold more)
    seed : int, TPE seed
    storage : None, str or optuna storage; several processes may share one (e.g. a JournalStorage)
    study_name : str, required with a storage to share

    Returns
    -------
    dict with ``thresholds`` (n_classes,), ``min_labels``, ``max_labels``, ``params`` (the best
    feasible trial's), ``value``, ``feasible`` (bool), ``n_trials_total``, ``best_trial`` (number)
    """
    import optuna

    oof_probs, y = _check_xy(oof_probs, y_true, "oof_probs")
    test_probs = _check_xy(test_probs, name="test_probs")
    n_classes = oof_probs.shape[1]
    base = np.asarray(base, dtype=np.float64)
    matched = np.asarray(matched, dtype=np.float64)
    target = _check_shares(target_share, n_classes)
    check_param("n_trials", n_trials, "an int >= 1", isinstance(n_trials, (int, np.integer)) and n_trials >= 1)
    lo_min, hi_min = min_labels_range
    lo_max, hi_max = max(max_labels_range[0], 1, lo_min), max_labels_range[1]
    check_param("max_labels_range", max_labels_range, "a range (lo, hi) with hi >= max(1, min_labels)", hi_max >= max(lo_max, hi_min, 1))

    def params_to_thresholds(params: dict) -> np.ndarray:
        class_off = None
        if class_offset_range > 0:
            class_off = np.array([params.get(f"offset_{k}", 0.0) for k in range(n_classes)])
        return coupled_thresholds(base, matched, params.get("mix", 0.0), params.get("offset", 0.0), class_off)

    def objective(trial) -> float:
        params = {
            "mix": trial.suggest_float("mix", 0.0, 1.0),
            "offset": trial.suggest_float("offset", -offset_range, offset_range),
            "min_labels": trial.suggest_int("min_labels", lo_min, hi_min),
        }
        params["max_labels"] = trial.suggest_int("max_labels", max(lo_max, params["min_labels"], 1), hi_max)
        if class_offset_range > 0:
            for k in range(n_classes):
                params[f"offset_{k}"] = trial.suggest_float(f"offset_{k}", -class_offset_range, class_offset_range)
        thr = params_to_thresholds(params)
        result = evaluate_thresholds(oof_probs, y, thr, params["min_labels"], params["max_labels"], test_probs)
        gap = distribution_gap(result["test_share"], target)
        trial.set_user_attr("distribution_gap", gap)
        if tolerance is not None:
            trial.set_constraint("distribution_gap", gap - tolerance)
        return result["macro_f1"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, n_trials))
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                    sampler=sampler, load_if_exists=storage is not None)
    except optuna.exceptions.DuplicatedStudyError:
        # Two workers created the study at the same instant on an RDB storage: the loser loads it.
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    # The first trial is the plain exact (or robust) cut with the requested label rule: TPE starts from
    # the known-good point instead of finding it again.
    if not study.trials:
        study.enqueue_trial({"mix": 0.0, "offset": 0.0, "min_labels": hi_min, "max_labels": hi_max}
                            | ({f"offset_{k}": 0.0 for k in range(n_classes)} if class_offset_range > 0 else {}))
    study.optimize(objective, n_trials=n_trials, show_progress_bar=show_progress)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    feasible = [t for t in complete if all(v <= 0 for v in t.constraints.values())]
    pool = feasible or complete
    # Best value, then lowest trial number: deterministic whatever the storage order.
    best = max(pool, key=lambda t: (t.value, -t.number))
    params = dict(best.params)
    return {
        "thresholds": params_to_thresholds(params),
        "min_labels": int(params["min_labels"]),
        "max_labels": int(params["max_labels"]),
        "params": params,
        "value": float(best.value),
        "feasible": bool(feasible),
        "distribution_gap": float(best.user_attrs.get("distribution_gap", np.nan)),
        "n_trials_total": len(complete),
        "best_trial": int(best.number),
    }
