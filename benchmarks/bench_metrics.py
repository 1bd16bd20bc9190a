"""macro_f1 vs sklearn's f1_score on 31,072 x 28 (target: >= 10x faster, equal to 1e-12).

Run: .venv/bin/python benchmarks/bench_metrics.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import f1_score

from hpa_ens.metrics import bootstrap_macro_f1, macro_f1


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import emit

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeat = 3 if args.quick else 10
    rng = np.random.default_rng(0)
    y_true = rng.random((31072, 28)) < 0.06
    y_pred = y_true ^ (rng.random(y_true.shape) < 0.05)
    ours = macro_f1(y_true, y_pred)
    ref = f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert abs(ours - ref) < 1e-12, (ours, ref)
    t_sklearn = best_time(lambda: f1_score(y_true, y_pred, average="macro", zero_division=0), repeat)
    t_ours = best_time(lambda: macro_f1(y_true, y_pred), repeat * 5)
    t_uint8 = best_time(lambda: macro_f1(y_true.astype(np.uint8), y_pred.astype(np.uint8)), repeat * 5)
    t_boot = best_time(lambda: bootstrap_macro_f1(y_true, y_pred, n_boot=1000), 1)
    print(f"macro F1 on 31,072x28: sklearn {t_sklearn * 1e3:.1f} ms, hpa_ens {t_ours * 1e3:.2f} ms "
          f"(bool), {t_uint8 * 1e3:.2f} ms (uint8); ratio {t_sklearn / t_ours:.0f}x (target >= 10x); |diff| {abs(ours - ref):.1e}")
    print(f"bootstrap CI, 1000 replicates: {t_boot:.2f} s")
    emit("macro F1 on 31,072 x 28 vs sklearn f1_score(average='macro')", t_ours, "s", baseline=t_sklearn,
         baseline_name="sklearn f1_score", note=f"same value (|diff| {abs(ours - ref):.0e}); target >= 10x")
    emit("bootstrap macro F1 interval, 1,000 replicates on 31,072 x 28", t_boot, "s")


if __name__ == "__main__":
    main()
