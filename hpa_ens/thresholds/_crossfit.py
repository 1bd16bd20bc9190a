"""Cross-fitted OOF label sets: what a rule's thresholds score on OOF rows they were not tuned on.

Thresholds tuned on every OOF row and scored on those same rows flatter the rule (the exact cut is the
best cut *for those rows*), and rare classes most (a class with 11 positives can nearly always be separated
by some cut). :func:`cross_fitted_predictions` tunes the rule once per fold on the other folds' OOF rows (and
the test rows and target, as given) and applies those cuts, with the same fill rule, to the held fold: the OOF
macro F1 of its output is an honest estimate of the rule's F1 on new rows.

The exact-cut shortcuts :func:`cross_fitted_thresholds`, :func:`cross_fitted_exact_f1` and
:func:`cross_fitted_macro_f1` take ``(y_true, probs, folds)`` like their in-sample counterparts
(:func:`~hpa_ens.thresholds.exact_thresholds`, :func:`~hpa_ens.thresholds.exact_macro_f1`): the numbers
``hpa-ens report`` ranks prediction sets by.
"""

from __future__ import annotations

import numpy as np

from ..metrics import per_class_f1
from ..validation import ParameterError, check_param
from ._choose import choose, resolve_method
from ._cuts import check_probs
from ._decision import apply_thresholds, resolve_fill_rule
from ._registry import RULES

__all__ = ["cross_fitted_predictions", "fold_parts", "cross_fitted_thresholds", "cross_fitted_exact_f1",
           "cross_fitted_macro_f1"]

#: Rule parameters a cross-fitted run never takes over: a shared Optuna study holds the search on every OOF
#: row (each fold's search is its own, in memory), and the caller's progress bar counts that search only.
_NOT_PER_FOLD = ("storage", "study_name", "progress")


def fold_parts(n_rows: int, folds=5) -> np.ndarray:
    """The fold of each OOF row: ``folds`` itself (one fold id per row), or ``folds`` interleaved parts.

    Parameters
    ----------
    n_rows : int
    folds : int >= 2, or array-like of shape (n_rows,)
        An int k gives k deterministic interleaved parts (row i in part ``i % k``, as the cross-fitted
        ``posterior`` fill of :func:`~hpa_ens.thresholds.oof_predictions` uses); an array is taken as the
        fold of each row (e.g. ``folds.csv`` aligned to the labels).

    Returns
    -------
    parts : ndarray of shape (n_rows,), int, at least two distinct values
    """
    if np.ndim(folds) == 0:
        check_param("folds", folds, f"an int in [2, {n_rows}] (interleaved parts) or one fold id per row",
                    isinstance(folds, (int, np.integer)) and not isinstance(folds, bool) and 2 <= folds <= n_rows,
                    "cross_fitted_predictions")
        return np.arange(n_rows) % int(folds)
    parts = np.asarray(folds)
    if parts.dtype.kind == "f" and np.array_equal(parts, np.round(parts)):
        parts = parts.astype(np.int64)  # fold ids read as floats (a CSV column with gaps) are still fold ids
    if parts.shape != (n_rows,) or parts.dtype.kind not in "iu":
        raise ParameterError(f"The 'folds' parameter of cross_fitted_predictions must hold one fold id per OOF row "
                             f"({n_rows}), as ints. Got {parts.dtype} of shape {parts.shape} instead.")
    if len(np.unique(parts)) < 2:
        raise ParameterError(f"The 'folds' parameter of cross_fitted_predictions must hold at least two folds. Got "
                             f"{np.unique(parts).tolist()} instead.")
    return parts


def cross_fitted_predictions(method, oof_probs, y, folds=5, test_probs=None, target=None, *, min_labels: int = 1,
                             max_labels: int | None = None, rank_by: str | None = None,
                             return_thresholds: bool = False, **params):
    """OOF label sets from thresholds tuned on the other folds: each fold filled by cuts it did not shape.

    For each fold f: ``choose(method, oof[folds != f], y[folds != f], test_probs, target, **params)``, then
    :func:`~hpa_ens.thresholds.apply_thresholds` on the rows of fold f with the label rule (``min_labels``,
    ``max_labels``, or the rule's own where it chooses one, as ``optuna`` does) and the fill rule
    ``rank_by`` (a ``posterior`` fill calibrated on the other folds' rows). Rows are independent under the
    rule, so the folds' label sets simply fill their rows.

    Parameters
    ----------
    method : str or None
        A rule of :data:`~hpa_ens.thresholds.RULES` (None: :func:`~hpa_ens.thresholds.resolve_method`).
    oof_probs, y : array-like of shape (n_oof, K), the OOF probabilities and their 0/1 labels
    folds : int >= 2 or array-like of shape (n_oof,), default 5
        The fold of each row (e.g. ``folds.csv``), or that many deterministic interleaved parts (:func:`fold_parts`).
    test_probs : array-like of shape (n_test, K), optional, for the rules that read test rows (the same rows
        for every fold)
    target : array-like of shape (K,) in (0, 1), optional, the target shares (the same for every fold)
    min_labels : int, default 1
    max_labels : int or None, default None (no cap)
        The label rule (handed to the rule too when it takes them, as ``optuna`` does).
    rank_by : one of :data:`~hpa_ens.thresholds.RANK_RULES` or None
        The fill rule (None: :func:`~hpa_ens.thresholds.default_rank_rule`, ``posterior`` with a target).
    return_thresholds : bool, default False
        Also return each fold's cuts.
    **params
        The rule's parameters, as for :func:`~hpa_ens.thresholds.choose`. A shared Optuna ``storage`` (and
        ``study_name``, ``progress``) is not used: each fold's search runs in memory.

    Returns
    -------
    y_pred : ndarray of shape (n_oof, K), bool
    fold_thresholds : ndarray of shape (n_folds, K), with ``return_thresholds``: row j holds the cuts applied
        to the j-th fold in sorted order of the fold ids (``np.unique(fold_parts(n_oof, folds))``)

    Examples
    --------
    >>> from hpa_ens.metrics import per_class_f1
    >>> y_pred = cross_fitted_predictions("exact", oof, y, folds, min_labels=0)  # doctest: +SKIP
    >>> honest = per_class_f1(y, y_pred).mean()                                  # doctest: +SKIP
    """
    if oof_probs is None or y is None:
        raise ParameterError("The 'oof_probs' and 'y' parameters of cross_fitted_predictions must be given (OOF rows "
                             "and their labels). Got None instead.")
    oof, y = check_probs(oof_probs, y, "oof_probs")
    y = y.astype(np.uint8)  # 0/1 as the command reads labels: the rules and the calibration see the same values
    parts = fold_parts(len(oof), folds)
    rule = RULES[resolve_method(method, target is not None, True)]
    params = {k: v for k, v in params.items() if k not in _NOT_PER_FOLD}
    for key, value in (("min_labels", min_labels), ("max_labels", max_labels)):
        if key in rule.params:
            params.setdefault(key, value)
    y_pred = np.zeros(oof.shape, dtype=bool)
    fold_ids = np.unique(parts)
    cuts_by_fold = np.empty((len(fold_ids), oof.shape[1]))
    for j, fold in enumerate(fold_ids):
        held = parts == fold
        fit = ~held
        cuts, report = choose(rule.name, oof[fit], y[fit], test_probs, target, **params)
        fill, posterior = resolve_fill_rule(rank_by, oof[fit], y[fit], target)
        rule_min = int(report.get("min_labels", min_labels))
        rule_max = report.get("max_labels", max_labels)
        y_pred[held] = apply_thresholds(oof[held], cuts, rule_min, None if rule_max is None else int(rule_max),
                                        rank_by=fill, posterior=posterior)
        cuts_by_fold[j] = cuts
    return (y_pred, cuts_by_fold) if return_thresholds else y_pred


def cross_fitted_thresholds(y_true, probs, folds) -> np.ndarray:
    """For each fold, the exact per-class cuts tuned on the rows of every other fold.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_classes), 0/1
    probs : array-like of shape (n_samples, n_classes), in [0, 1]
    folds : array-like of shape (n_samples,), int, at least two distinct values

    Returns
    -------
    thresholds : ndarray of shape (n_folds, n_classes)
        Row i holds the cuts for the rows of fold ``np.unique(folds)[i]``.
    """
    return cross_fitted_predictions("exact", probs, y_true, _fold_ids(folds), min_labels=0, return_thresholds=True)[1]


def cross_fitted_exact_f1(y_true, probs, folds) -> np.ndarray:
    """Per-class F1 of every row at the exact cuts tuned on the other folds, all folds pooled (scored once).

    Returns
    -------
    f1 : ndarray of shape (n_classes,)
    """
    y_pred = cross_fitted_predictions("exact", probs, y_true, _fold_ids(folds), min_labels=0)
    return per_class_f1(np.asarray(y_true).astype(bool), y_pred)


def cross_fitted_macro_f1(y_true, probs, folds) -> float:
    """Macro F1 at cross-fitted exact cuts: the honest counterpart of :func:`exact_macro_f1`."""
    return float(cross_fitted_exact_f1(y_true, probs, folds).mean())


def _fold_ids(folds):
    # The exact shortcuts take a fold per row only: an int here is more likely a mistake than a request for parts.
    if np.ndim(folds) == 0:
        raise ParameterError(f"The 'folds' parameter must hold one fold id per row. Got {folds!r} instead.")
    return folds
