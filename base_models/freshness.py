"""When is a fold done? The one freshness rule (``hpa_ens.contract.is_current``) applied to base-model folds.

A fold is current when its ``metrics.json`` (the stamp, written last) records the fingerprint of
everything that changes its result - the config's result keys (epochs and patience included), the
task's class list, the hashes of ``train.csv``, ``sample_submission.csv``, the folds file and any
extra labels, the fold number and any extra record (distillation's teacher) - and its ``oof.csv``
and ``test.csv`` exist. train, run_all, collect and distill all ask :func:`fold_is_current`.
No torch here: run_all decides what to train before it starts any worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from hpa_ens.contract import fingerprint_of, is_current
from hpa_ens.io import sha256_file
from hpa_ens.task import load_task

from .config import result_record


def input_hashes(data_dir, config: Mapping, folds_path=None) -> dict:
    """sha256 of the label and Id files a fold reads (name -> hash), ``folds.extra.csv`` included."""
    from hpa_ens.contract import extra_folds_path

    data_dir = Path(data_dir)
    inputs = {"train.csv": sha256_file(data_dir / "train.csv"),
              "sample_submission.csv": sha256_file(data_dir / "sample_submission.csv")}
    if config.get("extra_labels"):
        inputs["extra_labels"] = sha256_file(config["extra_labels"])
        extra_folds = extra_folds_path(folds_path) if folds_path is not None else None
        if extra_folds is not None and extra_folds.is_file():
            inputs["folds.extra.csv"] = sha256_file(extra_folds)
    return inputs


def fold_fingerprint(config: Mapping, fold: int, inputs: Mapping, folds_sha256: str, extra: Mapping | None = None) -> str:
    """The fingerprint of one fold's result (see the module docstring)."""
    task = load_task(config.get("task"))
    return fingerprint_of({"config": result_record(config), "classes": list(task.class_names), "fold": int(fold),
                           "inputs": dict(inputs), "folds_sha256": folds_sha256, "extra": dict(extra or {})})


def fold_dir(out_root, name: str, fold: int) -> Path:
    return Path(out_root) / name / f"fold{fold}"


def fold_is_current(out_root, config: Mapping, fold: int, data_dir, folds_path, extra: Mapping | None = None) -> bool:
    """True when fold ``fold`` of ``config`` is done for these inputs (skip it)."""
    folder = fold_dir(out_root, config["name"], fold)
    fp = fold_fingerprint(config, fold, input_hashes(data_dir, config, folds_path), sha256_file(folds_path), extra)
    return is_current(folder / "metrics.json", fp, [folder / "oof.csv", folder / "test.csv"])
