"""Spatial-attention pooling head and access to pooled features for auxiliary losses.

The head follows pudae's 3rd-place HPA models (``models/model_factory.py``, class ``Attention``):
on the backbone's last feature map ``F`` (batch, D, h, w), two 1x1 convolutions give per-class
logit maps ``L`` and attention scores ``A`` (batch, K, h, w); the attention is a softmax over the
h*w positions, separately for each class, and the image logit of class k is
``sum_xy softmax(A_k)_xy * L_k,xy`` - each class looks at the places where its pattern is.
pudae average-pooled the map to 8x8 first (``attention_size``); here that is optional because at
the 128-256 px used on CPUs the map is already 4x4 to 8x8.

Registered in the head registry (:data:`base_models.registry.HEADS`) as ``attention`` and
``attention8`` (``head: attention`` in a config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hpa_ens.validation import ContractError
from hpa_ens.images import composite_rgb
from hpa_ens.report import save_figure
from hpa_ens.task import DEFAULT_TASK

from .models import IN_CHANS, N_OUT, create_backbone
from .registry import HEADS


class SpatialAttentionPool(nn.Module):
    """Per-class spatial attention pooling of a feature map.

    Parameters
    ----------
    in_features : int, channels D of the feature map
    n_classes : int
    attention_size : int, optional; adaptive-average-pool the map to this side first (pudae: 8)
    dropout : float, on the feature map before both 1x1 convolutions (whole channels)
    """

    def __init__(self, in_features: int, n_classes: int = N_OUT, attention_size: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        self.attention_size = attention_size
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.logit_conv = nn.Conv2d(in_features, n_classes, kernel_size=1)
        self.attention_conv = nn.Conv2d(in_features, n_classes, kernel_size=1)
        self.last_attention: torch.Tensor | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, D, h, w) -> logits (batch, K); the attention (batch, K, h, w) is kept in
        ``last_attention`` (detached; each class map sums to 1)."""
        if self.attention_size and features.shape[-1] != self.attention_size:
            features = F.adaptive_avg_pool2d(features, self.attention_size)
        features = self.dropout(features)
        logit_maps = self.logit_conv(features)
        scores = self.attention_conv(features)
        batch, classes, h, w = scores.shape
        attention = torch.softmax(scores.reshape(batch, classes, h * w).float(), dim=2).to(scores.dtype)
        self.last_attention = attention.detach().reshape(batch, classes, h, w)
        return (attention * logit_maps.reshape(batch, classes, h * w)).sum(2)


class AttentionModel(nn.Module):
    """timm backbone (its feature map) + :class:`SpatialAttentionPool`.

    ``last_features`` holds the globally average-pooled features (batch, D) of the latest forward,
    for auxiliary losses such as the center loss.
    """

    def __init__(self, backbone: str, n_classes: int = N_OUT, dropout: float = 0.0,
                 attention_size: int | None = None, in_chans: int = IN_CHANS, pretrained: bool = False):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained, in_chans, num_classes=0, global_pool="")
        self.num_features = int(self.backbone.num_features)
        self.head = SpatialAttentionPool(self.num_features, n_classes, attention_size, dropout)
        self.last_features: torch.Tensor | None = None

    @property
    def last_attention(self) -> torch.Tensor | None:
        return self.head.last_attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(x)
        self.last_features = features.float().mean(dim=(2, 3))
        return self.head(features)


@HEADS.register("attention")
def attention_head(backbone: str, n_classes: int = N_OUT, dropout: float = 0.0, in_chans: int = IN_CHANS,
                   pretrained: bool = False) -> nn.Module:
    """pudae-style spatial attention on the backbone's last feature map (``head: attention``)."""
    return AttentionModel(backbone, n_classes=n_classes, dropout=dropout, in_chans=in_chans, pretrained=pretrained)


@HEADS.register("attention8")
def attention8_head(backbone: str, n_classes: int = N_OUT, dropout: float = 0.0, in_chans: int = IN_CHANS,
                    pretrained: bool = False) -> nn.Module:
    """As ``attention``, the map pooled to 8x8 first (pudae's ``attention_size: 8``, for >= 512 px inputs)."""
    return AttentionModel(backbone, n_classes=n_classes, dropout=dropout, attention_size=8, in_chans=in_chans,
                          pretrained=pretrained)


# ------------------------------------------------------------------------------ pooled features
def forward_with_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the pooled features they were computed from, for any head.

    Models that set ``last_features`` in their forward (the attention and cell models) give those;
    for a plain timm model the input of its classifier is captured with a forward pre-hook, so
    the model runs once.

    Returns
    -------
    logits : Tensor of shape (batch, K)
    features : Tensor of shape (batch, D)
    """
    if hasattr(model, "last_features"):
        logits = model(x)
        return logits, model.last_features
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(classifier, nn.Module) or isinstance(classifier, nn.Identity):
        raise ContractError(f"Cannot find the pooled features of a {type(model).__name__}: it has neither "
                         "'last_features' nor a timm classifier.")
    captured: list[torch.Tensor] = []
    handle = classifier.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, captured[-1].flatten(1)


def pooled_feature_dim(model: nn.Module, image_size: int = 64, in_chans: int = IN_CHANS) -> int:
    """Width D of :func:`forward_with_features`'s features (one tiny forward pass in eval mode)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, features = forward_with_features(model, torch.zeros(1, in_chans, image_size, image_size))
    finally:
        model.train(was_training)
    return int(features.shape[1])


# -------------------------------------------------------------------------------- attention maps
def attention_maps(model: nn.Module, inputs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and attention maps of a batch (eval mode, no gradient).

    Returns
    -------
    probs : ndarray of shape (batch, K)
    attention : ndarray of shape (batch, K, h, w), each class map summing to 1
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            probs = torch.sigmoid(model(inputs).float()).cpu().numpy()
    finally:
        model.train(was_training)
    attention = getattr(model, "last_attention", None)
    if attention is None:
        raise ContractError(f"The model ({type(model).__name__}) keeps no attention map; use head 'attention'.")
    return probs, attention.float().cpu().numpy()


def save_attention_maps(model: nn.Module, inputs: torch.Tensor, images: np.ndarray, ids: Sequence[str], out_dir,
                        n_classes_shown: int = 3, labels: np.ndarray | None = None,
                        class_names=DEFAULT_TASK.class_names) -> list[Path]:
    """One PNG per image: the composite image, then the attention of its top classes over it.

    Parameters
    ----------
    model : a model with ``last_attention`` (head ``attention``)
    inputs : Tensor of shape (n, 4, H, W), what the model eats (normalised)
    images : ndarray of shape (n, 4, H, W), uint8, for display
    ids : n image Ids (file names ``{Id}_attention.png``)
    out_dir : folder, created if missing
    n_classes_shown : the most probable classes are shown (true ones marked with * when ``labels``)
    labels : ndarray of shape (n, K), optional 0/1 truth

    Returns
    -------
    paths : the PNGs written (atomically)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs, attention = attention_maps(model, inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    size = images.shape[-2:]
    for i, image_id in enumerate(ids):
        top = np.argsort(-probs[i], kind="stable")[:n_classes_shown]
        fig, axes = plt.subplots(1, 1 + len(top), figsize=(2.6 * (1 + len(top)), 2.9))
        rgb = composite_rgb(images[i])
        axes[0].imshow(rgb)
        axes[0].set_title(str(image_id)[:18], fontsize=7)
        for ax, k in zip(axes[1:], top):
            amap = torch.from_numpy(attention[i, k][None, None])
            amap = F.interpolate(amap, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()
            ax.imshow(rgb.mean(axis=2), cmap="gray")
            ax.imshow(amap, cmap="inferno", alpha=0.6)
            mark = "*" if labels is not None and labels[i, k] else ""
            ax.set_title(f"{k}{mark} {class_names[k][:16]} p={probs[i, k]:.2f}", fontsize=7)
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        paths.append(save_figure(fig, out_dir / f"{image_id}_attention.png", dpi=100))
    return paths
