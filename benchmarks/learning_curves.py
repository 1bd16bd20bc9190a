"""Learning curves of candidate CPU recipes: fold macro F1 against seconds (issue 18).

Each candidate is one fold of ``python -m base_models.train`` (the same CLI ``make base-models`` uses) on
the demo's synthetic set, with early stopping off (``--patience`` larger than ``--epochs``), so every epoch
of the fixed schedule runs and is recorded, as honest OOF trains it. Per epoch the fold's macro F1
(``val_f1`` in ``metrics.json``: per-class best thresholds on the held-out fold, so optimistic, but
equally so for every candidate) and the cumulative wall seconds (train + validation) are kept.

Wall seconds depend on the machine's load (the measuring machine was shared with other jobs), so the
results file records epochs, images/s and the load average before and after each run; compare
candidates by epochs and by ratios measured side by side, not by absolute seconds.

    # the demo's set and its 3 folds
    python -m hpa_ens.synth --out /tmp/recipe_data --n-train 2500 --n-test 1000 --size 64 --seed 0 \
        --target-dist hpa2018-lb
    python -m hpa_ens.folds --labels /tmp/recipe_data/train.csv --out /tmp/recipe_data/folds3.csv --n-folds 3 --seed 0
    # run candidates (two single-threaded runs side by side, like run_all's JOBS=2), then plot
    python benchmarks/learning_curves.py run --data /tmp/recipe_data --folds /tmp/recipe_data/folds3.csv
    python benchmarks/learning_curves.py plot            # docs/learning_curves.png from the results file
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "learning_curves.json"
FIGURE = REPO / "docs" / "learning_curves.png"
CONFIGS = REPO / "base_models" / "configs"
VARIANTS = CONFIGS / "variants"

#: name -> (config file, overrides). The base every candidate starts from is the old demo recipe:
#: regnetx_002, 64 px, batch 32, lr 0.006 cosine, per-image normalisation, bce + 0.5 soft F1.
CANDIDATES: dict[str, tuple[Path, dict]] = {
    "regnetx_002 cosine 12ep": (VARIANTS / "plain.yaml", {"epochs": 12}),
    "regnetx_002 cosine 6ep": (VARIANTS / "plain.yaml", {"epochs": 6}),
    "regnetx_002 constant 12ep": (VARIANTS / "plain.yaml", {"epochs": 12, "scheduler": "constant"}),
    "regnetx_002 batch 64 lr .012 12ep": (VARIANTS / "plain.yaml", {"epochs": 12, "batch_size": 64, "lr": 0.012}),
    "regnetx_002 48px 12ep": (VARIANTS / "plain.yaml", {"epochs": 12, "image_size": 48}),
    "regnetx_002 cells attention 8ep": (VARIANTS / "cells_attention.yaml", {"epochs": 8}),
    "resnet18 lr .003 8ep": (VARIANTS / "plain.yaml", {"epochs": 8, "backbone": "resnet18", "lr": 0.003}),
    "resnet10t 12ep": (VARIANTS / "plain.yaml", {"epochs": 12, "backbone": "resnet10t"}),
    "mobilenetv3_small_100 12ep": (VARIANTS / "plain.yaml", {"epochs": 12, "backbone": "mobilenetv3_small_100"}),
}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _load() -> float:
    return os.getloadavg()[0]


def run_candidate(name: str, data: Path, folds: Path, fold: int, out: Path, threads: int) -> dict:
    """Train one candidate's fold through the CLI and return its curve record."""
    config, overrides = CANDIDATES[name]
    slug = _slug(name)
    args = [sys.executable, "-m", "base_models.train", "--config", str(config), "--data", str(data),
            "--folds", str(folds), "--fold", str(fold), "--out", str(out), "--name", slug,
            "--threads", str(threads), "--patience", "1000"]
    for key, value in overrides.items():
        args += [f"--{key.replace('_', '-')}", json.dumps(value)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    load_before, start = _load(), time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-2000:]}")
    metrics = json.loads((out / slug / f"fold{fold}" / "metrics.json").read_text())
    curve = _curve(metrics)
    return {"name": name, "config": str(config.relative_to(REPO)), "overrides": overrides, "fold": fold,
            "folds_file": folds.name, "threads": threads, "curve": curve, "final_f1": curve[-1]["f1"],
            "cache_seconds": metrics["timing"]["cache_seconds"], "wall_seconds": wall,
            "load_before": load_before, "load_after": _load(),
            "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def _curve(metrics: dict) -> list[dict]:
    """Fold F1, cumulative seconds and training speed per epoch from a fold's ``metrics.json``."""
    seconds, curve = 0.0, []
    for h in metrics["history"]:
        seconds += h["train_seconds"] + h["val_seconds"]
        curve.append({"epoch": h["epoch"], "f1": h["val_f1"], "seconds": seconds,
                      "images_per_s": h["train_images_per_s"],
                      "images": round(h["train_images_per_s"] * h["train_seconds"])})
    return curve


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "unknown"


def _save(results: dict, path: Path) -> None:
    from hpa_ens.io import atomic_write_json

    atomic_write_json(path, results)


def record_from_metrics(name: str, metrics_path: Path, config: str, overrides: dict, threads: int = 1) -> dict:
    """A curve record from a finished fold's ``metrics.json`` (a run made outside :func:`cmd_run`)."""
    metrics = json.loads(Path(metrics_path).read_text())
    curve = _curve(metrics)
    return {"name": name, "config": config, "overrides": overrides, "fold": metrics.get("fold"),
            "threads": threads, "curve": curve, "final_f1": curve[-1]["f1"],
            "cache_seconds": metrics["timing"]["cache_seconds"], "wall_seconds": metrics["timing"]["total_seconds"],
            "source": str(metrics_path), "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def cmd_collect(args) -> int:
    """Record a candidate from a metrics.json (e.g. a run whose harness was stopped, or a demo fold)."""
    results = json.loads(args.results.read_text()) if args.results.exists() else {"runs": {}}
    if args.name in CANDIDATES:
        config, overrides = CANDIDATES[args.name]
        config = str(config.relative_to(REPO))
    else:
        config, overrides = args.config or "", {}
    results["runs"][args.name] = record_from_metrics(args.name, args.metrics, config, overrides)
    _save(results, args.results)
    return 0


def cmd_run(args) -> int:
    names = args.only or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidate {unknown[0]!r}; known: {', '.join(CANDIDATES)}")
    results = json.loads(args.results.read_text()) if args.results.exists() else {"runs": {}}
    results.update({"data": str(args.data), "machine": f"{os.cpu_count()} CPUs, shared with other jobs",
                    "commit": _commit()})
    # Build the image cache once before running side by side (two builders would race).
    first = names[0]

    def one(name):
        record = run_candidate(name, args.data, args.folds, args.fold, args.out, args.threads)
        f1s = " ".join(f"{c['f1']:.3f}" for c in record["curve"])
        print(f"{name}: F1 by epoch {f1s}, "
              f"{record['curve'][-1]['seconds']:.0f} s (load {record['load_before']:.1f}->{record['load_after']:.1f})",
              flush=True)
        return record
    records = [one(first)]
    results["runs"][first] = records[0]
    _save(results, args.results)
    with ThreadPoolExecutor(args.jobs) as pool:
        for record in pool.map(one, names[1:]):
            results["runs"][record["name"]] = record
            _save(results, args.results)
    return 0


def cmd_add(args) -> int:
    """Add a one-point record (the feature model: fold F1 after its whole fit) to the results file."""
    results = json.loads(args.results.read_text()) if args.results.exists() else {"runs": {}}
    results["runs"][args.name] = {"name": args.name, "curve": [{"epoch": 1, "f1": args.f1, "seconds": args.seconds}],
                                  "final_f1": args.f1, "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    _save(results, args.results)
    return 0


def estimated_seconds(curve: list[dict]) -> list[float]:
    """Cumulative training seconds had every epoch run at the run's fastest epoch speed.

    On a machine shared with other jobs the wall seconds measure the neighbours; the fastest epoch of
    a run is the closest to its unloaded speed, so ``images / best img/s`` ranks recipes by CPU cost
    (an upper bound on the idle time; validation left out). A record without img/s keeps its seconds.
    """
    if not all(c.get("images") for c in curve):
        return [c["seconds"] for c in curve]
    best = max(c["images_per_s"] for c in curve)
    return list(np.cumsum([c["images"] / best for c in curve]))


def cmd_plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hpa_ens.report import save_figure

    results = json.loads(args.results.read_text())
    fig, (ax, cx, bx) = plt.subplots(1, 3, figsize=(18, 5.6))
    for name, run in sorted(results["runs"].items()):
        curve = run["curve"]
        xs, ys, eps = [c["seconds"] for c in curve], [c["f1"] for c in curve], [c["epoch"] for c in curve]
        style = dict(marker="o", markersize=3) if len(curve) > 1 else dict(marker="*", markersize=12, linestyle="")
        line, = ax.plot(xs, ys, label=f"{name} ({ys[-1]:.3f})", **style)
        bx.plot(eps, ys, color=line.get_color(), **style)
        cx.plot(estimated_seconds(curve), ys, color=line.get_color(), **style)
    ax.set_xlabel("wall seconds of the fold (train + validation; shared machine: noisy)")
    ax.set_ylabel("fold macro F1 (per-class best thresholds)")
    ax.set_title("Fold F1 vs seconds (fold 0 of 3, 1 thread each, 2 side by side)", fontsize=10)
    cx.set_xlabel("estimated seconds at the run's fastest epoch speed (load-corrected)")
    cx.set_title("Fold F1 vs load-corrected seconds (images / best img/s)", fontsize=10)
    bx.set_xlabel("epoch")
    bx.set_title("Fold F1 vs epochs (load-independent)", fontsize=10)
    for a in (ax, cx, bx):
        a.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="train candidates and record their curves")
    run.add_argument("--data", type=Path, required=True)
    run.add_argument("--folds", type=Path, required=True)
    run.add_argument("--fold", type=int, default=0)
    run.add_argument("--out", type=Path, default=Path("/tmp/learning_curves"))
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--jobs", type=int, default=2, help="candidates side by side")
    run.add_argument("--only", nargs="+", help="candidate names (default: all)")
    run.add_argument("--results", type=Path, default=RESULTS)
    add = sub.add_parser("add", help="record a one-point result (e.g. the feature model)")
    add.add_argument("--name", required=True)
    add.add_argument("--f1", type=float, required=True)
    add.add_argument("--seconds", type=float, required=True)
    add.add_argument("--results", type=Path, default=RESULTS)
    col = sub.add_parser("collect", help="record a candidate from a finished fold's metrics.json")
    col.add_argument("--name", required=True)
    col.add_argument("--metrics", type=Path, required=True)
    col.add_argument("--config", default=None, help="config file (candidates not in CANDIDATES)")
    col.add_argument("--results", type=Path, default=RESULTS)
    plot = sub.add_parser("plot", help="draw docs/learning_curves.png from the results file")
    plot.add_argument("--results", type=Path, default=RESULTS)
    plot.add_argument("--out", type=Path, default=FIGURE)
    args = ap.parse_args(argv)
    return {"run": cmd_run, "add": cmd_add, "collect": cmd_collect, "plot": cmd_plot}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
