"""Realistic simulated base-model probabilities over a real (or any) label matrix.

Used by tests and benchmarks of the stages that consume prediction sets (thresholds, blending,
stacking), so they can be measured on the real HPA label structure (imbalance from 12,885 positives
down to 11, label co-occurrence) without training CNNs. Pure numpy, deterministic per ``seed``.

API
---
``simulate_base_models(Y, n_models=4, seed=0, *, strength=1.0, shared_noise=0.5, confusion=0.6,
miscalibration=0.5, hardness=0.5, look_alikes=LOOK_ALIKES)``
    -> ``probs`` of shape ``(n_models, n_samples, 28)``, float64 in (0, 1).

``draw_toward_distribution(Y, target_shares, n, seed=0, candidates=None)``
    -> sorted row indices (n,) drawn without replacement so that the drawn rows' class shares move
    toward ``target_shares`` (e.g. the leaderboard probe ``lb_label_distribution.csv``).

``holdout_split(Y, test_fraction=0.25, target_shares=None, seed=0)``
    -> ``(train_idx, test_idx)``: the test part drawn toward ``target_shares`` (uniformly if None).

``simple_folds(n, n_folds=5, seed=0)``
    -> fold ids (n,) in 0..n_folds-1 (a seeded shuffle; enough for simulated data).

``write_simulated_sets(out_dir, Y, ids=None, n_models=3, seed=0, test_fraction=0.25, n_folds=5,
target_shares=None, **simulate_kwargs)``
    -> dict of paths. Writes ``train.csv`` (train rows' labels), ``folds.csv``,
    ``truth/test_labels.csv``, ``sample_submission.csv`` and one prediction set per model in
    ``oof/model_<m>/`` (``oof.csv`` = the train part, ``test.csv`` = the held-out part).

How the simulation works (per model m, image i, class k), in logit units::

    logit = b_k + d_mk * (1 - hardness_i) * y_ik           # class-dependent separability
            + confusion * d_k * mean_{j look-alike of k} y_ij  # look-alikes fire each other
            + sqrt(shared_noise) * u_ik + sqrt(1 - shared_noise) * e_mik   # noise shared between models
    prob  = sigmoid(temperature_m * logit + shift_mk)         # miscalibration

``d_k`` grows with the class's rarity (CNNs were trained with rare-class weighting) and shrinks for
classes with look-alikes; ``d_mk`` jitters it per model so no single model is best everywhere;
``hardness_i`` (shared by all models and classes) makes some images hard for everyone, which per-image
features (max probability, entropy) can pick up.

**This simulator favours the stacker**: the per-image hardness it plants is exactly what the stacker's
per-image features (max probability, entropy) read. Use it to test plumbing, not as evidence that
stacking helps; for that, use :mod:`hpa_ens.testing.label_noise` (errors drawn from the labels only)
and real data (``benchmarks/stacking_report.py`` compares both and the MULAN sets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..utils import expit


#: Groups of classes that look alike under the microscope and get confused by CNNs.
LOOK_ALIKES: tuple[tuple[int, ...], ...] = (
    (8, 9, 10),    # peroxisomes / endosomes / lysosomes: small vesicles
    (11, 12, 14),  # intermediate / actin filaments / microtubules
    (18, 19),      # MTOC / centrosome
    (2, 3),        # nucleoli / nucleoli fibrillar center
    (4, 5),        # nuclear speckles / nuclear bodies
    (0, 25),       # nucleoplasm / cytosol (diffuse)
    (21, 22),      # plasma membrane / cell junctions
)

__all__ = [
    "LOOK_ALIKES",
    "HPA_LIKE_PREVALENCE",
    "simulated_labels",
    "simulate_base_models",
    "draw_toward_distribution",
    "holdout_split",
    "simple_folds",
    "write_simulated_sets",
]


def _check_Y(Y) -> np.ndarray:
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[0] == 0 or not np.isin(Y, (0, 1)).all():
        raise ValueError(f"The 'Y' parameter must be a non-empty 0/1 matrix (n_samples, n_classes). "
                         f"Got shape {Y.shape} instead.")
    return Y.astype(bool)


def simulate_base_models(
    Y,
    n_models: int = 4,
    seed: int = 0,
    *,
    strength: float = 1.0,
    shared_noise: float = 0.5,
    confusion: float = 0.6,
    miscalibration: float = 0.5,
    hardness: float = 0.5,
    look_alikes: Sequence[Sequence[int]] = LOOK_ALIKES,
) -> np.ndarray:
    """Simulated probabilities of ``n_models`` base models for the labels ``Y``.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_classes), 0/1
        The true labels (e.g. the real ``train.csv`` matrix).
    n_models : int, default 4
    seed : int, default 0
    strength : float, default 1.0
        Multiplies every class's separability (higher: better models).
    shared_noise : float in [0, 1], default 0.5
        Share of the noise variance common to all models (higher: blending helps less).
    confusion : float >= 0, default 0.6
        How strongly a look-alike class's presence raises a class's score.
    miscalibration : float >= 0, default 0.5
        Spread of per-model temperatures and per-class shifts (0: calibrated-ish logits).
    hardness : float in [0, 1), default 0.5
        Scale of the per-image difficulty shared by all models and classes.
    look_alikes : sequence of class-id groups
        Groups whose members raise each other's scores (ids >= n_classes are ignored).

    Returns
    -------
    probs : ndarray of shape (n_models, n_samples, n_classes), float64 in (0, 1)
    """
    Y = _check_Y(Y)
    for name, value, ok in (
        ("n_models", n_models, isinstance(n_models, (int, np.integer)) and n_models >= 1),
        ("shared_noise", shared_noise, 0.0 <= shared_noise <= 1.0),
        ("hardness", hardness, 0.0 <= hardness < 1.0),
        ("confusion", confusion, confusion >= 0.0),
        ("miscalibration", miscalibration, miscalibration >= 0.0),
        ("strength", strength, strength > 0.0),
    ):
        if not ok:
            raise ValueError(f"The '{name}' parameter of simulate_base_models is out of range. Got {value!r} instead.")
    n, n_classes = Y.shape
    rng = np.random.default_rng(seed)
    Yf = Y.astype(np.float64)
    prevalence = np.clip(Yf.mean(axis=0), 1.0 / (n + 1), 1.0 - 1.0 / (n + 1))

    # Separability in noise-sd units: rarer classes a bit more separable (weighted losses), look-alikes less.
    d = 2.8 + 0.6 * (-np.log10(prevalence))
    look_matrix = np.zeros((n_classes, n_classes))
    for group in look_alikes:
        group = [k for k in group if k < n_classes]
        for k in group:
            others = [j for j in group if j != k]
            if others:
                d[k] -= 0.6
                look_matrix[others, k] = 1.0 / len(others)
    d = d * strength
    # Half the prior log-odds: rare positives land near 0.5 as with class-weighted CNN losses.
    intercept = 0.4 * np.log(prevalence / (1 - prevalence)) - 0.45 * d

    # Per-image difficulty and the noise every model shares.
    image_hardness = hardness * rng.beta(2.0, 4.0, size=(n, 1))
    shared = rng.standard_normal((n, n_classes))
    look_signal = confusion * (Yf @ look_matrix) * d  # (n, classes): a look-alike is present

    quality = np.linspace(1.0, 0.85, n_models)[rng.permutation(n_models)]
    temperature = np.exp(miscalibration * rng.uniform(-0.6, 0.6, size=n_models))
    probs = np.empty((n_models, n, n_classes))
    for m in range(n_models):
        d_m = d * quality[m] * np.exp(rng.normal(0.0, 0.12, size=n_classes))
        own = rng.standard_normal((n, n_classes))
        noise = np.sqrt(shared_noise) * shared + np.sqrt(1.0 - shared_noise) * own
        logit = intercept + d_m * (1.0 - image_hardness) * Yf + look_signal * quality[m] + noise
        shift = miscalibration * rng.normal(0.0, 0.8, size=n_classes)
        probs[m] = expit(temperature[m] * logit + shift)
    return np.clip(probs, 1e-9, 1.0 - 1e-9)


def draw_toward_distribution(Y, target_shares, n: int, seed: int = 0, candidates=None, n_iter: int = 50) -> np.ndarray:
    """Draw ``n`` rows (without replacement) whose class shares move toward ``target_shares``.

    Row weights are fitted by raking (iterative proportional fitting over the 28 label columns, each
    row's update spread over its labels), then rows are drawn with probability proportional to weight.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_classes), 0/1
    target_shares : array-like of shape (n_classes,)
        Wanted positive share per class (e.g. ``read_target_distribution(lb_file)``).
    n : int
        Rows to draw (<= number of candidates).
    seed : int, default 0
    candidates : array-like of int, optional
        Row indices to draw from (default: all rows).

    Returns
    -------
    idx : ndarray of shape (n,), int64, sorted ascending
    """
    Y = _check_Y(Y)
    target = np.asarray(target_shares, dtype=np.float64)
    if target.shape != (Y.shape[1],) or not np.isfinite(target).all() or (target < 0).any():
        raise ValueError(f"The 'target_shares' parameter must be {Y.shape[1]} non-negative shares. "
                         f"Got shape {target.shape} instead.")
    candidates = np.arange(len(Y)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if not 0 < n <= len(candidates):
        raise ValueError(f"The 'n' parameter must be in [1, {len(candidates)}]. Got {n!r} instead.")
    Yc = Y[candidates].astype(np.float64)
    present = Yc.sum(axis=0) > 0
    # Classes the probe could not see (0.001 placeholders) keep their own share: no information.
    target = np.where(present, np.maximum(target, 1e-4), 0.0)
    n_labels = np.maximum(Yc.sum(axis=1), 1.0)
    log_w = np.zeros(len(Yc))
    for _ in range(n_iter):
        w = np.exp(log_w - log_w.max())
        share = (w @ Yc) / w.sum()
        ratio = np.where(present, np.log(np.maximum(target, 1e-12) / np.maximum(share, 1e-12)), 0.0)
        log_w += (Yc @ ratio) / n_labels
        log_w = np.clip(log_w, -8.0, 8.0)  # bounded weights: no single row dominates the draw
    w = np.exp(log_w - log_w.max())
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(Yc), size=n, replace=False, p=w / w.sum())
    return np.sort(candidates[chosen])


def holdout_split(Y, test_fraction: float = 0.25, target_shares=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split rows into a train part and a held-out part drawn toward ``target_shares``.

    Returns
    -------
    train_idx, test_idx : ndarrays of int64, sorted, disjoint, covering all rows
    """
    Y = _check_Y(Y)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"The 'test_fraction' parameter must be in (0, 1). Got {test_fraction!r} instead.")
    n_test = max(1, int(round(test_fraction * len(Y))))
    if target_shares is None:
        test_idx = np.sort(np.random.default_rng(seed).choice(len(Y), size=n_test, replace=False))
    else:
        test_idx = draw_toward_distribution(Y, target_shares, n_test, seed=seed)
    mask = np.ones(len(Y), dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


#: Per-class positive rates of a small HPA-shaped label matrix: three common classes, 22 at 6 %, three rare ones.
HPA_LIKE_PREVALENCE = np.r_[0.4, 0.25, 0.15, np.full(22, 0.06), 0.02, 0.01, 0.005]


def simulated_labels(n: int, seed: int = 0, prevalence=HPA_LIKE_PREVALENCE) -> np.ndarray:
    """An ``(n, K)`` 0/1 uint8 label matrix with independent classes at ``prevalence`` and at least one label per row
    (a row drawn empty gets class 0), K = ``len(prevalence)``."""
    prevalence = np.asarray(prevalence, dtype=np.float64)
    labels = (np.random.default_rng(seed).random((n, len(prevalence))) < prevalence).astype(np.uint8)
    labels[labels.sum(1) == 0, 0] = 1
    return labels


def simple_folds(n: int, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold ids 0..n_folds-1 for ``n`` rows (a seeded shuffle, sizes differ by at most one)."""
    if n_folds < 2 or n < n_folds:
        raise ValueError(f"The 'n_folds' parameter must be in [2, n]. Got {n_folds!r} for n={n} instead.")
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % n_folds
    return folds


def write_simulated_sets(
    out_dir,
    Y,
    ids: Sequence[str] | None = None,
    n_models: int = 3,
    seed: int = 0,
    test_fraction: float = 0.25,
    n_folds: int = 5,
    target_shares=None,
    **simulate_kwargs,
) -> dict:
    """Write a complete simulated stacking input: labels, folds and ``n_models`` prediction sets.

    Returns
    -------
    paths : dict with keys ``labels``, ``folds``, ``test_labels``, ``sample_submission``, ``models``
        (list of prediction-set folders), ``train_idx``, ``test_idx``.
    """
    from ..contract import build_meta, probs_frame, write_folds, write_prediction_set
    from ..labels import write_labels

    import pandas as pd

    Y = _check_Y(Y)
    out = Path(out_dir)
    ids = [f"sim{i:06d}" for i in range(len(Y))] if ids is None else [str(i) for i in ids]
    train_idx, test_idx = holdout_split(Y, test_fraction, target_shares, seed)
    probs = simulate_base_models(Y, n_models=n_models, seed=seed, **simulate_kwargs)
    train_ids = [ids[i] for i in train_idx]
    test_ids = [ids[i] for i in test_idx]
    write_labels(out / "train.csv", train_ids, Y[train_idx])
    write_labels(out / "truth" / "test_labels.csv", test_ids, Y[test_idx])
    write_labels(out / "sample_submission.csv", test_ids, np.zeros((len(test_ids), Y.shape[1]), dtype=np.uint8),
                 column="Predicted")
    folds = pd.Series(simple_folds(len(train_idx), n_folds, seed), index=pd.Index(train_ids, name="Id"), name="fold")
    write_folds(out / "folds.csv", folds)
    models = []
    for m in range(n_models):
        folder = out / "oof" / f"model_{m}"
        meta = build_meta("hpa_ens.testing.simulate", [], folds=out / "folds.csv",
                          params={"seed": seed, "model": m, "n_models": n_models, **simulate_kwargs},
                          argv=[], name=f"model_{m}")
        meta["created_at"] = None  # same seed -> same bytes
        write_prediction_set(folder, probs_frame(train_ids, probs[m][train_idx]),
                             probs_frame(test_ids, probs[m][test_idx]), meta)
        models.append(folder)
    return {"labels": out / "train.csv", "folds": out / "folds.csv", "test_labels": out / "truth" / "test_labels.csv",
            "sample_submission": out / "sample_submission.csv", "models": models,
            "train_idx": train_idx, "test_idx": test_idx}
