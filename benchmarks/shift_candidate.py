"""The threshold rules ``simulated`` and ``checked`` (the default with a target) on every block of shift patterns.

Candidate 3 (``checked``, section 6 of ``benchmarks/shift_heldout_log.md``; since it met the targets on the third
block it is the library's rule ``checked`` and the default with a target; until then this file held its own copy,
the same computation) is ``simulated`` with one more step: a per-class label-shift check. Under a pure label
shift to the announced share ``t``, class ``k``'s test scores have mean ``t mu_pos + (1 - t) mu_neg`` (the OOF
positives' and negatives' means); :func:`hpa_ens.thresholds.label_shift_z` says how many standard errors the real
test mean lies from that. A class further than :data:`hpa_ens.thresholds.SHIFT_CHECK_Z` (2) keeps the exact cut,
whatever weight the simulation chose: its test rows are not the OOF rows under the announced shift, so neither
the matched count nor a simulation built on that assumption is to be trusted there. The spent blocks showed why (emotions-rev: one class whose test ranking
is far weaker than its OOF ranking, which the simulation cannot see); the rule is judged on a third held-out block,
``third`` (seeds 300..309).

Since ``simulated`` moved into the library (``hpa_ens.thresholds``: :func:`~hpa_ens.thresholds.simulated_f1`,
:func:`~hpa_ens.thresholds.one_se_weight`, the rule ``simulated``, the default with a target before ``checked``),
this script runs the library's rule; until then it held its own copy, frozen at ``b46d8dd``, the same computation
draw for draw.

    .venv/bin/python benchmarks/shift_candidate.py [--blocks shaping heldout] [--cache DIR] [--sets ...]

The rule, ``simulated`` (candidate 2 of ``benchmarks/shift_heldout_log.md``), answers the question ``trusted``
could not: how far to trust the announced shares *on this data*. It cuts every class at
``expit(w logit(exact) + (1 - w) logit(matched))`` -- the OOF-F1-best cut and the matched cut of the test rows --
with **one** weight ``w`` for the whole set, chosen from :data:`hpa_ens.thresholds.SIMULATION_GRID` by simulating the decision on the OOF rows:

1. split the OOF rows at random in two halves: a pseudo-train half and a pool;
2. per class, draw a pseudo-test of ``n_test`` rows from the pool with replacement, its positives
   ``Binomial(n_test, target_k)`` (a pure label shift toward the announced share, class by class: the textbook
   assumption, not the benchmark's joint row draw); its announced share is the drawn share, or, with
   ``target_n``, a probe of ``target_n`` rows of it (``Binomial(target_n, share) / target_n``);
3. cut the pseudo-train half at its F1-best cut and the pseudo-test at its matched cut, and score every blend of
   :data:`hpa_ens.thresholds.SIMULATION_GRID` on the pseudo-test;
4. repeat ``reps`` times; ``w`` is the largest grid weight whose F1 (summed over classes, mean over the
   repetitions) is within one standard error of the best weight's (Breiman's one-standard-error rule, leaning
   to the exact cut: the choice that trusts nothing announced).

A large test set with a good ranking makes the matched count precise, and the simulation picks ``w`` near 0; a
small test set or weak classes make it noisy, and it picks ``w`` near 1. The shaping runs (seeds 0..9 of
``shift.py``'s patterns, read before this file was committed) chose ``reps`` 20, the pool half of the rows,
the five-point grid and the one-standard-error choice (over the plain best weight: worst case −0.0048 against
−0.0069 on the shaping block); nothing here was tuned on the held-out seeds.

It reports, per block, the test macro F1 of ``exact``, ``match``, ``trusted`` (the library's default with a
target) and ``simulated``, per case (means over the seeds), each rule's gap to the better of exact and match, and
issue 26's three target numbers (tables ``candidate_{block}_gap`` and ``candidate_targets``). Blocks: ``lb``
(``shift.py``'s LB table with a target, seeds 0..9, the targets the default already meets: a gain of at least 0.008
on hpa-lb and no MULAN case more than 0.003 below the better of exact and match; table ``candidate_lb_gap``;
added after the held-out run, to say whether the candidate may become the default), ``shaping`` (seeds
0..9: ``shift.py``'s shaping seeds 0..4 and its LB seeds 5..9, all read while shaping this rule) and ``heldout``
(seeds 100..109, ``shift.py``'s held-out block: run only with this file frozen in a commit; logged in
``benchmarks/shift_heldout_log.md``), and ``fresh`` (seeds 200..209: a second held-out block, added after the
first was spent by runs 1-4, whose stacks were built with ``shift.py --stacks-only`` before any score on it was
read; it scores the two frozen rules, ``trusted`` and ``simulated``, side by side on patterns no one has read), and
``third`` (seeds 300..309: a third held-out block for candidate 3, its stacks built before the candidate was frozen).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from hpa_ens import thresholds as T  # noqa: E402
from hpa_ens.thresholds import Posterior, default_rank_rule  # noqa: E402
from results import emit  # noqa: E402
import shift as S  # noqa: E402

SHAPING = tuple(range(10))
HELDOUT = S.HELDOUT_SEEDS
FRESH = tuple(range(200, 210))
#: A third held-out block, for candidate 3 (``checked``): its stacks were built (``shift.py --stacks-only``) before
#: the candidate was frozen, and nothing was scored on it before the judging run (log, section 6).
THIRD = tuple(range(300, 310))
#: The seeds of ``shift.py``'s full LB table (its leaderboard target, MULAN at train and log-normal shares).
LB_SEEDS = tuple(range(10))
RULES = ("exact", "match", "trusted", "simulated", "checked")
def evaluate(case, seed: int) -> dict:
    """Test macro F1 of :data:`RULES` on one pattern case (the default fill, as ``shift.py`` scores)."""
    oof, y, test, yt, target, min_labels, target_n = case
    posterior = Posterior.fit(oof, y, target)
    fill = default_rank_rule(has_oof=True, has_target=True)
    out = {}
    for rule in RULES:
        extra = {"target_n": target_n} if target_n is not None and "target_n" in T.get_rule(rule).params else {}
        thr = T.choose(rule, oof, y, test, target, seed=seed, **extra)[0]
        out[rule] = S.score(test, yt, thr, min_labels, S.fill_scores(fill, test, thr, posterior))
    return out


def report(results: dict, block: str, seeds) -> None:
    label = {"shaping": "shaping", "heldout": "held-out", "fresh": "fresh held-out", "third": "third held-out"}[block]
    note = f"{label} block, means over seeds {seeds[0]}..{seeds[-1]}"
    print(f"{label} block: gap to the better of exact and match per case (means over seeds)")
    gaps = {rule: S.gaps_over_better(results, rule) for rule in RULES}
    print("| case | " + " | ".join(RULES) + " |")
    for case in results:
        print(f"| {case} | " + " | ".join(f"{gaps[r][case]:+.4f}" for r in RULES) + " |")
        for rule in RULES:
            emit(f"candidate, {label}: {rule}: gap to the better of exact and match on {case}", gaps[rule][case],
                 "macro F1", note=note, table=f"candidate_{block}_gap", row=case, col=rule, bold=rule == "checked")
    print(f"issue 26's targets, {label}: mean | mean - better mean (>= 0) | mean gap (>= -0.001) | worst gap (>= -0.008)")
    for rule in RULES:
        t = S.pattern_targets(results, rule)
        held = sum(t[k] >= bound for k, bound in S.TARGETS.items())
        print(f"  {rule:10s} {t['mean']:.4f} | {t['mean - better mean']:+.4f} | {t['mean gap']:+.4f} | "
              f"{t['worst gap']:+.4f} ({t['worst case']}) | held {held}/3")
        emit(f"candidate, {label}: {rule}: mean over the cases", t["mean"], "macro F1", note=note,
             table="candidate_targets", row=rule, col=f"{label}: mean", bold=rule == "checked")
        for key in S.TARGETS:
            emit(f"candidate, {label}: {rule}: {key}", t[key], "macro F1",
                 note=(f"{t['worst case']}; " if key == "worst gap" else "") + note, table="candidate_targets",
                 row=rule, col=f"{label}: {key}", bold=rule == "checked")
    print()


def lb_cases(name: str, seed: int, cache) -> dict:
    """``shift.py``'s LB-table cases with a target, in the pattern cases' shape (``target_n`` None)."""
    cases = S.hpa_case(seed, cache) if name == "hpa" else S.mulan_cases(name, seed, cache)
    return {c: (*case, None) for c, case in cases.items() if case[4] is not None}


def report_lb(results: dict, seeds) -> None:
    """The LB table's gaps and its two standing targets: the gain on hpa-lb (>= 0.008) and the worst MULAN case
    (>= -0.003), each against the better of exact and match."""
    note = f"LB table, means over seeds {seeds[0]}..{seeds[-1]}"
    gaps = {rule: S.gaps_over_better(results, rule) for rule in RULES}
    print("LB table: gap to the better of exact and match per case (means over seeds)")
    print("| case | " + " | ".join(RULES) + " |")
    for case in results:
        print(f"| {case} | " + " | ".join(f"{gaps[r][case]:+.4f}" for r in RULES) + " |")
        for rule in RULES:
            emit(f"candidate, LB table: {rule}: gap to the better of exact and match on {case}", gaps[rule][case],
                 "macro F1", note=note, table="candidate_lb_gap", row=case, col=rule, bold=rule == "checked")
    for rule in RULES:
        mulan = {c: g for c, g in gaps[rule].items() if not c.startswith("hpa")}
        worst = min(mulan, key=mulan.get) if mulan else None
        print(f"  {rule:10s} hpa-lb {gaps[rule].get('hpa-lb', float('nan')):+.4f} (>= +0.008) | worst MULAN "
              + (f"{mulan[worst]:+.4f} ({worst}) (>= -0.003)" if worst else "-"))
    print()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", nargs="+", choices=("lb", "shaping", "heldout", "fresh", "third"),
                    default=["lb", "shaping", "heldout", "fresh", "third"])
    ap.add_argument("--sets", nargs="+", default=["hpa", "yeast", "emotions", "scene"])
    ap.add_argument("--cache", default=None, help="shift.py's stack cache folder")
    ap.add_argument("--quick", action="store_true", help="smoke run: seed 0 of the shaping block, MULAN sets only")
    args = ap.parse_args(argv)
    cache = Path(args.cache) if args.cache else None
    sets = [s for s in args.sets if s != "hpa" or (S.HPA_TRAIN.exists() and not args.quick)]
    seeds_of = {"lb": LB_SEEDS, "shaping": SHAPING, "heldout": HELDOUT, "fresh": FRESH, "third": THIRD}
    blocks = [("shaping", (0,))] if args.quick else [(b, seeds_of[b]) for b in args.blocks]
    t0 = time.perf_counter()
    for block, seeds in blocks:
        results: dict = {}
        for seed in seeds:
            for name in sets:
                cases = lb_cases(name, seed, cache) if block == "lb" else S.pattern_cases(name, seed, cache)
                for case_name, case in cases.items():
                    results.setdefault(case_name, []).append(evaluate(case, seed))
                print(f"{block} seed {seed} {name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
        if block == "lb":
            report_lb(results, seeds)
            continue
        order = [f"{name}-{p}" for p in S.PATTERNS for name in sets]
        report({c: results[c] for c in order if c in results}, block, seeds)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
