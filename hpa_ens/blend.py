"""Blending prediction sets, and voting submission files.

Two commands in one module::

    python -m hpa_ens.blend --labels train.csv --pred DIR [DIR ...] --method mean|rank|weighted|caruana --out DIR
    python -m hpa_ens.blend --submissions a.csv b.csv ... [--weights 2 1 1] --out submission.csv

The first writes an ordinary prediction set (so thresholds, submit or a stack can take it) whose
``meta.json`` holds the weights; the second votes per label across submission files (the 4th place's
way) and writes a validated ``Id,Predicted`` file.

Core functions work on numpy arrays: ``probs_list`` is a sequence of ``(n_samples, K)`` arrays, one
per model, rows aligned by Id beforehand. In a notebook::

    from hpa_ens import Blender
    test = Blender(method="caruana").fit(oof_sets, Y).predict(test_sets)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .thresholds import exact_macro_f1
from .validation import check_indicator, check_param, check_probabilities
from .validation import ContractError, ParameterError

METHODS = ("mean", "rank", "weighted", "caruana")
OBJECTIVES = ("logloss", "f1")
_EPS = 1e-7

__all__ = [
    "METHODS",
    "mean_blend",
    "rank_blend",
    "weighted_blend",
    "fit_weights",
    "caruana_weights",
    "blend",
    "vote",
    "Blender",
    "as_arrays",
    "load_inputs",
    "main",
]


def _stack(probs_list) -> np.ndarray:
    arr = np.stack([np.asarray(p, dtype=np.float64) for p in probs_list])
    if arr.ndim != 3 or len(arr) == 0:
        raise ParameterError(f"The 'probs_list' parameter must hold one or more (n_samples, n_classes) arrays. "
                         f"Got shape {arr.shape} instead.")
    return arr


def _check_weights(weights, n_models: int) -> np.ndarray:
    if weights is None:
        return np.full(n_models, 1.0 / n_models)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_models,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ParameterError(f"The 'weights' parameter must be {n_models} non-negative numbers with a positive sum. "
                         f"Got {weights!r} instead.")
    return w / w.sum()


def _weighted(arr: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``clip(w @ arr)`` of a stacked (n_models, n_samples, n_classes) array."""
    return np.clip(np.tensordot(w, arr, axes=1), 0.0, 1.0)


def weighted_blend(probs_list, weights=None) -> np.ndarray:
    """Weighted mean of the models' probabilities.

    Parameters
    ----------
    probs_list : sequence of ndarray of shape (n_samples, n_classes)
    weights : array-like of shape (n_models,), optional (equal weights)

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes)
    """
    arr = _stack(probs_list)
    return _weighted(arr, _check_weights(weights, len(arr)))


def mean_blend(probs_list) -> np.ndarray:
    """Plain mean of the models' probabilities, shape (n_samples, n_classes)."""
    return weighted_blend(probs_list)


def _average_ranks(cols: np.ndarray) -> np.ndarray:
    """1-based average ranks (ties share their mean rank) along the last axis of a 2-d array.

    Equals ``scipy.stats.rankdata(cols, axis=-1, method="average")`` (a row holding NaN is all NaN):
    one unstable argsort per row (tied values get the same mean whatever their order), tie runs found
    by comparing sorted neighbours on the flattened array (row starts always open a run).
    """
    n_rows, n = cols.shape
    size = n_rows * n
    order = np.argsort(cols, axis=1)
    sorted_ = np.take_along_axis(cols, order, axis=1)
    new = np.empty((n_rows, n), dtype=bool)  # a tie run starts here
    new[:, 0] = True
    np.not_equal(sorted_[:, 1:], sorted_[:, :-1], out=new[:, 1:])
    new = new.reshape(-1)
    idx = np.arange(size)
    first = np.maximum.accumulate(np.where(new, idx, 0))
    last = np.empty(size, dtype=bool)  # a tie run ends here
    last[:-1] = new[1:]
    last[-1] = True
    end = np.minimum.accumulate(np.where(last, idx, size - 1)[::-1])[::-1]
    row_start = np.arange(0, size, n)[:, None]  # flat index of each row's first element
    # The mean of the 1-based ranks first+1 .. end+1 of a run, within its row (a half-integer: exact).
    mean_rank = (first.reshape(n_rows, n) + end.reshape(n_rows, n) - 2 * row_start + 2) / 2.0
    ranks = np.empty(size)
    ranks[(order + row_start).reshape(-1)] = mean_rank.reshape(-1)
    ranks = ranks.reshape(n_rows, n)
    ranks[np.isnan(sorted_[:, -1])] = np.nan  # NaN sorts last
    return ranks


def rank_blend(probs_list, weights=None, n_jobs: int | None = None) -> np.ndarray:
    """Per-class rank average, rescaled to [0, 1].

    Each model's column is replaced by its average rank (ties share a rank) divided by n - 1, then
    the (weighted) mean is taken. Ranks are taken within the rows given, so OOF and test are ranked
    separately: a threshold tuned on OOF ranks acts as a quantile on test.

    Parameters
    ----------
    probs_list : sequence of ndarray of shape (n_samples, n_classes)
    weights : array-like of shape (n_models,), optional (equal weights)
    n_jobs : int, optional
        Threads ranking the models; None, 0 or -1: every available CPU. The result does not depend on it.

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes), in [0, 1]
    """
    from .cli import resolve_n_jobs

    return _rank_blend(_stack(probs_list), weights, resolve_n_jobs(n_jobs))


def _rank_blend(arr: np.ndarray, weights, n_jobs: int) -> np.ndarray:
    """:func:`rank_blend` of a stacked (n_models, n_samples, n_classes) array."""
    n = arr.shape[1]
    w = _check_weights(weights, len(arr))
    ranks = np.empty_like(arr)

    def rank_model(i):  # one model at a time: the sort's work arrays stay small
        ranks[i] = _average_ranks(np.ascontiguousarray(arr[i].T)).T

    _parallel(rank_model, list(range(len(arr))), n_jobs)
    ranks -= 1.0  # the same floats as (rankdata(arr, axis=1) - 1.0) / (n - 1)
    ranks /= max(n - 1, 1)
    return _weighted(ranks, w)


def _logloss(Y: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(probs, _EPS, 1 - _EPS)
    return float(-np.mean(Y * np.log(p) + (1 - Y) * np.log1p(-p)))


def _is_indicator(Y: np.ndarray) -> bool:
    return bool(((Y == 0) | (Y == 1)).all())


def _logloss_and_grad(w: np.ndarray, Y: np.ndarray, arr: np.ndarray) -> tuple[float, np.ndarray]:
    """Log-loss of the blend ``w @ arr`` and its gradient in ``w``.

    The analytic gradient saves SLSQP one log-loss pass per model per step (its finite differences):
    with 10 full-size HPA sets the cross-fitted weighted blend went from 367 s to 29 s on a busy 2-core box.
    """
    blend = np.tensordot(w, arr, axes=1)
    p = np.clip(blend, _EPS, 1 - _EPS)
    loss = float(-np.mean(Y * np.log(p) + (1 - Y) * np.log1p(-p)))
    inside = (blend > _EPS) & (blend < 1 - _EPS)  # the clip is flat outside: no gradient there
    r = np.where(inside, (1 - Y) / (1 - p) - Y / p, 0.0)
    return loss, np.tensordot(arr, r, axes=([1, 2], [0, 1])) / r.size


class _LogLossGrad:
    """:func:`_logloss_and_grad` for 0/1 labels: the same floats to the last bit, in about half the time.

    Each element takes its one non-zero term (``log p`` or ``log1p(-p)``; ``-1/p`` or ``1/(1-p)``)
    instead of both (``x + -0.0 == x`` and ``0.0 - x == -x``), the blend is the same BLAS product as
    ``np.tensordot`` written into a kept buffer, and the work arrays are allocated once per fit.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes), 0/1
    arr : ndarray of shape (n_models, n_samples, n_classes), C-contiguous float64
    """

    def __init__(self, Y: np.ndarray, arr: np.ndarray):
        self.arr = arr
        self.rows = arr.reshape(len(arr), -1)  # what tensordot hands to BLAS
        self.positives = np.flatnonzero(Y)
        shape = arr.shape[1:]
        self.blend, self.p, self.work = np.empty((1, self.rows.shape[1])), np.empty(shape), np.empty(shape)
        self.inside, self.outside = np.empty(shape, dtype=bool), np.empty(shape, dtype=bool)

    def __call__(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        np.dot(w[None, :], self.rows, out=self.blend)  # tensordot(w, arr, axes=1) is this dot
        blend, p, work, pos = self.blend.reshape(self.p.shape), self.p, self.work, self.positives
        np.clip(blend, _EPS, 1 - _EPS, out=p)
        flat_p, flat_work = p.reshape(-1), work.reshape(-1)
        np.negative(p, out=work)
        np.log1p(work, out=work)
        flat_work[pos] = np.log(flat_p[pos])
        loss = float(-np.mean(work))
        np.greater(blend, _EPS, out=self.inside)
        np.less(blend, 1 - _EPS, out=self.outside)
        np.logical_and(self.inside, self.outside, out=self.inside)
        np.logical_not(self.inside, out=self.outside)  # the clip is flat outside: no gradient there
        np.subtract(1, p, out=work)
        np.divide(1.0, work, out=work)
        flat_work[pos] = -(1.0 / flat_p[pos])
        np.copyto(work, 0.0, where=self.outside)
        return loss, np.tensordot(self.arr, work, axes=([1, 2], [0, 1])) / work.size


def _score(Y: np.ndarray, probs: np.ndarray, objective: str) -> float:
    """Lower is better."""
    return _logloss(Y, probs) if objective == "logloss" else -exact_macro_f1(Y, probs)


class _ExactMacroF1:
    """Macro F1 at each class's exact best threshold, for many candidate blends against one label matrix.

    The same float, to the last bit, as :func:`hpa_ens.thresholds.exact_macro_f1`: the same per-class
    values ``2 tp / (m + P)`` of realisable cuts, maximised and averaged the same way. The work is
    shared and cut down: labels and counts are prepared once, nothing is re-validated, a candidate
    costs one in-place sort of int64 keys ``value bits << 1 | (1 - label)``, and F1 is computed at
    the positives only. For floats >= 0 the bit pattern orders like the value (the shift drops the
    sign bit, so -0.0 ties 0.0), and within a run of equal values the positives sort first.

    Why the positives suffice: a best cut's lowest predicted run holds a positive (else the cut just
    above it scores at least as well), so it is the cut just below that run's first row, a positive.
    Its true positives are P minus the positives below it, a count fixed by the labels alone. A
    positive that is not first in its run gives no realisable cut, but its value is that of the cut
    below its run with positives taken out (tp - j over m - j + P, lower as tp <= m): never the max.

    Parameters
    ----------
    y_cm : ndarray of shape (n_classes, n_samples), 0/1, class-major
    """

    def __init__(self, y_cm: np.ndarray):
        y = np.ascontiguousarray(y_cm, dtype=np.int64)
        n_classes, n = y.shape
        self.negative = 1 - y
        n_pos = y.sum(axis=1)
        pos = n_pos.astype(np.float64)
        self.f1_all = 2.0 * pos / (n + pos)  # predict every row (n >= 1: never 0/0)
        # Positives come out of flatnonzero class by class, n_pos[k] of them, ascending.
        cls = np.repeat(np.arange(n_classes), n_pos)
        starts = np.concatenate([[0], np.cumsum(n_pos)[:-1]]).astype(np.int64)
        below = np.arange(len(cls)) - starts[cls]  # positives below each one in its class
        self.tp2 = 2.0 * (n_pos[cls] - below)  # 2 tp of the cut just below it (exact integers)
        self.row_end = (cls + 1) * n + pos[cls]  # minus its flat index: m + P of that cut
        self.has_pos, self.segments = n_pos > 0, starts[n_pos > 0]
        self.keys = np.empty((n_classes, n), dtype=np.int64)
        self.is_pos = np.empty((n_classes, n), dtype=bool)
        self.f1 = np.empty(len(cls))
        self.n_pos = pos

    def per_class(self, cols: np.ndarray) -> np.ndarray:
        """Best F1 of each class, shape (n_classes,); ``cols``: C-contiguous (n_classes, n_samples) in [0, 1]."""
        keys, is_pos = self.keys, self.is_pos
        np.left_shift(cols.view(np.int64), 1, out=keys)
        np.bitwise_or(keys, self.negative, out=keys)
        keys.sort(axis=1)
        np.bitwise_and(keys, 1, out=is_pos.view(np.int8), casting="unsafe")
        np.logical_not(is_pos, out=is_pos)
        at = np.flatnonzero(is_pos)
        f1 = np.divide(self.tp2, self.row_end - at, out=self.f1)
        best = np.zeros(len(keys))  # 0.0: the "predict nothing" cut (and every class without positives)
        if len(f1):
            best[self.has_pos] = np.maximum.reduceat(f1, self.segments)
        return np.maximum(best, self.f1_all)

    def per_class_above(self, cols: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """:meth:`per_class`, sorting only each class's rows above ``floor[k]`` where that settles it.

        Same result as :meth:`per_class` for any floor (see :meth:`region_best`); a good floor only
        makes it faster.

        Parameters
        ----------
        cols : ndarray of shape (n_classes, n_samples), C-contiguous, in [0, 1]
        floor : ndarray of shape (n_classes,)
        """
        idx = np.flatnonzero(cols > floor[:, None])  # class by class
        best = self.region_best(idx, cols.reshape(-1)[idx])
        return self.per_class(cols) if best is None else best

    def region_best(self, idx: np.ndarray, values: np.ndarray) -> np.ndarray | None:
        """Best F1 of each class from the rows above a per-class floor, or None where that cannot settle it.

        A cut below a class's ``c`` rows above its floor predicts m > c rows, so its F1
        ``2 tp / (m + P)`` is at most ``2 P / (c + 1 + P)`` (rounding is monotone, so as floats too).
        Where that bound does not exceed the best cut among the ``c`` rows, no cut below can beat it.

        Parameters
        ----------
        idx : ndarray of int, ascending
            Flat class-major indices of every row above its class's floor (all of a class's rows
            with a value above the floor, no others).
        values : ndarray of float64, their values in [0, 1]
        """
        n_classes, n = self.keys.shape
        ends = np.searchsorted(idx, np.arange(1, n_classes + 1) * n)
        starts = np.concatenate([[0], ends[:-1]])
        count = ends - starts
        keys = values.view(np.int64) << 1
        keys |= self.negative.reshape(-1)[idx]
        for k in np.flatnonzero(count > 1):
            keys[starts[k]:ends[k]].sort()
        at = np.flatnonzero((keys & 1) == 0)  # the positives above the floors, class by class, ascending
        first = np.searchsorted(at, starts)
        n_above = np.searchsorted(at, ends) - first
        cls = np.repeat(np.arange(n_classes), n_above)
        # The cut just below a positive predicts the rows from it to its class's end: m = end - at,
        # tp = the positives among them; the same operands, so the same floats, as per_class.
        f1 = 2.0 * (n_above[cls] - (np.arange(len(at)) - first[cls])) / ((ends[cls] - at) + self.n_pos[cls])
        best = np.zeros(n_classes)
        has = n_above > 0
        if has.any():
            best[has] = np.maximum.reduceat(f1, first[has])
        bound = 2.0 * self.n_pos / (count + 1 + self.n_pos)
        if not ((count == n) | (bound <= best)).all():
            return None
        return np.maximum(best, self.f1_all)

    def __call__(self, cols: np.ndarray) -> float:
        return float(self.per_class(cols).mean())


def _floors(score: _ExactMacroF1, running: np.ndarray, size, best: np.ndarray, margin: float = 0.9) -> np.ndarray:
    """Per-class floors for :meth:`_ExactMacroF1.per_class_above` at the next Caruana step.

    A candidate is ``(running * size + p) / (size + 1) >= running * size / (size + 1)`` (p >= 0,
    rounding monotone). If its best F1 is near the running blend's (``best``), only cuts of at most
    ``P (2 / L - 1)`` rows with ``L = margin * best`` can matter, so the floor is the value that many
    rows above in that lower bound. A wrong guess costs time (a full sort), never a different result.
    """
    n = running.shape[1]
    low = np.sort(running * size / (size + 1), axis=1)
    guess = margin * best
    with np.errstate(divide="ignore"):
        rows = np.where(guess > 0, np.floor(score.n_pos * (2.0 / guess - 1.0)) + 1, n)
    rows = np.clip(rows, 1, n).astype(np.int64)
    return np.where(rows < n, low[np.arange(len(rows)), np.clip(n - rows - 1, 0, n - 1)], -np.inf)


def _class_major(arr: np.ndarray) -> np.ndarray:
    """(n_models, n_samples, n_classes) -> C-contiguous (n_models, n_classes, n_samples)."""
    return np.ascontiguousarray(arr.transpose(0, 2, 1))


def _check_probs_and_labels(arr: np.ndarray, Y, caller: str) -> np.ndarray:
    """The checks :func:`exact_macro_f1` made on every candidate, made once: Y 0/1 of the sets' shape, probabilities in [0, 1]."""
    y = check_indicator(Y, "Y", arr.shape[2])
    if y.shape != arr.shape[1:]:
        raise ParameterError(f"The 'Y' parameter of {caller} must have the shape of each set {arr.shape[1:]}. "
                             f"Got {y.shape} instead.")
    for i, probs in enumerate(arr):
        check_probabilities(probs, f"set {i}")
    return y


def _fit_weights(Y: np.ndarray, arr: np.ndarray, objective: str) -> np.ndarray:
    """:func:`fit_weights` on a stacked (n_models, n_samples, n_classes) float64 array."""
    from scipy.optimize import minimize

    Y = np.asarray(Y, dtype=np.float64)
    n_models = len(arr)
    if n_models == 1:
        return np.ones(1)
    start = np.full(n_models, 1.0 / n_models)
    if objective == "logloss":
        arr = np.ascontiguousarray(arr)
        fun, args = (_LogLossGrad(Y, arr), ()) if _is_indicator(Y) else (_logloss_and_grad, (Y, arr))
        result = minimize(fun, start, args=args, jac=True, method="SLSQP",
                          bounds=[(0.0, 1.0)] * n_models,
                          constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},),
                          options={"maxiter": 200, "ftol": 1e-10})
        w = np.clip(result.x, 0.0, None)
    else:
        score = _ExactMacroF1(_check_probs_and_labels(arr, Y, "fit_weights").T)

        def loss(z):
            w = np.abs(z)
            return 0.0 if w.sum() == 0 else -score(np.ascontiguousarray(np.tensordot(w / w.sum(), arr, axes=1).T))

        result = minimize(loss, start, method="Nelder-Mead",
                          options={"maxfev": 60 * n_models, "xatol": 1e-3, "fatol": 1e-6})
        w = np.abs(result.x)
        if loss(w) > loss(start):  # never return worse than the equal-weight start
            w = start
    return w / w.sum()


def fit_weights(Y, oof_list, objective: str = "logloss") -> np.ndarray:
    """Non-negative weights summing to 1 that minimise log-loss or maximise macro F1 on OOF.

    Log-loss is smooth: SLSQP on the simplex, with one BLAS thread (so the gradient's sum, and the
    weights, are the same floats on every machine). Macro F1 at exact per-class thresholds is piecewise
    constant: Nelder-Mead on unconstrained parameters mapped to the simplex by ``|z| / sum |z|``
    (the F1 at exact thresholds is scale-invariant), started from equal weights.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_classes), 0/1
    oof_list : sequence of ndarray of shape (n_samples, n_classes)
    objective : {"logloss", "f1"}

    Returns
    -------
    weights : ndarray of shape (n_models,)
    """
    import scipy.optimize  # noqa: F401 - loads scipy's own OpenBLAS first, so the limit reaches it too
    from threadpoolctl import threadpool_limits

    check_param("objective", objective, f"one of {OBJECTIVES}", objective in OBJECTIVES, "fit_weights")
    with threadpool_limits(limits=1, user_api="blas"):  # as in blend: one BLAS summation order everywhere
        return _fit_weights(Y, _stack(oof_list), objective)


def _caruana_f1(y_cm: np.ndarray, arr_cm: np.ndarray, n_iter: int) -> np.ndarray:
    """Caruana selection counts under exact macro F1, class-major: ``y_cm`` (K, n), ``arr_cm`` (n_models, K, n).

    The same candidates, floats and tie rule as the generic loop of :func:`caruana_weights`: a
    candidate is ``(running * size + p) / (size + 1)`` elementwise (the layout does not change a
    float), scored by :class:`_ExactMacroF1`.
    """
    score = _ExactMacroF1(y_cm)
    counts = np.zeros(len(arr_cm), dtype=np.int64)
    per_class = [score.per_class(p) for p in arr_cm]
    first = int(np.argmin([-float(f.mean()) for f in per_class]))
    counts[first] = 1
    best = per_class[first]
    running = arr_cm[first].copy()
    cand = np.empty_like(running)
    for _ in range(n_iter):
        size = counts.sum()
        floor = _floors(score, running, size, best)
        scaled = running * size
        per_class = []
        for p in arr_cm:
            np.add(scaled, p, out=cand)
            np.divide(cand, size + 1, out=cand)
            per_class.append(score.per_class_above(cand, floor))
        pick = int(np.argmin([-float(f.mean()) for f in per_class]))
        counts[pick] += 1
        best = per_class[pick]
        running = (running * size + arr_cm[pick]) / (size + 1)
    return counts


def _caruana_generic(Y: np.ndarray, arr: np.ndarray, n_iter: int, objective: str) -> np.ndarray:
    """Caruana selection counts, any objective of :func:`_score`, row-major ``arr`` (n_models, n, K)."""
    Y = np.asarray(Y, dtype=np.float64)
    counts = np.zeros(len(arr), dtype=np.int64)
    singles = [_score(Y, p, objective) for p in arr]
    first = int(np.argmin(singles))
    counts[first] = 1
    running = arr[first].copy()
    for _ in range(n_iter):
        size = counts.sum()
        trial = [_score(Y, (running * size + p) / (size + 1), objective) for p in arr]
        pick = int(np.argmin(trial))
        counts[pick] += 1
        running = (running * size + arr[pick]) / (size + 1)
    return counts


def caruana_weights(Y, oof_list, n_iter: int = 25, objective: str = "f1") -> np.ndarray:
    """Greedy ensemble selection with replacement (Caruana et al., 2004).

    Starts from the best single model, then repeatedly adds (with replacement) the model whose
    inclusion in the running mean scores best; ties go to the lowest model index. The weights are
    the selection counts over the total.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_classes), 0/1
    oof_list : sequence of ndarray of shape (n_samples, n_classes)
    n_iter : int, default 25
        Models added after the first.
    objective : {"f1", "logloss"}
        Macro F1 at exact per-class thresholds, or mean binary log-loss.

    Returns
    -------
    weights : ndarray of shape (n_models,)
    """
    _check_caruana_params(n_iter, objective)
    arr = _stack(oof_list)
    if objective == "logloss":
        counts = _caruana_generic(Y, arr, n_iter, objective)
    else:
        y = _check_probs_and_labels(arr, Y, "caruana_weights")
        counts = _caruana_f1(y.T, _class_major(arr), n_iter)
    return counts / counts.sum()


def _check_caruana_params(n_iter, objective) -> None:
    check_param("objective", objective, f"one of {OBJECTIVES}", objective in OBJECTIVES, "caruana_weights")
    check_param("n_iter", n_iter, "an int >= 0", isinstance(n_iter, (int, np.integer)) and n_iter >= 0,
                "caruana_weights")


def _fit_blend(arr: np.ndarray, method: str, Y, objective: str | None, n_iter: int, folds,
               n_jobs: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The OOF blend and the weights of one method on stacked OOF rows (the work of ``blend`` but the test rows).

    Weighted and caruana fit their weights once on all rows and, with ``folds``, once per fold on
    the other folds: independent fits run in ``n_jobs`` threads (numpy's sorts and BLAS release the
    GIL) and are gathered in order, so the result does not depend on ``n_jobs``.
    """
    from .cli import resolve_n_jobs

    check_param("method", method, f"one of {METHODS}", method in METHODS, "blend")
    n_jobs = resolve_n_jobs(n_jobs)
    if method == "mean":
        w = _check_weights(None, len(arr))
        return _weighted(arr, w), w
    if method == "rank":
        return _rank_blend(arr, None, n_jobs), None
    if Y is None:
        raise ParameterError(f"The 'Y' parameter of blend must be given for method {method!r}. Got None instead.")
    objective = objective or ("logloss" if method == "weighted" else "f1")
    if method == "weighted":
        check_param("objective", objective, f"one of {OBJECTIVES}", objective in OBJECTIVES, "fit_weights")
    else:
        _check_caruana_params(n_iter, objective)
    if method == "caruana" and objective == "f1":
        y_cm, arr_cm = _check_probs_and_labels(arr, Y, "blend").T, _class_major(arr)

        def fit(rows):
            if rows is None:
                return _caruana_f1(y_cm, arr_cm, n_iter)
            return _caruana_f1(np.compress(rows, y_cm, axis=1), np.compress(rows, arr_cm, axis=2), n_iter)
    else:
        Y = np.asarray(Y)

        def fit(rows):
            sub, y = (arr, Y) if rows is None else (np.compress(rows, arr, axis=1), Y[rows])
            if method == "weighted":
                return _fit_weights(y, sub, objective)
            return _caruana_generic(y, sub, n_iter, objective)

    parts = [None]  # all rows, then each fold's complement
    if folds is not None:
        folds = np.asarray(folds)
        parts += [folds != k for k in np.unique(folds)]
    if method == "weighted":
        # One BLAS thread per fit: the log-loss gradient's BLAS sum then has one order whatever the
        # machine (OpenBLAS splits it per thread), and SLSQP's tiny BLAS calls stop waiting on a
        # thread pool that a busy box does not schedule (a fit took 3.2 s with 2 BLAS threads, 0.46 s with 1).
        import scipy.optimize  # noqa: F401 - loads scipy's own OpenBLAS first, so the limit reaches it too
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            fitted = _parallel(fit, parts, n_jobs)
    else:
        fitted = _parallel(fit, parts, n_jobs)
    if method == "caruana":
        fitted = [c / c.sum() for c in fitted]
    weights = fitted[0]
    if folds is None:
        return _weighted(arr, _check_weights(weights, len(arr))), weights
    oof = np.empty(arr.shape[1:])
    for rows, w in zip(parts[1:], fitted[1:]):
        oof[~rows] = _weighted(np.compress(~rows, arr, axis=1), _check_weights(w, len(arr)))
    return oof, weights


def _parallel(func, items, n_jobs: int) -> list:
    """``[func(x) for x in items]``, in up to ``n_jobs`` threads, in order."""
    if n_jobs <= 1 or len(items) <= 1:
        return [func(x) for x in items]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=min(n_jobs, len(items)), backend="threading")(delayed(func)(x) for x in items)


def blend(oof_list, test_list, method: str = "mean", Y=None, objective: str | None = None,
          n_iter: int = 25, folds=None, n_jobs: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Blend OOF and test probabilities with one method.

    ``weighted`` and ``caruana`` fit their weights on all OOF rows for the test blend; with ``folds``
    the OOF blend is cross-fitted (fold k blended with weights fitted on the other folds), so the
    OOF score of the blend is not flattered by its own fitting.

    Parameters
    ----------
    n_jobs : int, optional
        Threads for the independent fits (and the rank blend's models); None, 0 or -1: every
        available CPU. The result does not depend on it.

    Returns
    -------
    oof, test : ndarrays of shape (n_train, n_classes) and (n_test, n_classes)
    weights : ndarray of shape (n_models,) or None (rank)
    """
    oof, weights = _fit_blend(_stack(oof_list), method, Y, objective, n_iter, folds, n_jobs)
    return oof, _predict_blend(_stack(test_list), method, weights, n_jobs), weights


def _predict_blend(arr: np.ndarray, method: str, weights, n_jobs) -> np.ndarray:
    from .cli import resolve_n_jobs

    if method == "rank":
        return _rank_blend(arr, None, resolve_n_jobs(n_jobs))
    return _weighted(arr, _check_weights(None if method == "mean" else weights, len(arr)))


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
    w = _check_weights(weights, len(arr))
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


# ------------------------------------------------------------------------------------- notebook API
def as_arrays(sets, ids=None, name: str = "sets", n_classes: int | None = None,
              n_sets: int | None = None) -> tuple[list[np.ndarray], list | None]:
    """Prediction sets as a list of float64 ``(n, K)`` arrays, DataFrames aligned by Id.

    Parameters
    ----------
    sets : list of ndarray or Id-indexed DataFrame, each (n, K)
    ids : sequence of str, optional
        The Id order DataFrames are aligned to (default: the first DataFrame's index).
    name : str
        The parameter's name in error messages.
    n_classes, n_sets : int, optional
        The K and the number of sets the caller expects (e.g. those seen at ``fit``).

    Returns
    -------
    arrays : list of ndarray of shape (n, K)
    ids : list of str or None (None when every set was a plain array)
    """
    import pandas as pd

    if isinstance(sets, (np.ndarray, pd.DataFrame)) or not len(sets):
        raise ParameterError(f"The '{name}' parameter must be a non-empty list of (n, K) arrays or DataFrames, one "
                             f"per model. Got {type(sets).__name__} instead.")
    if n_sets is not None and len(sets) != n_sets:
        raise ParameterError(f"The '{name}' parameter must hold {n_sets} sets (as at fit). Got {len(sets)} instead.")
    ids = None if ids is None else [str(i) for i in ids]
    arrays = []
    for i, s in enumerate(sets):
        if isinstance(s, pd.DataFrame):
            if ids is None:
                ids = [str(v) for v in s.index]
            from .validation import check_same_ids

            frame = s.copy()
            frame.index = [str(v) for v in frame.index]
            check_same_ids(frame.index.tolist(), ids, f"{name}[{i}]", "the first set's Ids")
            s = frame.loc[ids].to_numpy()
        arr = np.asarray(s, dtype=np.float64)
        if arr.ndim != 2:
            raise ParameterError(f"The '{name}' parameter must hold 2-d (n, K) arrays. Got shape {arr.shape} for "
                                 f"set {i} instead.")
        arrays.append(arr)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ContractError(f"The {name} have different shapes {sorted(shapes)}; every set must have the same rows "
                            f"and classes.")
    if n_classes is not None and arrays[0].shape[1] != n_classes:
        raise ContractError(f"The {name} have {arrays[0].shape[1]} classes, but {n_classes} were fitted.")
    return arrays, ids


class Blender:
    """Blending in scikit-learn's shape: ``Blender(method="caruana").fit(oof_sets, y).predict(test_sets)``.

    Parameters
    ----------
    method : {"mean", "rank", "weighted", "caruana"}
        ``mean`` and ``rank`` learn nothing (``fit`` may be given no labels); ``weighted`` and
        ``caruana`` fit weights on the OOF rows.
    objective : {"logloss", "f1"}, optional
        What ``weighted``/``caruana`` optimise (default: logloss for weighted, f1 for caruana).
    n_iter : int
        Caruana: models added after the first.
    n_jobs : int, optional
        Threads for the independent fits (all rows, then each fold's complement) and the rank
        blend's models; None, 0 or -1: every available CPU. The result does not depend on it.

    Attributes
    ----------
    weights_ : ndarray of shape (n_models,) or None (rank)
    oof_ : ndarray of shape (n_train, n_classes) or None
        The OOF blend (cross-fitted when ``folds`` was given to ``fit``).
    """

    def __init__(self, method: str = "mean", objective: str | None = None, n_iter: int = 25,
                 n_jobs: int | None = None):
        self.method, self.objective, self.n_iter, self.n_jobs = method, objective, n_iter, n_jobs

    @property
    def needs_oof(self) -> bool:
        return self.method in ("weighted", "caruana")

    def fit(self, oof_sets, y=None, folds=None) -> "Blender":
        """Fit the weights (weighted, caruana) on OOF sets; ``oof_sets`` may be None for mean/rank."""
        check_param("method", self.method, f"one of {METHODS}", self.method in METHODS, "Blender")
        if oof_sets is None:
            if self.needs_oof:
                raise ParameterError(f"The '{self.method}' blend fits weights on OOF rows; 'oof_sets' must be given. "
                                     f"Got None instead.")
            self.weights_, self.oof_, self.n_sets_ = None, None, None
            return self
        arrays, _ = as_arrays(oof_sets, getattr(y, "index", None), "oof_sets")
        if self.needs_oof and y is None:
            raise ParameterError(f"The 'y' parameter of Blender.fit must be given for method {self.method!r}. "
                                 f"Got None instead.")
        oof, weights = _fit_blend(_stack(arrays), self.method, None if y is None else np.asarray(y),
                                  self.objective, self.n_iter, folds, self.n_jobs)
        self.weights_, self.oof_, self.n_sets_ = weights, oof, len(arrays)
        return self

    def predict(self, test_sets) -> np.ndarray:
        """The blend of the test sets, shape (n_test, n_classes)."""
        if not hasattr(self, "n_sets_"):
            raise ParameterError("This Blender is not fitted yet. Call 'fit' first (mean/rank: fit(None)).")
        arrays, _ = as_arrays(test_sets, None, "test_sets", n_sets=self.n_sets_)
        return _predict_blend(_stack(arrays), self.method, self.weights_, self.n_jobs)


# ----------------------------------------------------------------------------------------------- I/O
from .contract.inputs import StageInputs as Inputs, meta_inputs, read_stage_inputs as load_inputs  # noqa: E402
from .contract.inputs import write_stage_set as write_set  # noqa: E402
from .contract import check_output_folder  # noqa: E402


def _vote_main(args, argv) -> int:
    from rich.table import Table

    from .cli import console
    from .validation import check_same_ids
    from .labels import read_sample_submission, read_submission, write_labels

    frames = [read_submission(p) for p in args.submissions]
    if args.sample_submission:
        ids = read_sample_submission(args.sample_submission).tolist()
        against = str(args.sample_submission)
    else:
        ids = frames[0].index.tolist()
        against = str(args.submissions[0])
    for path, frame in zip(args.submissions, frames):
        check_same_ids(frame.index.tolist(), ids, str(path), against)
    if args.weights is not None and len(args.weights) != len(frames):
        raise ParameterError(f"The '--weights' parameter must give one weight per submission ({len(frames)}). "
                         f"Got {len(args.weights)} instead.")
    matrices = [frame.loc[ids].to_numpy() for frame in frames]
    y_pred = vote(matrices, args.weights, args.vote_threshold, args.min_labels)
    write_labels(args.out, ids, y_pred.astype(np.uint8), column="Predicted")
    table = Table(title="Submission vote")
    for col in ("submission", "weight", "labels/image", "agreement with vote"):
        table.add_column(col, justify="right" if col != "submission" else "left")
    w = _check_weights(args.weights, len(frames))
    for path, m, wi in zip(args.submissions, matrices, w):
        agree = float((m.astype(bool) == y_pred).all(axis=1).mean())
        table.add_row(Path(path).name, f"{wi:.3f}", f"{m.sum(1).mean():.3f}", f"{agree:.3f}")
    table.add_row("[bold]vote[/bold]", "", f"{y_pred.sum(1).mean():.3f}", "")
    console.print(table)
    console.print(f"wrote {args.out} ({len(ids)} Ids)")
    return 0


def build_parser():
    """The ``python -m hpa_ens.blend`` argument parser."""
    import argparse

    from .cli import add_n_jobs_argument, add_task_argument, parser

    p = parser("python -m hpa_ens.blend", "Blend prediction sets (or vote submission files).")
    p.add_argument("--pred", nargs="+", help="prediction-set folders to blend (test-only sets: mean and rank only)")
    p.add_argument("--models", dest="pred", nargs="+", help=argparse.SUPPRESS)  # the old name of --pred
    p.add_argument("--labels", help="train labels Id,Target (needed for OOF rows; weighted and caruana fit on them)")
    p.add_argument("--method", choices=METHODS, default="mean")
    p.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help="what weighted/caruana optimise on OOF (default: logloss for weighted, f1 for caruana)")
    p.add_argument("--n-iter", type=int, default=25, help="caruana: models added after the first")
    p.add_argument("--folds", help="folds.csv: cross-fit weighted/caruana weights so the OOF blend is honest")
    add_task_argument(p)
    add_n_jobs_argument(p)
    p.add_argument("--name", default=None, help="name recorded in meta.json (default: the --out folder's name)")
    p.add_argument("--submissions", nargs="+", help="submission files Id,Predicted to vote across")
    p.add_argument("--weights", nargs="+", type=float, default=None, help="one vote weight per submission")
    p.add_argument("--vote-threshold", type=float, default=0.5,
                   help="predict a label when the weight share voting for it is above this")
    p.add_argument("--min-labels", type=int, default=1, help="top up images with fewer labels by vote share")
    p.add_argument("--sample-submission", help="Id order of the voted submission (default: the first file's)")
    p.add_argument("--out", required=True, help="prediction-set folder, or the submission CSV when voting")
    return p


def check_blend_args(args) -> None:
    """Which mode, and the flags it needs (one-line errors before any file is read)."""
    if args.submissions and args.pred:
        raise ParameterError("Give either --pred (blend prediction sets) or --submissions (vote). Got both instead.")
    if not args.submissions and not args.pred:
        raise ParameterError("The '--pred' parameter is required unless voting --submissions. Got none instead.")
    if args.pred and args.method in ("weighted", "caruana") and not args.labels:
        raise ParameterError(f"The '--labels' parameter is required by the {args.method} blend (it fits weights on "
                             f"OOF rows). Got none instead.")


def blend_sets(inputs: Inputs, method: str, objective=None, n_iter: int = 25, n_jobs: int | None = None) -> tuple:
    """Blend what :func:`load_inputs` read. Returns (oof or None, test, weights or None, OOF scores or {})."""
    blender = Blender(method, objective, n_iter, n_jobs).fit(inputs.oof_list, inputs.Y, inputs.folds)
    test = blender.predict(inputs.test_list)
    if inputs.oof_list is None:
        return None, test, blender.weights_, {}
    scores = {n: exact_macro_f1(inputs.Y, o) for n, o in zip(inputs.names, inputs.oof_list)}
    return blender.oof_, test, blender.weights_, {**scores, "blend": exact_macro_f1(inputs.Y, blender.oof_)}



def _blend_meta(args, argv, inputs: Inputs, weights, scores) -> dict:
    from .contract import build_meta

    params = {"method": args.method, "objective": args.objective, "n_iter": args.n_iter,
              "cross_fitted": inputs.folds is not None, "test_only": inputs.oof_list is None}
    weight_map = None if weights is None else {n: float(w) for n, w in zip(inputs.names, weights)}
    return build_meta("hpa_ens.blend", meta_inputs(inputs), folds=args.folds, params=params, argv=argv,
                      name=args.name or Path(args.out).name, weights=weight_map, task=inputs.task.to_meta(),
                      oof_macro_f1_exact_thresholds=scores or None)


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import console, resolve_n_jobs

    args = build_parser().parse_args(argv)
    argv_list = list(argv) if argv is not None else None
    check_blend_args(args)
    if args.submissions:
        return _vote_main(args, argv_list)
    check_output_folder(args.out)
    needs = f"the {args.method} blend" if args.method in ("weighted", "caruana") else None
    inputs = load_inputs(args.pred, args.labels, args.folds, args.task, needs_oof=needs)
    oof, test, weights, scores = blend_sets(inputs, args.method, args.objective, args.n_iter, resolve_n_jobs(args.n_jobs))
    write_set(args.out, inputs, oof, test, _blend_meta(args, argv_list, inputs, weights, scores))
    for i, n in enumerate(inputs.names):
        w = "" if weights is None else f"  weight {weights[i]:.3f}"
        console.print(f"{n}: OOF macro F1 at exact thresholds {scores[n]:.4f}{w}" if scores else f"{n}{w}")
    tail = f"OOF macro F1 at exact thresholds {scores['blend']:.4f}" if scores else "test rows only (no OOF rows)"
    console.print(f"[bold]{args.method} blend[/bold]: {tail} -> {args.out}")
    return 0


if __name__ == "__main__":
    from .cli import entry

    entry(main)
