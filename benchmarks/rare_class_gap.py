"""OOF-vs-held-out F1 gap per class of exact vs robust (bootstrap, shrink) thresholds.

    .venv/bin/python benchmarks/rare_class_gap.py [--quick] [--seeds 5] [--rare-max 100] [--out gap.csv]

Data (the stacking issue's benchmark): the real HPA label matrix ../shared/hpa/train.csv (31,072 x 28) with
simulated base models from ``hpa_ens.testing.simulate`` (3 models averaged, as a blend would), split by
``holdout_split`` into a tuning part (75 %, the "OOF") and a held-out part (25 %). Thresholds are tuned on
the tuning part only; per class we report F1 there (OOF) and on the held-out rows, and the gap between
them, averaged over seeds. Exact cuts over-fit rare classes: their gap is large and positive.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpa_ens.classes import CLASS_NAMES, N_CLASSES  # noqa: E402
from hpa_ens.metrics import per_class_f1  # noqa: E402
from hpa_ens.testing.simulate import holdout_split, simulate_base_models  # noqa: E402
from hpa_ens.thresholds import robust_thresholds  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "hpa" / "train.csv"
METHODS = ("none", "bootstrap", "shrink")


def run_seed(Y: np.ndarray, seed: int, rare_max: int, n_boot: int, strength: float) -> dict:
    probs = simulate_base_models(Y, n_models=3, seed=seed).mean(axis=0)
    tune_idx, held_idx = holdout_split(Y, 0.25, seed=seed)
    out = {"n_pos": Y[tune_idx].sum(axis=0)}
    for method in METHODS:
        thr, _ = robust_thresholds(probs[tune_idx], Y[tune_idx], method, rare_max=rare_max, n_boot=n_boot,
                                   strength=strength, seed=seed)
        # Plain thresholds, no min/max rule: the gap is a property of each class's cut alone.
        out[method] = (per_class_f1(Y[tune_idx], probs[tune_idx] > thr), per_class_f1(Y[held_idx], probs[held_idx] > thr))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds, 30 bootstrap resamples (< 60 s)")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--rare-max", type=int, default=100)
    ap.add_argument("--n-boot", type=int, default=None)
    ap.add_argument("--strength", type=float, default=50.0)
    ap.add_argument("--out", default=None, help="optional CSV of the per-class table")
    args = ap.parse_args(argv)
    n_seeds = args.seeds or (2 if args.quick else 5)
    n_boot = args.n_boot or (30 if args.quick else 100)
    if not SHARED.exists():
        print(f"{SHARED} not found: this benchmark needs the real label matrix; skipped.")
        return 0
    from hpa_ens.labels import read_labels

    Y = read_labels(SHARED).to_numpy()
    runs = [run_seed(Y, seed, args.rare_max, n_boot, args.strength) for seed in range(n_seeds)]
    n_pos = np.mean([r["n_pos"] for r in runs], axis=0)
    oof = {m: np.mean([r[m][0] for r in runs], axis=0) for m in METHODS}
    held = {m: np.mean([r[m][1] for r in runs], axis=0) for m in METHODS}
    gap = {m: oof[m] - held[m] for m in METHODS}

    print(f"{Y.shape[0]:,} x {N_CLASSES} real labels, simulated 3-model blend, 75/25 split, {n_seeds} seeds; "
          f"robust variants on classes with < {args.rare_max} tuning positives; bootstrap {n_boot} resamples, "
          f"shrink strength {args.strength:g}")
    header = f"{'class':<28}{'n_pos':>7} | {'gap exact':>9} {'gap boot':>9} {'gap shrink':>10} | " \
             f"{'held exact':>10} {'held boot':>9} {'held shrink':>11}"
    print(header)
    print("-" * len(header))
    rows = []
    for k in np.argsort(n_pos, kind="stable"):
        print(f"{k:>2} {CLASS_NAMES[k][:24]:<25}{n_pos[k]:>7.0f} | {gap['none'][k]:>+9.3f} {gap['bootstrap'][k]:>+9.3f} "
              f"{gap['shrink'][k]:>+10.3f} | {held['none'][k]:>10.3f} {held['bootstrap'][k]:>9.3f} "
              f"{held['shrink'][k]:>11.3f}")
        rows.append([int(k), CLASS_NAMES[k], n_pos[k], *(gap[m][k] for m in METHODS), *(held[m][k] for m in METHODS)])
    rare = n_pos < args.rare_max
    print("-" * len(header))
    for m in METHODS:
        print(f"{m:<10} rare classes ({rare.sum()}): mean gap {gap[m][rare].mean():+.4f}, mean held-out F1 "
              f"{held[m][rare].mean():.4f} | all classes: held-out macro F1 {held[m].mean():.4f}, "
              f"OOF macro F1 {oof[m].mean():.4f}")
    base = held["none"].mean()
    for m in METHODS[1:]:
        print(f"{m} vs exact: held-out macro F1 {held[m].mean() - base:+.4f}; rare-class gap "
              f"{gap[m][rare].mean() - gap['none'][rare].mean():+.4f}")
    if args.out:
        import pandas as pd

        from hpa_ens.io import atomic_open

        frame = pd.DataFrame(rows, columns=["class", "name", "n_pos", *(f"gap_{m}" for m in METHODS),
                                            *(f"held_f1_{m}" for m in METHODS)])
        with atomic_open(args.out, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False, lineterminator="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
