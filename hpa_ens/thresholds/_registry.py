"""The registry of threshold rules: one object, one signature, metadata saying what each rule reads.

Every rule is a function ``(oof_probs, y, test_probs, target, **params) -> (cuts, info)`` registered with
:func:`register_rule`; :func:`hpa_ens.thresholds.choose` looks it up by name, checks its inputs against the
metadata and runs it. ``info`` is the rule's report (weights, spreads, estimated shares, …; arrays of shape
(K,) or plain values); three keys are reserved for :func:`~hpa_ens.thresholds.choose`: ``warnings`` (list of
str), and ``min_labels`` / ``max_labels`` (a label rule the rule chose itself, as ``optuna`` does).

A rule marked ``legacy`` still runs under its name (``--method gated`` works as it always did) but is left
out of the documented menu (:func:`available_rules`): it lost on every benchmark and is kept for the
benchmarks that compare it and for old command lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterator, Mapping

from ..validation import ParameterError

__all__ = ["Rule", "RuleRegistry", "RULES", "register_rule", "get_rule", "available_rules"]


@dataclass(frozen=True)
class Rule:
    """A threshold rule and what it needs.

    Attributes
    ----------
    name : str
    func : callable ``(oof_probs, y, test_probs, target, **params) -> (cuts, info)``
    summary : str, one line: what the rule is for
    needs_oof, needs_test, needs_target : bool, the inputs it cannot run without
    reads_target : bool, whether its cuts depend on the target shares (``needs_target`` or an optional use)
    params : mapping name -> default, every parameter it takes
    oof_when : tuple of str, parameters that, when not None, make it read OOF rows too (``match``'s tolerance)
    refines : bool, the rule refines the cuts of the rule named by its ``base`` parameter:
        :func:`~hpa_ens.thresholds.choose` runs that rule first and hands its cuts over as ``base``
    fixes_no_positive : bool, whether :func:`~hpa_ens.thresholds.choose` applies the no-positive rule to its
        cuts (off for rules whose cut does not come from OOF labels, and for rules that refine a base that had it)
    records : tuple of str, or callable ``params -> tuple``: the settings ``thresholds.json`` records for the rule
        (``params`` of the file, ahead of ``info``; what the file has always carried for it)
    legacy : bool, kept under its name but not in the documented menu
    """

    name: str
    func: Callable
    summary: str
    needs_oof: bool = True
    needs_test: bool = False
    needs_target: bool = False
    reads_target: bool = False
    params: Mapping = field(default_factory=dict)
    oof_when: tuple = ()
    refines: bool = False
    fixes_no_positive: bool = True
    records: tuple | Callable = ()
    legacy: bool = False

    def __post_init__(self):
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def reads_oof(self, params: Mapping | None = None) -> bool:
        """Whether the rule reads OOF rows and labels with these parameters."""
        params = params or {}
        return self.needs_oof or any(params.get(p, self.params.get(p)) is not None for p in self.oof_when)

    def recorded(self, params: Mapping | None = None) -> tuple:
        """The settings ``thresholds.json`` records for the rule with these parameters."""
        return tuple(self.records(dict(self.params) | dict(params or {}))) if callable(self.records) else self.records

    def __call__(self, oof_probs, y, test_probs, target, **params):
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ParameterError(f"The '{unknown[0]}' parameter is not one of the rule {self.name!r}'s parameters "
                                 f"({', '.join(self.params) or 'none'}). Got {params[unknown[0]]!r} instead.")
        return self.func(oof_probs, y, test_probs, target, **(dict(self.params) | params))


class RuleRegistry(Mapping):
    """Rules by name (registration order); looking up an unknown name is one error listing the valid ones."""

    def __init__(self):
        self._rules: dict[str, Rule] = {}

    def register(self, name: str, *, summary: str, **metadata) -> Callable:
        """Decorator: register ``func`` as the rule ``name`` (see :class:`Rule` for the metadata)."""
        def decorate(func: Callable) -> Callable:
            if name in self._rules:
                raise ParameterError(f"The 'name' parameter of register_rule must be a new rule name. "
                                     f"Got {name!r} (already registered) instead.")
            self._rules[name] = Rule(name=name, func=func, summary=summary, **metadata)
            return func

        return decorate

    def names(self, include_legacy: bool = False) -> tuple[str, ...]:
        """Registered names, public ones first (in registration order), then the legacy ones when asked."""
        public = tuple(n for n, r in self._rules.items() if not r.legacy)
        return public + tuple(n for n, r in self._rules.items() if r.legacy) if include_legacy else public

    def __getitem__(self, name: str) -> Rule:
        try:
            return self._rules[name]
        except (KeyError, TypeError):
            legacy = [n for n in self.names(True) if self._rules[n].legacy]
            raise ParameterError(f"The 'method' parameter must be one of {', '.join(self.names())}"
                                 + (f" (or a legacy rule: {', '.join(legacy)})" if legacy else "")
                                 + f". Got {name!r} instead.") from None

    def __contains__(self, name) -> bool:
        # Mapping's own __contains__ catches only KeyError; __getitem__ raises the listing error instead.
        return name in self._rules

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)


#: Every threshold rule, by name.
RULES = RuleRegistry()
register_rule = RULES.register


def get_rule(name: str) -> Rule:
    """The rule registered as ``name``; an unknown name is one error listing the valid ones."""
    return RULES[name]


def available_rules(include_legacy: bool = False) -> tuple[str, ...]:
    """The documented rules (docs/thresholds.md says when to pick each); ``include_legacy``: every accepted name."""
    return RULES.names(include_legacy)
