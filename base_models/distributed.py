"""Multi-process training through ``torchrun``: DistributedDataParallel and per-rank sharding.

``torchrun --nproc_per_node N -m base_models.train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`setup` joins them into one process group (``gloo`` on
the CPU, ``nccl`` on CUDA). Without those variables everything here is a no-op, so a plain
``python -m base_models.train`` run is unchanged.

The trainer has its own batching (memmap slices, no ``DataLoader``), so instead of torch's
``DistributedSampler`` every rank draws the same epoch order from the same seed and keeps an
interleaved shard of it (:func:`shard_order`), the same scheme ``DistributedSampler`` uses.

Nothing here changes the process's environment: one progress bar per job, not one per rank, is the
command's choice (it passes a bar to rank 0 only, :func:`from_env` telling it which rank it is).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as tdist

from hpa_ens.validation import ParameterError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job: ``rank`` in ``0..world_size-1``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints and outputs."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_env(environ=None) -> DistInfo:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (set by torchrun); absent -> a single process."""
    environ = os.environ if environ is None else environ
    world = int(environ.get("WORLD_SIZE", "1") or 1)
    if world < 1:
        raise ParameterError(f"The 'WORLD_SIZE' variable must be >= 1. Got {world} instead.")
    rank = int(environ.get("RANK", "0") or 0)
    local = int(environ.get("LOCAL_RANK", str(rank)) or 0)
    if not 0 <= rank < world:
        raise ParameterError(f"The 'RANK' variable must be in 0..{world - 1}. Got {rank} instead.")
    return DistInfo(rank, world, local)


def setup(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group when started by torchrun; pick this rank's CUDA device.

    Returns
    -------
    info : DistInfo
    device : the device this rank trains on (``cuda:LOCAL_RANK`` under torchrun with CUDA)
    """
    info = from_env()
    if not info.enabled:
        return info, device
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        tdist.init_process_group(backend=backend)
    return info, device


def shard_order(order: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's part of an epoch's index order: every ``world_size``-th entry from ``rank``.

    The order is first cut to a multiple of ``world_size`` so every rank gets the same number of
    rows, hence the same number of batches (a rank with one batch more would hang the gradient
    all-reduce).

    Parameters
    ----------
    order : int array of shape (n,)
    rank, world_size : int

    Returns
    -------
    shard : int array of shape (n // world_size,)
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ParameterError(f"The 'rank' parameter must be in 0..{world_size - 1}. Got {rank} instead.")
    order = np.asarray(order)
    usable = len(order) // world_size * world_size
    return order[:usable][rank::world_size]


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when the job has several processes; else ``model``."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def sync_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank after an epoch.

    Gradients are averaged, so parameters agree on every rank; BatchNorm statistics are
    per rank. Rank 0's are the ones it validates with and saves.
    """
    if not info.enabled:
        return
    for buffer in model.buffers():
        tdist.broadcast(buffer.data, src=0)


def broadcast_flag(value: bool, info: DistInfo) -> bool:
    """Rank 0's boolean (e.g. its early-stopping decision) on every rank."""
    if not info.enabled:
        return bool(value)
    tensor = torch.tensor([1 if value else 0], dtype=torch.int64)
    if tdist.get_backend() == "nccl":
        tensor = tensor.cuda()
    tdist.broadcast(tensor, src=0)
    return bool(tensor.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        tdist.barrier()


def cleanup(info: DistInfo) -> None:
    """Leave the process group (end of a torchrun job)."""
    if info.enabled and tdist.is_initialized():
        tdist.destroy_process_group()
