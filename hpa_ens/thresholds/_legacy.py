"""Legacy threshold rules: still run under their names, left out of the documented menu.

Each lost to a documented rule on every recorded benchmark (``benchmarks/results.json``: tables ``shift`` and
``shift_gap``, three and ten seeds; docs/thresholds.md): ``gated`` to ``directional`` (which is ``gated``
wherever no class's share falls), ``blend`` on hpa-lb over ten seeds and by 0.01 on emotions, ``prior`` and
``reweight`` (barely off ``exact``; worse without a target). They stay because ``--method gated`` and the
others keep working as they always did, and because ``benchmarks/shift.py`` and ``shift_gates.py`` compare
them; this module is their one implementation.
"""

from __future__ import annotations

import numpy as np

from ._calibration import adjust_priors
from ._cuts import NEVER, exact_thresholds
from ._registry import register_rule
from ._rules import SHIFT_RECORD, oof_and_matched, target_or_estimate
from ._shift import BLEND_FLOOR, GATED_FLOOR, bootstrap_cuts, gated_blend, trust_blend

__all__: list[str] = []


@register_rule("blend", summary="trust-weighted logit blend of boot and match (superseded by directional)",
               needs_test=True, needs_target=True, reads_target=True, params=dict(n_boot=50, seed=0, floor=None),
               records=SHIFT_RECORD, legacy=True)
def _blend(oof, y, test, target, *, n_boot, seed, floor):
    _, side, matched, spread = oof_and_matched(oof, y, test, target, n_boot, seed)
    thr, w = trust_blend(side.median, side.spread, matched, spread, BLEND_FLOOR if floor is None else floor)
    return thr, {"trust_weight": w, "oof_spread": side.spread}


@register_rule("gated", summary="blend opened as far as the target share differs from train (superseded by "
               "directional)", needs_test=True, needs_target=True, reads_target=True,
               params=dict(n_boot=50, seed=0, floor=None), records=SHIFT_RECORD, legacy=True)
def _gated(oof, y, test, target, *, n_boot, seed, floor):
    train, side, matched, spread = oof_and_matched(oof, y, test, target, n_boot, seed)
    thr, w = gated_blend(side.median, side.spread, matched, spread, train, target,
                         floor=GATED_FLOOR if floor is None else floor)
    return thr, {"trust_weight": w, "oof_spread": side.spread}


@register_rule("prior", summary="the exact cut moved by the prior-shift odds correction (EM shares without a target)",
               needs_test=True, reads_target=True, records=SHIFT_RECORD, legacy=True)
def _prior(oof, y, test, target):
    info: dict = {}
    train, target = target_or_estimate(oof, y, test, target, info)
    cut, _ = exact_thresholds(y, oof)
    # p' = adjust(p, train -> target) > cut  <=>  p > adjust(cut, target -> train)
    return np.where(cut >= NEVER, NEVER, adjust_priors(cut, target, train)), info


@register_rule("reweight", summary="boot on OOF rows importance-weighted to the target shares (EM shares without "
               "one)", needs_test=True, reads_target=True, params=dict(n_boot=50, seed=0), records=SHIFT_RECORD,
               legacy=True)
def _reweight(oof, y, test, target, *, n_boot, seed):
    info: dict = {}
    train, target = target_or_estimate(oof, y, test, target, info)
    side = bootstrap_cuts(y, oof, n_boot, seed, train_share=train, target_share=target)
    return side.median, info | {"oof_spread": side.spread}
