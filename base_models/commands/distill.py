"""``hpa-ens distill`` (``python -m base_models.distill``): train a small student on a teacher's soft labels.

``--teacher oof/stack --student base_models/configs/mobilenetv3_small_100.yaml --data DIR --folds folds.csv
[--fold K|all] [--alpha 0.7] [--temperature 2] [--self-train] [--out oof]`` (every config key is a flag too):
:func:`base_models.distill.distill` trains the student per fold and, with ``--fold all``, collects its
prediction set ``OUT/NAME/``. One line per finished or kept fold on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Sequence

from hpa_ens.commands._cli import console, parser, progress
from hpa_ens.validation import ParameterError

from ._config_flags import add_config_flags, overrides_from_args
from ._env import offline_hub, pretrained_backbones, require_train_extra
from ._output import echo, note, warn

NAME = "distill"

require_train_extra()


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Train a small student on true labels mixed with a teacher prediction set's probabilities; "
                      "write its prediction set OUT/NAME/.")
    ap.add_argument("--teacher", required=True, help="teacher prediction-set folder (oof.csv, test.csv, meta.json)")
    ap.add_argument("--student", required=True, help="student YAML config (flags below override it)")
    ap.add_argument("--data", required=True, help="folder with train.csv, sample_submission.csv, train/, test/")
    ap.add_argument("--folds", required=True, help="Id,fold csv")
    ap.add_argument("--fold", default="all", help="one fold K, or 'all' (then collect)")
    ap.add_argument("--alpha", type=float, default=0.7, help="weight of the teacher's soft targets in [0, 1]")
    ap.add_argument("--temperature", type=float, default=1.0, help="softens the teacher (and student) in logit space")
    ap.add_argument("--self-train", action="store_true", help="also train on the test images against the "
                    "teacher's test probabilities")
    ap.add_argument("--out", default="oof", help="OOF root; the student writes OUT/NAME/")
    ap.add_argument("--resume", action="store_true", help="continue interrupted folds from their checkpoints")
    add_config_flags(ap)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    from ..config import check_names_exist, load_config

    args = build_parser().parse_args(argv)
    if args.fold != "all" and not str(args.fold).isdigit():
        raise ParameterError(f"The 'fold' parameter must be a fold number or 'all'. Got {args.fold!r} instead.")
    overrides = overrides_from_args(args)
    if "name" not in overrides:
        overrides["name"] = f"{Path(args.student).stem}_student"
    # Types, ranges and combinations first (no timm); then the hub setting, then the names (timm).
    config = load_config(args.student, overrides, check_names=False)
    offline_hub(pretrained_backbones([config]))
    check_names_exist(config)
    from .. import distributed
    from ..distill import distill

    rank = distributed.from_env()
    with progress() if rank.is_main else contextlib.nullcontext() as bar:
        summary = distill(config, args.teacher, args.data, args.folds, args.fold, args.out, args.alpha,
                          args.temperature, args.self_train, args.resume,
                          argv=list(argv) if argv is not None else None, progress=bar, echo=echo, log=note,
                          warn=warn)
    distributed.cleanup(rank)
    if "collect" in summary:
        c = summary["collect"]
        console.print(f"{config['name']}: {c['n_oof']} OOF rows, {c['n_test']} test rows, OOF macro F1 "
                      f"{c.get('oof_macro_f1_best_thresholds', float('nan')):.4f} (per-class best thresholds)")
    return 0
