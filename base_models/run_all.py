"""``make base-models``: every config in ``base_models/configs/``, every fold, then collect.

Environment variables narrow or redirect it:

- ``MODELS=resnet18,mobilenetv3_small_100`` config names (file stems) to train (default: all);
- ``FOLDS=0,1`` folds to train (default: all); collecting needs every fold, so it is skipped otherwise;
- ``DATA=dir`` the data folder (default ``data/synth``, generated at demo size if absent);
- ``FOLDS_FILE=path`` (default ``DATA/folds.csv``, made with ``python -m hpa_ens.folds`` if absent);
- ``OUT=dir`` OOF root (default ``oof``); ``CHANNEL_STATS=path`` the EDA stats JSON;
- ``EPOCHS=N`` / ``IMAGE_SIZE=S`` / ``CACHE_DIR=dir`` override every config (quick trials);
- ``RESUME=1`` continue interrupted folds from their checkpoints; finished folds are kept anyway;
- ``JOBS=N`` fold jobs run side by side in N processes of one thread each (default: 2 on a 2-core
  machine); ``JOBS=1`` trains in this process with every core. The same seed and JOBS give the same bytes.

"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hpa_ens import cli  # noqa: E402
from hpa_ens.io import sha256_file  # noqa: E402
from hpa_ens._validation import ParameterError  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEMO_N_TRAIN, DEMO_N_TEST, DEMO_SIZE, DEMO_SEED, DEMO_FOLDS = 2500, 1000, 64, 0, 5


def _list_env(name: str) -> list[str] | None:
    value = os.environ.get(name, "").strip()
    return [v.strip() for v in value.split(",") if v.strip()] or None


def ensure_data(data_dir: Path, folds_path: Path) -> None:
    """Generate the demo synthetic set and its folds when absent."""
    if not (data_dir / "train.csv").exists():
        from importlib import resources

        from hpa_ens.synth import generate

        lb_dist = Path(str(resources.files("hpa_ens").joinpath("data/lb_label_distribution.csv")))
        cli.console.print(f"generating the synthetic set into {data_dir} "
                           f"({DEMO_N_TRAIN} train / {DEMO_N_TEST} test, {DEMO_SIZE}px)")
        generate(data_dir, DEMO_N_TRAIN, DEMO_N_TEST, size=DEMO_SIZE, seed=DEMO_SEED,
                 target_dist=lb_dist if lb_dist.exists() else None, overwrite=True)
    if not folds_path.exists():
        subprocess.run([sys.executable, "-m", "hpa_ens.folds", "--labels", str(data_dir / "train.csv"),
                        "--out", str(folds_path), "--n-folds", str(DEMO_FOLDS), "--seed", str(DEMO_SEED),
                        "--no-plot"], check=True)


def _fold_done(out_root: Path, name: str, fold: int, folds_path: Path, config_sha: str) -> bool:

    path = out_root / name / f"fold{fold}" / "metrics.json"
    if not path.exists():
        return False
    metrics = json.loads(path.read_text(encoding="utf-8"))
    return (metrics.get("status") == "complete" and metrics.get("folds_sha256") == sha256_file(folds_path)
            and metrics.get("config_full_sha256") == config_sha)


def _train_job(config: dict, data_dir: Path, folds_path: Path, fold: int, out_root: Path, resume: bool, path: Path) -> None:
    """Train one (config, fold); runs in a worker process when JOBS > 1."""
    from .train import fit_fold

    metrics = fit_fold(config, data_dir, folds_path, fold, out_root, resume=resume,
                       argv=["base_models.run_all", str(path), f"fold={fold}"])
    cli.console.print(f"{config['name']} fold {fold}: F1 {metrics['fold_macro_f1']:.4f} "
                       f"(epoch {metrics['best_epoch']}), {metrics['timing']['total_seconds']:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    ap = cli.parser("python -m base_models.run_all", __doc__.splitlines()[0] + " (see env vars in the docs)")
    ap.parse_args(argv)
    from .collect import collect
    from .config import OPERATIONAL, config_hash, load_config
    data_dir = Path(os.environ.get("DATA", "data/synth"))
    folds_path = Path(os.environ.get("FOLDS_FILE", str(data_dir / "folds.csv")))
    out_root = Path(os.environ.get("OUT", "oof"))
    ensure_data(data_dir, folds_path)
    from hpa_ens.contract import read_folds

    n_folds = int(read_folds(folds_path).max()) + 1
    configs = sorted(CONFIG_DIR.glob("*.yaml"))
    wanted = _list_env("MODELS")
    if wanted:
        known = {p.stem: p for p in configs}
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise ParameterError(f"The 'MODELS' variable must name configs in {CONFIG_DIR} "
                             f"({', '.join(sorted(known))}). Got {unknown[0]!r} instead.")
        configs = [known[m] for m in wanted]
    folds = [int(f) for f in _list_env("FOLDS") or range(n_folds)]
    overrides = {}
    if os.environ.get("EPOCHS"):
        overrides["epochs"] = int(os.environ["EPOCHS"])
    if os.environ.get("IMAGE_SIZE"):
        overrides["image_size"] = int(os.environ["IMAGE_SIZE"])
    if os.environ.get("CACHE_DIR"):
        overrides["cache_dir"] = os.environ["CACHE_DIR"]
    if os.environ.get("CHANNEL_STATS"):
        overrides["channel_stats"] = os.environ["CHANNEL_STATS"]
    resume = os.environ.get("RESUME") == "1"
    n_jobs = int(os.environ.get("JOBS") or min(2, os.cpu_count() or 1))
    if n_jobs > 1:
        # Small models at 64 px barely use a second thread (mobilenetv3: 324 img/s on 1 thread, 348 on 2),
        # so two single-threaded fold jobs side by side nearly double the throughput.
        overrides.setdefault("threads", 1)
    started = time.perf_counter()
    loaded = [load_config(path, overrides) for path in configs]
    jobs = []
    for path, config in zip(configs, loaded):
        for fold in folds:
            if _fold_done(out_root, config["name"], fold, folds_path, config_hash(config, OPERATIONAL)):
                cli.console.print(f"{config['name']} fold {fold}: already complete, kept")
            else:
                jobs.append((path, config, fold))
    if n_jobs > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a forked child of a process that imported torch can hang in OpenMP.
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_train_job, config, data_dir, folds_path, fold, out_root, resume, path)
                       for path, config, fold in jobs]
            for future in futures:
                future.result()
    else:
        for path, config, fold in jobs:
            _train_job(config, data_dir, folds_path, fold, out_root, resume, path)
    summaries = []
    for path, config in zip(configs, loaded):
        if sorted(folds) == list(range(n_folds)):
            summary = collect(config["name"], out_root, folds_path, argv=["base_models.run_all", str(path)])
            fold_seconds = [json.loads((out_root / config["name"] / f"fold{k}" / "metrics.json").read_text())
                            ["timing"]["total_seconds"] for k in folds]
            summary["wall_seconds"] = float(sum(fold_seconds))
            summaries.append(summary)
            cli.console.print(f"[bold]{config['name']}[/bold]: OOF macro F1 "
                               f"{summary.get('oof_macro_f1_best_thresholds', float('nan')):.4f} "
                               f"(per-class best thresholds), {summary['wall_seconds']:.1f} s of fold time")
    cli.console.print(f"base models done in {time.perf_counter() - started:.1f} s")
    for s in summaries:
        cli.console.print(f"  {s['name']:<28} OOF macro F1 {s.get('oof_macro_f1_best_thresholds', float('nan')):.4f}"
                           f"  at 0.5: {s.get('oof_macro_f1_at_0.5', float('nan')):.4f}  {s['wall_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    cli.entry(main)
