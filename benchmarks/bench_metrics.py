"""macro_f1 vs sklearn's f1_score on 31,072 x 28 (target: >= 10x faster, equal to 1e-12).

Both sides are timed the same way (``results.time_same_way``): one warm-up call each, then the same
number of interleaved calls, the median of each.

Run: .venv/bin/python benchmarks/bench_metrics.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit, time_same_way  # noqa: E402  (first: the run's provenance is printed at its start)

import numpy as np  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from hpa_ens.metrics import bootstrap_macro_f1, macro_f1  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeats = 15 if args.quick else 50
    rng = np.random.default_rng(0)
    y_true = rng.random((31072, 28)) < 0.06
    y_pred = y_true ^ (rng.random(y_true.shape) < 0.05)
    ours = macro_f1(y_true, y_pred)
    ref = f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert abs(ours - ref) < 1e-12, (ours, ref)
    y_true8, y_pred8 = y_true.astype(np.uint8), y_pred.astype(np.uint8)
    timing = time_same_way({"sklearn": lambda: f1_score(y_true, y_pred, average="macro", zero_division=0),
                            "ours": lambda: macro_f1(y_true, y_pred),
                            "uint8": lambda: macro_f1(y_true8, y_pred8)}, repeats=repeats, warmup=1)
    t_sklearn, t_ours, t_uint8 = (timing[k]["wall"] for k in ("sklearn", "ours", "uint8"))
    start = time.perf_counter()
    bootstrap_macro_f1(y_true, y_pred, n_boot=1000)
    t_boot = time.perf_counter() - start
    print(f"macro F1 on 31,072x28 (median of {repeats} after a warm-up, each): sklearn {t_sklearn * 1e3:.1f} ms, "
          f"hpa_ens {t_ours * 1e3:.2f} ms (bool), {t_uint8 * 1e3:.2f} ms (uint8); ratio {t_sklearn / t_ours:.0f}x "
          f"(target >= 10x); |diff| {abs(ours - ref):.1e}")
    print(f"bootstrap CI, 1000 replicates: {t_boot:.2f} s")
    emit("macro F1 on 31,072 x 28 vs sklearn f1_score(average='macro')", t_ours, "s", baseline=t_sklearn,
         baseline_name="sklearn f1_score",
         differs="implementation only: the same boolean matrices, the same macro F1 (checked to 1e-12)",
         note=f"same value (|diff| {abs(ours - ref):.0e}); median of {repeats} after a warm-up, both sides; "
              "target >= 10x")
    emit("bootstrap macro F1 interval, 1,000 replicates on 31,072 x 28", t_boot, "s")


if __name__ == "__main__":
    main()
