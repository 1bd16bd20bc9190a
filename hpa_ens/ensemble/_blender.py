"""The blend as a scikit-learn estimator: ``Blender(method="caruana").fit(oof_sets, y, folds).predict(test_sets)``."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..utils import resolve_n_jobs
from ..validation import ParameterError, check_param
from ._blend import METHODS, OBJECTIVES, _fit_blend, _predict_blend
from ._sets import SetsEstimator, _stack

__all__ = ["Blender"]


class Blender(SetsEstimator):
    """Blending prediction sets in scikit-learn's shape.

    Parameters
    ----------
    method : {"mean", "rank", "weighted", "caruana"}, default "mean"
        ``mean`` and ``rank`` learn nothing (``fit`` may be given no labels, or ``X=None``); ``weighted``
        and ``caruana`` fit weights on the OOF rows (all of them, for ``predict``; with ``folds``, also once
        per fold on the other folds, so that ``oof_`` is cross-fitted). With ``folds=None`` their ``oof_`` is
        the OOF rows blended with the weights fitted on those very rows: in-sample, so a score computed on it
        flatters the blend (``hpa-ens blend`` refuses weighted and caruana without ``--folds``).
    objective : {"logloss", "f1"} or None, default None
        What ``weighted``/``caruana`` optimise: None means log-loss for weighted, macro F1 at exact
        per-class thresholds for caruana. Refused with ``mean`` and ``rank``, which optimise nothing.
    n_iter : int >= 0, default 25
        Caruana: models added after the first (checked whatever the method; only caruana selects).
    n_jobs : int or None, default None
        Threads for the independent fits (all rows, then each fold's complement) and the rank blend's
        models, in joblib's convention; None, 0 or -1: every available CPU. The result does not depend on it.

    Attributes
    ----------
    weights_ : ndarray of shape (n_sets,) or None
        The blend's weights (equal for mean; None for rank, which averages ranks).
    oof_ : ndarray of shape (n_train, K) or None
        The OOF blend: cross-fitted when ``folds`` was given to ``fit``; with ``folds=None``, the rows blended
        with the weights fitted on them (in-sample for weighted and caruana; mean and rank fit nothing, so
        theirs is the same either way). None after ``fit(None)``.
    n_sets_, n_classes_, n_features_in_ : int or None
        The sets, classes and columns (``n_sets_ * n_classes_``) seen at ``fit``; None after ``fit(None)``.

    Examples
    --------
    >>> test = Blender(method="caruana").fit(oof_sets, Y, folds).predict(test_sets)  # doctest: +SKIP
    >>> test = Blender("mean").fit(None).predict(test_sets)                          # doctest: +SKIP
    """

    def __init__(self, method: str = "mean", objective: str | None = None, n_iter: int = 25,
                 n_jobs: int | None = None):
        self.method = method
        self.objective = objective
        self.n_iter = n_iter
        self.n_jobs = n_jobs

    @property
    def needs_oof(self) -> bool:
        """Whether the method fits weights on OOF rows (weighted, caruana)."""
        return self.method in ("weighted", "caruana")

    def _check_params(self) -> None:
        check_param("method", self.method, f"one of {METHODS}", self.method in METHODS, "Blender")
        check_param("objective", self.objective, f"one of {OBJECTIVES} or None",
                    self.objective is None or self.objective in OBJECTIVES, "Blender")
        if self.objective is not None and not self.needs_oof:
            raise ParameterError(f"The 'objective' parameter of Blender applies to the weighted and caruana blends; "
                                 f"the {self.method} blend optimises nothing. Got {self.objective!r} instead of None.")
        check_param("n_iter", self.n_iter, "an int >= 0",
                    isinstance(self.n_iter, (int, np.integer)) and not isinstance(self.n_iter, bool)
                    and self.n_iter >= 0, "Blender")
        resolve_n_jobs(self.n_jobs)  # refuses a non-integer

    def fit(self, X, y=None, folds=None) -> "Blender":
        """Fit the weights (weighted, caruana) on OOF sets.

        Parameters
        ----------
        X : list of (n_train, K) arrays or Id-indexed DataFrames, array of shape (n_train, n_sets * K), or None
            The OOF sets (see :func:`~hpa_ens.ensemble.sets_from_input`); DataFrames are aligned by Id
            (to ``y``'s index when ``y`` is a DataFrame, else to the first set's). None for mean/rank.
        y : array-like or DataFrame of shape (n_train, K), 0/1, optional
            Required by weighted and caruana, and by a 2-d ``X`` (K is its column count).
        folds : array-like of shape (n_train,), optional
            Fold of each OOF row: weighted/caruana weights are cross-fitted so ``oof_`` is honest. None:
            ``oof_`` is blended with the weights fitted on every row (in-sample, see ``method``).

        Returns
        -------
        self
        """
        self._check_params()
        if X is None:
            if self.needs_oof:
                raise ParameterError(f"The '{self.method}' blend fits weights on OOF rows; 'X' (the OOF sets) must be "
                                     f"given. Got None instead.")
            self.weights_, self.oof_ = None, None
            self.n_sets_ = self.n_classes_ = self.n_features_in_ = None
            return self
        if self.needs_oof and y is None:
            raise ParameterError(f"The 'y' parameter of Blender.fit must be given for method {self.method!r}: the "
                                 f"{self.method} blend requires y to be passed, but the target y is None.")
        arrays, _ = self._fit_sets(X, y)
        oof, weights = _fit_blend(_stack(arrays), self.method, None if y is None else np.asarray(y),
                                  self.objective, self.n_iter, folds, self.n_jobs)
        self.weights_, self.oof_ = weights, oof
        return self

    def predict(self, X) -> np.ndarray:
        """The blend of the sets ``X`` (as many as at ``fit``), shape (n, K).

        Rank blends rank within the rows given: OOF and test are ranked separately.
        """
        check_is_fitted(self, "weights_")
        if self.n_sets_ is None:  # fit(None): any number of sets
            from ._sets import sets_from_input

            arrays, _ = sets_from_input(X, None, "X", owner="Blender")
        else:
            arrays, _ = self._predict_sets(X)
        return _predict_blend(_stack(arrays), self.method, self.weights_, self.n_jobs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self.needs_oof
        return tags
