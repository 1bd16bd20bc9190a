"""Multiple-instance learning on cell crops (torch): masked / LSE / attention pooling and the cell model.

Fixed-size bags ``(batch, k cells)`` with a validity mask (:func:`base_models.crop_cache.fixed_bags`)
are pooled into image logits by :class:`MaskedPooling` (max, mean, noisy-or), :class:`LSEPooling`
(learned temperature) or :class:`AttentionMILPooling` (gated attention, Ilse et al. 2018);
:class:`CellMILModel` is a timm backbone on the crops followed by one of them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpa_ens.validation import ParameterError
from hpa_ens.task import DEFAULT_TASK

from .models import create_backbone

POOLINGS = ("max", "mean", "noisy_or", "lse", "attention")

def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.to(torch.bool)


class MaskedPooling(nn.Module):
    """Fixed pooling of cell logits (batch, k, n_classes) to image logits (batch, n_classes).

    ``max`` and ``mean`` pool logits; ``noisy_or`` pools probabilities ``1 - prod(1 - p)`` and
    returns its logit.
    """

    def __init__(self, method: str = "max"):
        super().__init__()
        if method not in ("max", "mean", "noisy_or"):
            raise ParameterError(f"The 'pooling' parameter must be one of max, mean, noisy_or. Got {method!r} instead.")
        self.method = method

    def forward(self, cell_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = _masked(cell_logits, mask)[..., None]
        if self.method == "max":
            return cell_logits.masked_fill(~mask, torch.finfo(cell_logits.dtype).min).amax(dim=1)
        if self.method == "mean":
            return (cell_logits * mask).sum(1) / mask.sum(1).clamp(min=1)
        # log P(no cell positive) = sum log sigmoid(-z); image logit = log(1 - e^s) - s.
        log_none = (F.logsigmoid(-cell_logits) * mask).sum(1).clamp(max=-1e-6)
        return torch.log(-torch.expm1(log_none)) - log_none


class LSEPooling(nn.Module):
    """Log-sum-exp pooling with a learned temperature per class.

    ``z_img = log(mean_i exp(r z_i)) / r`` with ``r = softplus(rho) + r_min``: r -> 0 is mean
    pooling, r -> inf is max pooling, and training picks the point between for each class.
    """

    def __init__(self, n_classes: int, init_temperature: float = 1.0, min_temperature: float = 0.05):
        super().__init__()
        init = max(float(init_temperature) - min_temperature, 1e-3)
        self.rho = nn.Parameter(torch.full((n_classes,), float(np.log(np.expm1(init)))))
        self.min_temperature = float(min_temperature)

    @property
    def temperature(self) -> torch.Tensor:
        return F.softplus(self.rho) + self.min_temperature

    def forward(self, cell_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = _masked(cell_logits, mask)[..., None]
        r = self.temperature
        scaled = (r * cell_logits).masked_fill(~mask, float("-inf"))
        count = mask.sum(1).clamp(min=1).to(cell_logits.dtype)
        return (torch.logsumexp(scaled, dim=1) - torch.log(count)) / r


class AttentionMILPooling(nn.Module):
    """Gated attention multiple-instance pooling (Ilse et al. 2018), one attention per class.

    Each cell gets a logit per class (a linear layer on its features) and an attention score per
    class (``w^T (tanh(V h) * sigmoid(U h))``); the image logit of class c is the softmax-over-cells
    (per class) weighted sum of the cells' class-c logits - the instance version of pudae's spatial
    attention head.

    Parameters
    ----------
    in_features : int
    n_classes : int
    hidden : int
    dropout : float, on the cell features before both branches
    """

    def __init__(self, in_features: int, n_classes: int, hidden: int = 128, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_features, n_classes)
        self.attention_v = nn.Linear(in_features, hidden)
        self.attention_u = nn.Linear(in_features, hidden)
        self.attention_w = nn.Linear(hidden, n_classes)
        self.last_attention: torch.Tensor | None = None

    def forward(self, cell_features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, k, in_features) [+ mask (batch, k)] -> image logits (batch, n_classes).

        The attention weights (batch, k, n_classes), summing to 1 over the valid cells, are kept in
        ``last_attention``.
        """
        mask = _masked(cell_features, mask)
        h = self.dropout(cell_features)
        cell_logits = self.classifier(h)
        scores = self.attention_w(torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h)))
        scores = scores.masked_fill(~mask[..., None], float("-inf"))
        attention = torch.softmax(scores, dim=1)
        attention = torch.nan_to_num(attention)  # a bag without valid cells: all zero
        self.last_attention = attention.detach()
        return (attention * cell_logits).sum(1)


def feature_dim(backbone: nn.Module) -> int:
    """Width of the pooled features a timm model (num_classes=0) returns."""
    # mobilenetv3 has a conv head after pooling: its output width is head_hidden_size, not num_features.
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


class CellMILModel(nn.Module):
    """A timm backbone on cell crops, pooled into image logits.

    Input ``(batch, k, 4, crop, crop)`` bags (see :func:`fixed_bags`) plus an optional validity
    mask ``(batch, k)``; output ``(batch, n_classes)`` logits. ``pooling`` is ``max``, ``mean`` or
    ``noisy_or`` (fixed, over the cells' logits), ``lse`` (learned temperature) or ``attention``
    (gated attention MIL). :meth:`cell_logits` scores single crops, for the post-hoc ragged
    scoring with :func:`pool_cell_probs`.
    """

    def __init__(self, backbone: str, n_classes: int = DEFAULT_TASK.n_classes, pooling: str = "attention", dropout: float = 0.0,
                 in_chans: int = 4, pretrained: bool = False):
        super().__init__()
        if pooling not in POOLINGS:
            raise ParameterError(f"The 'pooling' parameter must be one of {', '.join(POOLINGS)}. Got {pooling!r} instead.")
        self.pooling_name = pooling
        self.backbone = create_backbone(backbone, pretrained, in_chans, num_classes=0)
        width = feature_dim(self.backbone)
        self.dropout = nn.Dropout(dropout)
        if pooling == "attention":
            self.pool = AttentionMILPooling(width, n_classes, dropout=dropout)
            self.classifier = None
        else:
            self.classifier = nn.Linear(width, n_classes)
            self.pool = LSEPooling(n_classes) if pooling == "lse" else MaskedPooling(pooling)
        self.last_features: torch.Tensor | None = None

    def cell_features(self, crops: torch.Tensor) -> torch.Tensor:
        """(n, 4, crop, crop) -> (n, width)."""
        return self.backbone(crops)

    def cell_logits(self, crops: torch.Tensor) -> torch.Tensor:
        """(n, 4, crop, crop) -> (n, n_classes) logits of single cells."""
        h = self.cell_features(crops)
        if self.classifier is not None:
            return self.classifier(h)
        return self.pool.classifier(h)

    def forward(self, bags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, k = bags.shape[:2]
        h = self.cell_features(bags.reshape(batch * k, *bags.shape[2:])).reshape(batch, k, -1)
        valid = _masked(h, mask)
        # Image feature for auxiliary losses (center loss): mean over valid cells.
        self.last_features = (h * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        if self.classifier is None:
            return self.pool(h, valid)
        return self.pool(self.classifier(self.dropout(h)), valid)


