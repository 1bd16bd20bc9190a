"""Simulated base models whose errors come from the labels, never from features a stacker reads.

:func:`simulate_label_noise_models` turns a real label matrix into the probabilities of ``n_models``
base models. Each model's score for class k depends only on the row's labels and on noise drawn
independently of anything else about the row:

- **per-class noise**: every (model, class) has its own separation between positives and negatives and
  its own noise level; a share of each class's positives is *missed* by each model (its score is drawn
  as for a negative) -- the model's blind spots, which no other column reveals;
- **look-alike confusions**: within each group of ``confusion_groups`` (default the HPA look-alikes
  8 Peroxisomes / 9 Endosomes / 10 Lysosomes) a positive of one class raises the others' scores;
- **over- and under-confidence**: each (model, class) has its own temperature and bias on the logit scale.

There is no per-row "hardness" that shows in the maximum probability or the entropy, so a stacker that
reads those summary features gets no planted signal. Class-conditional score distributions do not
depend on which rows are drawn, so resampling rows by their labels is a pure label shift.

Used by ``benchmarks/shift.py`` and reusable by other benchmarks and tests; not product code.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..utils import expit, logit

__all__ = ["simulate_label_noise_models", "HPA_LOOKALIKES"]

#: HPA 2018 classes that look alike under the microscope (peroxisomes, endosomes, lysosomes).
HPA_LOOKALIKES: tuple[tuple[int, ...], ...] = ((8, 9, 10),)


def simulate_label_noise_models(
    Y,
    n_models: int,
    seed: int = 0,
    *,
    separation: tuple[float, float] = (1.0, 3.0),
    miss_rate: tuple[float, float] = (0.0, 0.25),
    confusion_groups: Sequence[Sequence[int]] | None = None,
    confusion: float = 0.6,
    temperature: tuple[float, float] = (0.5, 1.8),
    shared_noise: float = 0.3,
    bias: float = 0.7,
) -> np.ndarray:
    """Probabilities of ``n_models`` simulated base models for the rows of ``Y``.

    The score of model m, class k, row i is ``sigmoid(T[m,k] * z + b[m,k])`` with
    ``z = a[k] + d[m,k] * seen[m,i,k] + c * d[m,k] * lookalike[i,k] + noise``, where ``seen`` is the
    label unless model m misses that positive, ``lookalike`` is 1 when another class of the row's
    confusion group is positive, and the noise mixes one component shared by all models (correlated
    errors) with the model's own. ``a[k]`` puts each class's negatives near the class's base rate.

    Parameters
    ----------
    Y : array-like of shape (n_rows, K), 0/1
    n_models : int >= 1
    seed : int
    separation : (low, high)
        Range of ``d[m, k]``, the logit distance between positives and negatives (per model and class).
    miss_rate : (low, high)
        Range of the share of class k's positives model m scores as negatives.
    confusion_groups : sequence of sequences of int, optional
        Groups of look-alike classes; default :data:`HPA_LOOKALIKES` when K >= 11, else none.
    confusion : float
        Strength of a look-alike's pull, as a share of ``d[m, k]``.
    temperature : (low, high)
        Range of ``T[m, k]`` (< 1 under-confident, > 1 over-confident).
    shared_noise : float in [0, 1]
        Share of the noise variance common to all models.
    bias : float
        Standard deviation of ``b[m, k]``, the per-(model, class) miscalibration on the logit scale.

    Returns
    -------
    probs : ndarray of shape (n_models, n_rows, K), float64 in (0, 1)
    """
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[0] == 0 or not np.isin(Y, (0, 1)).all():
        raise ValueError(f"The 'Y' parameter must be a non-empty 0/1 matrix (n_rows, K). Got shape {Y.shape} instead.")
    if not isinstance(n_models, (int, np.integer)) or n_models < 1:
        raise ValueError(f"The 'n_models' parameter must be an int >= 1. Got {n_models!r} instead.")
    if not 0.0 <= shared_noise <= 1.0:
        raise ValueError(f"The 'shared_noise' parameter must be in [0, 1]. Got {shared_noise!r} instead.")
    n, K = Y.shape
    if confusion_groups is None:
        confusion_groups = HPA_LOOKALIKES if K > max(max(g) for g in HPA_LOOKALIKES) else ()
    for group in confusion_groups:
        if any(not 0 <= int(k) < K for k in group):
            raise ValueError(f"The 'confusion_groups' parameter must name classes in [0, {K}). Got {group!r} instead.")
    rng = np.random.default_rng(seed)
    Yb = Y.astype(bool)
    lookalike = np.zeros((n, K))
    for group in confusion_groups:
        group = [int(k) for k in group]
        for k in group:
            others = [j for j in group if j != k]
            lookalike[:, k] = np.maximum(lookalike[:, k], Yb[:, others].any(axis=1) & ~Yb[:, k])
    base_rate = np.clip(Yb.mean(axis=0), 1.0 / n, 0.5)
    intercept = logit(base_rate, eps=0.0)
    shared = rng.standard_normal((n, K))
    out = np.empty((n_models, n, K))
    for m in range(n_models):
        d = rng.uniform(*separation, size=K)
        miss = rng.uniform(*miss_rate, size=K)
        temp = rng.uniform(*temperature, size=K)
        b = rng.normal(0.0, bias, size=K)
        seen = Yb & (rng.random((n, K)) >= miss)
        noise = np.sqrt(shared_noise) * shared + np.sqrt(1.0 - shared_noise) * rng.standard_normal((n, K))
        z = intercept + d * seen + confusion * d * lookalike + noise
        out[m] = expit(temp * z + b)
    return np.clip(out, 1e-7, 1.0 - 1e-7)
