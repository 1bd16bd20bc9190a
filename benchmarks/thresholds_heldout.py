"""Held-out macro F1 of each ``tune_thresholds`` method on a simulated set whose test part is shaped like the LB.

    .venv/bin/python benchmarks/thresholds_heldout.py [--quick] [--seed 0] [--work DIR]

Data: the real label matrix ../shared/hpa/train.csv, one simulated model (``hpa_ens.testing.simulate``), 25 % held out
and drawn toward the leaderboard-probed shares (../shared/hpa/lb_label_distribution.csv), as the real test
set differed from train. Each method is tuned on the 75 % (OOF) with the CLI, then scored on the held-out
truth with the same min/max-labels rule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HPA_ENS_NO_PROGRESS", "1")

from hpa_ens.contract import read_prediction_set  # noqa: E402
from hpa_ens.thresholds import apply_thresholds  # noqa: E402
from hpa_ens.contract.thresholds import read_target_shares  # noqa: E402
from hpa_ens.labels import read_labels  # noqa: E402
from hpa_ens.thresholds import DEFAULT_WITH_TARGET  # noqa: E402
from hpa_ens.task import load_task  # noqa: E402
from hpa_ens.metrics import macro_f1  # noqa: E402
from hpa_ens.testing.simulate import write_simulated_sets  # noqa: E402
from hpa_ens.thresholds import distribution_gap  # noqa: E402
from hpa_ens.commands.thresholds import main as tune  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "hpa"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 Optuna trials, 30 bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="folder for the simulated set and outputs (default: a temp dir)")
    args = ap.parse_args(argv)
    if not (SHARED / "train.csv").exists():
        print(f"{SHARED} not found: this benchmark needs the real label matrix; skipped.")
        return 0
    lb = SHARED / "lb_label_distribution.csv"
    work = Path(args.work or tempfile.mkdtemp(prefix="thr_heldout_"))
    labels = read_labels(SHARED / "train.csv")
    target = read_target_shares(lb, load_task("hpa2018"))
    paths = write_simulated_sets(work / "sim", labels.to_numpy(), labels.index, n_models=1, seed=args.seed,
                                 target_shares=target)
    pred = paths["models"][0]
    trials, n_boot = ("30", "30") if args.quick else ("100", "100")
    runs = {
        "exact": ["--method", "exact"],
        "exact --robust bootstrap": ["--method", "exact", "--robust", "bootstrap", "--n-boot", n_boot],
        "boot (default without a target)": [],
        "match (train shares)": ["--method", "match", "--target-dist", "train"],
        f"default with lb shares ({DEFAULT_WITH_TARGET})": ["--target-dist", str(lb)],
        "blend (lb)": ["--method", "blend", "--target-dist", str(lb)],
        "plugin (lb)": ["--method", "plugin", "--target-dist", str(lb)],
        "match (lb shares)": ["--method", "match", "--target-dist", str(lb)],
        "match (lb) --tolerance 0.2": ["--method", "match", "--target-dist", str(lb), "--tolerance", "0.2"],
        "match (lb) --tolerance 0.5": ["--method", "match", "--target-dist", str(lb), "--tolerance", "0.5"],
        f"optuna (lb) tol 0.15, {trials} trials": ["--method", "optuna", "--target-dist", str(lb), "--tolerance",
                                                   "0.15", "--trials", trials, "--seed", str(args.seed)],
    }
    truth = read_labels(paths["test_labels"])
    test = read_prediction_set(pred, test_ids=truth.index).test.to_numpy()
    print(f"simulated set in {work}: {len(labels) - len(truth):,} OOF rows, {len(truth):,} held-out rows (LB-shaped)")
    # OOF F1: cross-fitted (each fold scored with the rule tuned on the other folds); in-sample: tuned and scored on
    # every OOF row, what this table printed before issue 27.
    print(f"{'method':<36} {'OOF F1':>7} {'in-sample':>9} {'held-out F1':>11} {'gap to LB shares':>17}  labels")
    for i, (name, extra) in enumerate(runs.items()):
        out = work / f"thr_{i}.json"
        tune(["--labels", str(paths["labels"]), "--pred", str(pred), "--out", str(out), *extra])
        res = json.loads(out.read_text())
        y_pred = apply_thresholds(test, res["thresholds"], res["min_labels"], res["max_labels"])
        print(f"{name:<36} {res['oof_macro_f1']:>7.4f} {res['oof_macro_f1_in_sample']:>9.4f} "
              f"{macro_f1(truth.to_numpy(), y_pred):>11.4f} "
              f"{distribution_gap(y_pred.mean(axis=0), target):>17.3f}  min {res['min_labels']} max {res['max_labels']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
