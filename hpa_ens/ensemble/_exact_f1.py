"""The fast exact macro-F1 scorer of many candidate blends against one label matrix (Caruana, F1 weights).

:class:`_ExactMacroF1` gives the same float, to the last bit, as
:func:`hpa_ens.thresholds.exact_macro_f1`; :func:`_floors` lets a Caruana step sort only the rows that
can matter. Tested against ``exact_thresholds`` and a brute-force scikit-learn oracle
(tests/test_blend_exact.py).
"""

from __future__ import annotations

import numpy as np


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

