"""Stacking speed: hpa_ens.stack vs a plain loop of LGBMClassifier fits, side by side in one run.

Data: the real HPA label matrix (../shared/hpa/train.csv, 31,072 rows; a simulated one if absent),
24,000 train rows (the rest as "test") and 4 simulated base models (hpa_ens.testing.simulate); 5 folds.
Baseline: ``LGBMClassifier(n_estimators=200, num_leaves=15)`` fitted per class and fold on the same
features (a fresh Dataset each time, no early stopping). Target: hpa_ens.stack >= 4x faster at no
lower OOF macro F1 (both at exact per-class thresholds).

    .venv/bin/python benchmarks/bench_stack.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpa_ens.thresholds import exact_macro_f1  # noqa: E402
from hpa_ens.blend import mean_blend  # noqa: E402
from hpa_ens.testing.simulate import simple_folds, simulate_base_models  # noqa: E402
from hpa_ens.stack import default_params, fit_predict_stack, stack_features  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "hpa" / "train.csv"


def load_labels(seed: int) -> np.ndarray:
    if SHARED.exists():
        from hpa_ens.labels import read_labels

        return read_labels(SHARED).to_numpy()
    rng = np.random.default_rng(seed)  # fallback: independent labels at HPA-like rates
    rates = np.geomspace(0.4, 0.0005, 28)
    Y = (rng.random((31072, 28)) < rates).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


def baseline(X, Y, folds, X_test, threads: int, seed: int):
    from lightgbm import LGBMClassifier

    oof = np.zeros(Y.shape)
    test = np.zeros((len(X_test), Y.shape[1]))
    fold_ids = np.unique(folds)
    for k in fold_ids:
        tr, va = folds != k, folds == k
        for c in range(Y.shape[1]):
            y = Y[tr, c]
            if y.min() == y.max():
                oof[va, c] = y.mean()
                test[:, c] += y.mean() / len(fold_ids)
                continue
            model = LGBMClassifier(n_estimators=200, num_leaves=15, n_jobs=threads, random_state=seed, verbose=-1)
            model.fit(X[tr], y)
            oof[va, c] = model.predict_proba(X[va])[:, 1]
            test[:, c] += model.predict_proba(X_test)[:, 1] / len(fold_ids)
    return oof, test


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2,000 rows, 2 folds (< 60 s)")
    p.add_argument("--rows", type=int, default=24000)
    p.add_argument("--models", type=int, default=4)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.folds = 2000, 2
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    Y_all = load_labels(args.seed)
    order = np.random.default_rng(args.seed).permutation(len(Y_all))
    train, test = np.sort(order[: args.rows]), np.sort(order[args.rows :])
    probs = simulate_base_models(Y_all, n_models=args.models, seed=args.seed)
    Y = Y_all[train]
    folds = simple_folds(len(train), args.folds, args.seed)
    X, names = stack_features(list(probs[:, train]))
    X_test, _ = stack_features(list(probs[:, test]))
    blend_oof, blend_test = mean_blend(list(probs[:, train])), mean_blend(list(probs[:, test]))
    print(f"data: {len(train)} train x {X.shape[1]} features ({args.models} models), {len(test)} test, "
          f"{args.folds} folds, {args.threads} thread(s); labels from {'real train.csv' if SHARED.exists() else 'simulation'}")

    t0 = time.perf_counter()
    res = fit_predict_stack(X, Y, folds, X_test, blend_oof, blend_test,
                            params=default_params(args.seed, args.threads), seed=args.seed)
    t_stack = time.perf_counter() - t0
    t0 = time.perf_counter()
    base_oof, _ = baseline(X, Y, folds, X_test, args.threads, args.seed)
    t_base = time.perf_counter() - t0

    f1_stack, f1_base = exact_macro_f1(Y, res.oof), exact_macro_f1(Y, base_oof)
    f1_blend = exact_macro_f1(Y, blend_oof)
    trees = res.n_trees[res.n_trees > 0]
    print(f"plain LGBMClassifier loop : {t_base:7.1f} s   OOF macro F1 {f1_base:.4f}")
    print(f"hpa_ens.stack             : {t_stack:7.1f} s   OOF macro F1 {f1_stack:.4f}   "
          f"(mean {trees.mean():.0f} trees after early stopping; {int((res.method != 'lgbm').sum())} "
          f"fold-classes on the rare fallback)")
    print(f"mean blend (reference)    :            OOF macro F1 {f1_blend:.4f}")
    speedup = t_base / t_stack
    ok = speedup >= 4 and f1_stack >= f1_base
    print(f"speed-up {speedup:.1f}x (target >= 4x), F1 difference {f1_stack - f1_base:+.4f} (target >= 0): "
          f"{'MET' if ok else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HPA_ENS_NO_PROGRESS", "1")
    sys.exit(main())
