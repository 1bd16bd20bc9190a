"""Blends of prediction sets: mean, rank, weighted (log-loss or macro-F1 weights) and Caruana selection.

Functions work on numpy arrays: ``probs_list`` is a sequence of ``(n_samples, K)`` arrays, one per
model, rows aligned by Id beforehand. The fast paths (average ranks, the log-loss gradient, the exact
macro-F1 scorer) give the plain loops' results bit for bit (tests/test_blend_exact.py).
"""

from __future__ import annotations

import numpy as np

from ..thresholds import exact_macro_f1
from ..utils import parallel_map, resolve_n_jobs
from ..validation import ParameterError, check_indicator, check_param, check_probabilities
from ._exact_f1 import _ExactMacroF1, _floors
from ._sets import _stack, _weighted, normalize_weights

METHODS = ("mean", "rank", "weighted", "caruana")
OBJECTIVES = ("logloss", "f1")
_EPS = 1e-7

__all__ = ["METHODS", "OBJECTIVES", "mean_blend", "rank_blend", "weighted_blend", "fit_weights", "caruana_weights",
           "blend"]


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
    return _weighted(arr, normalize_weights(weights, len(arr)))


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
    return _rank_blend(_stack(probs_list), weights, resolve_n_jobs(n_jobs))


def _rank_blend(arr: np.ndarray, weights, n_jobs: int) -> np.ndarray:
    """:func:`rank_blend` of a stacked (n_models, n_samples, n_classes) array."""
    n = arr.shape[1]
    w = normalize_weights(weights, len(arr))
    ranks = np.empty_like(arr)

    def rank_model(i):  # one model at a time: the sort's work arrays stay small
        ranks[i] = _average_ranks(np.ascontiguousarray(arr[i].T)).T

    parallel_map(rank_model, range(len(arr)), n_jobs)
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
    check_param("method", method, f"one of {METHODS}", method in METHODS, "blend")
    n_jobs = resolve_n_jobs(n_jobs)
    if method == "mean":
        w = normalize_weights(None, len(arr))
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
            fitted = parallel_map(fit, parts, n_jobs)
    else:
        fitted = parallel_map(fit, parts, n_jobs)
    if method == "caruana":
        fitted = [c / c.sum() for c in fitted]
    weights = fitted[0]
    if folds is None:
        return _weighted(arr, normalize_weights(weights, len(arr))), weights
    oof = np.empty(arr.shape[1:])
    for rows, w in zip(parts[1:], fitted[1:]):
        oof[~rows] = _weighted(np.compress(~rows, arr, axis=1), normalize_weights(w, len(arr)))
    return oof, weights


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
    if method == "rank":
        return _rank_blend(arr, None, resolve_n_jobs(n_jobs))
    return _weighted(arr, normalize_weights(None if method == "mean" else weights, len(arr)))

