"""Fold strategies on the real labels: runtime and split quality against shuffled KFold.

    .venv/bin/python benchmarks/bench_folds.py [--quick] [--labels FILE] [--groups FILE ...] [--seeds N]

Uses ../shared/hpa/train.csv and leak/pedrodiamel_dupes.csv when present, else HPA-like random labels
of the same shape (and then every figure's name and table say "random labels": they never take the real
labels' names). Every strategy runs on the same labels and groups in this process, after the same
warm-up; the quality figures are means over seeds, the seconds the fastest seed of each, and the ratios
are against shuffled KFold (the baseline).
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

from results import emit  # noqa: E402  (first: the run's provenance is printed at its start)

from hpa_ens.folds import STRATEGIES, kfold_assign, make_folds, split_quality  # noqa: E402
from hpa_ens.groups import group_codes, read_groups  # noqa: E402
from hpa_ens.labels import read_labels  # noqa: E402

SHARED = ROOT.parent / "shared" / "hpa"


def hpa_like_labels(n: int = 31072, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 0.4 * np.exp(-np.arange(28) / 4.0) + 0.0005
    Y = (rng.random((n, 28)) < p).astype(np.uint8)
    Y[Y.sum(axis=1) == 0, 0] = 1
    return Y


def measure(Y: np.ndarray, K: int, seeds, codes) -> dict:
    """Per strategy (KFold first): fastest seconds and the split-quality means over ``seeds``."""
    rows = {}
    for name in ("kfold",) + STRATEGIES:
        seconds, quality = [], []
        for seed in seeds:
            start = time.perf_counter()
            if name == "kfold":
                folds = kfold_assign(len(Y), K, seed)
            else:
                folds = make_folds(Y, K, seed, codes, name)
            seconds.append(time.perf_counter() - start)
            quality.append(split_quality(Y, folds, K, codes))
        spread = np.mean([np.max(np.asarray(q["pos_max"]) - np.asarray(q["pos_min"])) for q in quality])
        rare = np.mean([q["pos_max"][27] - q["pos_min"][27] for q in quality])
        rows[name] = {
            # min over seeds: the machine is shared, and the fastest run is the least disturbed one.
            "seconds": float(np.min(seconds)),
            "LD": float(np.mean([q["LD"] for q in quality])),
            # the seeds' extremes: how much one split's LD varies with the seed
            "LD_low": float(np.min([q["LD"] for q in quality])),
            "LD_high": float(np.max([q["LD"] for q in quality])),
            "LPD": float(np.mean([q["LPD"] for q in quality])),
            "ED": float(np.mean([q["ED"] for q in quality])),
            "max_rel_dev": float(np.mean([q["max_rel_dev"] for q in quality])),
            "FZLP": float(np.mean([q["FZLP"] for q in quality])),
            "groups_split": float(np.mean([q.get("groups_split", 0) for q in quality])),
            "spread27": float(rare),
            "max_spread": float(spread),
        }
    return rows


def emit_table(rows: dict, table: str, suffix: str, note: str) -> None:
    """One pivot table: a row per strategy, KFold first; ratios against KFold."""
    base = rows["kfold"]
    for name, r in rows.items():
        row = "KFold" if name == "kfold" else name
        for col, value, unit in (("seconds", r["seconds"], "s"), ("LD", r["LD"], ""),
                                 ("LD / KFold", r["LD"] / base["LD"], "×"), ("LPD", r["LPD"], ""),
                                 ("LPD / KFold", r["LPD"] / base["LPD"], "×"), ("ED", r["ED"], ""),
                                 ("groups split", r["groups_split"], ""),
                                 ("class 27 spread", r["spread27"], ""),
                                 ("LD, lowest seed", r["LD_low"], ""), ("LD, highest seed", r["LD_high"], "")):
            emit(f"folds table: {row}, {col}{suffix}", value, unit, table=table, row=row, col=col, note=note)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed (< 60 s)")
    ap.add_argument("--labels", default=str(SHARED / "train.csv"))
    ap.add_argument("--groups", nargs="*", default=None)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n-folds", type=int, default=5)
    args = ap.parse_args(argv)
    seeds = range(1 if args.quick else args.seeds)
    K = args.n_folds

    if Path(args.labels).exists():
        labels = read_labels(args.labels)
        ids, Y, source = labels.index.tolist(), labels.to_numpy(), args.labels
        suffix, table = "", "folds"
    else:
        Y = hpa_like_labels()
        ids, source = [f"r{i}" for i in range(len(Y))], "HPA-like random labels"
        suffix, table = " (random labels)", "folds-random-labels"  # never the real labels' names
    group_files = args.groups if args.groups is not None else (
        [str(SHARED / "leak" / "pedrodiamel_dupes.csv")] if (SHARED / "leak" / "pedrodiamel_dupes.csv").exists()
        and Path(args.labels).exists() else [])
    codes = group_codes(read_groups(group_files, ids=ids), ids) if group_files else None
    print(f"labels: {source} ({len(Y):,} x {Y.shape[1]}), groups: {group_files or 'none'}, "
          f"{K} folds, seeds {list(seeds)}")

    # Warm-up: imports and first-call costs are not part of a strategy's runtime.
    kfold_assign(100, K, 0)
    for name in STRATEGIES:
        make_folds(Y[:500], K, 0, None, name)

    rows = measure(Y, K, seeds, codes)
    base = rows["kfold"]
    header = (f"{'strategy':<13}{'seconds':>9}{'LD':>10}{'LD/KFold':>10}{'LPD':>10}{'LPD/KFold':>10}"
              f"{'ED':>8}{'maxreldev':>10}{'FZLP':>7}{'split grp':>10}{'c27 spread':>11}")
    print(header)
    for name, r in rows.items():
        print(f"{name:<13}{r['seconds']:>9.3f}{r['LD']:>10.5f}{r['LD'] / base['LD']:>10.3f}{r['LPD']:>10.5f}"
              f"{r['LPD'] / base['LPD']:>10.3f}{r['ED']:>8.1f}{r['max_rel_dev']:>10.3f}{r['FZLP']:>7.1f}"
              f"{r['groups_split']:>10.1f}{r['spread27']:>11.1f}")
    it, ra, sf = rows["iterative"], rows["rarest"], rows["single-first"]
    print(f"rarest / iterative LD: {ra['LD'] / it['LD']:.2f}x, LPD: {ra['LPD'] / it['LPD']:.2f}x; "
          f"single-first / iterative LD: {sf['LD'] / it['LD']:.2f}x, LPD: {sf['LPD'] / it['LPD']:.2f}x")
    print(f"iterative runtime: {it['seconds']:.2f} s ({it['seconds'] / max(base['seconds'], 1e-9):.0f}x KFold)")
    note = f"{len(Y):,} rows, {K} folds, mean over {len(seeds)} seed(s); seconds = fastest run"
    emit_table(rows, table, suffix, note)
    if codes is not None:
        # The same strategies without the duplicate groups (docs/folds_eda.md compares the two).
        emit_table(measure(Y, K, seeds, None), f"{table}-no-groups", f"{suffix} (no groups)", note + "; no groups")
    for name in STRATEGIES:
        emit(f"folds: {name} label-distribution deviation (LD) vs KFold{suffix}", rows[name]["LD"], "LD",
             baseline=base["LD"], baseline_name="KFold", ratio=rows[name]["LD"] / base["LD"],
             differs=f"method: the {name} strategy vs shuffled KFold; same labels, groups, folds and seeds",
             note=f"{rows[name]['seconds']:.2f} s; lower LD is better; {len(Y):,} rows, {K} folds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
