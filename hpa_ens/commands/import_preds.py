"""``hpa-ens import``: turn a team's saved predictions (CSV, parquet, .npy, .npz) into a prediction set.

Checks the flags against the files' kinds (an array needs its row Ids, ``--key`` is for .npz archives,
``--columns`` for tables), refuses an ``--out`` that is neither new, empty nor a prediction set, reads and
checks every file (:func:`hpa_ens.import_preds.import_predictions`) before anything is written, then
writes the set through the contract and prints what it wrote (and any warning about the values).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from ..contract import check_output_folder, write_prediction_set
from ..import_preds import ARRAY_SUFFIXES, import_predictions
from ..task import load_task
from ..validation import ParameterError
from ._cli import add_task_argument, console, parser, prog

NAME = "import"


def build_parser() -> argparse.ArgumentParser:
    ap = parser(NAME, "Import a team's saved predictions (CSV, parquet, .npy, .npz) as a prediction set.")
    ap.add_argument("--test", required=True, help="test predictions: .csv/.parquet with Ids, or .npy/.npz")
    ap.add_argument("--oof", default=None, help="out-of-fold train predictions (omit for a test-only set)")
    ap.add_argument("--ids", default=None, help="Ids of --test's rows: CSV with an Id column, or a .npy of strings")
    ap.add_argument("--oof-ids", default=None, help="Ids of --oof's rows (same formats as --ids)")
    ap.add_argument("--columns", default=None, help="column map: 'col=Id,col=<class id or name>,col=-', .json or .csv")
    ap.add_argument("--key", default=None, help="array name inside an .npz (default: its only 2-D numeric array)")
    scale = ap.add_mutually_exclusive_group()
    scale.add_argument("--from-logits", action="store_true", help="the values are logits: apply a sigmoid")
    scale.add_argument("--from-percent", action="store_true", help="the values are percentages: divide by 100")
    ap.add_argument("--name", default=None, help="name recorded in meta.json (default: the --out folder's name)")
    ap.add_argument("--out", required=True, help="prediction-set folder to write (new, empty, or a prediction set)")
    add_task_argument(ap)
    return ap


def _check_flags(args: argparse.Namespace) -> None:
    """Refuse flags that do not fit the files' kinds (by their suffix), naming the flag, before any file is read."""
    if args.oof is None and args.oof_ids is not None:
        raise ParameterError(f"The '--oof-ids' parameter of {prog(NAME)} needs --oof. Got {args.oof_ids} alone instead.")
    spec = args.columns
    if spec is not None and not (Path(spec).suffix.lower() in (".json", ".csv") and Path(spec).is_file()):
        for item in filter(None, (part.strip() for part in spec.split(","))):
            if "=" not in item:
                raise ParameterError(f"The '--columns' parameter of {prog(NAME)} must be 'column=class,…', a .json or "
                                     f"a .csv file. Got {item!r} instead.")
    for path, ids_flag, ids in ((args.test, "--ids", args.ids), (args.oof, "--oof-ids", args.oof_ids)):
        if path is None:
            continue
        if not Path(path).is_file() or Path(path).stat().st_size == 0:
            return  # the reader names a missing or empty file first, as it reads the files in this order
        suffix = Path(path).suffix.lower()
        if suffix not in ARRAY_SUFFIXES:
            continue
        if args.columns:
            raise ParameterError(f"The '--columns' parameter of {prog(NAME)} applies to CSV/parquet tables; the columns "
                                 f"of {path} are classes 0..K-1 in order. Got a map instead.")
        if suffix == ".npy" and args.key is not None:
            raise ParameterError(f"The '--key' parameter of {prog(NAME)} applies to .npz archives. Got {args.key!r} "
                                 f"with {path} instead.")
        if suffix == ".npy" and ids is None:
            raise ParameterError(f"The '{ids_flag}' parameter of {prog(NAME)} is required for {path}: an array holds "
                                 f"no Ids and rows are never matched by a guessed order. Got None instead.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    task, out = load_task(args.task), check_output_folder(args.out)
    _check_flags(args)
    oof, test, meta = import_predictions(args.test, task, args.oof, args.ids, args.oof_ids, args.columns, args.key,
                                         args.from_logits, args.from_percent, args.name or out.name, argv)
    write_prediction_set(out, oof, test, meta, task=task)
    for part in meta["sources"].values():
        for message in part["warnings"]:
            console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)
    console.print(f"wrote {out}: {len(test)} test rows" + (f", {len(oof)} OOF rows" if oof is not None else
                  " (test-only set)") + f", {task.n_classes} classes ({task.name})", soft_wrap=True)
    return 0
