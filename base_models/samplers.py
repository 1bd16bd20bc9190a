"""Which training rows an epoch visits, by name (``sampler:`` in a config); numpy only.

A sampler maps ``(labels (n, K) 0/1, rng, **config options)`` to an index order into the fold's
training rows. Built-ins: ``shuffle`` (every row once), ``balanced`` (rare labels drawn more often),
``single_label`` (single-label images drawn ``single_weight`` times as often) and
``single_label_first`` (epochs before ``phase1_epochs`` see only the single-label images).
Single-label images matter: 15,126 of the 31,072 real images have one label, an unambiguous
description of the whole image.
"""

from __future__ import annotations

import numpy as np

from hpa_ens.validation import ParameterError

from .registry import SAMPLERS


@SAMPLERS.register("shuffle")
def shuffle_sampler(labels: np.ndarray, rng: np.random.Generator, **_) -> np.ndarray:
    """Every training image once per epoch, in random order."""
    return rng.permutation(len(labels))


@SAMPLERS.register("balanced")
def balanced_sampler(labels: np.ndarray, rng: np.random.Generator, power: float = 0.5, **_) -> np.ndarray:
    """Multilabel-balanced: ``len(labels)`` draws with replacement, image weight ``max_c freq_c ** -power``.

    An image counts as its rarest label, so rare-class images are drawn more often (``power=1``
    equalises classes; 0.5 is a milder square-root balancing).
    """
    labels = np.asarray(labels, dtype=bool)
    freq = np.maximum(labels.mean(axis=0), 1.0 / max(len(labels), 1))
    per_class = freq ** -float(power)
    weights = np.where(labels, per_class[None, :], 0.0).max(axis=1)
    weights[weights == 0] = per_class.min()  # unlabelled rows keep a floor
    return rng.choice(len(labels), size=len(labels), replace=True, p=weights / weights.sum())


def single_label_mask(labels: np.ndarray) -> np.ndarray:
    """Rows with exactly one label: (n, K) 0/1 -> (n,) bool."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ParameterError(f"The 'labels' parameter must be an (n, K) indicator matrix. Got shape {labels.shape} instead.")
    return labels.astype(bool).sum(axis=1) == 1


def single_label_weights(labels: np.ndarray, single_weight: float = 2.0) -> np.ndarray:
    """Per-sample weights: ``single_weight`` for single-label rows, 1 otherwise, rescaled to mean 1.

    Returns
    -------
    weights : ndarray of shape (n,), float64
    """
    if not single_weight > 0:
        raise ParameterError(f"The 'single_weight' parameter must be > 0. Got {single_weight!r} instead.")
    weights = np.where(single_label_mask(labels), float(single_weight), 1.0)
    return weights / weights.mean()


@SAMPLERS.register("single_label")
def single_label_sampler(labels: np.ndarray, rng: np.random.Generator, single_weight: float = 2.0, **_) -> np.ndarray:
    """``len(labels)`` draws with replacement, single-label images ``single_weight`` times as likely."""
    weights = single_label_weights(labels, single_weight)
    return rng.choice(len(labels), size=len(labels), replace=True, p=weights / weights.sum())


@SAMPLERS.register("single_label_first")
def single_label_first_sampler(labels: np.ndarray, rng: np.random.Generator, *, epoch: int,
                               phase1_epochs: int = 1, **_) -> np.ndarray:
    """Phase 1 (``epoch < phase1_epochs``, epochs counted from 0): the single-label images only,
    shuffled; later epochs: every image, shuffled.

    ``epoch`` has no default on purpose: a trainer that does not pass it fails loudly instead of
    training on the single-label subset forever.
    """
    single = np.flatnonzero(single_label_mask(labels))
    if int(epoch) < int(phase1_epochs) and len(single):
        return rng.permutation(single)
    return rng.permutation(len(labels))
