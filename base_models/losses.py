"""Multi-label losses by name, and weighted sums of them.

Every loss maps ``(logits, targets)`` of shape (batch, 28) to a scalar. A config names one loss
(``loss: focal``) or a weighted sum (``loss: {focal: 1.0, soft_f1: 0.5}``); a term's value is its
weight or a mapping with ``weight`` plus the loss's own parameters
(``loss: {focal: {weight: 1.0, gamma: 2.0}}``).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .registry import Registry
from hpa_ens._validation import ContractError, ParameterError  # noqa: E402

LOSSES = Registry("loss")


@LOSSES.register("bce")
class BCELoss(nn.Module):
    """Binary cross-entropy on logits, averaged over samples and classes."""

    def __init__(self, class_freq=None):
        super().__init__()

    def forward(self, logits, targets):
        return F.binary_cross_entropy_with_logits(logits, targets)


@LOSSES.register("weighted_bce")
class WeightedBCELoss(nn.Module):
    """BCE with class weights ``(1 - freq_c) ** power`` rescaled to mean 1.

    The 2nd-place solution's weighting: common classes (Nucleoplasm, 41 %) count less, rare ones
    about 1. ``class_freq`` is the positive share of each class in the training fold.
    """

    def __init__(self, class_freq=None, power: float = 2.0):
        super().__init__()
        if class_freq is None:
            raise ParameterError("The 'weighted_bce' loss needs the class frequencies of the training fold.")
        weights = (1.0 - np.asarray(class_freq, dtype=np.float64)) ** float(power)
        weights = weights / max(weights.mean(), 1e-12)
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, logits, targets):
        per = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return (per * self.weights.to(per.dtype)).mean()


@LOSSES.register("focal")
class FocalLoss(nn.Module):
    """Focal loss ``(1 - p_t) ** gamma * BCE`` (Lin et al. 2017), averaged."""

    def __init__(self, class_freq=None, gamma: float = 2.0):
        super().__init__()
        self.gamma = float(gamma)

    def forward(self, logits, targets):
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        p_t = torch.exp(-bce)  # probability given to the true label, computed stably
        return ((1.0 - p_t) ** self.gamma * bce).mean()


@LOSSES.register("soft_f1")
class SoftF1Loss(nn.Module):
    """``1 - mean per-class soft F1`` over the batch (probabilities in place of 0/1 predictions)."""

    def __init__(self, class_freq=None, eps: float = 1e-6):
        super().__init__()
        self.eps = float(eps)

    def forward(self, logits, targets):
        probs = torch.sigmoid(logits.float())
        targets = targets.float()
        tp = (probs * targets).sum(0)
        fp = (probs * (1 - targets)).sum(0)
        fn = ((1 - probs) * targets).sum(0)
        soft_f1 = 2 * tp / (2 * tp + fp + fn + self.eps)
        return 1.0 - soft_f1.mean()


class WeightedSum(nn.Module):
    """``sum_i weight_i * loss_i``."""

    def __init__(self, terms: Mapping[str, tuple[float, nn.Module]]):
        super().__init__()
        self.names = list(terms)
        self.weights = [float(terms[n][0]) for n in self.names]
        self.terms = nn.ModuleList([terms[n][1] for n in self.names])

    def forward(self, logits, targets):
        total = 0.0
        for weight, term in zip(self.weights, self.terms):
            total = total + weight * term(logits, targets)
        return total


def build_loss(spec, class_freq=None) -> nn.Module:
    """Build a loss from a config value.

    Parameters
    ----------
    spec : str or mapping
        A registered name, or ``{name: weight}`` / ``{name: {weight: w, **params}}`` for a weighted sum.
    class_freq : array-like of shape (28,), optional
        Positive share per class in the training data (needed by ``weighted_bce``).

    Returns
    -------
    loss : nn.Module mapping (logits, targets) of shape (batch, 28) to a scalar
    """
    if isinstance(spec, str):
        return LOSSES.get(spec)(class_freq=class_freq)
    if not isinstance(spec, Mapping) or not spec:
        raise ContractError(
            "The 'loss' parameter must be a loss name or a non-empty mapping {name: weight}. "
            f"Got {spec!r} instead."
        )
    terms = {}
    for name, value in spec.items():
        factory = LOSSES.get(name)
        if isinstance(value, Mapping):
            params = dict(value)
            weight = params.pop("weight", 1.0)
        else:
            weight, params = value, {}
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ParameterError(f"The 'loss' parameter's weight for {name!r} must be a number. Got {weight!r} instead.")
        try:
            terms[name] = (float(weight), factory(class_freq=class_freq, **params))
        except TypeError as err:
            raise ParameterError(f"The 'loss' parameter for {name!r} has a bad option: {err}.") from None
    return WeightedSum(terms)


# Entries defined in other modules register themselves on import; import them here so the registry
# is complete (and its error lists every valid name) however the package is entered.
from . import losses_extra  # noqa: E402,F401
