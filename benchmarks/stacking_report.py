"""Held-out comparison of blending and stacking on the real HPA label matrix with simulated base models.

The real ``../shared/hpa/train.csv`` label matrix; 4 simulated base models (hpa_ens.testing.simulate: class-
dependent separability, noise shared between models, look-alike classes confused, miscalibration); a
held-out part (25 %) drawn toward the leaderboard class shares (``lb_label_distribution.csv``). Thresholds
are tuned on the train part's OOF only and applied to the held-out part. Prints macro F1 on the held-out
part for: best single at 0.5, mean at 0.5, mean + exact thresholds, stack + exact thresholds (and the
dynamic stack), each with a bootstrap 95 % interval.

    .venv/bin/python benchmarks/stacking_report.py [--quick] [--seed 0] [--json out.json]
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

from hpa_ens.thresholds import exact_thresholds  # noqa: E402
from hpa_ens.blend import mean_blend  # noqa: E402
from hpa_ens.decision import apply_thresholds  # noqa: E402
from hpa_ens.metrics import bootstrap_macro_f1  # noqa: E402
from hpa_ens.testing.simulate import holdout_split, simple_folds, simulate_base_models  # noqa: E402
from hpa_ens.stack import default_params, fit_predict_stack, stack_features  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "hpa"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4,000 rows, no dynamic stack (< 60 s)")
    p.add_argument("--models", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if not (SHARED / "train.csv").exists():
        print("../shared/hpa/train.csv not found: this report needs the real label matrix; skipped.")
        return 0
    from hpa_ens.labels import read_labels, read_target_distribution

    Y_all = read_labels(SHARED / "train.csv").to_numpy()
    if args.quick:
        Y_all = Y_all[np.sort(np.random.default_rng(args.seed).choice(len(Y_all), 4000, replace=False))]
    target = read_target_distribution(SHARED / "lb_label_distribution.csv")
    train, test = holdout_split(Y_all, 0.25, target, seed=args.seed)
    probs = simulate_base_models(Y_all, n_models=args.models, seed=args.seed)
    Y, Y_test = Y_all[train], Y_all[test]
    folds = simple_folds(len(train), 5, args.seed)
    oof_list, test_list = list(probs[:, train]), list(probs[:, test])
    blend_oof, blend_test = mean_blend(oof_list), mean_blend(test_list)
    X, _ = stack_features(oof_list)
    X_test, _ = stack_features(test_list)
    t0 = time.perf_counter()
    params = default_params(args.seed, args.threads)
    stack = fit_predict_stack(X, Y, folds, X_test, blend_oof, blend_test, seed=args.seed, params=params)
    t_stack = time.perf_counter() - t0
    dyn = None if args.quick else fit_predict_stack(X, Y, folds, X_test, blend_oof, blend_test, seed=args.seed,
                                                    params=params, dynamic=True)

    single_oof_f1 = [exact_thresholds(Y, o)[1].mean() for o in oof_list]
    best = int(np.argmax(single_oof_f1))  # chosen on train OOF, like a user would

    def tuned(oof, tst):
        thr = exact_thresholds(Y, oof)[0]
        return apply_thresholds(tst, thr, min_labels=1)

    rows = {
        f"best single (model {best}) at 0.5": apply_thresholds(test_list[best], 0.5, min_labels=1),
        "mean at 0.5": apply_thresholds(blend_test, 0.5, min_labels=1),
        "mean + exact thresholds": tuned(blend_oof, blend_test),
        "stack + exact thresholds": tuned(stack.oof, stack.test),
    }
    if dyn is not None:
        rows["dynamic stack + exact thresholds"] = tuned(dyn.oof, dyn.test)
    print(f"labels: real train.csv ({len(Y_all)} rows); train {len(train)} (5 folds), held-out {len(test)} drawn "
          f"toward the leaderboard shares; {args.models} simulated models; stack fitted in {t_stack:.1f} s")
    print(f"{'method (min 1 label per image)':40s} {'held-out macro F1':>18s}  95% bootstrap")
    figures = {}
    for name, y_pred in rows.items():
        score, low, high = bootstrap_macro_f1(Y_test, y_pred, n_boot=300, seed=args.seed)
        figures[name] = {"macro_f1": score, "low": low, "high": high}
        print(f"{name:40s} {score:18.4f}  [{low:.4f}, {high:.4f}]")
    oof_stack, oof_blend = exact_thresholds(Y, stack.oof)[1].mean(), exact_thresholds(Y, blend_oof)[1].mean()
    dyn_text = "" if dyn is None else f", dynamic {exact_thresholds(Y, dyn.oof)[1].mean():.4f}"
    print(f"OOF (exact thresholds on the same rows): mean {oof_blend:.4f}, stack {oof_stack:.4f}{dyn_text}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seed": args.seed, "quick": args.quick, "held_out": figures}, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HPA_ENS_NO_PROGRESS", "1")
    sys.exit(main())
