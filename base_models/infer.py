"""Inference: normalisation, batched prediction, and test-time augmentation.

TTA averages sigmoid probabilities (not logits) over the chosen flips/rotations.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
from torch import nn

from hpa_ens.validation import ParameterError

from .data import batches, dihedral, load_batches, tta_transforms


class Normalizer:
    """uint8 batch -> float, scaled to [0, 1], then per-channel or per-image standardised.

    Parameters
    ----------
    mean, std : array of shape (4,) in 0..1 units, or None for per-image standardisation
    """

    def __init__(self, mean=None, std=None, device="cpu", channels_last: bool = False):
        self.per_image = mean is None
        self.device = torch.device(device)
        self.channels_last = channels_last
        if not self.per_image:
            self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
            self.std = torch.as_tensor(np.asarray(std), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)

    def to_unit(self, batch_u8: np.ndarray | torch.Tensor) -> torch.Tensor:
        # A (pinned) tensor is moved as is, so the copy to the GPU can overlap compute.
        x = batch_u8 if isinstance(batch_u8, torch.Tensor) else torch.as_tensor(np.asarray(batch_u8))
        x = x.to(self.device, non_blocking=True)
        return x.float().div_(255.0)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_image:
            mean = x.mean(dim=(2, 3), keepdim=True)
            std = x.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
            x = (x - mean) / std
        else:
            x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def pin_for(batch_u8: np.ndarray, device: torch.device):
    """Page-locked tensor copy of a batch when the model runs on CUDA (asynchronous host-to-device
    copies); the array unchanged on the CPU."""
    if torch.device(device).type != "cuda":
        return batch_u8
    return torch.from_numpy(np.ascontiguousarray(batch_u8)).pin_memory()


AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def autocast(device: torch.device, amp: bool, dtype: str = "bfloat16"):
    """Autocast on CUDA when ``amp`` (``bfloat16``, or ``float16`` with a GradScaler in training); a no-op
    on CPU (float32 keeps CPU runs bit-stable)."""
    if amp and device.type == "cuda":
        if dtype not in AMP_DTYPES:
            raise ParameterError(f"The 'amp_dtype' parameter must be one of {', '.join(AMP_DTYPES)}. Got {dtype!r} instead.")
        return torch.autocast("cuda", dtype=AMP_DTYPES[dtype])
    return contextlib.nullcontext()


@torch.inference_mode()
def predict(model: nn.Module, images: np.ndarray, rows: np.ndarray, normalizer: Normalizer,
            tta: str = "none", batch_size: int = 128, amp: bool = True,
            on_batch: Callable[[int], None] | None = None, targets: np.ndarray | None = None,
            loss_fn: nn.Module | None = None, amp_dtype: str = "bfloat16",
            workers: int = 0) -> tuple[np.ndarray, float | None]:
    """Probabilities for ``images[rows]``, averaged over the TTA transforms.

    Parameters
    ----------
    images : array of shape (n_images, C, S, S), uint8 (a cache memmap or ``data.StreamImages``)
    rows : int array of shape (n,)
    tta : none | flips | dihedral
    targets : array of shape (n, K), optional; with ``loss_fn``, the mean loss of the untransformed view
    workers : DataLoader decoding workers for streamed images

    Returns
    -------
    probs : ndarray of shape (n, K), float64
    loss : float or None
    """
    model.eval()
    ks = tta_transforms(tta)
    out = []
    loss_total, n_seen = 0.0, 0
    chunks = batches(np.arange(len(rows)), batch_size)
    for b, batch in zip(chunks, load_batches(images, [rows[c] for c in chunks], workers)):
        x = normalizer.standardize(normalizer.to_unit(pin_for(batch, normalizer.device)))
        acc = None
        for k in ks:
            with autocast(normalizer.device, amp, amp_dtype):
                logits = model(dihedral(x, k) if k else x).float()
            if k == 0 and loss_fn is not None and targets is not None:
                y = torch.as_tensor(targets[b], dtype=torch.float32, device=logits.device)
                loss_total += float(loss_fn(logits, y)) * len(b)
                n_seen += len(b)
            probs = torch.sigmoid(logits)
            acc = probs if acc is None else acc + probs
        out.append((acc / len(ks)).double().cpu().numpy())
        if on_batch is not None:
            on_batch(len(b))
    probs = np.concatenate(out) if out else np.zeros((0, 0))
    return probs, (loss_total / n_seen if n_seen else None)
