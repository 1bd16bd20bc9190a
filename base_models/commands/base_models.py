"""``hpa-ens base-models`` (``make base-models``, ``python -m base_models.run_all``): every config on every fold.

Trains every CNN config on every fold that is not current, runs the ``kind: features`` configs, collects
each into a prediction set (:func:`base_models.run_all.run_all`), then prints the models' OOF macro F1.
One plain line per finished or kept fold goes to stdout as it happens, also into a log file.

Flags only: no environment variable changes what it trains (``make base-models ARGS="--data DIR ..."``).
Without ``--data`` the default ``data/synth`` is used, and filled with the demo's synthetic set when
absent. ``--pretrained`` (or ``pretrained: true`` in a config) starts the CNNs from timm's ImageNet
weights; whether the run may reach the hub is decided before any data is read (:func:`._env.offline_hub`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

from hpa_ens.commands._cli import add_n_jobs_argument, add_task_argument, parser, prog, progress, train_extra_message
from hpa_ens.validation import ContractError

from ..run_all import CONFIG_DIR, DEFAULT_DATA, config_paths, load_cnn_configs, run_all, split_kinds
from ._env import offline_hub, pretrained_backbones, require_train_extra
from ._output import echo, note

NAME = "base-models"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "``make base-models``: train every config on every fold, then collect each into a "
                      "prediction set.")
    ap.add_argument("--data", type=Path, default=None, help=f"Kaggle-layout folder (default {DEFAULT_DATA}, the "
                    "demo's synthetic set, generated there if absent)")
    ap.add_argument("--configs", nargs="+", type=Path, default=[CONFIG_DIR], help="config files or folders of *.yaml")
    ap.add_argument("--names", "--models", nargs="+", default=None,
                    help="train only these config names (file stems)")
    ap.add_argument("--folds", type=Path, default=None, help="Id,fold csv (default DATA/folds.csv; made with "
                    "hpa_ens.folds if absent from the synthetic set, refused on real data)")
    ap.add_argument("--fold", nargs="+", type=int, default=None,
                    help="train only these fold numbers; collecting needs every fold")
    ap.add_argument("--out", type=Path, default=Path("oof"), help="OOF root")
    ap.add_argument("--epochs", type=int, default=None, help="override every config's epochs")
    ap.add_argument("--image-size", type=int, default=None, help="override every config's image size")
    ap.add_argument("--pretrained", action="store_true", help="start every CNN from timm's ImageNet weights "
                    "(config key pretrained: true; downloaded once into the Hugging Face cache)")
    ap.add_argument("--cache-dir", default=None, help="image caches (default DATA/.cache)")
    ap.add_argument("--channel-stats", default=None, help="EDA channel stats JSON")
    ap.add_argument("--extra-images", default=None, help="folder of extra labelled images (HPAv18; channels as "
                    "separate files {Id}_{red,green,blue,yellow}.{png,jpg,tif})")
    ap.add_argument("--extra-labels", default=None, help="their Id,Target csv (e.g. HPAv18RBGY_wodpl.csv)")
    ap.add_argument("--skip-missing", action="store_true", help="skip extra-label Ids without images "
                    "(default: refuse, naming the count and the first ones)")
    ap.add_argument("--resume", action="store_true", help="continue interrupted folds from their checkpoints")
    add_n_jobs_argument(ap)
    add_task_argument(ap)
    return ap


def config_overrides(args: argparse.Namespace) -> dict:
    """The config keys every CNN config gets from the flags."""
    keys = {"epochs": args.epochs, "image_size": args.image_size, "cache_dir": args.cache_dir,
            "channel_stats": args.channel_stats, "extra_images": args.extra_images,
            "extra_labels": args.extra_labels}
    overrides = {k: v for k, v in keys.items() if v is not None}
    if args.skip_missing:
        overrides["skip_missing"] = True
    if args.pretrained:
        overrides["pretrained"] = True
    if args.task is not None:
        overrides["task"] = args.task
    return overrides


def require_train_extra_for_cnns(args: argparse.Namespace) -> None:
    """Refuse CNN configs, before any data is touched, when torch or timm is not installed.

    ``kind: features`` configs need neither, so ``--names features`` runs on the torch-free install.
    """
    cnn_paths, _ = split_kinds(config_paths(args.configs, args.names))
    if cnn_paths:
        try:
            require_train_extra()
        except ModuleNotFoundError as err:
            raise ContractError(train_extra_message(err.name, prog(NAME))) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require_train_extra_for_cnns(args)
    started = time.perf_counter()
    overrides = config_overrides(args)
    # Before any data is read and before timm is imported: may this run reach the hub?
    configs, _ = load_cnn_configs(args.configs, args.names, overrides, check_names=False)
    offline_hub(pretrained_backbones(config for _, config in configs))
    summaries = run_all(args.data or DEFAULT_DATA, args.configs, names=args.names, folds_path=args.folds,
                        folds=args.fold, out_root=args.out, overrides=overrides, task=args.task, n_jobs=args.n_jobs,
                        resume=args.resume, explicit_data=args.data is not None, echo=echo, log=note,
                        make_progress=progress)
    print(f"base models done in {time.perf_counter() - started:.1f} s", flush=True)
    for s in summaries:
        f1 = s.get("oof_macro_f1_best_thresholds", s.get("oof_macro_f1", float("nan")))
        print(f"  {s['name']:<28} OOF macro F1 {f1:.4f}  at 0.5: {s.get('oof_macro_f1_at_0.5', float('nan')):.4f}"
              f"  {s.get('train_seconds', float('nan')):.1f} s of fold time", flush=True)
    return 0
