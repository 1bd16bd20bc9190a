"""Per-class decision thresholds: every rule in one registry, calibration, the row fill rules, ``ThresholdTuner``.

Macro F1 is the mean of the K per-class F1 scores and class k's F1 depends only on its own threshold, so
each class has an exact optimum over every distinct cut (:func:`exact_thresholds`); what couples the
classes (the min/max-labels rule, a pull toward announced test shares) is handled by the label-shift
rules and, where classes couple, a small Optuna search (:func:`tune_coupled`).

- **Rules** (:data:`RULES`, one signature ``(oof_probs, y, test_probs, target, **params) -> (cuts, info)``):
  ``exact``, ``boot``, ``match``, ``checked``, ``simulated``, ``trusted``, ``directional``, ``plugin``, ``optuna`` (docs/thresholds.md says when to
  pick each; the legacy ``blend``, ``gated``, ``prior``, ``reweight`` still run under their names).
  :func:`choose` runs one with the post-rules every rule shares; :func:`resolve_method` picks the default;
  :func:`cross_fitted_predictions` tunes one per fold on the other folds, for an honest OOF score.
- **Cuts**: :func:`sorted_cuts` (every cut of every column), :func:`f1_curves`, :func:`match_thresholds`,
  robust rare-class variants, :func:`bootstrap_cuts` and the blends the label-shift rules are made of.
- **Cross-fitted cuts**: :func:`cross_fitted_predictions` (each fold at the exact cuts tuned on the other
  folds) and :func:`cross_fitted_macro_f1`, the OOF score no set earns on its own tuning rows.
- **Decision**: :func:`apply_thresholds` (thresholds, then at least/at most so many labels per row, topped up
  by a fill rule of :data:`RANK_RULES`), the single implementation ``submit`` uses too.
- **Calibration**: :class:`Posterior` (isotonic on OOF rows, corrected to target shares), what the
  ``posterior`` fill ranks by; :func:`adjust_priors`, :func:`em_priors` (an :class:`EMConvergenceWarning`
  when it stops before the shares settle).
- :class:`ThresholdTuner`: all of it as a scikit-learn transformer.

Arrays: ``probs`` ``(n_samples, K)`` in [0, 1]; labels the same shape, 0/1; shares ``(K,)``. Class k is
predicted where ``probs[:, k] > thresholds[k]`` (strictly); :data:`NEVER` = 1.0 never predicts.
"""

from ._cuts import (
    NEVER,
    CutCurves,
    SortedCuts,
    bootstrap_thresholds,
    distribution_gap,
    exact_macro_f1,
    exact_thresholds,
    f1_curves,
    match_thresholds,
    match_thresholds_within,
    predicted_share,
    robust_thresholds,
    shrink_thresholds,
    sorted_cuts,
)
from ._calibration import EMConvergenceWarning, Posterior, adjust_priors, calibrate, em_priors
from ._decision import (
    DEFAULT_RANK_RULE,
    RANK_RULES,
    apply_thresholds,
    default_rank_rule,
    oof_predictions,
    rank_scores,
    resolve_fill_rule,
)
from ._shift import (
    COUNT_SCALE,
    FALL_SCALE,
    GATE_SCALE,
    GATED_FLOOR,
    BootCuts,
    bootstrap_cuts,
    directional_blend,
    gated_blend,
    logit_blend,
    matched_spread,
    plugin_thresholds,
    share_logit_se,
    trust_blend,
    trusted_blend,
    SIMULATION_GRID,
    SIMULATION_REPS,
    POOL_FRACTION,
    simulated_f1,
    one_se_weight,
    SHIFT_CHECK_Z,
    label_shift_z,
)
from ._coupled import coupled_thresholds, evaluate_thresholds, journal_storage, open_storage, study_name_for, tune_coupled
from ._registry import RULES, Rule, RuleRegistry, available_rules, get_rule, register_rule
from . import _rules, _legacy  # noqa: F401  (register the rules)
from ._choose import (
    DEFAULT_WITH_TARGET,
    DEFAULT_WITHOUT_TARGET,
    check_rule_inputs,
    choose,
    default_method,
    no_positive_rule,
    resolve_method,
)
from ._crossfit import (cross_fitted_exact_f1, cross_fitted_macro_f1, cross_fitted_predictions,
                       cross_fitted_thresholds, fold_parts)
from ._plots import save_threshold_plots

__all__ = [
    "NEVER", "CutCurves", "SortedCuts", "sorted_cuts", "f1_curves", "exact_thresholds", "exact_macro_f1",
    "match_thresholds", "match_thresholds_within", "predicted_share", "distribution_gap", "bootstrap_thresholds",
    "shrink_thresholds", "robust_thresholds",
    "cross_fitted_thresholds", "cross_fitted_exact_f1", "cross_fitted_macro_f1",
    "Posterior", "adjust_priors", "em_priors", "EMConvergenceWarning", "calibrate",
    "RANK_RULES", "DEFAULT_RANK_RULE", "default_rank_rule", "rank_scores", "apply_thresholds", "resolve_fill_rule",
    "oof_predictions",
    "GATE_SCALE", "GATED_FLOOR", "FALL_SCALE", "COUNT_SCALE", "BootCuts", "bootstrap_cuts", "matched_spread",
    "share_logit_se", "logit_blend", "trust_blend", "gated_blend", "directional_blend", "trusted_blend",
    "SIMULATION_GRID", "SIMULATION_REPS", "POOL_FRACTION", "simulated_f1", "one_se_weight", "SHIFT_CHECK_Z",
    "label_shift_z",
    "plugin_thresholds",
    "coupled_thresholds", "evaluate_thresholds", "tune_coupled", "journal_storage", "open_storage", "study_name_for",
    "Rule", "RuleRegistry", "RULES", "register_rule", "get_rule", "available_rules",
    "DEFAULT_WITH_TARGET", "DEFAULT_WITHOUT_TARGET", "default_method", "resolve_method", "check_rule_inputs", "choose",
    "no_positive_rule", "cross_fitted_predictions", "fold_parts",
    "save_threshold_plots", "ThresholdTuner",
]


def __getattr__(name: str):
    # scikit-learn is imported on first use of the estimator: ``import hpa_ens`` stays light.
    if name == "ThresholdTuner":
        from ._tuner import ThresholdTuner

        globals()[name] = ThresholdTuner
        return ThresholdTuner
    raise AttributeError(f"module 'hpa_ens.thresholds' has no attribute {name!r}")
