"""Images in, uint8 batches out: PNG reading, the decode-once cache, samplers, augmentation.

Decoding four PNGs per image is the bottleneck on real data (about 2.6 ms per 512² channel here),
so every image is decoded once into a uint8 ``.npy`` memmap of shape (n_images, 4, S, S) at the
training resolution. Later epochs, folds and configs of the same size reuse it. A cache is keyed by
its Id list, size and the files' sizes and mtimes, so a changed file rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hpa_ens.io import atomic_write_json
from hpa_ens.classes import CHANNELS

from .registry import Registry
from hpa_ens._validation import ContractError, ParameterError  # noqa: E402

CACHE_VERSION = 1
SAMPLERS = Registry("sampler")


# --------------------------------------------------------------------------------------- reading
def channel_paths(image_dir, image_id: str) -> list[Path]:
    """The four Kaggle-layout files ``{Id}_{red,green,blue,yellow}.png`` of one image."""
    image_dir = Path(image_dir)
    return [image_dir / f"{image_id}_{channel}.png" for channel in CHANNELS]


def check_files(sources: Sequence[tuple[str, Path]]) -> None:
    """Refuse before any work if a channel file is missing, naming the first one and the count.

    Parameters
    ----------
    sources : sequence of (Id, image_dir)
    """
    missing = [p for image_id, folder in sources for p in channel_paths(folder, image_id) if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more missing channel files)" if len(missing) > 1 else ""
        raise ContractError(f"{missing[0]}: channel file not found{more}; every image needs "
                                f"{'/'.join(CHANNELS)} PNGs.")


def read_channel(path: Path, size: int) -> np.ndarray:
    """Decode one channel PNG to uint8 (size, size); a corrupt file raises naming its path."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I"):
                arr = (np.asarray(img, dtype=np.float32) / 256.0).clip(0, 255).astype(np.uint8)
                img = Image.fromarray(arr)
            elif img.mode != "L":
                img = img.convert("L")
            if img.size != (size, size):
                # BOX averages the pixels a target pixel covers: the right filter for downsampling.
                img = img.resize((size, size), Image.Resampling.BOX if img.size[0] >= size
                                 else Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:
        raise ContractError(f"{path}: cannot decode this PNG ({type(err).__name__}: {err}).") from None


def read_image(image_dir, image_id: str, size: int) -> np.ndarray:
    """One image as uint8 (4, size, size), channels red, green, blue, yellow."""
    return np.stack([read_channel(p, size) for p in channel_paths(image_dir, image_id)])


# ----------------------------------------------------------------------------------------- cache
def _fingerprint(sources: Sequence[tuple[str, Path]], size: int) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{size}".encode())
    for image_id, folder in sources:
        for p in channel_paths(folder, image_id):
            st = p.stat()
            digest.update(f"|{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def default_cache_dir(data_dir) -> Path:
    """``DATA/.cache`` when writable, else ``~/.cache/hpa_ens`` (shared, read-only data folders)."""
    candidate = Path(data_dir) / ".cache"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        if os.access(candidate, os.W_OK):
            return candidate
    except OSError:
        pass
    fallback = Path.home() / ".cache" / "hpa_ens"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def build_cache(sources: Sequence[tuple[str, Path]], size: int, cache_dir, tag: str = "images",
                n_threads: int | None = None, progress=None) -> np.ndarray:
    """Decode every image once into a uint8 memmap, or open the cache already built for them.

    Parameters
    ----------
    sources : sequence of (Id, image_dir)
        Images in the row order of the cache.
    size : int
        Training resolution; images are resized to (size, size).
    cache_dir : path
        Folder of ``{tag}_{size}px_{key}.npy`` caches and their ``.json`` sidecars.
    n_threads : int, optional
        Decoding threads (PIL releases the GIL while decoding). Default: CPU count.
    progress : rich Progress, optional

    Returns
    -------
    images : read-only memmap of shape (n_images, 4, size, size), uint8
    """
    check_files(sources)
    key = _fingerprint(sources, size)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{tag}_{size}px_{key[:16]}.npy"
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists():
        info = json.loads(sidecar.read_text(encoding="utf-8"))
        if info.get("key") == key:
            return np.load(path, mmap_mode="r")
    n = len(sources)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, len(CHANNELS), size, size))
    task = progress.add_task(f"caching {tag} at {size}px", total=n) if progress is not None else None
    try:
        def work(row: int) -> None:
            image_id, folder = sources[row]
            out[row] = read_image(folder, image_id, size)

        with ThreadPoolExecutor(max_workers=n_threads or os.cpu_count() or 1) as pool:
            for _ in pool.map(work, range(n)):
                if task is not None:
                    progress.advance(task)
        out.flush()
        del out
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    # The sidecar lands last: a cache without it is never trusted.
    atomic_write_json(sidecar, {"key": key, "size": size, "n_images": n, "tag": tag,
                                "ids_sha256": hashlib.sha256("\n".join(i for i, _ in sources).encode()).hexdigest()})
    return np.load(path, mmap_mode="r")


# --------------------------------------------------------------------------------- normalisation
def read_channel_stats(path) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (0..1 scale) from the EDA stats JSON, in CHANNELS order."""
    path = Path(path)
    if not path.exists():
        raise ContractError(f"{path}: channel stats file not found.")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        order = [info["channels"].index(c) for c in CHANNELS]
        mean = np.asarray(info["mean"], dtype=np.float64)[order]
        std = np.asarray(info["std"], dtype=np.float64)[order]
    except (json.JSONDecodeError, KeyError, ValueError, TypeError, IndexError) as err:
        raise ContractError(f"{path}: expected {{'channels': [...4], 'mean': [...4], 'std': [...4]}} "
                         f"({type(err).__name__}: {err}).") from None
    if mean.shape != (4,) or std.shape != (4,) or not np.all(std > 0):
        raise ContractError(f"{path}: 'mean' and 'std' must hold 4 values with std > 0. Got {info} instead.")
    return mean, std


def channel_stats(images: np.ndarray, max_images: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (0..1 scale) over evenly spaced images of a cache (deterministic)."""
    rows = np.unique(np.linspace(0, len(images) - 1, min(max_images, len(images))).astype(int))
    total = np.zeros(4)
    total_sq = np.zeros(4)
    count = 0
    for start in range(0, len(rows), 256):
        block = images[rows[start:start + 256]].astype(np.float64) / 255.0
        total += block.sum(axis=(0, 2, 3))
        total_sq += (block ** 2).sum(axis=(0, 2, 3))
        count += block.shape[0] * block.shape[2] * block.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-12))
    return mean, np.maximum(std, 1e-3)


# -------------------------------------------------------------------------------------- samplers
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
    weights[weights == 0] = per_class.min()  # unlabelled rows (should not happen) keep a floor
    return rng.choice(len(labels), size=len(labels), replace=True, p=weights / weights.sum())


def batches(order: np.ndarray, batch_size: int, drop_last: bool = False) -> list[np.ndarray]:
    """Split an index order into consecutive batches."""
    out = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_last and len(out) > 1 and len(out[-1]) < batch_size:
        out.pop()
    return out


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Run a generator one or two steps ahead in a thread (memmap reads overlap the model's step).

    Order is kept, so results do not depend on timing.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    sentinel = object()
    errors: list[BaseException] = []

    def worker():
        try:
            for item in items:
                q.put(item)
        except BaseException as err:  # re-raised in the consumer
            errors.append(err)
        finally:
            q.put(sentinel)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    while True:
        item = q.get()
        if item is sentinel:
            break
        yield item
    thread.join()
    if errors:
        raise errors[0]


# ---------------------------------------------------------------------------------- augmentation
def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips/rotations (k in 0..7) of a (batch, C, H, W) tensor; k=0 is identity."""
    if k >= 4:
        x = torch.flip(x, dims=(3,))
    return torch.rot90(x, k % 4, dims=(2, 3)) if k % 4 else x


def augment(x: torch.Tensor, generator: torch.Generator, dihedral_flips: bool = True, crop_scale: float = 1.0,
            brightness: float = 0.0, contrast: float = 0.0) -> torch.Tensor:
    """Random training augmentation of a float batch in [0, 1].

    Parameters
    ----------
    x : Tensor of shape (batch, 4, H, W), float in [0, 1]
    generator : torch.Generator (CPU) drawing every random number, so a seed fixes the result
    dihedral_flips : apply one of the 8 flips/rotations per image
    crop_scale : minimum side fraction of a random crop resized back to (H, W); 1 disables
    brightness, contrast : per-channel additive / multiplicative jitter amplitudes

    Returns
    -------
    x : Tensor of shape (batch, 4, H, W)
    """
    n = x.shape[0]
    if dihedral_flips:
        ks = torch.randint(0, 8, (n,), generator=generator)
        out = torch.empty_like(x)
        for k in range(8):
            rows = torch.nonzero(ks == k).flatten().to(x.device)
            if len(rows):
                out[rows] = dihedral(x[rows], k)
        x = out
    if crop_scale < 1.0:
        scale = crop_scale + (1 - crop_scale) * torch.rand(n, generator=generator)
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (1 - scale)[:, None]
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = scale
        theta[:, 1, 1] = scale
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if brightness > 0 or contrast > 0:
        gain = 1 + contrast * (torch.rand(n, x.shape[1], 1, 1, generator=generator) * 2 - 1)
        bias = brightness * (torch.rand(n, x.shape[1], 1, 1, generator=generator) * 2 - 1)
        x = (x * gain.to(x.device, x.dtype) + bias.to(x.device, x.dtype)).clamp_(0, 1)
    return x


TTA_MODES = {"none": (0,), "flips": (0, 2, 4, 6), "dihedral": tuple(range(8))}


def tta_transforms(mode: str) -> tuple[int, ...]:
    """Dihedral indices averaged at inference: ``none`` (1), ``flips`` (4: the two flips and both), ``dihedral`` (8)."""
    if mode not in TTA_MODES:
        raise ParameterError(f"The 'tta' parameter must be one of {', '.join(TTA_MODES)}. Got {mode!r} instead.")
    return TTA_MODES[mode]
