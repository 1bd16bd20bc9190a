"""Multi-label losses by name, weighted sums of them, and the center loss on pooled features.

Every loss maps ``(logits, targets)`` of shape (batch, K) to a scalar. A config names one loss
(``loss: focal``) or a weighted sum (``loss: {focal: 1.0, soft_f1: 0.5}``); a term's value is its
weight or a mapping with ``weight`` plus the loss's own parameters
(``loss: {focal: {weight: 1.0, gamma: 2.0}}``).

Built-ins: ``bce``, ``weighted_bce``, ``focal``, ``soft_f1`` and ``lovasz`` (the Lovász hinge of
Berman et al. 2018, a convex surrogate of the Jaccard loss, per class over the batch; the 1st place
combined it with focal loss). :class:`CenterLoss` is not a registry loss: it needs the pooled
features, not only the logits, so the trainer adds ``weight * center(features, targets)``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpa_ens.validation import ContractError, ParameterError

from .registry import LOSSES


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
    class_freq : array-like of shape (K,), optional
        Positive share per class in the training data (needed by ``weighted_bce``).

    Returns
    -------
    loss : nn.Module mapping (logits, targets) of shape (batch, K) to a scalar
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


# ------------------------------------------------------------------------------------- Lovász
def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss for errors sorted in decreasing order.

    Parameters
    ----------
    gt_sorted : Tensor of shape (n, ...) of 0/1, the truth in the order of decreasing error (dim 0)

    Returns
    -------
    grad : Tensor of the same shape: ``Delta(M_i) - Delta(M_{i-1})`` where ``M_i`` is the set of the
        first i samples and ``Delta(M) = |M| / |P u M|`` (P = positives)
    """
    gts = gt_sorted.sum(0, keepdim=True)
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)  # >= 1 from the first row on
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], dim=0)


def lovasz_hinge_per_class(logits: torch.Tensor, targets: torch.Tensor, skip_empty: bool = False) -> torch.Tensor:
    """Lovász hinge of each class over the batch.

    Parameters
    ----------
    logits : Tensor of shape (batch, K)
    targets : Tensor of shape (batch, K), 0/1
    skip_empty : bool
        Return NaN for classes without a positive in the batch (their Jaccard is undefined; with
        False they are kept, and the loss then only pushes the most wrongly scored negative down).

    Returns
    -------
    losses : Tensor of shape (K,)
    """
    targets = targets.to(logits.dtype)
    errors = 1.0 - logits * (2.0 * targets - 1.0)  # hinge margin violations
    errors_sorted, order = torch.sort(errors, dim=0, descending=True)
    gt_sorted = torch.gather(targets, 0, order)
    losses = (F.relu(errors_sorted) * lovasz_grad(gt_sorted)).sum(0)
    if skip_empty:
        losses = torch.where(targets.sum(0) > 0, losses, torch.full_like(losses, float("nan")))
    return losses


@LOSSES.register("lovasz")
class LovaszHingeLoss(nn.Module):
    """Mean over classes of the per-class Lovász hinge (``skip_empty``: over classes present in the batch)."""

    def __init__(self, class_freq=None, skip_empty: bool = False):
        super().__init__()
        self.skip_empty = bool(skip_empty)

    def forward(self, logits, targets):
        losses = lovasz_hinge_per_class(logits.float(), targets.float(), self.skip_empty)
        if self.skip_empty:
            present = ~torch.isnan(losses)
            return losses[present].mean() if present.any() else logits.sum() * 0.0
        return losses.mean()


# ---------------------------------------------------------------------------------- center loss
class CenterLoss(nn.Module):
    """Center loss (Wen et al. 2016) for multi-label images.

    ``L = 1/2 * mean_i mean_d (f_id - c(y_i)_d)^2`` with ``c(y) = mean of the centres of y's labels``;
    images without a label are ignored. The squared distance is averaged over the D feature
    dimensions so that a weight means the same for backbones of different width. The centres are
    parameters: give them to the optimiser with the model's.

    Parameters
    ----------
    n_classes : int
    feat_dim : int, width D of the pooled features
    seed : int, for the initial centres (small random values)
    """

    def __init__(self, n_classes: int, feat_dim: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(int(seed))
        self.centers = nn.Parameter(0.01 * torch.randn(n_classes, feat_dim, generator=generator))

    def target_centers(self, targets: torch.Tensor) -> torch.Tensor:
        """(batch, K) 0/1 -> (batch, D): mean centre of each row's labels (0 for no label)."""
        targets = targets.to(self.centers.dtype)
        return targets @ self.centers / targets.sum(1, keepdim=True).clamp(min=1.0)

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if features.shape[1] != self.centers.shape[1]:
            raise ParameterError(f"The 'features' parameter must have {self.centers.shape[1]} columns. "
                             f"Got shape {tuple(features.shape)} instead.")
        has_label = targets.sum(1) > 0
        if not has_label.any():
            return features.sum() * 0.0
        diff = features.float() - self.target_centers(targets.float())
        return 0.5 * (diff[has_label] ** 2).mean()
