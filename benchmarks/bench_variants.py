"""Issue-6 variants vs the plain config: OOF macro F1 on the same synthetic set and folds.

    .venv/bin/python benchmarks/bench_variants.py [--quick] [--data DIR] [--work DIR] [--report benchmarks/variants.md]

Trains every config in ``base_models/configs/variants/`` on every fold (in this process, one after
the other), collects each into a prediction set under ``WORK/oof/NAME/`` and prints one row per
variant: OOF macro F1 with per-class best thresholds (tuned on the OOF rows themselves, so
optimistic, the same way for every row) and at 0.5, a bootstrap interval, the mean F1 on a subset of
training rows (the over-fitting gap = train F1 - fold F1), and wall time. Without ``--data`` it
generates the set (``hpa_ens.synth``, 1,200 train / 300 test at 64 px, 3 folds; ``--quick``:
48 / 12 at 32 px, 2 folds, 1 epoch, a tiny backbone and a subset of the variants, < 60 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from base_models import collect as collect_mod  # noqa: E402
from base_models import train as train_mod  # noqa: E402
from base_models.config import load_config  # noqa: E402
from hpa_ens.io import atomic_write_text  # noqa: E402
from hpa_ens.contract import read_prediction_set, write_folds  # noqa: E402
from hpa_ens.thresholds import apply_thresholds  # noqa: E402
from hpa_ens.labels import read_labels  # noqa: E402
from hpa_ens.metrics import bootstrap_macro_f1, macro_f1  # noqa: E402
from hpa_ens.thresholds import exact_thresholds  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[1] / "base_models" / "configs" / "variants"
QUICK_VARIANTS = ("plain", "cells_attention", "tiles_noisy_or", "attention", "lovasz", "center_loss", "reg_none")
GROUPS = {  # table order and the issue item each row answers
    "plain": "baseline", "cells_max": "1 cells", "cells_mean": "1 cells", "cells_attention": "1 cells",
    "tiles_max": "2 tiles", "tiles_mean": "2 tiles", "tiles_noisy_or": "2 tiles",
    "single_label": "3 single-label", "single_label_first": "3 single-label", "attention": "4 attention",
    "lovasz": "5 losses", "center_loss": "5 losses",
    "reg_none": "6 regularisation", "reg_dropout": "6 regularisation", "reg_strong": "6 regularisation",
}


def make_data(root: Path, quick: bool) -> Path:
    """Generate the synthetic set and its folds unless already there."""
    from hpa_ens.commands.folds import main as folds_main
    from hpa_ens.synth import generate

    if not (root / "folds.csv").exists():
        n_train, n_test, size, n_folds = (48, 12, 32, 2) if quick else (1200, 300, 64, 3)
        generate(root, n_train=n_train, n_test=n_test, size=size, seed=0, n_jobs=1, overwrite=True)
        if quick:
            ids = pd.read_csv(root / "train.csv")["Id"]
            write_folds(root / "folds.csv", pd.Series(np.arange(len(ids)) % 2, index=pd.Index(ids, name="Id")))
        else:
            folds_main(["--labels", str(root / "train.csv"), "--out", str(root / "folds.csv"),
                        "--n-folds", str(n_folds), "--no-plot"])
    return root


def run_variant(path: Path, data: Path, out: Path, overrides: dict) -> dict:
    config = load_config(path, overrides)
    n_folds = int(pd.read_csv(data / "folds.csv")["fold"].max()) + 1
    started = time.perf_counter()
    fold_metrics = [train_mod.fit_fold(config, data, data / "folds.csv", k, out) for k in range(n_folds)]
    collect_mod.collect(config["name"], out)
    seconds = time.perf_counter() - started
    truth = read_labels(data / "train.csv")
    pset = read_prediction_set(out / config["name"], truth.index.tolist())
    y_true = truth.loc[pset.oof.index].to_numpy()
    probs = pset.oof.to_numpy()
    thresholds, class_f1 = exact_thresholds(y_true, probs)
    f1_best = float(class_f1.mean())
    pred = apply_thresholds(probs, thresholds, min_labels=0)
    _, low, high = bootstrap_macro_f1(y_true, pred, n_boot=200, alpha=0.1, seed=0)
    fold_f1 = float(np.mean([m["fold_macro_f1"] for m in fold_metrics]))
    train_f1 = [m["train_subset_f1"] for m in fold_metrics if "train_subset_f1" in m]
    return {"name": config["name"], "group": GROUPS.get(config["name"], "other"),
            "oof_f1_best": f1_best, "ci_low": low, "ci_high": high,
            "oof_f1_at_0.5": macro_f1(y_true, probs > 0.5), "fold_f1": fold_f1,
            "train_f1": float(np.mean(train_f1)) if train_f1 else float("nan"),
            "seconds": seconds, "epochs": config["epochs"], "backbone": config["backbone"]}


def table(rows: list[dict]) -> str:
    base = next((r for r in rows if r["name"] == "plain"), rows[0])
    lines = ["| item | variant | OOF F1 (best thr) | 90% bootstrap | Δ vs plain | OOF F1 @0.5 | train-subset F1 "
             "| gap (train − fold) | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gap = r["train_f1"] - r["fold_f1"]
        lines.append(f"| {r['group']} | `{r['name']}` | {r['oof_f1_best']:.3f} | {r['ci_low']:.3f}–{r['ci_high']:.3f} "
                     f"| {r['oof_f1_best'] - base['oof_f1_best']:+.3f} | {r['oof_f1_at_0.5']:.3f} "
                     f"| {r['train_f1']:.3f} | {gap:+.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def emit_table(rows: list[dict], setting: str) -> None:
    """The pivot table "variants" (benchmarks/variants.md): one row per variant, the plain config as baseline."""
    base = next((r for r in rows if r["name"] == "plain"), rows[0])
    for r in rows:
        row = f"{r['group']}: `{r['name']}`"
        cols = (("OOF F1 (best thr)", r["oof_f1_best"], "macro F1"), ("90% bootstrap low", r["ci_low"], "macro F1"),
                ("90% bootstrap high", r["ci_high"], "macro F1"),
                ("Δ vs plain", r["oof_f1_best"] - base["oof_f1_best"], "macro F1"),
                ("OOF F1 @0.5", r["oof_f1_at_0.5"], "macro F1"), ("train-subset F1", r["train_f1"], "macro F1"),
                ("gap (train − fold)", r["train_f1"] - r["fold_f1"], "macro F1"), ("wall", r["seconds"], "s"))
        for col, value, unit in cols:
            extra = {"baseline": base["oof_f1_best"], "baseline_name": "plain",
                     "differs": "configuration: this variant's config vs the plain one; same data, folds and epochs"} \
                if col == "OOF F1 (best thr)" else {}
            emit(f"variants: {r['name']}, {col}", value, unit, table="variants", row=row, col=col, note=setting, **extra)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny set, 1 epoch, a subset of variants (< 60 s)")
    ap.add_argument("--data", type=Path, default=None, help="a synthetic/Kaggle-layout set with folds.csv")
    ap.add_argument("--work", type=Path, default=None, help="where data (if generated) and oof/ go")
    ap.add_argument("--only", nargs="*", default=None, help="variant names (config stems) to run")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="override every config's epochs")
    ap.add_argument("--report", type=Path, default=None, help="write the markdown table here")
    args = ap.parse_args(argv)

    work = args.work or Path("/tmp") / ("bench_variants_quick" if args.quick else "bench_variants")
    data = args.data or make_data(work / "data", args.quick)
    names = args.only or (list(QUICK_VARIANTS) if args.quick else list(GROUPS))
    overrides = {"threads": args.threads, "train_eval_rows": 300}
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.quick:
        overrides.update(backbone="mobilenetv3_small_050", image_size=32, epochs=1, batch_size=8,
                         train_eval_rows=16)
    rows = []
    started = time.perf_counter()
    for name in names:
        path = CONFIG_DIR / f"{name}.yaml"
        rows.append(run_variant(path, data, work / "oof", overrides))
        r = rows[-1]
        print(f"{name:20s} OOF F1 {r['oof_f1_best']:.3f} (@0.5 {r['oof_f1_at_0.5']:.3f})  "
              f"train {r['train_f1']:.3f}  fold {r['fold_f1']:.3f}  {r['seconds']:.0f} s", flush=True)
    text = table(rows)
    print(text)
    setting = (f"{'quick smoke run: ' if args.quick else ''}backbone {overrides.get('backbone', 'per config')}, "
               f"epochs {overrides.get('epochs', 'per config')}, data {data}")
    emit_table(rows, setting)
    base = next((r for r in rows if r["name"] == "plain"), None)
    if base is not None:
        for r in rows:
            print(f"{r['name']:20s} F1 ratio vs plain {r['oof_f1_best'] / max(base['oof_f1_best'], 1e-9):.3f}")
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.report:
        atomic_write_text(args.report, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
