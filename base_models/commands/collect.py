"""``hpa-ens collect`` (``python -m base_models.collect``): assemble a config's folds into a prediction set.

``NAME [--out oof] [--folds FILE]``: writes ``OUT/NAME/{oof.csv,test.csv,meta.json}`` from the fold outputs
(:func:`base_models.collect.collect`) and prints its size and OOF macro F1. No torch needed.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from hpa_ens.commands._cli import console, parser

from ..collect import collect

NAME = "collect"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Assemble the fold outputs of one config into OUT/NAME/{oof.csv,test.csv,meta.json}.")
    ap.add_argument("name", help="the config name (folder under --out)")
    ap.add_argument("--out", default="oof", help="OOF root")
    ap.add_argument("--folds", default=None, help="folds file to check against (default: the one fold 0 recorded)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = collect(args.name, args.out, args.folds, argv=argv)
    f1 = summary.get("oof_macro_f1_best_thresholds")
    console.print(f"{args.name}: {summary['n_oof']} OOF rows, {summary['n_test']} test rows"
                  + (f", OOF macro F1 {f1:.4f} (per-class best thresholds)" if f1 is not None else ""))
    return 0
