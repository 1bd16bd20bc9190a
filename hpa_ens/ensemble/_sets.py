"""Prediction sets as the ensemble takes them, and what its two estimators share.

A *set* is one model's ``(n, K)`` probabilities. Functions take a list of sets (arrays, or DataFrames
aligned by Id); the estimators also take one 2-D array ``(n, n_sets * K)`` holding the sets side by
side (set 0's K columns, then set 1's, …), which is what ``Pipeline`` and ``cross_val_predict`` can
index by row.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin
from sklearn.utils import ClassifierTags

from ..thresholds import exact_macro_f1
from ..validation import ContractError, ParameterError, check_same_ids

__all__ = ["as_arrays", "sets_from_input", "normalize_weights", "SetsEstimator"]


def _stack(probs_list) -> np.ndarray:
    arr = np.stack([np.asarray(p, dtype=np.float64) for p in probs_list])
    if arr.ndim != 3 or len(arr) == 0:
        raise ParameterError(f"The 'probs_list' parameter must hold one or more (n_samples, n_classes) arrays. "
                         f"Got shape {arr.shape} instead.")
    return arr


def normalize_weights(weights, n_models: int) -> np.ndarray:
    """``weights`` checked (``n_models`` non-negative numbers, positive sum) and scaled to sum 1; None: equal."""
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


def _is_list_of_sets(X) -> bool:
    """A list/tuple of 2-d sets (arrays, DataFrames, nested lists), as opposed to a list of rows."""
    import pandas as pd

    if isinstance(X, np.ndarray):
        return X.ndim == 3
    if not isinstance(X, (list, tuple)):
        return False
    return not len(X) or any(isinstance(s, pd.DataFrame) or np.ndim(s) == 2 for s in X)


def sets_from_input(X, ids=None, name: str = "X", n_classes: int | None = None, n_sets: int | None = None,
                    owner: str = "the estimator") -> tuple[list[np.ndarray], list | None]:
    """``X`` as a list of float64 ``(n, K)`` arrays, whichever of the two forms it has.

    Parameters
    ----------
    X : list of (n, K) arrays or Id-indexed DataFrames, or array-like of shape (n, n_sets * K)
        The list form is read by :func:`as_arrays`. The 2-d form holds the sets side by side and is cut
        every ``n_classes`` columns; a 2-d DataFrame is aligned to ``ids`` by its index when ``ids`` is given.
    ids : sequence of str, optional
        The Id order DataFrames are aligned to.
    name : str
        The parameter's name in error messages.
    n_classes : int, optional
        K; required by the 2-d form.
    n_sets : int, optional
        The number of sets expected (those seen at ``fit``).
    owner : str
        Who expects them, for error messages.

    Returns
    -------
    arrays : list of ndarray of shape (n, K), every value finite
    ids : list of str or None
    """
    import pandas as pd
    from sklearn.utils import check_array

    if _is_list_of_sets(X):
        arrays, ids = as_arrays(list(X), ids, name, n_classes, n_sets)
    else:
        if isinstance(X, pd.DataFrame) and ids is not None:
            ids = [str(i) for i in ids]
            frame = X.copy()
            frame.index = [str(v) for v in frame.index]
            check_same_ids(frame.index.tolist(), ids, name, "y's Ids")
            X = frame.loc[ids]
        flat = check_array(X, dtype=np.float64, input_name=name)
        if n_classes is None:
            raise ParameterError(f"The '{name}' parameter is one 2-d array of sets side by side, which K cuts apart: "
                                 f"K comes from y of shape (n, K) at fit; else give a list of (n, K) sets.")
        width = flat.shape[1]
        if n_sets is not None and width != n_sets * n_classes:
            # scikit-learn's wording, which its estimator checks look for.
            raise ContractError(f"{name} has {width} features, but {owner} is expecting {n_sets * n_classes} features "
                                f"as input ({n_sets} sets of {n_classes} classes side by side).")
        if width % n_classes:
            raise ContractError(f"{name} has {width} features, not a multiple of the {n_classes} classes: a 2-d {name} "
                                f"holds the sets side by side, {n_classes} columns each.")
        arrays = [flat[:, i:i + n_classes] for i in range(0, width, n_classes)]
    for i, arr in enumerate(arrays):
        finite = np.isfinite(arr)
        if not finite.all():
            rows, cols = np.nonzero(~finite)
            raise ContractError(f"{name}, set {i}: {int((~finite).sum())} values are NaN or infinite; first at row "
                                f"{int(rows[0]) + 1}, column '{int(cols[0])}'. Got {float(arr[rows[0], cols[0]])!r} "
                                f"instead of a probability.")
    return arrays, ids


class SetsEstimator(MultiOutputMixin, BaseEstimator):
    """What :class:`~hpa_ens.ensemble.Blender` and :class:`~hpa_ens.ensemble.Stacker` share.

    ``X`` is a list of sets or one 2-d array of the sets side by side (:func:`sets_from_input`); ``y`` an
    ``(n, K)`` 0/1 matrix (array or Id-indexed DataFrame); ``predict`` returns ``(n, K)`` probabilities,
    and ``score`` their macro F1 at each class's exact best threshold on the scored rows.
    """

    def _fit_sets(self, X, y, name: str = "X") -> tuple[list[np.ndarray], list | None]:
        """The sets of ``X`` at ``fit``, checked against ``y``; sets ``n_sets_``, ``n_classes_``, ``n_features_in_``."""
        n_classes = None if y is None or _is_list_of_sets(X) or np.ndim(y) != 2 else int(np.shape(y)[1])
        arrays, ids = sets_from_input(X, getattr(y, "index", None), name, n_classes, owner=type(self).__name__)
        n, K = arrays[0].shape
        if y is not None and np.shape(y) != (n, K):
            raise ContractError(f"The labels have shape {np.shape(y)}, but the OOF sets have shape ({n}, {K}); they "
                                f"must match (rows aligned by Id, one column per class).")
        self.n_sets_, self.n_classes_ = len(arrays), K
        self.n_features_in_ = self.n_sets_ * self.n_classes_
        return arrays, ids

    def _predict_sets(self, X, name: str = "X") -> tuple[list[np.ndarray], list | None]:
        """The sets of ``X`` after ``fit``: as many sets of as many classes as were fitted."""
        return sets_from_input(X, None, name, self.n_classes_, self.n_sets_, owner=type(self).__name__)

    def score(self, X, y) -> float:
        """Macro F1 of ``predict(X)`` at each class's exact best threshold on these rows (optimistic).

        The figure the stack's report compares; higher is better. ``y`` is the ``(n, K)`` 0/1 truth,
        aligned by Id to DataFrame sets when it is a DataFrame.
        """
        probs = self.predict(X)
        return exact_macro_f1(_labels_like(y, X), probs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # y is an (n, K) 0/1 matrix: multi-label, each column binary. The classifier tags say so (they
        # also make scikit-learn's estimator checks draw 0/1 targets); the estimator type stays unset,
        # as predict returns probabilities, not labels.
        tags.target_tags.single_output = False
        tags.target_tags.multi_output = True
        tags.classifier_tags = ClassifierTags(multi_class=False, multi_label=True)
        return tags


def _labels_like(y, X):
    """``y`` as an array, aligned by Id to ``X``'s first DataFrame (the rows ``predict`` returns) when y is one too."""
    import pandas as pd

    if isinstance(y, pd.DataFrame) and isinstance(X, pd.DataFrame):
        X = [X]
    if isinstance(y, pd.DataFrame) and isinstance(X, (list, tuple)):
        frame = next((s for s in X if isinstance(s, pd.DataFrame)), None)
        if frame is not None:
            y = y.copy()
            y.index = [str(v) for v in y.index]
            check_same_ids(y.index.tolist(), [str(v) for v in frame.index], "y", "the first set's Ids")
            return y.loc[[str(v) for v in frame.index]].to_numpy()
    return np.asarray(y)
