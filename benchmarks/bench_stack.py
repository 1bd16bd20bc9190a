"""Stacking speed: ``hpa_ens.stack`` at its defaults, its worker scaling, and plain ``LGBMClassifier`` loops.

Data: the real HPA label matrix (``../shared/hpa/train.csv``, 31,072 rows; independent labels at
HPA-like rates if absent, and then every figure's name says "(random labels)") as the OOF rows, 11,702
test rows drawn from it with replacement, and 4 and 10 prediction sets (``--models``) from
``hpa_ens.testing.label_noise`` (no planted per-image signal); 5 folds. Every row fits K classes per
fold and predicts the fold's rows *and* the test rows, on the same features:

1. ``hpa_ens.stack`` at its defaults: dynamic (the stack only where it beats the mean blend, nested in
   the folds), ``--n-jobs`` (default every CPU) (fold, class) models side by side, each LightGBM model
   on one thread, on a copy of its fold's bins (binned once per fold), early-stopped on an inner split,
   rare classes on the calibrated-blend fallback.
2. **The same stack on 1 worker.** Same models, same bytes (checked): the ratio of 2 to 1 is the worker
   scaling (target: 2 workers >= 1.7x faster than 1).
3. **The stack with ``--no-dynamic``** (every class with enough positives boosted), the side of the
   same-work comparison: row 4 does exactly its work.
4. **Same work, the way a user writes it**: ``LGBMClassifier`` per (fold, class) with the *same*
   parameters (``max_bin`` 63, ``colsample_bytree`` 0.5, ``min_child_samples`` 40, ``reg_lambda`` 1,
   <= 400 trees early-stopped on the same inner split), the same rare-class fallback, one model at a
   time on LightGBM's ``--n-jobs`` threads (a fresh binned Dataset per class). The ratio of 3 to 4 is
   the implementation gain (shared bins, models side by side on one thread each): same work.
5. **The plain loop**: ``LGBMClassifier(n_estimators=200, num_leaves=15)`` at LightGBM's defaults on
   every class, no early stopping, LightGBM's ``--n-jobs`` threads (what a user writes first). The
   ratio of 1 to 5 compares *configurations* (the stack's defaults against 200 fixed trees, 255 bins,
   all features, no fallback, no dynamic choice), not the same work; it is issue 20's target (>= 4x),
   emitted beside the headline and named as a configuration figure. Its F1 column shows the defaults'
   effect on F1.

Every row is timed once, after a warm-up run of every row on a 600-row slice (LightGBM's thread pool,
lazy imports), in wall and CPU time. OOF macro F1 is at exact per-class thresholds for every row.

    .venv/bin/python benchmarks/bench_stack.py            # full size: 31,072 + 11,702 rows x 4 and 10 sets (long)
    .venv/bin/python benchmarks/bench_stack.py --quick    # 3,000 + 800 rows x 3 sets, 2 folds
    .venv/bin/python benchmarks/bench_stack.py --models 4 --rows 8000 --skip plain   # a smaller run
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hpa_ens.commands.stack import prefer_passive_omp_wait  # noqa: E402
from hpa_ens.ensemble import (EARLY_STOPPING_ROUNDS, Stacker, default_params, inner_split, mean_blend,  # noqa: E402
                              rare_fallback, stack_features)
from hpa_ens.utils import available_cpus, resolve_n_jobs  # noqa: E402
from hpa_ens.testing.label_noise import simulate_label_noise_models  # noqa: E402
from hpa_ens.testing.simulate import simple_folds  # noqa: E402
from hpa_ens.thresholds import exact_macro_f1  # noqa: E402
from results import emit  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "hpa" / "train.csv"


def one_pass_stack(oof_sets, Y, folds, test_sets, **params):
    """OOF and test in one pass, no boosters kept (as ``hpa-ens stack`` stacks): the StackResult."""
    return Stacker(keep_models=False, **params).fit(oof_sets, Y, folds, X_test=test_sets).result_


def data_suffix() -> str:
    """What every figure name ends with: " (random labels)" when ../shared is absent, so that figures on
    random labels never take the real ones' names."""
    return "" if SHARED.exists() else " (random labels)"


def load_labels(seed: int) -> np.ndarray:
    """The real label matrix, or (without ../shared; see :func:`data_suffix`) independent labels at HPA-like rates."""
    if SHARED.exists():
        from hpa_ens.labels import read_labels

        return read_labels(SHARED).to_numpy()
    rng = np.random.default_rng(seed)  # fallback: independent labels at HPA-like rates
    rates = np.geomspace(0.4, 0.0005, 28)
    Y = (rng.random((31072, 28)) < rates).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


def make_data(n_rows: int, n_test: int, n_models: int, seed: int):
    """(oof_sets, test_sets, Y) with rows drawn from the label matrix; test rows drawn with replacement."""
    Y_all = load_labels(seed)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(Y_all), n_rows, replace=False)) if n_rows < len(Y_all) else np.arange(len(Y_all))
    test_rows = rng.choice(len(Y_all), n_test, replace=True)
    Y, Y_test = Y_all[rows], Y_all[test_rows]
    probs = simulate_label_noise_models(np.vstack([Y, Y_test]), n_models, seed=seed)
    return list(probs[:, : len(Y)]), list(probs[:, len(Y):]), Y


def same_work_loop(X, Y, folds, X_test, blend_oof, blend_test, params: dict, seed: int, n_rounds: int = 400,
                   early_stopping_rounds: int = EARLY_STOPPING_ROUNDS, inner_fraction: float = 0.2, min_positives: int = 20):
    """The stack's work with a fresh ``LGBMClassifier`` (and so a fresh binned Dataset) per (fold, class)."""
    import lightgbm as lgb
    from lightgbm import LGBMClassifier

    oof, test = np.zeros(Y.shape), np.zeros((len(X_test), Y.shape[1]))
    fold_ids = np.unique(folds)
    trees = []
    for k in fold_ids:
        train_rows, score_rows = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        es_rows, fit_rows = inner_split(train_rows, k, inner_fraction, seed)
        for c in range(Y.shape[1]):
            if Y[train_rows, c].sum() < min_positives:
                model = rare_fallback("mean", X[train_rows], Y[train_rows, c], blend_oof[train_rows, c], seed)
                oof[score_rows, c] = model.predict(X[score_rows], blend_oof[score_rows, c])
                test[:, c] += model.predict(X_test, blend_test[:, c]) / len(fold_ids)
                continue
            clf = LGBMClassifier(n_estimators=n_rounds, learning_rate=params["learning_rate"],
                                 num_leaves=params["num_leaves"], min_child_samples=params["min_data_in_leaf"],
                                 colsample_bytree=params["feature_fraction"], reg_lambda=params["lambda_l2"],
                                 max_bin=params["max_bin"], n_jobs=params["num_threads"], random_state=seed,
                                 deterministic=True, force_col_wise=True, verbose=-1)
            clf.fit(X[fit_rows], Y[fit_rows, c], eval_set=[(X[es_rows], Y[es_rows, c])],
                    callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)])
            best = clf.best_iteration_ or n_rounds
            trees.append(best)
            oof[score_rows, c] = clf.predict_proba(X[score_rows], num_iteration=best)[:, 1]
            test[:, c] += clf.predict_proba(X_test, num_iteration=best)[:, 1] / len(fold_ids)
    return oof, test, float(np.mean(trees)) if trees else 0.0


def plain_loop(X, Y, folds, X_test, n_jobs: int, seed: int):
    """``LGBMClassifier(n_estimators=200, num_leaves=15)`` per (fold, class) at LightGBM's defaults."""
    from lightgbm import LGBMClassifier

    oof, test = np.zeros(Y.shape), np.zeros((len(X_test), Y.shape[1]))
    fold_ids = np.unique(folds)
    for k in fold_ids:
        tr, va = folds != k, folds == k
        for c in range(Y.shape[1]):
            y = Y[tr, c]
            if y.min() == y.max():  # a class with one value in these rows: its share is the only answer
                oof[va, c] = y.mean()
                test[:, c] += y.mean() / len(fold_ids)
                continue
            model = LGBMClassifier(n_estimators=200, num_leaves=15, n_jobs=n_jobs, random_state=seed, verbose=-1)
            model.fit(X[tr], y)
            oof[va, c] = model.predict_proba(X[va])[:, 1]
            test[:, c] += model.predict_proba(X_test)[:, 1] / len(fold_ids)
    return oof, test


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process over all its threads, load before, load after).

    The CPU time is what a ratio should be read from on a shared box: another job's load stretches the wall
    time of whichever row it overlaps, but not the CPU time the row itself needs.
    """
    load0, wall0, cpu0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall0, time.process_time() - cpu0, load0, os.getloadavg()[0]


def run_sets(args, n_models: int, n_jobs: int, suffix: str) -> None:
    """Every row of the table on ``n_models`` prediction sets, and its figures (names end with the set count)."""
    oof_sets, test_sets, Y = make_data(args.rows, args.test_rows, n_models, args.seed)
    folds = simple_folds(len(Y), args.folds, args.seed)
    X, _ = stack_features(oof_sets)
    X_test, _ = stack_features(test_sets)
    blend_oof, blend_test = mean_blend(oof_sets), mean_blend(test_sets)
    tag = f" ({n_models} sets){suffix}"
    print(f"\ndata: {len(Y)} OOF + {len(X_test)} test rows x {X.shape[1]} features ({n_models} sets, K={Y.shape[1]}), "
          f"{args.folds} folds, {n_jobs} worker(s)/thread(s) of {available_cpus()} available, load "
          f"{os.getloadavg()[0]:.1f}; labels from {'real train.csv' if SHARED.exists() else 'simulation'}")
    sizes = dict(rows=len(Y), test_rows=len(X_test), models=n_models, n_jobs=n_jobs)

    # Warm-up: every row once on a small slice, so that no row pays first-call costs the others do not.
    w, wt = slice(0, 600), slice(0, 200)
    one_pass_stack([o[w] for o in oof_sets], Y[w], folds[w], [t[wt] for t in test_sets], n_jobs=n_jobs,
                   seed=args.seed)
    if "same" not in args.skip:
        same_work_loop(X[w], Y[w], folds[w], X_test[wt], blend_oof[w], blend_test[wt],
                       default_params(args.seed, n_jobs), args.seed)
    if "plain" not in args.skip:
        plain_loop(X[w], Y[w], folds[w], X_test[wt], n_jobs, args.seed)

    res, t_stack, cpu_stack, *load = timed(one_pass_stack, oof_sets, Y, folds, test_sets, n_jobs=n_jobs,
                                           seed=args.seed)
    f1_stack = exact_macro_f1(Y, res.oof)
    trees = res.n_trees[res.n_trees > 0]
    stacked = int((res.method == "lgbm").sum())
    print(f"1 hpa_ens.stack (defaults, {n_jobs} workers)  : {t_stack:7.1f} s ({cpu_stack:.0f} CPU s, load "
          f"{load[0]:.1f}->{load[1]:.1f})  OOF macro F1 {f1_stack:.4f}  (mean {trees.mean():.0f} trees; "
          f"{stacked} of {res.method.size} fold-classes stacked, the rest on the blend; folds kept: "
          f"{int((res.fold_gain > 0).sum())} of {len(res.fold_gain)})")
    if "workers" not in args.skip and n_jobs > 1:
        one, t_one, cpu_one, *load = timed(one_pass_stack, oof_sets, Y, folds, test_sets, n_jobs=1, seed=args.seed)
        same = bool(np.array_equal(one.oof, res.oof) and np.array_equal(one.test, res.test)
                    and (one.method == res.method).all())
        print(f"2 hpa_ens.stack (defaults, 1 worker)    : {t_one:7.1f} s ({cpu_one:.0f} CPU s, load {load[0]:.1f}->"
              f"{load[1]:.1f})  -> {n_jobs} workers {t_one / t_stack:.2f}x faster (target >= 1.7x at 2: "
              f"{'MET' if t_one / t_stack >= 1.7 else 'NOT MET'}); same bytes: {same}")
        if not same:
            raise SystemExit("the stack's results differ between 1 and n workers: a bug")
        emit(f"stack worker scaling: 1 worker vs {n_jobs} workers{tag}", t_stack, "s", baseline=t_one,
             baseline_name="the same stack on 1 worker", differs="workers only: same stack, same results",
             f1=f1_stack, same_results=same, cpu=cpu_stack, baseline_cpu=cpu_one, **sizes,
             note=f"{n_jobs} workers vs 1, results identical (checked); target >= 1.7x at 2 workers")
    if "same" not in args.skip:
        plain_stack, t_always, cpu_always, *load = timed(one_pass_stack, oof_sets, Y, folds, test_sets,
                                                         n_jobs=n_jobs, seed=args.seed, dynamic=False)
        f1_always = exact_macro_f1(Y, plain_stack.oof)
        print(f"3 hpa_ens.stack --no-dynamic            : {t_always:7.1f} s ({cpu_always:.0f} CPU s, load "
              f"{load[0]:.1f}->{load[1]:.1f})  OOF macro F1 {f1_always:.4f}")
        (same_oof, _, same_trees), t_same, cpu_same, *load = timed(
            same_work_loop, X, Y, folds, X_test, blend_oof, blend_test, default_params(args.seed, n_jobs), args.seed)
        f1_same = exact_macro_f1(Y, same_oof)
        print(f"4 LGBMClassifier loop, same parameters  : {t_same:7.1f} s ({cpu_same:.0f} CPU s, load {load[0]:.1f}->"
              f"{load[1]:.1f})  OOF macro F1 {f1_same:.4f}  (mean {same_trees:.0f} trees)  -> the stack's "
              f"implementation: {t_same / t_always:.2f}x wall, {cpu_same / cpu_always:.2f}x CPU")
        same = ("implementation only: same parameters, early stopping, inner split and rare-class fallback, every "
                f"class boosted (the stack with --no-dynamic); bins made once per fold and {n_jobs} (fold, class) "
                f"models side by side on one thread each vs a fresh Dataset per class, one model at a time on "
                f"LightGBM's {n_jobs} threads")
        emit(f"stack vs LGBMClassifier loop doing the same work (what the implementation buys){tag}", t_always, "s",
             baseline=t_same, baseline_name="same parameters, early stopping and fallbacks, fresh Dataset per class",
             differs=same, f1=f1_always, baseline_f1=f1_same, **sizes,
             note=f"OOF macro F1 {f1_always:.4f} vs {f1_same:.4f}; each row timed once after a warm-up")
        emit(f"stack vs the same-work loop, CPU time{tag}", cpu_always, "s", baseline=cpu_same,
             baseline_name="same-work loop, CPU s", differs=same,
             note="CPU time of the process: robust to other jobs' load")
    if "plain" not in args.skip:
        (plain_oof, _), t_plain, cpu_plain, *load = timed(plain_loop, X, Y, folds, X_test, n_jobs, args.seed)
        f1_plain = exact_macro_f1(Y, plain_oof)
        ratio, cpu_ratio = t_plain / t_stack, cpu_plain / cpu_stack
        print(f"5 LGBMClassifier(200 trees, 15 leaves)  : {t_plain:7.1f} s ({cpu_plain:.0f} CPU s, load "
              f"{load[0]:.1f}->{load[1]:.1f})  OOF macro F1 {f1_plain:.4f}  -> {ratio:.2f}x wall, {cpu_ratio:.2f}x "
              f"CPU (target >= 4x: {'MET' if ratio >= 4 else 'NOT MET'}), F1 {f1_stack - f1_plain:+.4f}")
        config = ("configuration: the stack's defaults (dynamic choice, early stopping, 63 bins, half the features, "
                  "rare-class fallback, models side by side) vs LightGBM's (200 fixed trees, 255 bins, all features, "
                  "no fallback, one model at a time on its threads)")
        emit(f"configuration, not the same work: stack at its defaults vs plain LGBMClassifier(200 trees, 15 leaves) "
             f"loop{tag}", t_stack, "s", baseline=t_plain, baseline_name="LGBMClassifier(200, 15) per fold and class",
             differs=config, f1=f1_stack, baseline_f1=f1_plain, **sizes,
             note=f"OOF macro F1 {f1_stack:.4f} vs {f1_plain:.4f}; target >= 4x")
        emit(f"configuration, not the same work: stack at its defaults vs the plain loop, CPU time{tag}",
             cpu_stack, "s", baseline=cpu_plain, baseline_name="LGBMClassifier(200, 15) loop, CPU s", differs=config,
             note="CPU time of the process: robust to other jobs' load; the wall-time figure is the target's")
    print(f"mean blend (reference)                  :            OOF macro F1 {exact_macro_f1(Y, blend_oof):.4f}")


def main(argv=None) -> int:
    prefer_passive_omp_wait()  # as hpa-ens stack runs it, before lightgbm loads (every row alike)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3,000 + 800 rows x 3 sets, 2 folds")
    p.add_argument("--rows", type=int, default=31072)
    p.add_argument("--test-rows", type=int, default=11702)
    p.add_argument("--models", type=int, nargs="+", default=[4, 10], help="prediction sets, one table per count")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--n-jobs", type=int, default=None,
                   help="workers of the stack and LightGBM threads of the loops (default: every available CPU)")
    p.add_argument("--skip", nargs="*", default=[], choices=["workers", "same", "plain"], help="rows not to run")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.test_rows, args.models, args.folds = 3000, 800, [3], 2
    import lightgbm  # noqa: F401 - loaded before any timing, so that no row pays the import

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    warnings.filterwarnings("ignore", message=".*eval_set.*deprecated")
    n_jobs = resolve_n_jobs(args.n_jobs)
    for n_models in args.models:
        run_sets(args, n_models, n_jobs, data_suffix())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HPA_ENS_NO_PROGRESS", "1")
    sys.exit(main())
