"""``choose``: run one registered threshold rule on checked inputs, with the post-rules every rule shares.

The default rule (:func:`default_method`) is the winner of ``benchmarks/shift.py`` with or without a target,
and ``match`` for a test-only prediction set (:func:`resolve_method`).
"""

from __future__ import annotations

import numpy as np

from ..validation import ParameterError
from ._cuts import NEVER, check_probs, check_shares, match_thresholds
from ._registry import RULES, Rule

__all__ = ["DEFAULT_WITH_TARGET", "DEFAULT_WITHOUT_TARGET", "COMMON_PARAMS", "default_method", "resolve_method",
           "check_rule_inputs", "no_positive_rule", "choose"]

#: The defaults chosen by ``benchmarks/shift.py`` (docs/thresholds.md has the table).
DEFAULT_WITH_TARGET = "checked"
DEFAULT_WITHOUT_TARGET = "boot"
#: Parameters every rule accepts (as scikit-learn estimators accept ``random_state``): handed to the rules that
#: take them (those that resample), without effect on the others.
COMMON_PARAMS = ("n_boot", "seed")


def default_method(has_target: bool) -> str:
    """The benchmark's winner: :data:`DEFAULT_WITH_TARGET` with a target share, else :data:`DEFAULT_WITHOUT_TARGET`."""
    return DEFAULT_WITH_TARGET if has_target else DEFAULT_WITHOUT_TARGET


def resolve_method(method: str | None, has_target: bool, has_oof: bool = True) -> str:
    """The rule to run: ``method`` when given, else the benchmark's default (``match`` for a test-only set)."""
    if method is not None:
        return method
    if not has_oof and has_target:
        return "match"
    return default_method(has_target)


def check_rule_inputs(method: str | Rule, has_oof: bool, has_test: bool, has_target: bool,
                      params: dict | None = None) -> Rule:
    """The rule named ``method``; refuse, in one line saying why, a rule whose inputs are missing."""
    rule = method if isinstance(method, Rule) else RULES[method]
    name = rule.name
    if rule.reads_oof(params) and not has_oof:
        raise ParameterError(f"The 'method' parameter must name a rule that needs no OOF rows (match) for a test-only "
                             f"prediction set: '{name}' tunes on OOF probabilities and their labels. Got {name!r} instead.")
    if rule.needs_test and not has_test:
        raise ParameterError(f"The 'method' parameter must name a rule that needs no test rows when none are given: "
                             f"'{name}' reads the test probabilities. Got {name!r} instead.")
    if rule.needs_target and not has_target:
        raise ParameterError(f"The 'method' parameter must name a rule that needs no target shares when none is "
                             f"given: '{name}' matches test shares to a target. Got {name!r} instead.")
    return rule


def no_positive_rule(thresholds, n_pos, target, class_names, matched=None, source: str = "the labels") -> list[str]:
    """Classes with no OOF positive: never predict, unless a target share says the class occurs.

    Parameters
    ----------
    thresholds : ndarray of shape (K,), changed in place
    n_pos : array-like of shape (K,)
    target : ndarray of shape (K,) or None
    class_names : sequence of str
    matched : ndarray of shape (K,), optional, the matched cut (used where a target is given)
    source : str, where the labels came from (for the warnings)

    Returns
    -------
    warnings : list of str, one per class without positives
    """
    notes = []
    for k in np.flatnonzero(np.asarray(n_pos) == 0):
        follow = target is not None and matched is not None
        thresholds[k] = matched[k] if follow else NEVER
        notes.append(f"class {k} ({class_names[k]}) has no positives in {source}; threshold "
                     + (f"matched to target share {target[k]:.4g}." if follow else "set to never predict (1.0)."))
    return notes


def _settings(rule: Rule, params: dict) -> dict:
    """The parameters the rule runs with: ``params`` checked against its own, common ones handed over if it takes them."""
    unknown = sorted(k for k in params if k not in rule.params and k not in COMMON_PARAMS)
    if unknown:
        raise ParameterError(f"The '{unknown[0]}' parameter of choose({rule.name!r}) must be one of the rule's "
                             f"parameters ({', '.join(rule.params) or 'none'}). Got {params[unknown[0]]!r} instead.")
    return dict(rule.params) | {k: v for k, v in params.items() if k in rule.params}


def _run(rule: Rule, oof, y, test, target, settings: dict, class_names, labels_name: str):
    warnings: list[str] = []
    if rule.refines:
        base = check_rule_inputs(settings["base"], oof is not None, test is not None, target is not None)
        base_cuts, base_report = _run(base, oof, y, test, target,
                                      {k: v for k, v in settings.items() if k in base.params}, class_names, labels_name)
        cuts, info = rule.func(oof, y, test, target, **(settings | {"base": base_cuts}))
        info = base_report["info"] | dict(info)
        warnings += base_report["warnings"]
    else:
        cuts, info = rule.func(oof, y, test, target, **settings)
        info = dict(info)
    cuts = np.array(cuts, dtype=np.float64)
    if rule.fixes_no_positive and y is not None:
        n_pos = y.sum(axis=0)
        if (n_pos == 0).any():
            matched = match_thresholds(test, target) if target is not None and test is not None else None
            warnings += no_positive_rule(cuts, n_pos, target, class_names, matched, labels_name)
    warnings += info.pop("warnings", [])
    report = {"method": rule.name, "params": settings, "warnings": warnings}
    for key in ("min_labels", "max_labels"):
        if key in info:
            report[key] = info.pop(key)
    report["info"] = info
    return cuts, report


def choose(method: str | None = None, oof_probs=None, y=None, test_probs=None, target=None, *,
           class_names=None, labels_name: str = "the labels", **params) -> tuple[np.ndarray, dict]:
    """Per-class thresholds by one registered rule (:data:`RULES`), with the post-rules every rule shares.

    The inputs are checked against the rule's metadata (a rule that needs OOF rows, test rows or a target
    refuses to run without them, in one line saying why), the rule runs, and classes without an OOF
    positive are never predicted -- or, with a target, get the matched cut (the target says they occur).

    Parameters
    ----------
    method : str or None
        A name of :data:`RULES` (:func:`available_rules`; legacy names too); None: :func:`resolve_method`
        (``checked`` with a target, ``boot`` without, ``match`` for a test-only set).
    oof_probs, y : array-like of shape (n_oof, K), optional for ``match``
    test_probs : array-like of shape (n_test, K), optional for the rules that read no test rows
    target : array-like of shape (K,) in (0, 1), optional
    class_names : sequence of K str, optional, for the warnings (default the class indices)
    labels_name : str, where the labels came from, for the warnings
    **params
        The rule's parameters (``RULES[method].params``), plus :data:`COMMON_PARAMS` (``n_boot``, ``seed``)
        which every rule accepts and the resampling ones use.

    Returns
    -------
    thresholds : ndarray of shape (K,)
    report : dict
        ``method``; ``params`` (what the rule ran with); ``info`` (the rule's report: ``trust_weight``,
        ``oof_spread``, ``estimated_share``, ``rare_classes``, Optuna's best trial, … where relevant);
        ``warnings`` (list of str); and ``min_labels``/``max_labels`` when the rule chose a label rule.
    """
    has_oof = oof_probs is not None
    if has_oof and y is None:
        raise ParameterError("The 'y' parameter of choose must be given with 'oof_probs' (their 0/1 labels). "
                             "Got None instead.")
    rule = RULES[resolve_method(method, target is not None, has_oof)]
    settings = _settings(rule, params)
    check_rule_inputs(rule, has_oof, test_probs is not None, target is not None, settings)
    if test_probs is not None:
        test_probs = check_probs(test_probs, name="test_probs")
    K = test_probs.shape[1] if test_probs is not None else np.asarray(oof_probs).shape[1]
    target = None if target is None else check_shares(target, K, "target", open_interval=True)
    if has_oof:
        oof_probs, y = check_probs(oof_probs, y, "oof_probs")
        if oof_probs.shape[1] != K:
            raise ParameterError(f"The 'test_probs' parameter must have {oof_probs.shape[1]} columns like "
                                 f"'oof_probs'. Got {K} instead.")
    class_names = [str(k) for k in range(K)] if class_names is None else list(class_names)
    return _run(rule, oof_probs, y, test_probs, target, settings, class_names, labels_name)
