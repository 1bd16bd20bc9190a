"""Model wrappers the trainer uses for tiles, cell mosaics (MIL) and the center loss, and their extra outputs.

The trainer keeps one code path; a variant changes only

- the **model**: :func:`wrap_model` returns a :class:`VariantModel` around the backbone (or around a
  :class:`~base_models.mil.CellMILModel`) when ``tiles``, ``cells`` or ``center_loss`` is set;
  its ``train_loss`` gives tiles their image's labels and adds the center-loss term;
- the **images** (cells only): :func:`cell_data` swaps the fold's image caches for *cell mosaics*,
  uint8 ``(n, 4, g*c, g*c)`` arrays holding ``k = g*g`` cell crops of side ``c`` per image in a
  ``g x g`` grid. A mosaic flows through the trainer's loader, augmentation (flips/rotations of
  the whole mosaic flip every crop and permute them; the pooling ignores order), normalisation and
  TTA like an ordinary image, and :class:`VariantModel` cuts it back into its ``k`` crops;
- the **sampler** arguments (``epoch``, ``single_weight``, ``phase1_epochs``), passed by the trainer;
- extra **outputs** (:func:`after_fit`): attention-map PNGs and the F1 on a subset of the training rows.

With every variant key at its default, :func:`is_active` is False and nothing here runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hpa_ens.validation import ParameterError
from hpa_ens.thresholds import exact_thresholds

from .crop_cache import CropCache
from .heads import forward_with_features, pooled_feature_dim
from .losses import CenterLoss
from .mil import CellMILModel, feature_dim
from .segment import CellParams
from .tiles import combine_tiles, repeat_labels, split_tiles

_P_CLIP = 1e-7


def is_active(config: dict) -> bool:
    """True when the config asks for a model-side variant (tiles, cells or center loss)."""
    return bool(config["tiles"] or config["cells"] or config["center_loss"] > 0)


def cell_grid(config: dict) -> int:
    """Side g of the cell mosaic (``cells_per_image = g*g``)."""
    return int(round(np.sqrt(config["cells_per_image"])))


def cell_params(config: dict) -> CellParams:
    """Segmentation parameters scaled to the cache's image size (defaults tuned at 128 px), then the
    config's ``cell_params`` overrides; ``max_cells`` is always ``cells_per_image`` (the largest cells)."""
    s = config["image_size"] / 128.0
    scaled = dict(sigma=1.5 * s, min_distance=max(1, int(round(3 * s))), min_area=max(4, int(round(20 * s * s))),
                  cell_sigma=1.5 * s, max_cell_radius=max(4, int(round(40 * s))),
                  crop_size=max(8, int(round(48 * s))))
    scaled.update(dict(config["cell_params"] or {}))
    scaled["max_cells"] = int(config["cells_per_image"])
    return CellParams.from_mapping(scaled)


# --------------------------------------------------------------------------------------- models
class VariantModel(nn.Module):
    """A backbone seen through tiles or cell mosaics, optionally with a center-loss auxiliary.

    Parameters
    ----------
    inner : nn.Module
        ``mode='image'`` or ``'tiles'``: any head of the registry, (b, 4, h, w) -> (b, K);
        ``mode='cells'``: a :class:`CellMILModel`, (b, k, 4, c, c) -> (b, K).
    mode : {'image', 'tiles', 'cells'}
    grid : int
        Tiles per side (``tiles``) or cells per mosaic side (``cells``).
    tile_combine : {'max', 'mean', 'noisy_or'}
        How tile probabilities make the image's in eval mode.
    center : CenterLoss, optional; its centres train with the model and live in its state dict
    center_weight : float

    Notes
    -----
    In training mode a tiled model returns one row of logits per tile (``b * grid**2`` rows), and
    :meth:`train_loss` repeats each image's labels for its tiles. In eval mode it returns image
    logits ``logit(combine(sigmoid(tile logits)))``, so ``predict`` needs no change.
    """

    def __init__(self, inner: nn.Module, mode: str = "image", grid: int = 1, tile_combine: str = "max",
                 center: CenterLoss | None = None, center_weight: float = 0.0):
        super().__init__()
        if mode not in ("image", "tiles", "cells"):
            raise ParameterError(f"The 'mode' parameter must be image, tiles or cells. Got {mode!r} instead.")
        self.inner = inner
        self.mode = mode
        self.grid = int(grid)
        self.tile_combine = tile_combine
        self.center = center
        self.center_weight = float(center_weight)
        self.last_features: torch.Tensor | None = None

    @property
    def last_attention(self):
        return getattr(self.inner, "last_attention", None)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.center is not None:
            logits, self.last_features = forward_with_features(self.inner, x)
            return logits
        return self.inner(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "cells":
            crops = split_tiles(x, self.grid)  # (b*k, 4, c, c), the k crops of each mosaic in order
            bags = crops.reshape(x.shape[0], self.grid * self.grid, *crops.shape[1:])
            logits = self.inner(bags)
            self.last_features = self.inner.last_features
            return logits
        if self.mode == "tiles":
            tile_logits = self._run(split_tiles(x, self.grid))
            if self.training:
                return tile_logits
            probs = combine_tiles(torch.sigmoid(tile_logits.double()), self.grid, self.tile_combine)
            probs = probs.clamp(_P_CLIP, 1 - _P_CLIP)
            return (torch.log(probs) - torch.log1p(-probs)).to(tile_logits.dtype)
        return self._run(x)

    def train_loss(self, loss_fn: nn.Module, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of a training step: tiles inherit their image's labels; plus the center-loss term."""
        if logits.shape[0] != targets.shape[0]:
            targets = repeat_labels(targets, self.grid)
        loss = loss_fn(logits.float(), targets)
        if self.center is not None and self.center_weight > 0:
            loss = loss + self.center_weight * self.center(self.last_features, targets)
        return loss


def wrap_model(model: nn.Module, config: dict, n_classes: int, in_chans: int = 4) -> nn.Module:
    """The trainer's model for a variant config (``model`` as built by ``build_model``).

    ``cells`` replaces it by a :class:`CellMILModel` of the same backbone (``cell_pooling``:
    max / mean / noisy_or fixed, lse / attention learned); its backbone starts from ImageNet weights with
    ``pretrained``, or from ``weights``.
    """
    if not is_active(config):
        return model
    if config["cells"]:
        inner = CellMILModel(config["backbone"], n_classes=n_classes, pooling=config["cell_pooling"],
                             dropout=config["dropout"], in_chans=in_chans, pretrained=config["pretrained"])
        if config["weights"]:
            from .models import load_weights

            load_weights(inner.backbone, config["weights"])
        mode, grid = "cells", cell_grid(config)
    elif config["tiles"]:
        inner, mode, grid = model, "tiles", int(config["tiles"])
    else:
        inner, mode, grid = model, "image", 1
    center = None
    if config["center_loss"] > 0:
        if mode == "cells":
            dim = feature_dim(inner.backbone)  # CellMILModel.last_features: mean of the cells' features
        else:
            side = config["image_size"] // grid
            dim = pooled_feature_dim(inner, image_size=max(side, 32), in_chans=in_chans)
        center = CenterLoss(n_classes, dim, seed=config["seed"])
    return VariantModel(inner, mode, grid, config["tile_combine"], center, config["center_loss"])


# ----------------------------------------------------------------------------------------- cells
def cell_mosaics(cell_sets, grid: int) -> np.ndarray:
    """Lay ``k = grid**2`` crops per image out as one ``(4, grid*c, grid*c)`` mosaic.

    An image with fewer than ``k`` cells repeats its cells in order to fill the grid, so every bag
    is full and no mask is needed: max pooling is unchanged by repeats; mean and attention pooling
    weigh the repeated cells a little more.

    Returns
    -------
    mosaics : ndarray of shape (n_images, 4, grid*c, grid*c), uint8
    """
    k = grid * grid
    n = len(cell_sets)
    channels, c = cell_sets[0].crops.shape[1], cell_sets[0].crops.shape[2]
    out = np.zeros((n, channels, grid * c, grid * c), dtype=np.uint8)
    for i, cells in enumerate(cell_sets):
        crops = cells.crops[np.resize(np.arange(len(cells.crops)), k)]  # cycle when fewer than k
        for j in range(k):
            r, q = divmod(j, grid)
            out[i, :, r * c:(r + 1) * c, q * c:(q + 1) * c] = crops[j]
    return out


def cell_data(config: dict, data, cache_dir, progress=None):
    """The fold's data with both image caches replaced by cell mosaics (crops cached per image).

    Parameters
    ----------
    data : train.FoldData
    cache_dir : folder holding ``cell_crops/{image cache name}/cells_{params key}_{size}px/{Id}.npz``;
        the image cache's name carries its fingerprint (Ids, files' sizes and mtimes), so changed
        images never meet stale crops

    Returns
    -------
    data : a copy of ``data`` whose ``train_images`` / ``test_images`` are mosaics
    """
    params = cell_params(config)
    grid = cell_grid(config)

    def mosaics(images, ids):
        name = Path(getattr(images, "filename", None) or "in_memory").stem
        cache = CropCache(Path(cache_dir) / "cell_crops" / name, params)
        return cell_mosaics(cache.build(ids, images, progress=progress), grid)

    n_extra = len(data.train_images) - len(data.train_ids)
    train_keys = list(data.train_ids) + [f"extra{i:06d}" for i in range(n_extra)]
    return dataclasses.replace(data, train_images=mosaics(data.train_images, train_keys),
                               test_images=mosaics(data.test_images, list(data.test_ids)))


# --------------------------------------------------------------------------------- after the fit
def train_subset_rows(fit_rows: np.ndarray, n_train: int, n_rows: int) -> np.ndarray:
    """Up to ``n_rows`` evenly spaced training rows (own train set only, no extra images)."""
    own = np.asarray(fit_rows)[np.asarray(fit_rows) < n_train]
    if n_rows <= 0 or len(own) == 0:
        return own[:0]
    picks = np.unique(np.linspace(0, len(own) - 1, min(n_rows, len(own))).astype(int))
    return own[picks]


def after_fit(model, data, normalizer, config: dict, out_dir) -> dict:
    """Optional outputs after the final prediction; extra entries for ``metrics.json``.

    - ``train_eval_rows > 0``: F1 (per-class best thresholds, as ``fold_macro_f1``) of the best
      weights on that many training rows, no TTA -> ``train_subset_f1``; with ``fold_macro_f1`` it
      measures the over-fitting gap.
    - ``attention_maps > 0`` and a model with attention (``head: attention``): PNGs of the first
      held-out images under ``out_dir/attention/``.
    """
    from .infer import predict

    extra: dict = {}
    if config["train_eval_rows"] > 0:
        rows = train_subset_rows(data.fit_rows, len(data.train_ids), config["train_eval_rows"])
        probs, _ = predict(model, data.train_images, rows, normalizer, "none", config["eval_batch_size"],
                           config["amp"])
        extra["train_subset_f1"] = float(exact_thresholds(data.labels[rows], probs)[1].mean())
        extra["train_subset_rows"] = int(len(rows))
    n_maps = min(int(config["attention_maps"]), len(data.val_rows))
    if n_maps > 0:
        from .heads import save_attention_maps

        rows = data.val_rows[:n_maps]
        images = np.asarray(data.train_images[rows])
        inputs = normalizer.standardize(normalizer.to_unit(images))
        paths = save_attention_maps(model, inputs, images, [data.train_ids[i] for i in rows],
                                    Path(out_dir) / "attention", labels=data.labels[rows],
                                    class_names=data.class_names)
        extra["attention_maps"] = [str(p) for p in paths]
    return extra


def batch_loss(model: nn.Module, loss_fn: nn.Module, step_loss=None):
    """The trainer's ``batch_loss(logits, rows, targets)`` hook for a :class:`VariantModel`.

    ``step_loss`` is another hook already in place (distillation's soft targets); it is kept for
    whole-image models and refused for tiles, whose logits are per tile.
    """
    if not isinstance(model, VariantModel):
        return step_loss
    if step_loss is not None and model.mode == "tiles":
        raise ParameterError("The 'tiles' parameter cannot be combined with soft-target distillation.")

    def hook(logits, rows, targets):
        if step_loss is None:
            return model.train_loss(loss_fn, logits, targets)
        loss = step_loss(logits, rows, targets)
        if model.center is not None and model.center_weight > 0:
            loss = loss + model.center_weight * model.center(model.last_features, targets)
        return loss

    return hook
