"""Images in, uint8 batches out: the decode-once cache, the streaming loader, augmentation.

Two ways to feed the trainer, chosen per config (``loader:``):

- ``cache`` (default): every image is decoded once into a uint8 ``.npy`` memmap of shape
  (n_images, C, S, S) at the training resolution; later epochs, folds and configs of the same size
  reuse it. Fast per epoch, but 1 MiB per image at 512 px (about 44 GB for Kaggle train + test).
  A cache is keyed by its Id list, size and the files' sizes and mtimes, so a changed file rebuilds it.
- ``stream``: :class:`StreamImages` decodes the files (PNG, JPG, TIFF; 8/16-bit, through
  :mod:`hpa_ens.images`) for every batch, resized on the fly, in ``loader_workers`` DataLoader worker
  processes. No disk beyond the images; each epoch pays the decoding again.

Both are array-likes ``images[rows] -> uint8 (n, C, S, S)``, so the trainer, TTA and statistics do
not care which one they read. Every channel file is checked before any work starts.
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

from hpa_ens.channel_stats import array_channel_stats
from hpa_ens.validation import ContractError, ParameterError
from hpa_ens.classes import CHANNELS
from hpa_ens.images import IMAGE_EXTENSIONS, read_image
from hpa_ens.io import atomic_write_json

CACHE_VERSION = 2  # 2: one reader (hpa_ens.images), 16-bit scaled by 255/65535 with rounding
#: ``image_format`` config values -> the file extensions they accept.
IMAGE_FORMATS = {"png": (".png",), "jpg": (".jpg", ".jpeg"), "tif": (".tif", ".tiff"), "any": IMAGE_EXTENSIONS}


# --------------------------------------------------------------------------------------- sources
class Sources(list):
    """``[(Id, folder), ...]`` plus how to find the files: channel names and accepted extensions."""

    def __init__(self, items=(), channels: Sequence[str] = CHANNELS, extensions: Sequence[str] = (".png",)):
        super().__init__(items)
        self.channels = tuple(channels)
        self.extensions = tuple(extensions)

    def __add__(self, other):
        return Sources(list(self) + list(other), self.channels, self.extensions)

    def paths(self, row: int) -> list[Path]:
        image_id, folder = self[row]
        return [_find(folder, image_id, c, self.extensions) for c in self.channels]


def _find(folder, image_id: str, channel: str, extensions: Sequence[str]) -> Path:
    for ext in extensions:
        path = Path(folder) / f"{image_id}_{channel}{ext}"
        if path.is_file():
            return path
    return Path(folder) / f"{image_id}_{channel}{extensions[0]}"


def _other_format(folder, image_id: str, channel: str, extensions: Sequence[str]) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        if ext not in extensions and (Path(folder) / f"{image_id}_{channel}{ext}").is_file():
            return Path(folder) / f"{image_id}_{channel}{ext}"
    return None


def as_sources(sources) -> "Sources":
    """A plain ``[(Id, folder), ...]`` list as :class:`Sources` (HPA channels, PNG)."""
    return sources if isinstance(sources, Sources) else Sources(sources)


def check_files(sources: Sources) -> None:
    """Refuse before any work if a channel file is missing, naming the first one and the count.

    A file present in another format than the config accepts (a JPG in a PNG-only config) is named
    as such, with the setting that would accept it.
    """
    sources = as_sources(sources)
    missing = []
    for image_id, folder in sources:
        for channel in sources.channels:
            if not _find(folder, image_id, channel, sources.extensions).is_file():
                missing.append((folder, image_id, channel))
    if not missing:
        return
    folder, image_id, channel = missing[0]
    other = _other_format(folder, image_id, channel, sources.extensions)
    if other is not None:
        fmt = next(k for k, v in IMAGE_FORMATS.items() if other.suffix.lower() in v)
        raise ContractError(f"{other}: a {fmt.upper()} file, but the config reads only "
                            f"{'/'.join(e.lstrip('.') for e in sources.extensions)} images; set image_format: "
                            f"{fmt} (or any).")
    more = f" (and {len(missing) - 1} more missing channel files)" if len(missing) > 1 else ""
    first = _find(folder, image_id, channel, sources.extensions)
    raise ContractError(f"{first}: channel file not found{more}; every image needs "
                        f"{'/'.join(sources.channels)} files.")


def missing_images(sources: Sources) -> list[str]:
    """Ids of ``sources`` with at least one channel file missing (in order)."""
    return [image_id for image_id, folder in sources
            if not all(_find(folder, image_id, c, sources.extensions).is_file() for c in sources.channels)]


def decode(sources: Sources, row: int, size: int) -> np.ndarray:
    """One image of ``sources`` as uint8 (C, size, size) through :func:`hpa_ens.images.read_image`."""
    image_id, folder = sources[row]
    return read_image(folder, image_id, size, channels=sources.channels, extensions=sources.extensions)


# ----------------------------------------------------------------------------------------- cache
def _fingerprint(sources: Sources, size: int) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{size}".encode())
    for row in range(len(sources)):
        for p in sources.paths(row):
            st = p.stat()
            digest.update(f"|{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def default_cache_dir(data_dir) -> Path:
    """``DATA/.cache`` when writable, else ``~/.cache/hpa_ens`` (shared, read-only data folders)."""
    from hpa_ens.io import writable_cache_dir

    return writable_cache_dir(data_dir)


def build_cache(sources: Sources, size: int, cache_dir, tag: str = "images",
                n_threads: int | None = None, progress=None) -> np.ndarray:
    """Decode every image once into a uint8 memmap, or open the cache already built for them.

    Parameters
    ----------
    sources : Sources
        Images in the row order of the cache (and their channels and accepted extensions).
    size : int
        Training resolution; images are resized to (size, size).
    cache_dir : path
        Folder of ``{tag}_{size}px_{key}.npy`` caches and their ``.json`` sidecars.
    n_threads : int, optional
        Decoding threads (PIL releases the GIL while decoding). Default: CPU count.
    progress : rich Progress, optional

    Returns
    -------
    images : read-only memmap of shape (n_images, C, size, size), uint8
    """
    sources = as_sources(sources)
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
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, len(sources.channels), size, size))
    task = progress.add_task(f"caching {tag} at {size}px", total=n) if progress is not None else None
    try:
        def work(row: int) -> None:
            out[row] = decode(sources, row, size)

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


class StreamImages:
    """The images of ``sources`` decoded from their files on every read, resized to ``size``.

    Behaves like the cache's memmap for the trainer: ``images[rows]`` is uint8 (n, C, size, size),
    ``len(images)``, ``images.shape``. :func:`load_batches` decodes its batches in DataLoader worker
    processes.
    """

    def __init__(self, sources: Sources, size: int):
        self.sources = sources
        self.size = int(size)
        self.shape = (len(sources), len(sources.channels), self.size, self.size)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4
        key = hashlib.sha256("\n".join(f"{i}|{f}" for i, f in sources).encode()).hexdigest()[:16]
        self.filename = f"stream_{self.size}px_{key}"  # names the cell-crop cache like a memmap's file

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows):
        rows = np.asarray(rows)
        if rows.ndim == 0:
            return decode(self.sources, int(rows), self.size)
        out = np.empty((len(rows),) + self.shape[1:], dtype=np.uint8)
        for j, row in enumerate(rows):
            out[j] = decode(self.sources, int(row), self.size)
        return out

    def __array__(self, dtype=None, copy=None):
        arr = self[np.arange(len(self))]
        return arr if dtype is None else arr.astype(dtype)


class _BatchDataset(torch.utils.data.Dataset):
    """Item i = the uint8 batch ``images[chunks[i]]`` (decoded in a DataLoader worker)."""

    def __init__(self, images, chunks):
        self.images, self.chunks = images, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i):
        return self.images[self.chunks[i]]


def load_batches(images, chunks: Sequence[np.ndarray], workers: int = 0) -> Iterator[np.ndarray]:
    """uint8 batches ``images[rows]`` for each ``rows`` of ``chunks``, in order.

    A :class:`StreamImages` with ``workers > 0`` is decoded in that many DataLoader worker
    processes; anything else (a memmap, or streaming without workers) is read one batch ahead in a
    thread. Order is kept, so results never depend on timing.
    """
    if isinstance(images, StreamImages) and workers > 0 and len(chunks) > 1:
        loader = torch.utils.data.DataLoader(_BatchDataset(images, list(chunks)), batch_size=None, shuffle=False,
                                             num_workers=int(workers), prefetch_factor=2,
                                             persistent_workers=False)
        for batch in loader:
            yield batch.numpy() if isinstance(batch, torch.Tensor) else batch
        return
    yield from prefetch(images[rows] for rows in chunks)


def open_images(sources: Sources, size: int, cache_dir, loader: str = "cache", tag: str = "images",
                progress=None):
    """The images of ``sources`` at ``size``: the decode-once memmap (``cache``) or :class:`StreamImages`."""
    if loader == "stream":
        check_files(sources)
        return StreamImages(sources, size)
    if loader != "cache":
        raise ParameterError(f"The 'loader' parameter must be cache or stream. Got {loader!r} instead.")
    return build_cache(sources, size, cache_dir, tag=tag, progress=progress)


# --------------------------------------------------------------------------------- normalisation
def read_channel_stats(path, channels: Sequence[str] = CHANNELS) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (0..1 scale) from the EDA stats JSON, in ``channels`` order
    (through the contract's reader, :func:`hpa_ens.contract.read_channel_stats`)."""
    from hpa_ens.contract import read_channel_stats as read_stats

    stats = read_stats(path, channels=list(channels))
    return np.asarray(stats.mean, dtype=np.float64), np.asarray(stats.std, dtype=np.float64)


def channel_stats(images: np.ndarray, max_images: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (0..1 scale) over evenly spaced images (deterministic), std floored at 1e-3
    (:func:`hpa_ens.channel_stats.array_channel_stats`, the project's one channel-statistics core)."""
    stats = array_channel_stats(images, max_images=max_images, min_std=1e-3)
    return np.asarray(stats["mean"], dtype=np.float64), np.asarray(stats["std"], dtype=np.float64)


# ------------------------------------------------------------------------------------- batching
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
