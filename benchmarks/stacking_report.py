"""Does stacking beat "mean blend + exact thresholds"? Held-out macro F1 on five sources.

Sources (thresholds are always chosen on the train part's OOF rows and scored on held-out rows):

- ``hpa/simulate``: the real ``../shared/hpa/train.csv`` label matrix with 4 models from
  ``hpa_ens.testing.simulate`` (its per-image hardness shows in max probability and entropy, which
  the stacker reads: this source *favours* the stacker and is kept only for comparison);
- ``hpa/label_noise``: the same labels with 4 models from ``hpa_ens.testing.label_noise`` (per-class
  noise, missed positives, look-alike confusions, over/under-confidence; no per-image signal planted
  in the stacker's features);
- ``mulan/yeast``, ``mulan/emotions``, ``mulan/scene``: real features and labels with their official
  train/test splits, three scikit-learn base learners each with 5-fold OOF (``benchmarks/mulan_data.py``).

HPA sources: 25 % held out (drawn toward the leaderboard shares), 5 folds on the rest, at least one
label per image. MULAN: the official test part, plain per-class thresholds. Rows: best single model
(chosen on OOF), mean blend, stack, dynamic stack (falls back to the blend when the stack does not
beat it on OOF), each + exact per-class thresholds, with a bootstrap 95 % interval; the gain is
stack minus mean with a paired bootstrap interval.

    .venv/bin/python benchmarks/stacking_report.py [--quick] [--only mulan/yeast ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hpa_ens.commands.stack import prefer_passive_omp_wait  # noqa: E402
from hpa_ens.thresholds import apply_thresholds  # noqa: E402
from hpa_ens.metrics import bootstrap_macro_f1, per_class_f1  # noqa: E402
from hpa_ens.ensemble import Stacker, mean_blend  # noqa: E402
from hpa_ens.thresholds import exact_thresholds  # noqa: E402
from results import emit  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "hpa"
SOURCES = ("hpa/simulate", "hpa/label_noise", "mulan/yeast", "mulan/emotions", "mulan/scene")


def one_pass_stack(oof_sets, Y, folds, test_sets, **params):
    """OOF and test in one pass, no boosters kept (as ``hpa-ens stack`` stacks): the StackResult."""
    return Stacker(keep_models=False, **params).fit(oof_sets, Y, folds, X_test=test_sets).result_


def hpa_source(kind: str, quick: bool, seed: int, n_models: int = 4):
    """(oof_list, test_list, Y, Y_test, folds, min_labels) on the real HPA labels, or None without them."""
    if not (SHARED / "train.csv").exists():
        return None
    from hpa_ens.contract import read_target_distribution
    from hpa_ens.labels import read_labels
    from hpa_ens.testing.label_noise import simulate_label_noise_models
    from hpa_ens.testing.simulate import holdout_split, simple_folds, simulate_base_models

    Y_all = read_labels(SHARED / "train.csv").to_numpy()
    if quick:
        Y_all = Y_all[np.sort(np.random.default_rng(seed).choice(len(Y_all), 6000, replace=False))]
    target = read_target_distribution(SHARED / "lb_label_distribution.csv")
    train, test = holdout_split(Y_all, 0.25, target, seed=seed)
    if kind == "simulate":
        probs = simulate_base_models(Y_all, n_models=n_models, seed=seed)
    else:
        probs = simulate_label_noise_models(Y_all, n_models, seed=seed)
    folds = simple_folds(len(train), 5, seed)
    return list(probs[:, train]), list(probs[:, test]), Y_all[train], Y_all[test], folds, 1


def mulan_source(name: str, seed: int):
    from mulan_data import LEARNERS, MULAN_DIR, load_mulan, multilabel_folds, oof_and_test

    if not (MULAN_DIR / name).is_dir():
        return None
    data = load_mulan(name)
    folds = multilabel_folds(data.Y_train, 5, seed)
    pairs = [oof_and_test(kind, data, folds, seed) for kind in LEARNERS]
    return [p[0] for p in pairs], [p[1] for p in pairs], data.Y_train, data.Y_test, folds, 0


def paired_gain(Y_test, pred_a, pred_b, n_boot: int = 300, seed: int = 0) -> tuple[float, float, float]:
    """Macro F1 of a minus b on the held-out rows, with a paired percentile bootstrap interval."""
    rng = np.random.default_rng(seed)
    gain = float(per_class_f1(Y_test, pred_a).mean() - per_class_f1(Y_test, pred_b).mean())
    draws = []
    for _ in range(n_boot):
        rows = rng.integers(0, len(Y_test), len(Y_test))
        draws.append(per_class_f1(Y_test[rows], pred_a[rows]).mean() - per_class_f1(Y_test[rows], pred_b[rows]).mean())
    return gain, float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def evaluate(source: str, data, seed: int, n_jobs: int | None) -> dict:
    oof_list, test_list, Y, Y_test, folds, min_labels = data
    blend_oof, blend_test = mean_blend(oof_list), mean_blend(test_list)
    t0 = time.perf_counter()
    stack = one_pass_stack(oof_list, Y, folds, test_list, seed=seed, n_jobs=n_jobs)
    t_stack = time.perf_counter() - t0
    dyn = one_pass_stack(oof_list, Y, folds, test_list, seed=seed, n_jobs=n_jobs, dynamic=True)
    singles = [exact_thresholds(Y, o)[1].mean() for o in oof_list]
    best = int(np.argmax(singles))  # chosen on train OOF, as a user would

    def tuned(oof, tst):
        return apply_thresholds(tst, exact_thresholds(Y, oof)[0], min_labels=min_labels)

    preds = {"best single + exact thresholds": tuned(oof_list[best], test_list[best]),
             "mean blend + exact thresholds": tuned(blend_oof, blend_test),
             "stack + exact thresholds": tuned(stack.oof, stack.test),
             "dynamic stack + exact thresholds": tuned(dyn.oof, dyn.test)}
    rows = {}
    for name, y_pred in preds.items():
        score, low, high = bootstrap_macro_f1(Y_test, y_pred, n_boot=300, seed=seed)
        rows[name] = {"macro_f1": score, "low": low, "high": high}
    gain = paired_gain(Y_test, preds["stack + exact thresholds"], preds["mean blend + exact thresholds"], seed=seed)
    dyn_gain = paired_gain(Y_test, preds["dynamic stack + exact thresholds"], preds["mean blend + exact thresholds"],
                           seed=seed)
    oof = {"mean blend": exact_thresholds(Y, blend_oof)[1].mean(), "stack": exact_thresholds(Y, stack.oof)[1].mean()}
    return {"source": source, "n_train": len(Y), "n_test": len(Y_test), "n_classes": Y.shape[1],
            "n_models": len(oof_list), "stack_seconds": t_stack, "held_out": rows, "gain": gain,
            "dynamic_gain": dyn_gain, "dynamic_fallback": dyn.fallback, "oof": oof}


def verdict(res: dict) -> str:
    gain, low, high = res["gain"]
    if low > 0:
        return f"stacking beats mean blend + thresholds by {gain:+.4f} [{low:+.4f}, {high:+.4f}]"
    if high < 0:
        return f"stacking LOSES to mean blend + thresholds by {gain:+.4f} [{low:+.4f}, {high:+.4f}]"
    return f"stacking does NOT beat mean blend + thresholds: {gain:+.4f} [{low:+.4f}, {high:+.4f}] (interval spans 0)"


def main(argv=None) -> int:
    prefer_passive_omp_wait()  # as hpa-ens stack runs it, before lightgbm loads
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="6,000 HPA rows (the MULAN sets are small anyway)")
    p.add_argument("--only", nargs="+", choices=SOURCES, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-jobs", type=int, default=None, help="LightGBM threads (default: every available CPU)")
    p.add_argument("--json", help="also write the full results to this JSON file")
    args = p.parse_args(argv)
    results = []
    for source in args.only or SOURCES:
        family, name = source.split("/")
        data = hpa_source(name, args.quick, args.seed) if family == "hpa" else mulan_source(name, args.seed)
        if data is None:
            print(f"{source}: data not found under ../shared; skipped.")
            continue
        res = evaluate(source, data, args.seed, args.n_jobs)
        results.append(res)
        print(f"\n{source}: {res['n_train']} train rows (5 folds), {res['n_test']} held-out, K={res['n_classes']}, "
              f"{res['n_models']} models; stack fitted in {res['stack_seconds']:.1f} s")
        print(f"  {'method':36s} {'held-out macro F1':>18s}  95% bootstrap")
        for row, fig in res["held_out"].items():
            print(f"  {row:36s} {fig['macro_f1']:18.4f}  [{fig['low']:.4f}, {fig['high']:.4f}]")
        dg, dl, dh = res["dynamic_gain"]
        fb = "fell back to the mean blend" if res["dynamic_fallback"] == "blend" else "kept the stack"
        print(f"  {verdict(res)}\n  dynamic stack ({fb} on OOF): {dg:+.4f} [{dl:+.4f}, {dh:+.4f}] vs mean blend")
        held = res["held_out"]
        emit(f"stacking gain, {source}", held["stack + exact thresholds"]["macro_f1"], "macro F1",
             baseline=held["mean blend + exact thresholds"]["macro_f1"], baseline_name="mean blend + exact thresholds",
             differs="method: the LightGBM stack vs the mean blend, both with exact thresholds; same folds, models "
                     "and held-out rows",
             ratio=None, gain=res["gain"][0], gain_low=res["gain"][1], gain_high=res["gain"][2],
             dynamic=held["dynamic stack + exact thresholds"]["macro_f1"], dynamic_fallback=res["dynamic_fallback"],
             note=verdict(res))
    if args.json:
        Path(args.json).write_text(json.dumps({"seed": args.seed, "quick": args.quick, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HPA_ENS_NO_PROGRESS", "1")
    sys.exit(main())
