"""Knowledge distillation: train a small student on true labels mixed with a teacher's probabilities.

:func:`distill` is the library entry point; the command (:mod:`base_models.commands.distill`, also
``hpa-ens distill``) is ``python -m base_models.distill --teacher oof/stack --student
base_models/configs/mobilenetv3_small_100.yaml --data DIR --folds folds.csv [--fold K|all] [--alpha 0.7]
[--temperature 2] [--self-train] [--out oof]``.

The teacher is any prediction set (a stack, a blend, one model). For each training image the
student's loss is

    (1 - alpha) * L_config(logits, labels) + alpha * T**2 * BCE(logits / T, sigmoid(logit(p_teacher) / T))

where ``L_config`` is the config's own loss, ``p_teacher`` the teacher's OOF probability of that
image and ``BCE`` the per-label binary cross-entropy against soft targets (averaged over images and
labels). ``T`` (temperature) softens the teacher in logit space; the ``T**2`` factor keeps the soft
term's gradients on the same scale for every ``T`` (Hinton et al., 2015). With ``--self-train`` the
test images join the training rows with the teacher's test probabilities as their only target.

The student is trained per fold through ``base_models.train.fit_fold`` (its ``make_batch_loss`` and
``data_hook`` hooks), so it writes the ordinary outputs under ``OUT/NAME/fold{K}/`` and, with
``--fold all``, the prediction set ``OUT/NAME/`` (the teacher's hashes recorded in ``meta.json``).
"""

from __future__ import annotations

# python -m base_models.distill: the command lives in base_models.commands.distill. Its guard comes first, before
# this module imports torch, so that without the [train] extra it ends in the one-line error, not a traceback.
if __name__ == "__main__":
    from hpa_ens.commands import launch

    launch("distill", __spec__.name)

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hpa_ens.validation import ContractError, ParameterError
from hpa_ens.contract import read_folds, read_meta, read_prediction_set, write_prediction_set
from hpa_ens.io import sha256_file
from hpa_ens.labels import read_sample_submission
from hpa_ens.task import load_task
from hpa_ens.utils import expit, logit

from . import distributed
from .freshness import fold_is_current
from .train import FoldData, fold_line, read_label_matrix

EPS = 1e-6


# ------------------------------------------------------------------------------------ pure core
def soften(probs: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Teacher probabilities tempered in logit space: ``sigmoid(logit(p) / T)``.

    Parameters
    ----------
    probs : array of shape (n, K) in [0, 1]
    temperature : float > 0; 1 leaves the probabilities as they are (up to clipping to [1e-6, 1 - 1e-6])

    Returns
    -------
    soft : ndarray of shape (n, K), float32
    """
    if not temperature > 0:
        raise ParameterError(f"The 'temperature' parameter must be > 0. Got {temperature!r} instead.")
    return expit(logit(probs, eps=EPS) / temperature).astype(np.float32)


def soft_bce(logits: torch.Tensor, soft: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``T**2 * mean BCE(logits / T, soft)``: per-label binary cross-entropy against soft targets.

    Parameters
    ----------
    logits : Tensor of shape (batch, K)
    soft : Tensor of shape (batch, K), tempered teacher probabilities (:func:`soften`)
    """
    return F.binary_cross_entropy_with_logits(logits / temperature, soft) * temperature ** 2


def make_distill_loss(soft_targets: np.ndarray, labelled: np.ndarray, alpha: float, temperature: float):
    """The ``make_batch_loss`` hook of :func:`base_models.train.fit_fold`.

    Parameters
    ----------
    soft_targets : array of shape (n_rows, K), tempered teacher probabilities, one row per training row
        (``FoldData.train_images`` rows, test images included under self-training)
    labelled : bool array of shape (n_rows,), rows with true labels (False for test images)
    alpha : weight of the soft term in [0, 1]; 0 is plain training, 1 learns from the teacher alone

    Returns
    -------
    make_batch_loss : callable ``loss_fn -> batch_loss(logits, rows, targets) -> scalar``
    """
    if not 0 <= alpha <= 1:
        raise ParameterError(f"The 'alpha' parameter must be in [0, 1]. Got {alpha!r} instead.")
    soft_all = torch.as_tensor(np.asarray(soft_targets, dtype=np.float32))
    labelled = np.asarray(labelled, dtype=bool)

    def make_batch_loss(loss_fn):
        def batch_loss(logits, rows, targets):
            soft = soft_all[rows].to(logits.device)
            loss = alpha * soft_bce(logits, soft, temperature)
            has_label = labelled[rows]
            if alpha < 1 and has_label.any():
                keep = torch.as_tensor(np.flatnonzero(has_label), device=logits.device)
                # The config's loss sees only the images with true labels.
                loss = loss + (1 - alpha) * loss_fn(logits[keep], targets[keep])
            return loss

        return batch_loss

    return make_batch_loss


class RowConcat:
    """Two uint8 image arrays read as one: rows ``0..len(a)-1`` from ``a``, then ``b``.

    Lets test images join the training rows without copying either memmap.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray):
        if a.shape[1:] != b.shape[1:]:
            raise ContractError(f"The image arrays must share a shape per image. Got {a.shape} and {b.shape} instead.")
        self.a, self.b = a, b
        self.shape = (len(a) + len(b),) + tuple(a.shape[1:])
        self.dtype = a.dtype
        self.ndim = a.ndim

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows):
        rows = np.asarray(rows)
        if rows.ndim == 0:
            r = int(rows)
            return self.a[r] if r < len(self.a) else self.b[r - len(self.a)]
        out = np.empty((len(rows),) + self.shape[1:], dtype=self.dtype)
        first = rows < len(self.a)
        out[first] = self.a[rows[first]]
        out[~first] = self.b[rows[~first] - len(self.a)]
        return out


def self_train_hook(test_probs: np.ndarray):
    """The ``data_hook`` that adds every test image to the training rows (self-training).

    Their ``labels`` rows (used only by the sampler and class frequencies) are the teacher's test
    probabilities above 0.5; the loss gives them the soft term alone.
    """

    def hook(data: FoldData) -> FoldData:
        n_rows, n_test = len(data.train_images), len(data.test_images)
        pseudo = (np.asarray(test_probs) > 0.5).astype(np.uint8)
        return dataclasses.replace(
            data, labels=np.concatenate([data.labels, pseudo]),
            train_images=RowConcat(data.train_images, data.test_images),
            fit_rows=np.concatenate([data.fit_rows, n_rows + np.arange(n_test)]))

    return hook


# --------------------------------------------------------------------------------------- I/O edge
def teacher_targets(teacher_dir, data_dir, config: dict, temperature: float, self_train: bool):
    """Read the teacher aligned by Id; build per-row soft targets and the labelled mask.

    Returns
    -------
    soft_targets : ndarray (n_rows, K): train rows (teacher OOF), extra images (their true labels),
        then, under self-training, test rows (teacher test probabilities)
    labelled : bool ndarray (n_rows,)
    test_probs : ndarray (n_test, K), the teacher's raw test probabilities
    teacher_meta : dict (name, hashes) for provenance
    """
    data_dir = Path(data_dir)
    task = load_task(config["task"])
    train_ids = read_label_matrix(data_dir / "train.csv", task).index.tolist()
    test_ids = read_sample_submission(data_dir / "sample_submission.csv").tolist()
    check_teacher_honest(teacher_dir)
    teacher = read_prediction_set(teacher_dir, train_ids=train_ids, test_ids=test_ids, task=task, require_oof=True)
    parts = [soften(teacher.oof.to_numpy(), temperature)]
    labelled = [np.ones(len(train_ids), dtype=bool)]
    if config["extra_labels"]:
        # The teacher never saw the extra images: their soft target is their true label.
        extra = read_label_matrix(config["extra_labels"], task).to_numpy(dtype=np.float32)
        parts.append(extra)
        labelled.append(np.ones(len(extra), dtype=bool))
    test_probs = teacher.test.to_numpy()
    if self_train:
        parts.append(soften(test_probs, temperature))
        labelled.append(np.zeros(len(test_ids), dtype=bool))
    meta = read_meta(teacher_dir)
    info = {"path": str(Path(teacher_dir).resolve()), "name": teacher.name,
            "outputs": meta.get("outputs") or {f: sha256_file(Path(teacher_dir) / f) for f in ("oof.csv", "test.csv")},
            "folds_sha256": meta.get("folds_sha256")}
    return np.concatenate(parts), np.concatenate(labelled), test_probs, info


def check_teacher_honest(teacher_dir) -> None:
    """Refuse a base-model teacher whose folds chose their epoch on the held-out rows.

    A base-model set records how each fold chose its epoch (``epoch_selection``: ``last_epoch`` or
    ``inner_f1``/``inner_loss``). Sets written before that choice was honest picked the epoch on the
    rows that became their OOF; their OOF probabilities - the student's soft targets - are optimistic.
    """
    meta = read_meta(teacher_dir)
    if meta.get("produced_by") == "base_models.collect" and not meta.get("epoch_selection"):
        raise ContractError(f"{Path(teacher_dir) / 'meta.json'}: this teacher's folds chose their epoch on the "
                            f"held-out rows (written before honest OOF); retrain it with base_models.run_all.")
    if any(str(s).startswith("held_out") for s in meta.get("epoch_selection") or []):
        raise ContractError(f"{Path(teacher_dir) / 'meta.json'}: this teacher chose epochs on held-out rows.")


def distill(config: dict, teacher_dir, data_dir, folds_path, folds="all", out_root="oof", alpha: float = 0.7,
            temperature: float = 1.0, self_train: bool = False, resume: bool = False,
            argv: Sequence[str] | None = None, progress=None, echo: Callable[[str], None] | None = None,
            log: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None) -> dict:
    """Train the student on the chosen folds; with every fold done, collect its prediction set.

    Reporting (nothing is printed here): ``echo(line)`` receives one line per fold, finished
    (:func:`base_models.train.fold_line`) or kept; ``warn(line)`` a teacher made on another folds file;
    ``progress`` and ``log`` go to :func:`base_models.train.fit_fold`.

    Returns
    -------
    summary : dict with per-fold metrics and, when collected, the collect summary
    """
    from .collect import collect
    from .train import fit_fold

    soft_targets, labelled, test_probs, teacher_info = teacher_targets(teacher_dir, data_dir, config,
                                                                       temperature, self_train)
    n_folds = int(read_folds(folds_path).max()) + 1
    if teacher_info["folds_sha256"] and teacher_info["folds_sha256"] != sha256_file(folds_path):
        if warn is not None:
            warn(f"{teacher_dir} was made on another folds file: the teacher's OOF probabilities carry more of the "
                 f"student's held-out labels.")
    fingerprint = {"distill_teacher": teacher_info["outputs"], "distill_alpha": float(alpha),
                   "distill_temperature": float(temperature), "distill_self_train": bool(self_train)}
    wanted = list(range(n_folds)) if folds == "all" else [int(folds)]
    hook = make_distill_loss(soft_targets, labelled, alpha, temperature)
    data_hook = self_train_hook(test_probs) if self_train else None
    fold_metrics = []
    for fold in wanted:
        if folds == "all" and not resume and fold_is_current(out_root, config, fold, data_dir, folds_path,
                                                             fingerprint):
            if echo is not None:
                echo(f"{config['name']} fold {fold}: current, kept")
            continue
        metrics = fit_fold(config, data_dir, folds_path, fold, out_root, resume=resume, argv=argv,
                           make_batch_loss=hook, data_hook=data_hook, fingerprint=fingerprint, progress=progress,
                           log=log)
        if metrics:
            fold_metrics.append(metrics)
            if echo is not None:
                echo(fold_line(metrics))
    summary = {"folds": fold_metrics}
    if folds == "all" and distributed.from_env().is_main:  # under torchrun, rank 0 alone collects
        summary["collect"] = collect(config["name"], out_root, folds_path, argv=argv)
        # Record the teacher and the distillation settings in the set's provenance.
        folder = Path(out_root) / config["name"]
        student = read_prediction_set(folder)
        meta = dict(student.meta)
        meta.pop("outputs", None)
        meta["inputs"] = dict(meta.get("inputs", {}), teacher=teacher_info["outputs"])
        meta["distill"] = {"teacher": teacher_info["path"], "alpha": alpha, "temperature": temperature,
                           "self_train": self_train}
        write_prediction_set(folder, student.oof, student.test, meta, task=load_task(config["task"]))
    return summary

