"""``make base-models``: train every config on every fold, then collect each into a prediction set.

``python -m base_models.run_all [--data DIR] [--configs PATH ...] [--names NAME ...] [--folds FILE]
[--fold K ...] [--out DIR] [--n-jobs N] [--task T] [--epochs N] [--image-size S] [--resume] ...``

Configs come from any path (files, or folders of ``*.yaml``; default: the package's
``base_models/configs/``). A config with ``kind: features`` is not a CNN: it is handed to
``base_models.features.run`` (a torch-free image-feature model). Finished folds are kept (the one
freshness rule, :mod:`base_models.freshness`); one plain line is printed per finished fold, also when
the output is a log file. Fold jobs run side by side in ``--n-jobs`` processes of one thread each;
``--n-jobs 1`` trains in this process with every core. The same seed and n-jobs give the same bytes.

Every flag falls back to an environment variable (``DATA``, ``MODELS``, ``FOLDS`` = fold numbers,
``FOLDS_FILE``, ``OUT``, ``EPOCHS``, ``IMAGE_SIZE``, ``CACHE_DIR``, ``CHANNEL_STATS``, ``RESUME=1``,
``JOBS``), so ``DATA=/data/hpa make base-models`` works. Data is never generated into a folder you
name: a ``--data`` folder without ``train.csv`` is refused; only the default ``data/synth`` is filled
with the demo's synthetic set, and only when it is absent, empty, or carries the generator's marker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hpa_ens import cli  # noqa: E402
from hpa_ens.validation import ContractError, ParameterError  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_DATA = Path("data/synth")
DEMO_N_TRAIN, DEMO_N_TEST, DEMO_SIZE, DEMO_SEED, DEMO_FOLDS = 2500, 1000, 64, 0, 5


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name, "").strip()
    return [v.strip() for v in value.split(",") if v.strip()] or None


def build_parser():
    env = os.environ.get
    ap = cli.parser("python -m base_models.run_all", __doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="Kaggle-layout folder (env DATA; default data/synth, "
                    "the demo's synthetic set, generated there if absent)")
    ap.add_argument("--configs", nargs="+", type=Path, default=[CONFIG_DIR], help="config files or folders of *.yaml")
    ap.add_argument("--names", "--models", nargs="+", default=_env_list("MODELS"),
                    help="train only these config names (file stems) (env MODELS=a,b)")
    ap.add_argument("--folds", type=Path, default=env("FOLDS_FILE"), help="Id,fold csv (env FOLDS_FILE; default "
                    "DATA/folds.csv, made with hpa_ens.folds if absent)")
    ap.add_argument("--fold", nargs="+", type=int, default=[int(f) for f in _env_list("FOLDS") or []] or None,
                    help="train only these folds (env FOLDS=0,1); collecting needs every fold")
    ap.add_argument("--out", type=Path, default=Path(env("OUT", "oof")), help="OOF root (env OUT)")
    ap.add_argument("--epochs", type=int, default=int(env("EPOCHS")) if env("EPOCHS") else None,
                    help="override every config's epochs (env EPOCHS)")
    ap.add_argument("--image-size", type=int, default=int(env("IMAGE_SIZE")) if env("IMAGE_SIZE") else None,
                    help="override every config's image size (env IMAGE_SIZE)")
    ap.add_argument("--cache-dir", default=env("CACHE_DIR"), help="image caches (env CACHE_DIR; default DATA/.cache)")
    ap.add_argument("--channel-stats", default=env("CHANNEL_STATS"), help="EDA channel stats JSON (env CHANNEL_STATS)")
    ap.add_argument("--extra-images", default=None, help="folder of extra labelled images (HPAv18; channels as "
                    "separate files {Id}_{red,green,blue,yellow}.{png,jpg,tif})")
    ap.add_argument("--extra-labels", default=None, help="their Id,Target csv (e.g. HPAv18RBGY_wodpl.csv)")
    ap.add_argument("--skip-missing", action="store_true", help="skip extra-label Ids without images "
                    "(default: refuse, naming the count and the first ones)")
    ap.add_argument("--resume", action="store_true", default=env("RESUME") == "1",
                    help="continue interrupted folds from their checkpoints (env RESUME=1)")
    cli.add_n_jobs_argument(ap)
    cli.add_task_argument(ap)
    return ap


def ensure_data(data_dir: Path, explicit: bool) -> None:
    """Refuse a named folder without ``train.csv``; fill the default one with the demo's synthetic set.

    Generation happens only into the default folder, and only when it is absent, empty, or carries
    :data:`hpa_ens.synth.MARKER` (a set this project generated): a user's data is never written over.
    """
    if (data_dir / "train.csv").is_file():
        return
    if explicit:
        raise ContractError(f"{data_dir}: no train.csv here; base_models.run_all never generates data into a "
                            f"folder you name. Point --data at a Kaggle-layout folder, or make a synthetic set "
                            f"with python -m hpa_ens.synth --out {data_dir}.")
    from importlib import resources

    from hpa_ens.synth import MARKER, generate

    marked = (data_dir / MARKER).is_file()
    if data_dir.exists() and any(data_dir.iterdir()) and not marked:
        raise ContractError(f"{data_dir}: no train.csv, and the folder is not empty and was not generated by "
                            f"hpa_ens.synth (no {MARKER}); refusing to generate into it.")

    lb_dist = Path(str(resources.files("hpa_ens").joinpath("data/lb_label_distribution.csv")))
    print(f"generating the synthetic set into {data_dir} ({DEMO_N_TRAIN} train / {DEMO_N_TEST} test, "
          f"{DEMO_SIZE}px)", flush=True)
    generate(data_dir, DEMO_N_TRAIN, DEMO_N_TEST, size=DEMO_SIZE, seed=DEMO_SEED,
             target_dist=lb_dist if lb_dist.exists() else None, overwrite=marked)  # it writes the marker


def ensure_folds(data_dir: Path, folds_path: Path) -> None:
    if not folds_path.exists():
        subprocess.run([sys.executable, "-m", "hpa_ens.folds", "--labels", str(data_dir / "train.csv"),
                        "--out", str(folds_path), "--n-folds", str(DEMO_FOLDS), "--seed", str(DEMO_SEED),
                        "--no-plot"], check=True)


def config_paths(paths: Sequence[Path], names: Sequence[str] | None) -> list[Path]:
    """Config files from files and folders (sorted ``*.yaml``), narrowed to ``names`` (file stems)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(p.glob("*.yaml"))
        elif p.is_file():
            found.append(p)
        else:
            raise ContractError(f"{p}: config file or folder not found.")
    if names:
        known = {p.stem: p for p in found}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ParameterError(f"The 'names' parameter must name configs in {', '.join(map(str, paths))} "
                                 f"({', '.join(sorted(known))}). Got {unknown[0]!r} instead.")
        found = [known[n] for n in names]
    if not found:
        raise ContractError(f"{', '.join(map(str, paths))}: no *.yaml config found.")
    return found


def overrides_of(args, n_jobs: int) -> dict:
    """Config keys every CNN config gets from the flags."""
    keys = {"epochs": args.epochs, "image_size": args.image_size, "cache_dir": args.cache_dir,
            "channel_stats": args.channel_stats, "extra_images": args.extra_images,
            "extra_labels": args.extra_labels}
    overrides = {k: v for k, v in keys.items() if v is not None}
    if args.skip_missing:
        overrides["skip_missing"] = True
    if args.task is not None:
        overrides["task"] = args.task
    if n_jobs > 1:
        # Small models at 64 px barely use a second thread (mobilenetv3: 324 img/s on 1 thread, 348 on 2),
        # so single-threaded fold jobs side by side nearly multiply the throughput.
        overrides["threads"] = 1
    return overrides


def split_kinds(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(CNN configs, feature-model configs: top-level ``kind: features``)."""
    from .config import read_config_file

    features = [p for p in paths if read_config_file(p).get("kind") == "features"]
    return [p for p in paths if p not in features], features


def _train_job(config: dict, data_dir: Path, folds_path: Path, fold: int, out_root: Path, resume: bool,
               path: Path) -> dict:
    """Train one (config, fold); runs in a worker process when n-jobs > 1. Returns its metrics."""
    from .train import fit_fold

    return fit_fold(config, data_dir, folds_path, fold, out_root, resume=resume,
                    argv=["base_models.run_all", str(path), f"fold={fold}"])


def train_folds(jobs: list, data_dir: Path, folds_path: Path, out_root: Path, resume: bool, n_jobs: int) -> None:
    """Run the (path, config, fold) jobs; print one plain line per finished fold, in finishing order."""
    from .train import fold_line

    if n_jobs > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: a forked child of a process that imported torch can hang in OpenMP.
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_train_job, config, data_dir, folds_path, fold, out_root, resume, path)
                       for path, config, fold in jobs]
            for future in as_completed(futures):
                print(fold_line(future.result()), flush=True)
        return
    for path, config, fold in jobs:
        print(fold_line(_train_job(config, data_dir, folds_path, fold, out_root, resume, path)), flush=True)


def run_features(paths: list[Path], data_dir: Path, folds_path: Path, out_root: Path, task, n_jobs: int) -> list:
    """Hand ``kind: features`` configs to ``base_models.features.run`` (skipped, said so, if it is absent)."""
    if not paths:
        return []
    try:
        from . import features
    except ModuleNotFoundError as err:
        if err.name != "base_models.features":
            raise
        for p in paths:
            print(f"{p}: kind: features, but base_models.features is not installed; skipped", flush=True)
        return []
    summaries = []
    for p in paths:
        summary = features.run(p, data_dir, folds_path, out_root, task, n_jobs)
        print(f"{summary['name']}: OOF macro F1 {summary.get('oof_macro_f1', float('nan')):.4f} (feature model)",
              flush=True)
        summaries.append(summary)
    return summaries


def run_all(args) -> list[dict]:
    """Check every config, train the folds that are not current, collect; the per-model summaries."""
    from hpa_ens.contract import read_folds
    from hpa_ens.task import load_task

    from .collect import collect
    from .config import load_config
    from .freshness import fold_is_current

    data_dir = args.data or Path(os.environ.get("DATA") or DEFAULT_DATA)
    ensure_data(data_dir, explicit=args.data is not None or bool(os.environ.get("DATA")))
    folds_path = args.folds or data_dir / "folds.csv"
    cnn_paths, feature_paths = split_kinds(config_paths(args.configs, args.names))
    n_jobs = cli.resolve_n_jobs(int(os.environ["JOBS"]) if os.environ.get("JOBS") and args.n_jobs == -1
                                else args.n_jobs)
    # Every config is checked (types, ranges, names, backbone) before any cache or output is touched.
    configs = [(p, load_config(p, overrides_of(args, n_jobs))) for p in cnn_paths]
    task = load_task(args.task)
    ensure_folds(data_dir, folds_path)
    n_folds = int(read_folds(folds_path).max()) + 1
    folds = sorted(args.fold) if args.fold else list(range(n_folds))
    jobs = []
    for path, config in configs:
        for fold in folds:
            if fold_is_current(args.out, config, fold, data_dir, folds_path):
                print(f"{config['name']} fold {fold}: current, kept", flush=True)
            else:
                jobs.append((path, config, fold))
    train_folds(jobs, data_dir, folds_path, args.out, args.resume, n_jobs)
    summaries = run_features(feature_paths, data_dir, folds_path, args.out, task, n_jobs)
    if folds == list(range(n_folds)):
        for path, config in configs:
            summaries.append(collect(config["name"], args.out, folds_path, argv=["base_models.run_all", str(path)]))
    return summaries


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    summaries = run_all(args)
    print(f"base models done in {time.perf_counter() - started:.1f} s", flush=True)
    for s in summaries:
        f1 = s.get("oof_macro_f1_best_thresholds", s.get("oof_macro_f1", float("nan")))
        print(f"  {s['name']:<28} OOF macro F1 {f1:.4f}  at 0.5: {s.get('oof_macro_f1_at_0.5', float('nan')):.4f}"
              f"  {s.get('train_seconds', float('nan')):.1f} s of fold time", flush=True)
    return 0


if __name__ == "__main__":
    cli.entry(main)
