"""Issue 6 losses and sample selection: Lovász hinge per class, center loss, single-label emphasis.

- ``lovasz`` (registered in the loss registry): the Lovász hinge of Berman et al. (2018), a convex
  surrogate of the Jaccard loss, computed per class over the batch (the batch's images are the
  "pixels" of class k) and averaged over classes. Usable alone or in a weighted sum
  (``loss: {bce: 1.0, lovasz: 0.5}``), as the 1st place combined it with focal loss.
- :class:`CenterLoss`: an auxiliary loss on the pooled features with one learnable centre per class;
  a multi-label image is pulled toward the mean of its labels' centres. It needs the features,
  not only the logits, so it is not a registry loss: the trainer adds
  ``weight * center(features, targets)`` (see ``docs/variants.md``).
- Single-label emphasis (15,126 of the 31,072 real images have one label; their label is an
  unambiguous description of the whole image): :func:`single_label_weights` for a weighted loss,
  and two samplers in the sampler registry - ``single_label`` (single-label images drawn
  ``single_weight`` times as often) and ``single_label_first`` (epochs before ``phase1_epochs`` see only
  single-label images, later ones everything).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import SAMPLERS
from .losses import LOSSES
from hpa_ens._validation import ParameterError  # noqa: E402


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


# ------------------------------------------------------------------------------- single-label
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
