"""``hpa-ens train`` (``python -m base_models.train``): train one fold of one CNN config.

``--config base_models/configs/examples/resnet18.yaml --data DIR --folds folds.csv --fold 0 [--out oof]
[--resume] [--epochs 3] [--image-size 64] ...``: every config key is a flag. Writes the fold's outputs under
``OUT/NAME/fold{K}/`` (:func:`base_models.train.fit_fold`) and prints its line. Under torchrun every rank
trains; rank 0 alone shows a progress bar and prints.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Sequence

from hpa_ens.commands._cli import parser, progress

from ._config_flags import add_config_flags, overrides_from_args
from ._env import offline_hub, pretrained_backbones, require_train_extra
from ._output import echo, note

NAME = "train"

require_train_extra()


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Train one fold of a timm backbone; write its OOF and test probabilities, checkpoint and "
                      "metrics under OUT/NAME/fold{K}/.")
    ap.add_argument("--config", help="YAML config (keys: see base_models/config.py); flags override it")
    ap.add_argument("--data", required=True, help="folder with train.csv, sample_submission.csv, train/, test/")
    ap.add_argument("--folds", required=True, help="Id,fold csv (python -m hpa_ens.folds)")
    ap.add_argument("--fold", required=True, type=int, help="which fold to hold out")
    ap.add_argument("--out", default="oof", help="OOF root; outputs go to OUT/NAME/fold{K}/")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/NAME/fold{K}/checkpoint.pt")
    add_config_flags(ap)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from ..config import check_names_exist, load_config

    args = build_parser().parse_args(argv)
    # Types, ranges and combinations first (no timm); then the hub setting, then the names (timm).
    config = load_config(args.config, overrides_from_args(args), check_names=False)
    offline_hub(pretrained_backbones([config]))
    check_names_exist(config)
    from .. import distributed
    from ..train import fit_fold, fold_line

    rank = distributed.from_env()
    # One progress bar per torchrun job, not one per rank.
    with progress() if rank.is_main else contextlib.nullcontext() as bar:
        metrics = fit_fold(config, args.data, args.folds, args.fold, args.out, args.resume,
                           argv=list(argv) if argv is not None else None, progress=bar, log=note)
    distributed.cleanup(rank)
    if metrics:  # a torchrun rank other than 0 returns {}: rank 0 reports
        echo(fold_line(metrics))
    return 0
