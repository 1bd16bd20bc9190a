"""Combining prediction sets: blends, Caruana selection, the per-class LightGBM stacker, the submission vote.

Everything here works on arrays (a *set* is one model's ``(n, K)`` probabilities, rows aligned by Id
beforehand, or an Id-indexed DataFrame) and reads, writes and prints nothing: the ``hpa-ens blend``,
``stack`` and ``vote`` commands read the prediction sets through :mod:`hpa_ens.contract` and call this.

Estimators (scikit-learn's API: ``clone``, ``Pipeline``, ``cross_val_predict``, ``GridSearchCV``)::

    from hpa_ens.ensemble import Blender, Stacker

    test = Blender(method="caruana").fit(oof_sets, Y, folds).predict(test_sets)
    stacker = Stacker().fit(oof_sets, Y, folds)                # oof_sets: list of (n, K) arrays or frames,
    test = stacker.predict(test_sets)                          # or one (n, n_sets * K) array
    oof = stacker.oof_                                         # honest out-of-fold stack, (n, K)

Functions: :func:`mean_blend`, :func:`rank_blend`, :func:`weighted_blend`, :func:`fit_weights`,
:func:`caruana_weights`, :func:`blend` (OOF and test in one call, cross-fitted with folds),
:func:`vote` (submission files' 0/1 matrices), :func:`stack_features`, :func:`choice_gain` (the
stacker's nested set-level rule), :func:`stack_report` /
:func:`stack_summary` (the stack's report as plain dicts) and :func:`plot_stack_report`.
"""

from ._blend import METHODS, OBJECTIVES, blend, caruana_weights, fit_weights, mean_blend, rank_blend, weighted_blend
from ._blender import Blender
from ._report import class_uses, plot_stack_report, stack_report, stack_summary
from ._sets import as_arrays, normalize_weights, sets_from_input
from ._stacker import (
    EARLY_STOPPING_ROUNDS,
    FEATURES,
    INNER_PARTS,
    RARE_FALLBACKS,
    Stacker,
    StackResult,
    choice_gain,
    default_params,
    inner_parts,
    inner_split,
    rare_fallback,
    stack_features,
)
from ._vote import vote

__all__ = [
    "METHODS", "OBJECTIVES", "mean_blend", "rank_blend", "weighted_blend", "fit_weights", "caruana_weights", "blend",
    "vote", "Blender",
    "FEATURES", "RARE_FALLBACKS", "EARLY_STOPPING_ROUNDS", "Stacker", "StackResult", "stack_features",
    "default_params", "rare_fallback", "inner_split", "inner_parts", "choice_gain", "INNER_PARTS",
    "stack_report", "stack_summary", "plot_stack_report", "class_uses",
    "as_arrays", "sets_from_input", "normalize_weights",
]
