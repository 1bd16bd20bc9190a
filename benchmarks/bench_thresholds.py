"""Exact per-class threshold search vs Optuna TPE over the same 28 thresholds (same data, same process).

    .venv/bin/python benchmarks/bench_thresholds.py [--quick] [--trials 200 1000] [--seed 0]

Data: the real HPA label matrix (../shared/hpa/train.csv, 31,072 x 28) with one simulated base model from
``hpa_ens.testing.simulate``; without ../shared, a random label matrix with the same class counts. Both methods
score plain thresholds (no min/max-labels rule), so the macro F1s compare like for like.
Target: exact search <= 0.1 s on 31,072 x 28.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpa_ens.metrics import macro_f1  # noqa: E402
from hpa_ens.testing.simulate import simulate_base_models  # noqa: E402
from hpa_ens.thresholds import exact_thresholds  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "hpa" / "train.csv"
TARGET_S = 0.1


def load_labels(seed: int) -> tuple[np.ndarray, str]:
    if SHARED.exists():
        from hpa_ens.labels import read_labels

        return read_labels(SHARED).to_numpy(), str(SHARED)
    counts = np.array([12885, 1254, 3621, 1561, 1858, 2513, 1008, 2822, 53, 45, 28, 1093, 688, 537, 1066, 21,
                       530, 210, 902, 1482, 172, 3777, 802, 2965, 322, 8228, 328, 11])
    rng = np.random.default_rng(seed)
    Y = np.zeros((31072, 28), dtype=np.uint8)
    for k, c in enumerate(counts):
        Y[rng.choice(len(Y), c, replace=False), k] = 1
    return Y, "random labels with the HPA class counts"


def optuna_search(probs: np.ndarray, Y: np.ndarray, n_trials: int, seed: int) -> tuple[np.ndarray, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    y_true = Y.astype(bool)

    def objective(trial):
        thr = np.array([trial.suggest_float(f"t{k}", 0.0, 1.0) for k in range(probs.shape[1])])
        return macro_f1(y_true, probs > thr)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    best = np.array([study.best_params[f"t{k}"] for k in range(probs.shape[1])])
    return best, float(study.best_value)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 trials only, 3 timing repeats (< 60 s)")
    ap.add_argument("--trials", type=int, nargs="+", default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    trials = args.trials or ([200] if args.quick else [200, 1000])
    repeats = args.repeats or (3 if args.quick else 7)

    Y, source = load_labels(args.seed)
    probs = simulate_base_models(Y, n_models=1, seed=args.seed)[0]
    print(f"data: {probs.shape[0]:,} x {probs.shape[1]} ({source}; simulated model, seed {args.seed}); "
          f"cpus: {os.cpu_count()}")

    exact_thresholds(Y, probs)  # warm-up (imports, allocator)
    # CPU time as well as wall time: on a shared machine the wall clock mostly measures the neighbours.
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        thr, _ = exact_thresholds(Y, probs)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    exact_s, exact_cpu = float(np.median(wall)), float(np.median(cpu))
    exact_f1 = macro_f1(Y, probs > thr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f}")
    print(f"exact search : median wall {exact_s * 1000:7.1f} ms, cpu {exact_cpu * 1000:6.1f} ms ({repeats} runs)  "
          f"OOF macro F1 {exact_f1:.4f}   target <= {TARGET_S * 1000:.0f} ms (cpu): "
          f"{'met' if exact_cpu <= TARGET_S else 'MISSED'}")
    for n_trials in trials:
        start, start_cpu = time.perf_counter(), time.process_time()
        _, tpe_f1 = optuna_search(probs, Y, n_trials, args.seed)
        tpe_s, tpe_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        print(f"optuna TPE   : {n_trials:5d} trials wall {tpe_s:6.2f} s, cpu {tpe_cpu:6.2f} s  OOF macro F1 "
              f"{tpe_f1:.4f}   exact: {tpe_cpu / exact_cpu:,.0f}x less cpu, {exact_f1 - tpe_f1:+.4f} F1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
