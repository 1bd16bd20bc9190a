"""How far can a blend of the OOF cut and the matched cut go? Chosen on seeds 0..9, checked on 10..19 and 20..29.

    .venv/bin/python benchmarks/shift_gates.py [--select 0 .. 9] [--check 10 .. 19] [--fresh 20 .. 29]
                                               [--cache DIR] [--quick]

The cases, stacks, fill rule and scoring are :mod:`benchmarks/shift.py`'s (same seeds give the same stacks, so
``--cache`` can share its folder). Every rule here is ``sigmoid((1 - w) logit(boot) + w logit(match))`` per
class -- the bootstrap-median OOF cut pulled toward the matched cut -- and differs only in the matched weight
``w`` as a function of ``d = |logit target - logit train|`` (the announced shift of the class) and the two
cuts' bootstrap spreads ``s_oof``, ``s_match``:

- ``gated`` (the default before ``directional``, :func:`hpa_ens.thresholds.gated_blend`): ``(1 - exp(-d / 0.1)) * trust``, with
  ``trust = (s_oof^2 + 1) / (s_oof^2 + s_match^2 + 2)``;
- ``exp c``: ``1 - exp(-d / c)`` (no trust term): the further the shift, the more the matched cut;
- ``sq c``: ``d^2 / (d^2 + c^2)``;
- ``bv b``: a bias-variance weight, the OOF cut's error growing with the shift:
  ``v_oof / (v_oof + v_match)`` with ``v_oof = (b d)^2 + s_oof^2 + 0.25``, ``v_match = s_match^2 + 0.25``.

Two rules were added after the per-class table below had been read on seeds 0..19, so for them neither of those
blocks is held out; a third block, seeds 20..29 (*fresh*), was drawn afterwards to check them:

- ``match+fill``: the matched cut counting the labels the min-one-label fill adds (each class's cut predicts
  ``target * n`` minus its filled rows, iterated to a fixed point);
- ``directional`` (:func:`hpa_ens.thresholds.directional_blend`, the package default with a target since this
  check): ``exp 0.5`` for classes whose share falls on test, ``gated`` for those whose share rises.

A per-class table for hpa-lb over every seed (table ``shift_classes``): test positives, the announced shift, and
the class F1 of ``exact``, ``gated``, ``directional`` and the oracle minus that of ``match`` -- where the rules
win and lose, and how much of the oracle's lead sits in classes no honest cut can steady (< 20 test positives).

Issue 15's measure per rule and seed block: the mean gain on hpa-lb over the better of ``exact`` and ``match``
(means over the block's seeds), and the worst MULAN case with a target. The *select* block (seeds 0..9) is
where a shape would be picked; the *check* block (seeds 10..19) was not looked at when the first shapes were
written, and the *fresh* block (20..29) not when any rule was. Emitted as table ``shift_gates``
(docs/thresholds.md). ``--quick``: seeds 0 / 1 / 2 on a 6,000-row HPA subset (a smoke run; its figures say nothing).
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

import shift as B  # noqa: E402
from hpa_ens import thresholds as T  # noqa: E402
from hpa_ens.thresholds import Posterior  # noqa: E402
from hpa_ens.utils import logit  # noqa: E402
from hpa_ens.metrics import macro_f1  # noqa: E402
from results import emit  # noqa: E402


def sides(oof, y, test, target, seed: int, n_boot: int = 50) -> dict:
    """What every gate shape reads, computed once per case: both cuts, their spreads, the shift per class."""
    train = y.mean(axis=0)
    boot = T.bootstrap_cuts(y, oof, n_boot, seed, train_share=train)
    return {"boot": boot.median, "boot_spread": boot.spread, "exact": boot.exact,
            "match": T.match_thresholds(test, target), "match_spread": T.matched_spread(test, target, n_boot, seed),
            "shift": np.abs(logit(target) - logit(train)), "no_pos": y.sum(axis=0) == 0}


def blend(side: dict, w_match: np.ndarray) -> np.ndarray:
    """The package's logit blend with matched weight ``w_match``, with :func:`hpa_ens.thresholds.choose`' rule
    for classes without OOF positives (the matched cut alone)."""
    return np.where(side["no_pos"], side["match"], T.logit_blend(side["boot"], side["match"], 1.0 - w_match))


def match_after_fill(test, target, fill_scores, max_iter: int = 8) -> np.ndarray:
    """Cuts whose predictions *after* the min-one-label fill give each class ``target * n`` rows.

    ``fill_scores(thr)`` ranks the classes of a row left empty by ``thr``; the filled rows of class k are taken
    off its matched count, damped (the fill moves with the cuts), until the fill counts repeat.
    """
    n, K = test.shape
    fill = np.zeros(K)
    for _ in range(max_iter):
        thr = T.match_thresholds(test, np.clip(target - fill / n, 0.0, 1.0))
        empty = ~(test > thr).any(axis=1)
        filled = np.bincount(np.argmax(fill_scores(thr)[empty], axis=1), minlength=K).astype(np.float64)
        if np.array_equal(filled, fill):
            break
        fill = 0.5 * (fill + filled)
    return thr


def _bias_variance(side: dict, b: float, floor: float = 0.5) -> np.ndarray:
    v_oof = (b * side["shift"]) ** 2 + side["boot_spread"] ** 2 + floor ** 2
    v_match = side["match_spread"] ** 2 + floor ** 2
    return np.where(side["shift"] > 0, v_oof / (v_oof + v_match), 0.0)


#: Matched weight per rule, a function of :func:`sides`' output (``exact`` and ``match`` are the references).
SHAPES = {
    "gated": None,  # the package's own function, so the table checks the shipped code
    **{f"exp {c}": (lambda c: lambda s: 1.0 - np.exp(-s["shift"] / c))(c) for c in (0.25, 0.5, 1.0, 2.0)},
    **{f"sq {c}": (lambda c: lambda s: s["shift"] ** 2 / (s["shift"] ** 2 + c ** 2))(c) for c in (0.5, 1.0)},
    **{f"bv {b}": (lambda b: lambda s: _bias_variance(s, b))(b) for b in (0.5, 1.0, 2.0)},
}
RULES = ("exact", "match") + tuple(SHAPES) + ("match+fill", "directional")
#: Classes with fewer test positives than this are "rare" in the per-class summary.
RARE = 20


def thresholds_of(rule: str, side: dict, train, target, test=None, fill_scores=None) -> np.ndarray:
    """One rule's cuts; ``match+fill`` needs the test rows and the fill's scores (else it is ``match``)."""
    if rule in ("exact", "match"):
        return side[rule]
    if rule == "match+fill":
        return side["match"] if fill_scores is None else match_after_fill(test, target, fill_scores)
    if rule in ("gated", "directional"):  # the package's own functions, so the table checks the shipped code
        shipped = T.gated_blend if rule == "gated" else T.directional_blend
        thr, _ = shipped(side["boot"], side["boot_spread"], side["match"], side["match_spread"], train, target)
        return np.where(side["no_pos"], side["match"], thr)
    return blend(side, SHAPES[rule](side))


def class_f1(y_true, pred) -> np.ndarray:
    """F1 per column, shape (K,); 0 where a class has neither positives nor predictions (as macro_f1 counts it)."""
    y_true, pred = np.asarray(y_true, dtype=bool), np.asarray(pred, dtype=bool)
    tp = (y_true & pred).sum(axis=0)
    denom = y_true.sum(axis=0) + pred.sum(axis=0)
    return np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)


def run_seeds(seeds, cache, rows=None, sets=("hpa", "yeast", "emotions", "scene"), per_class=None) -> dict:
    """Test macro F1 per case (with a target), rule and seed: ``{case: {rule: [f1 per seed]}}``.

    ``per_class`` (a dict), when given, collects hpa-lb's class F1 per rule (and ``positives``, ``shift``) per seed.
    """
    out: dict = {}
    t0 = time.perf_counter()
    for seed in seeds:
        for name in sets:
            cases = B.hpa_case(seed, cache, rows) if name == "hpa" else B.mulan_cases(name, seed, cache)
            for case_name, (oof, y, test, yt, target, min_labels) in cases.items():
                if target is None:
                    continue
                side = sides(oof, y, test, target, seed)
                posterior = Posterior.fit(oof, y, target)
                fill = (lambda thr: B.fill_scores("posterior", test, thr, posterior)) if min_labels else None
                cuts = {rule: thresholds_of(rule, side, y.mean(axis=0), target, test, fill) for rule in RULES}
                cuts["oracle"] = T.exact_thresholds(yt, test)[0]
                for rule, thr in cuts.items():
                    pred = B.predictions(test, thr, min_labels, fill(thr) if min_labels else None)
                    if rule != "oracle":
                        f1 = macro_f1(yt, pred.astype(np.uint8))
                        out.setdefault(case_name, {}).setdefault(rule, []).append(f1)
                    if per_class is not None and case_name == "hpa-lb":
                        per_class.setdefault(rule, []).append(class_f1(yt, pred))
                if per_class is not None and case_name == "hpa-lb":
                    per_class.setdefault("positives", []).append(yt.sum(axis=0).astype(np.float64))
                    per_class.setdefault("shift", []).append(side["shift"])
        print(f"seed {seed}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def gains(results: dict, rule: str) -> tuple[float, str, float, np.ndarray]:
    """(gain on hpa-lb, worst MULAN case, its gain, per-seed hpa-lb gain over match) -- issue 15's measure."""
    def gap(case):
        r = results[case]
        return np.mean(r[rule]) - max(np.mean(r["exact"]), np.mean(r["match"]))
    mulan = {c: gap(c) for c in results if c != "hpa-lb"}
    worst = min(mulan, key=mulan.get)
    per_seed = np.asarray(results["hpa-lb"][rule]) - np.asarray(results["hpa-lb"]["match"])
    return gap("hpa-lb"), worst, mulan[worst], per_seed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--select", type=int, nargs="+", default=None, help="seeds a shape would be chosen on (0..9)")
    ap.add_argument("--check", type=int, nargs="+", default=None, help="held-out seeds (10..19)")
    ap.add_argument("--fresh", type=int, nargs="+", default=None,
                    help="seeds drawn after every rule here was written (20..29)")
    ap.add_argument("--cache", default=None, help="folder caching the stacks (shareable with shift.py --cache; "
                    "keyed by the fingerprint of the code that made them)")
    ap.add_argument("--quick", action="store_true", help="seeds 0 / 1 on 6,000 HPA rows (smoke run)")
    args = ap.parse_args(argv)
    rows = 6000 if args.quick else None
    blocks = {"select": args.select or ([0] if args.quick else list(range(10))),
              "check": args.check or ([1] if args.quick else list(range(10, 20))),
              "fresh": args.fresh or ([2] if args.quick else list(range(20, 30)))}
    cache = Path(args.cache) if args.cache else None
    note_of = {b: f"seeds {s[0]}..{s[-1]}" if len(s) > 1 else f"seed {s[0]}" for b, s in blocks.items()}
    print("gain over the better of exact and match (means over the block's seeds); per-seed SE of the "
          "hpa-lb gain over match")
    table, per_class = {}, {}
    for block, seeds in blocks.items():
        results = run_seeds(seeds, cache, rows, per_class=per_class)
        for rule in RULES:
            table.setdefault(rule, {})[block] = gains(results, rule)
    for rule in RULES:
        cells = []
        for block in blocks:
            hpa, worst, worst_gain, per_seed = table[rule][block]
            se = per_seed.std(ddof=1) / np.sqrt(len(per_seed)) if len(per_seed) > 1 else float("nan")
            col = note_of[block]
            emit(f"gate {rule}: gain on hpa-lb, {col}", hpa, "macro F1", table="shift_gates", row=rule,
                 col=f"hpa-lb, {block} ({col})", bold=rule == T.default_method(True))
            emit(f"gate {rule}: worst MULAN case, {col}", worst_gain, "macro F1", note=worst, table="shift_gates",
                 row=rule, col=f"worst MULAN, {block} ({col})", bold=rule == T.default_method(True))
            cells.append(f"{block}: hpa-lb {hpa:+.4f} (SE {se:.4f}), worst {worst} {worst_gain:+.4f}")
        print(f"  {rule:10s} " + " | ".join(cells))
    report_classes(per_class, [s for seeds in blocks.values() for s in seeds])  # every block: a diagnosis
    return 0


def report_classes(per_class: dict, seeds) -> None:
    """hpa-lb per class, means over every seed: where each rule wins or loses against ``match``."""
    from hpa_ens.task import load_task

    names = load_task("hpa2018").class_names
    f1 = {rule: np.asarray(v) for rule, v in per_class.items()}
    positives, shift = f1.pop("positives").mean(axis=0), f1.pop("shift").mean(axis=0)
    note = f"hpa-lb, means over seeds {seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else f"hpa-lb, seed {seeds[0]}"
    print(f"\nhpa-lb per class (means over {len(seeds)} seeds): class F1 minus match's")
    print(f"{'class':<28}{'test pos':>9}{'shift d':>8}{'exact':>8}{'gated':>8}{'direct.':>8}{'oracle':>8}")
    for k, name in enumerate(names):
        row = f"{k} {name}"
        emit(f"classes: {row}, test positives", round(float(positives[k]), 1), "", table="shift_classes", row=row,
             col="test positives", note=note)
        emit(f"classes: {row}, shift", round(float(shift[k]), 2), "", table="shift_classes", row=row,
             col="shift d (logit)", note=note)
        diffs = {r: float((f1[r][:, k] - f1["match"][:, k]).mean()) for r in ("exact", "gated", "directional", "oracle")}
        for rule, value in diffs.items():
            emit(f"classes: {row}, {rule} - match", value, "F1", table="shift_classes", row=row,
                 col=f"{rule} − match", note=note)
        print(f"{row[:27]:<28}{positives[k]:9.0f}{shift[k]:8.2f}" + "".join(f"{v:+8.3f}" for v in diffs.values()))
    rare = positives < RARE
    for rule in ("exact", "gated", "directional", "oracle"):
        lead = (f1[rule] - f1["match"]).mean(axis=0) / len(names)  # each class's share of the macro difference
        emit(f"classes: {rule} - match, macro share of classes with < {RARE} test positives", float(lead[rare].sum()),
             "macro F1", table="shift_classes_sum", row=rule, col=f"classes with < {RARE} test positives", note=note)
        emit(f"classes: {rule} - match, macro share of the other classes", float(lead[~rare].sum()), "macro F1",
             table="shift_classes_sum", row=rule, col="the other classes", note=note)
        print(f"{rule} - match in macro F1: {lead.sum():+.4f} = {lead[rare].sum():+.4f} from the {rare.sum()} classes "
              f"with < {RARE} test positives + {lead[~rare].sum():+.4f} from the others")


if __name__ == "__main__":
    raise SystemExit(main())
