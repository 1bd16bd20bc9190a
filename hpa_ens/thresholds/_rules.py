"""The documented threshold rules, registered in :data:`hpa_ens.thresholds.RULES`.

Each is the one implementation of its rule (the command, :class:`~hpa_ens.thresholds.ThresholdTuner` and the
benchmarks all run it through :func:`~hpa_ens.thresholds.choose`); docs/thresholds.md says when to pick each.
Inputs arrive checked by :func:`~hpa_ens.thresholds.choose`: ``oof_probs``/``test_probs`` float64 ``(n, K)``
in [0, 1], ``y`` bool ``(n, K)``, ``target`` ``(K,)`` in (0, 1) or None.
"""

from __future__ import annotations

import numpy as np

from ..validation import check_param
from ._calibration import adjust_priors, calibrate, em_priors
from ._coupled import tune_coupled
from ._cuts import ROBUST_METHODS, exact_thresholds, f1_curves, match_thresholds, match_thresholds_within, robust_thresholds
from ._registry import register_rule
from ._shift import (GATED_FLOOR, POOL_FRACTION, SHIFT_CHECK_Z, SIMULATION_REPS, bootstrap_cuts, directional_blend,
                     label_shift_z, logit_blend, matched_spread, one_se_weight, plugin_thresholds, simulated_f1,
                     trusted_blend)

__all__ = ["SHIFT_RECORD", "oof_and_matched", "target_or_estimate"]

#: The settings ``thresholds.json`` has always recorded for the label-shift rules (``params`` of the file).
SHIFT_RECORD = ("n_boot", "seed", "blend_floor")


def oof_and_matched(oof, y, test, target, n_boot: int, seed: int):
    """What the blend rules weigh: the bootstrap OOF side and the matched cut, each with its logit spread.

    Returns
    -------
    train : ndarray of shape (K,), the OOF label shares
    side : BootCuts of the OOF rows
    matched : ndarray of shape (K,), :func:`~hpa_ens.thresholds.match_thresholds` of the test rows
    spread : ndarray of shape (K,), :func:`~hpa_ens.thresholds.matched_spread`
    """
    train = y.mean(axis=0)
    side = bootstrap_cuts(y, oof, n_boot, seed, train_share=train)
    return train, side, match_thresholds(test, target), matched_spread(test, target, n_boot, seed)


def target_or_estimate(oof, y, test, target, info: dict):
    """``target``, or without one the test shares estimated by EM on calibrated probabilities (recorded in
    ``info["estimated_share"]``); returns ``(train shares, target)``."""
    train = y.mean(axis=0)
    if target is None:
        target = em_priors(calibrate(oof, y, test), train)
        info["estimated_share"] = target
    return train, target


@register_rule("exact", summary="the OOF-F1-best cut of each class (the baseline; robust options for rare classes)",
               params=dict(robust="none", rare_max=100, n_boot=50, strength=50.0, seed=0), records=("robust",))
def _exact(oof, y, test, target, *, robust, rare_max, n_boot, strength, seed):
    check_param("robust", robust, f"one of {ROBUST_METHODS}", robust in ROBUST_METHODS)
    thresholds, rare = robust_thresholds(oof, y, robust, rare_max, n_boot, strength, seed)
    return thresholds, {"rare_classes": [int(k) for k in np.flatnonzero(rare)]}


@register_rule("boot", summary="the median OOF-F1-best cut over bootstrap resamples (the default without a target)",
               params=dict(n_boot=50, seed=0), records=SHIFT_RECORD)
def _boot(oof, y, test, target, *, n_boot, seed):
    boot = bootstrap_cuts(y, oof, n_boot, seed)
    return boot.median, {"oof_spread": boot.spread}


@register_rule("match", summary="the cut giving the target share on the test rows (the only rule for a test-only set)",
               needs_oof=False, needs_test=True, needs_target=True, reads_target=True, params=dict(tolerance=None),
               oof_when=("tolerance",), fixes_no_positive=False,
               records=lambda p: () if p["tolerance"] is not None else SHIFT_RECORD)
def _match(oof, y, test, target, *, tolerance):
    if tolerance is None:
        return match_thresholds(test, target), {}
    # The OOF-best cut whose test share lies within tolerance * target of the target.
    return match_thresholds_within(f1_curves(oof, y), test, target, tolerance), {}


@register_rule("directional", summary="gated blend where the target share rises, the matched cut where it falls "
               "(the default with a target before trusted)", needs_test=True, needs_target=True, reads_target=True,
               params=dict(n_boot=50, seed=0, floor=None), records=SHIFT_RECORD)
def _directional(oof, y, test, target, *, n_boot, seed, floor):
    train, side, matched, spread = oof_and_matched(oof, y, test, target, n_boot, seed)
    thr, w = directional_blend(side.median, side.spread, matched, spread, train, target,
                               floor=GATED_FLOOR if floor is None else floor)
    return thr, {"trust_weight": w, "oof_spread": side.spread}


@register_rule("trusted", summary="directional, the matched cut trusted only as far as the F1-best count under the "
               "target is the announced count and the shares' sampling error allows (the default before simulated)",
               needs_test=True, needs_target=True, reads_target=True,
               params=dict(n_boot=50, seed=0, floor=None, target_n=None), records=SHIFT_RECORD + ("target_n",))
def _trusted(oof, y, test, target, *, n_boot, seed, floor, target_n):
    train, side, matched, spread = oof_and_matched(oof, y, test, target, n_boot, seed)
    # The F1-best share of each class on the OOF rows re-weighted to the target (the same resamples' seed).
    best = bootstrap_cuts(y, oof, n_boot, seed, train_share=train, target_share=target).share
    thr, w = trusted_blend(side.median, side.spread, matched, spread, train, target, best, target_n=target_n,
                           floor=GATED_FLOOR if floor is None else floor)
    return thr, {"trust_weight": w, "oof_spread": side.spread, "best_share": best}


@register_rule("simulated", summary="one weight between the exact and the matched cut for the whole set, chosen by "
               "simulating label shifts toward the target on the OOF rows (the default with a target before checked)",
               needs_test=True, needs_target=True, reads_target=True,
               params=dict(reps=SIMULATION_REPS, seed=0, pool_fraction=POOL_FRACTION, target_n=None),
               records=("seed", "target_n"))
def _simulated(oof, y, test, target, *, reps, seed, pool_fraction, target_n):
    per_rep = simulated_f1(y, oof, len(test), target, target_n, reps, seed, pool_fraction)
    w = np.full(oof.shape[1], one_se_weight(per_rep))
    thr = logit_blend(exact_thresholds(y, oof)[0], match_thresholds(test, target), w)
    return thr, {"trust_weight": w, "simulated_f1": per_rep.mean(axis=0) / oof.shape[1], "reps": reps,
                 "pool_fraction": pool_fraction}


@register_rule("checked", summary="simulated, except that a class whose test scores disagree with the announced share "
               "under a label shift (more than check_z standard errors) keeps the exact cut (the default with a target)",
               needs_test=True, needs_target=True, reads_target=True,
               params=dict(reps=SIMULATION_REPS, seed=0, pool_fraction=POOL_FRACTION, target_n=None,
                           check_z=SHIFT_CHECK_Z),
               records=("seed", "target_n"))
def _checked(oof, y, test, target, *, reps, seed, pool_fraction, target_n, check_z):
    check_param("check_z", check_z, "a number > 0 or None (no check)",
                check_z is None or (np.isscalar(check_z) and not isinstance(check_z, (bool, str)) and check_z > 0))
    per_rep = simulated_f1(y, oof, len(test), target, target_n, reps, seed, pool_fraction)
    z = label_shift_z(y, oof, test, target, target_n)
    flagged = np.zeros(len(z), dtype=bool) if check_z is None else np.abs(z) > check_z
    # A flagged class's test rows are not its OOF rows under the announced shift: neither the matched count nor a
    # simulation that assumes that shift speaks for it, so it keeps the cut that trusts nothing announced.
    w = np.where(flagged, 1.0, one_se_weight(per_rep))
    thr = logit_blend(exact_thresholds(y, oof)[0], match_thresholds(test, target), w)
    return thr, {"trust_weight": w, "shift_z": z, "shift_flagged": flagged, "check_z": check_z,
                 "simulated_f1": per_rep.mean(axis=0) / oof.shape[1], "reps": reps, "pool_fraction": pool_fraction}


@register_rule("plugin", summary="the expected-F1 cut of calibrated, prior-corrected test rows (best single rule on "
               "shifted MULAN sets)", needs_test=True, reads_target=True, records=SHIFT_RECORD)
def _plugin(oof, y, test, target):
    info: dict = {}
    train, target = target_or_estimate(oof, y, test, target, info)
    q = adjust_priors(calibrate(oof, y, test), train, target)
    return plugin_thresholds(test, q, target), info


@register_rule("optuna", summary="TPE over what couples the classes (exact->matched mix, logit offset, min/max labels)",
               needs_test=True, reads_target=True, refines=True, fixes_no_positive=False, records=("robust",),
               params=dict(base="exact", robust="none", rare_max=100, n_boot=50, strength=50.0, seed=0, n_trials=100,
                           tolerance=None, min_labels=1, max_labels=None, offset_range=1.0, class_offsets=0.0,
                           storage=None, study_name=None, progress=None))
def _optuna(oof, y, test, target, *, base, seed, n_trials, tolerance, min_labels, max_labels, offset_range,
            class_offsets, storage, study_name, progress, **base_params):
    # base_params (robust, rare_max, n_boot, strength) were the base rule's; ``base`` is its cut.
    n, K = oof.shape
    share = target if target is not None else np.clip(y.mean(axis=0), 0.5 / n, 1 - 0.5 / n)
    result = tune_coupled(
        oof, y, test, base, match_thresholds(test, share), share, n_trials=n_trials, seed=seed, tolerance=tolerance,
        min_labels_range=(0, min_labels), max_labels_range=(max(1, min_labels), max_labels or K),
        offset_range=offset_range, class_offset_range=class_offsets, storage=storage, study_name=study_name,
        progress=progress)
    info = {"trials": n_trials, "seed": seed,
            "storage": storage if storage is None or isinstance(storage, str) else type(storage).__name__,
            "study_name": study_name, "offset_range": offset_range, "class_offsets": class_offsets,
            "best_params": result["params"], "best_trial": result["best_trial"],
            "n_trials_total": result["n_trials_total"], "feasible": result["feasible"],
            "distribution_gap": result["distribution_gap"],
            "min_labels": result["min_labels"], "max_labels": result["max_labels"]}
    if not result["feasible"] and tolerance is not None:
        info["warnings"] = [f"no trial met the distribution constraint (gap <= {tolerance}); "
                            f"the best infeasible trial was kept."]
    return result["thresholds"], info
