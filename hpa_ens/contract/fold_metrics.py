"""The per-fold ``metrics.json`` a base model writes beside its fold outputs: typed write and one reader.

``base_models.train`` writes it last (it is the fold's freshness stamp: its ``fingerprint`` is what
:func:`hpa_ens.contract.is_current` compares); ``base_models.collect``, ``base_models.run_all``, the
distillation and the demo report read it here, so every reader checks the same keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..validation import ContractError, read_json_object
from ..io import atomic_write_json, sha256_file

__all__ = ["FOLD_METRICS_FILE", "REQUIRED_KEYS", "read_fold_metrics", "write_fold_metrics"]

FOLD_METRICS_FILE = "metrics.json"
#: key -> accepted Python types
REQUIRED_KEYS: dict[str, tuple[type, ...]] = {
    "status": (str,), "name": (str,), "fold": (int,), "n_folds": (int,), "folds_sha256": (str,),
    "fingerprint": (str,), "fold_macro_f1": (int, float), "epochs_run": (int,), "best_epoch": (int,),
    "epoch_selection": (str,), "timing": (dict,), "outputs": (dict,),
}


def _check(metrics: Mapping, source: str) -> None:
    for key, types in REQUIRED_KEYS.items():
        if key not in metrics:
            raise ContractError(f"{source}: no {key!r} key (written by an older trainer or not a fold's metrics); "
                                f"retrain the fold.")
        value = metrics[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ContractError(f"{source}: {key!r} must be {'/'.join(t.__name__ for t in types)}. "
                                f"Got {value!r} instead.")
    if not 0 <= metrics["fold"] < metrics["n_folds"]:
        raise ContractError(f"{source}: fold {metrics['fold']} is not in 0..{metrics['n_folds'] - 1}.")
    if not isinstance(metrics["timing"].get("total_seconds"), (int, float)):
        raise ContractError(f"{source}: 'timing.total_seconds' must be a number. Got "
                            f"{metrics['timing'].get('total_seconds')!r} instead.")


def write_fold_metrics(path, metrics: Mapping) -> None:
    """Check and write a fold's metrics atomically (after its outputs: it is their stamp)."""
    _check(metrics, str(path))
    atomic_write_json(path, dict(metrics))


def read_fold_metrics(path, fold: int | None = None, verify_outputs: bool = True) -> dict:
    """Read one fold's ``metrics.json``; refuse an unfinished fold, a missing key, changed outputs.

    Parameters
    ----------
    path : the metrics file, or the fold folder holding it
    fold : int, optional; the fold number it must record
    verify_outputs : bool; check the sha256 of every file listed under ``outputs``

    Returns
    -------
    metrics : dict
    """
    path = Path(path)
    if path.is_dir():
        path = path / FOLD_METRICS_FILE
    if not path.is_file():
        which = f"fold {fold}" if fold is not None else "the fold"
        raise ContractError(f"{path}: {which} is missing or unfinished; train it with python -m base_models.train "
                            f"... --fold {fold if fold is not None else 'K'}.")
    metrics = read_json_object(path, "a fold's metrics file")
    if metrics.get("status") != "complete":
        raise ContractError(f"{path}: the fold did not complete. Got status {metrics.get('status')!r} instead.")
    _check(metrics, str(path))
    if fold is not None and metrics["fold"] != fold:
        raise ContractError(f"{path}: records fold {metrics['fold']}, expected fold {fold}.")
    if verify_outputs:
        for name, digest in metrics["outputs"].items():
            actual = path.parent / name
            if not actual.is_file() or sha256_file(actual) != digest:
                raise ContractError(f"{actual}: missing or changed since {path} recorded it; retrain the fold.")
    return metrics
