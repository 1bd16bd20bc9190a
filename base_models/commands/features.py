"""``hpa-ens features`` (``python -m base_models.features``): the image-feature base model (no torch).

``--config base_models/configs/features.yaml --data DIR --folds folds.csv [--out oof] [--n-jobs N]``:
cached hand-made features, one model per class and fold (:func:`base_models.features.run`); writes
``OUT/NAME/{oof.csv,test.csv,meta.json}`` and prints each fold's and the whole OOF macro F1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from hpa_ens.commands._cli import add_n_jobs_argument, add_task_argument, console, parser, progress

from ..features import run
from ._output import note

NAME = "features"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Image-feature base model: cached hand-made features, one model per class and fold; writes "
                      "OUT/NAME/{oof.csv,test.csv,meta.json}.")
    ap.add_argument("--config", required=True, help="YAML with kind: features (see base_models/configs/features.yaml)")
    ap.add_argument("--data", required=True, type=Path, help="folder with train.csv, sample_submission.csv, train/, test/")
    ap.add_argument("--folds", required=True, type=Path, help="Id,fold csv (python -m hpa_ens.folds)")
    ap.add_argument("--out", default=Path("oof"), type=Path, help="OOF root; the set goes to OUT/NAME/")
    add_task_argument(ap)
    add_n_jobs_argument(ap)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with progress(transient=True) as bar:
        summary = run(args.config, args.data, args.folds, args.out, args.task, args.n_jobs,
                      argv=["base_models.features", *(argv if argv is not None else [])], progress=bar, log=note)
    console.print(f"{summary['name']}: OOF macro F1 {summary['oof_macro_f1']:.4f} (per-class best thresholds), "
                  f"{summary['oof_macro_f1_at_0.5']:.4f} at 0.5; {summary['n_features']} features, "
                  f"{summary['seconds']:.1f} s ({summary['feature_seconds']:.1f} s features)")
    return 0
