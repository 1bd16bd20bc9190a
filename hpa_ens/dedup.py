"""Near-duplicate images by perceptual hash, across train, test and external (HPAv18) images.

Pair kinds (``--kinds``; see :mod:`hpa_ens.contract.duplicates`): train-test and test-test by default,
external-train and external-test with ``--extra-images``, train-train and external-external on request;
all from one set of hashes in one run. The output is written through the contract with a provenance
sidecar (``duplicates.meta.json``: the listing hash of every image folder, the parameters).

Each image gets two 64-bit pHashes: one of the green channel (the protein stain, which decides the
labels) and one of the mean of all four channels (cell outlines, robust when green is faint). A pair is
reported when *both* Hamming distances are ``<= max_distance`` under the same one of the 8 dihedral
transforms (flips/rotations), and its distance is the larger of the two.

The hash is our own vectorised numpy pHash (imagehash's recipe: 32x32 downscale, 2-D DCT, the 8x8
low-frequency block against its median) because

- the downscale is an exact 16x16 block mean, so it commutes with flips and transposes; the DCT of a
  flipped image is the DCT with alternating signs, so the 8 dihedral variants of a hash come from one
  DCT by sign changes and a transpose (a flipped copy is found without decoding it 8 times);
- a batch of images is hashed by one ``scipy.fft.dctn`` call, far faster than per-image ``imagehash``
  (see ``docs/dedup_submit.md`` for the measurement).

Channels are read by :mod:`hpa_ens.images` (PNG, JPG, TIFF; 16-bit scaled by 255/65535). Hashes are cached
per Id in an ``.npz`` (no pickle) keyed by path, mtime and size of each channel file.

The command (``python -m hpa_ens.dedup``, ``hpa-ens dedup``) is :mod:`hpa_ens.commands.dedup`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.fft

from . import image_sets, images
from .validation import ContractError, ParameterError, check_param
from .classes import CHANNELS
from .contract.duplicates import (DUPLICATE_COLUMNS, DUPLICATE_KINDS, empty_duplicates, read_duplicates,  # noqa: F401
                                  write_duplicates)

HASH_SIZE = 8  # 8x8 low-frequency DCT block -> 64 bits
SMALL = 32  # the image is reduced to 32x32 before the DCT (imagehash's highfreq_factor 4)
N_TRANSFORMS = 8
#: Names of the 8 dihedral transforms in the order the variants are stored (applied to the image).
TRANSFORMS = tuple(
    ("transpose+" if t else "") + {(0, 0): "identity", (1, 0): "hflip", (0, 1): "vflip", (1, 1): "rot180"}[(h, v)]
    for t in (0, 1) for v in (0, 1) for h in (0, 1)
)
KINDS = ("green", "all")
#: 2: channels read through hpa_ens.images (16-bit scaled by 255/65535, not by the image maximum).
CACHE_VERSION = 2


# ------------------------------------------------------------------------------------- hashing core
def downscale(images: np.ndarray, size: int = SMALL) -> np.ndarray:
    """Block-mean an image batch to ``size x size``.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W)
        H and W must be multiples of ``size`` (a block mean commutes with flips, which the dihedral
        variants rely on); other sizes are resized by :func:`load_channels` first.

    Returns
    -------
    small : ndarray of shape (n_images, size, size), float64
    """
    images = np.asarray(images)
    n, h, w = images.shape
    if h % size or w % size:
        raise ParameterError(f"The 'images' parameter must have H and W multiples of {size}. Got shape {images.shape} instead.")
    # Two contiguous reductions (rows, then columns) are several times faster than one over axes (2, 4).
    rows = images.reshape(n, size, h // size, w).sum(axis=2, dtype=np.float64)
    return rows.reshape(n, size, size, w // size).sum(axis=3) / float((h // size) * (w // size))


def _bits_to_uint64(bits: np.ndarray) -> np.ndarray:
    """(..., 64) bool -> (...,) uint64, first bit most significant."""
    packed = np.packbits(bits.astype(np.uint8), axis=-1, bitorder="big")
    return packed.view(">u8")[..., 0].astype(np.uint64)


def dihedral_blocks(block: np.ndarray) -> np.ndarray:
    """The low-frequency DCT block of each of the 8 dihedral transforms of the image.

    A horizontal flip multiplies DCT-II coefficient column v by (-1)^v, a vertical flip row u by
    (-1)^u, and a transpose transposes the block.

    Parameters
    ----------
    block : ndarray of shape (n_images, k, k)

    Returns
    -------
    blocks : ndarray of shape (n_images, 8, k, k), in the order of :data:`TRANSFORMS`
    """
    k = block.shape[-1]
    sign = (-1.0) ** np.arange(k)
    out = []
    for transpose in (False, True):
        base = np.swapaxes(block, -1, -2) if transpose else block
        for vflip in (False, True):
            for hflip in (False, True):
                b = base
                if hflip:
                    b = b * sign[None, None, :]
                if vflip:
                    b = b * sign[None, :, None]
                out.append(b)
    return np.stack(out, axis=1)


def phash_variants(images: np.ndarray, hash_size: int = HASH_SIZE) -> np.ndarray:
    """pHash of each image and of its 8 dihedral transforms.

    Parameters
    ----------
    images : ndarray of shape (n_images, H, W)
        Grey images (any numeric dtype), H and W multiples of 32.

    Returns
    -------
    hashes : ndarray of shape (n_images, 8), uint64
        Column 0 is the hash of the image itself; column t the hash of ``TRANSFORMS[t]`` applied to it.
    """
    return phash_small(downscale(images), hash_size)


def phash_small(small: np.ndarray, hash_size: int = HASH_SIZE) -> np.ndarray:
    """:func:`phash_variants` of images already reduced to (n_images, 32, 32)."""
    # Unnormalised DCT-II along both axes, as imagehash does (scipy.fftpack.dct default).
    coeffs = scipy.fft.dctn(np.asarray(small, dtype=np.float64), type=2, axes=(1, 2))
    low = coeffs[:, :hash_size, :hash_size]
    variants = dihedral_blocks(low).reshape(len(low), N_TRANSFORMS, hash_size * hash_size)
    median = np.median(variants, axis=-1, keepdims=True)
    return _bits_to_uint64(variants > median)


def phash(images: np.ndarray) -> np.ndarray:
    """pHash of each image (no transforms), shape (n_images,) uint64."""
    return phash_variants(images)[:, 0]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of uint64 hashes (broadcasting), as uint8."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))


# -------------------------------------------------------------------------------------- image I/O
def list_image_ids(folder, channels: Sequence[str] = CHANNELS) -> list[str]:
    """Ids with every channel file in ``folder`` (PNG, JPG or TIFF), sorted; a half-present Id is refused."""
    return image_sets.list_image_ids(folder, channels)


def channel_paths(folder, image_id: str, channels: Sequence[str] = CHANNELS) -> list[Path]:
    """The channel files of one image (the first existing extension of each), via :mod:`hpa_ens.images`."""
    return images.channel_paths(folder, image_id, channels)


def load_channels(paths: Sequence[Path], size: int | None = None) -> np.ndarray:
    """Decode the channel files of one image into (n_channels, S, S) uint8 with :mod:`hpa_ens.images`.

    16-bit channels become uint8 as everywhere in the project (``round(value * 255 / 65535)``); sizes
    that are not multiples of 32 are resized (bilinear) to the next multiple of 32 below.
    """
    from PIL import Image

    arrays = [images.read_channel(p) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ContractError(f"{paths[0]}: the channels of one image differ in size. Got {sorted(shapes)} instead.")
    h, w = arrays[0].shape
    target = size or max(SMALL, (min(h, w) // SMALL) * SMALL)
    if (h, w) != (target, target):
        arrays = [np.asarray(Image.fromarray(a).resize((target, target), Image.BILINEAR)) for a in arrays]
    return np.stack(arrays)


def hash_images(stack: np.ndarray, green_index: int = CHANNELS.index("green")) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and contrast of a batch of 4-channel images.

    Parameters
    ----------
    stack : ndarray of shape (n_images, n_channels, S, S)

    Returns
    -------
    hashes : ndarray of shape (n_images, 2, 8), uint64
        [:, 0] the green-channel pHash variants, [:, 1] those of the channel mean.
    stds : ndarray of shape (n_images, 2), float32
        Standard deviation of the 32x32 downscale of green and of the channel mean (0..255 units);
        near-blank images (small std) have hashes made of noise and are skipped when pairing.
    """
    stack = np.asarray(stack)
    n, c, h, w = stack.shape
    return hash_small_images(downscale(stack.reshape(n * c, h, w)).reshape(n, c, SMALL, SMALL), green_index)


def hash_small_images(small: np.ndarray, green_index: int = CHANNELS.index("green")) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hash_images` of images already block-averaged to (n_images, n_channels, 32, 32)."""
    # The channel mean of block means is the block mean of the channel mean.
    green, mean = small[:, green_index], small.mean(axis=1)
    hashes = np.stack([phash_small(green), phash_small(mean)], axis=1)
    stds = np.stack([green.std(axis=(1, 2)), mean.std(axis=(1, 2))], axis=1)
    return hashes, stds.astype(np.float32)


def protein_index(channels: Sequence[str]) -> int:
    """Index of the channel hashed on its own: ``green`` (the protein stain in HPA), else the first."""
    return list(channels).index("green") if "green" in channels else 0


def _hash_batch(paths: Sequence[Sequence[str]], green_index: int) -> tuple[np.ndarray, np.ndarray]:
    # Each image is reduced to 32x32 block means as soon as it is decoded: a batch of 2048-px HPAv18
    # images would otherwise hold 1 GiB per worker. Images of any size can share the batch.
    smalls = [downscale(load_channels([Path(p) for p in image_paths])) for image_paths in paths]
    return hash_small_images(np.stack(smalls), green_index)


# ------------------------------------------------------------------------------------------ cache
def file_key(paths: Sequence[Path]) -> str:
    """Cache key of one image: each channel's resolved path, mtime (ns) and size."""
    parts = []
    for p in paths:
        st = os.stat(p)
        parts.append(f"{Path(p).resolve()}:{st.st_mtime_ns}:{st.st_size}")
    return "|".join(parts)


def read_cache(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """key -> (hashes (2, 8) uint64, stds (2,) float32); {} when absent or of another version."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["version"]) != CACHE_VERSION:
                return {}
            keys, hashes, stds = data["keys"], data["hashes"], data["stds"]
    except (OSError, KeyError, ValueError, EOFError) as err:
        raise ContractError(f"{path}: not a hash cache written by hpa_ens.dedup ({err}). Delete it to rebuild.") from None
    return {str(k): (h, s) for k, h, s in zip(keys, hashes, stds)}


def write_cache(path, cache: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    from .io import atomic_open

    keys = sorted(cache)
    hashes = np.stack([cache[k][0] for k in keys]) if keys else np.zeros((0, 2, N_TRANSFORMS), np.uint64)
    stds = np.stack([cache[k][1] for k in keys]) if keys else np.zeros((0, 2), np.float32)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, version=np.int64(CACHE_VERSION), keys=np.array(keys, dtype=str), hashes=hashes, stds=stds)


def compute_hashes(
    folder,
    ids: Sequence[str] | None = None,
    cache: dict | None = None,
    n_jobs: int = 1,
    batch_size: int = 64,
    channels: Sequence[str] = CHANNELS,
    description: str = "hashing",
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Hash every image of ``folder`` (or the Ids ``ids``), reusing ``cache`` entries and adding new ones.

    Channel files are found in one directory scan (PNG, JPG or TIFF) and decoded by :mod:`hpa_ens.images`
    in ``n_jobs`` joblib processes; a file that cannot be decoded raises :class:`hpa_ens.images.ImageError`
    naming it.

    Parameters
    ----------
    description : str
        Names the work in ``progress`` (``"<description> (<k> cached)"``).
    progress : callable, optional
        ``progress(n_hashed, n_to_hash, description)`` while images are hashed (not called when every
        image is cached); the convention of :func:`hpa_ens.commands._cli.progress`.

    Returns
    -------
    ids : list of str, length n_images
    hashes : ndarray of shape (n_images, 2, 8), uint64
    stds : ndarray of shape (n_images, 2), float32
    """
    from joblib import Parallel, delayed

    channels = tuple(channels)
    found = image_sets.scan_images(folder, channels)
    if ids is None:
        ids = image_sets.list_image_ids(folder, channels)
    else:
        ids = list(ids)
        lacking = [i for i in ids if len(found.get(i, ())) != len(channels)]
        if lacking:
            raise ContractError(f"{folder}: {len(lacking)} Ids lack channel files ({'/'.join(channels)}); "
                                f"first: {', '.join(map(repr, lacking[:3]))}.")
    paths = {i: [str(found[i][c]) for c in channels] for i in ids}
    cache = {} if cache is None else cache
    keys = [file_key(paths[i]) for i in ids]
    todo = [i for i, k in zip(ids, keys) if k not in cache]
    batches = [todo[s: s + batch_size] for s in range(0, len(todo), batch_size)]
    key_of = dict(zip(ids, keys))
    green = protein_index(channels)
    if batches:
        what, done = f"{description} ({len(ids) - len(todo)} cached)", 0
        if progress is not None:
            progress(done, len(todo), what)
        runner = Parallel(n_jobs=max(1, min(n_jobs, len(batches))), return_as="generator")
        results = runner(delayed(_hash_batch)([paths[i] for i in b], green) for b in batches)
        for batch, (h, s) in zip(batches, results):
            for j, image_id in enumerate(batch):
                cache[key_of[image_id]] = (h[j], s[j])
            done += len(batch)
            if progress is not None:
                progress(done, len(todo), what)
    hashes = np.stack([cache[k][0] for k in keys]) if ids else np.zeros((0, 2, N_TRANSFORMS), np.uint64)
    stds = np.stack([cache[k][1] for k in keys]) if ids else np.zeros((0, 2), np.float32)
    return ids, hashes, stds


# ------------------------------------------------------------------------------------ pair search
def find_pairs(
    query: np.ndarray,
    reference: np.ndarray,
    max_distance: int,
    upper_only: bool = False,
    transforms: bool = True,
    chunk_bytes: int = 1 << 24,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All (query, reference) pairs whose hashes agree within ``max_distance``.

    The green hashes are screened first (XOR + popcount over all pairs, chunked to bound memory);
    survivors must also agree on the channel-mean hash under the same transform.

    Parameters
    ----------
    query : ndarray of shape (n_query, 2, 8), uint64
        Hash variants (see :func:`hash_images`); each of the 8 transforms of a query is tried.
    reference : ndarray of shape (n_ref, 2, 8), uint64
        Only the untransformed hashes ``[:, :, 0]`` are used.
    max_distance : int
    upper_only : bool
        Keep only pairs with reference index > query index (query and reference are the same set).
    transforms : bool
        Try the 8 dihedral transforms (True) or the identity only.

    Returns
    -------
    i, j : ndarray of int64, indices into query and reference
    distance : ndarray of int64, max of the green and channel-mean distances
    transform : ndarray of int64, index into :data:`TRANSFORMS` that matched
    """
    n_t = N_TRANSFORMS if transforms else 1
    q_green = np.ascontiguousarray(query[:, 0, :n_t].T)  # (n_t, n_query): one contiguous row per transform
    r_green = np.ascontiguousarray(reference[:, 0, 0])
    n_ref = len(reference)
    # xor (8 bytes) + count and running min (1 byte each) per pair: bound the chunk's buffers.
    chunk = max(1, chunk_bytes // max(1, 10 * n_ref))
    found_i, found_j = [], []
    xor = np.empty((min(chunk, len(query)), n_ref), np.uint64)
    count = np.empty(xor.shape, np.uint8)
    best = np.empty(xor.shape, np.uint8)
    for start in range(0, len(query), chunk):
        stop = min(start + chunk, len(query))
        rows = stop - start
        for t in range(n_t):
            np.bitwise_xor(q_green[t, start:stop, None], r_green[None, :], out=xor[:rows])
            np.bitwise_count(xor[:rows], out=count[:rows] if t else best[:rows])
            if t:
                np.minimum(best[:rows], count[:rows], out=best[:rows])
        d = best[:rows]
        if upper_only:
            d[np.arange(n_ref)[None, :] <= np.arange(start, stop)[:, None]] = 255
        ii, jj = np.nonzero(d <= max_distance)
        found_i.append(ii + start)
        found_j.append(jj)
    i = np.concatenate(found_i) if found_i else np.zeros(0, np.int64)
    j = np.concatenate(found_j) if found_j else np.zeros(0, np.int64)
    # Both hashes under each transform; keep the transform with the smallest worst-of-two distance.
    d_green = hamming(query[i, 0, :n_t], reference[j, 0, 0][:, None]).astype(np.int64)
    d_all = hamming(query[i, 1, :n_t], reference[j, 1, 0][:, None]).astype(np.int64)
    worst = np.maximum(d_green, d_all)
    best = worst.argmin(axis=1) if len(i) else np.zeros(0, np.int64)
    distance = worst[np.arange(len(i)), best] if len(i) else np.zeros(0, np.int64)
    keep = distance <= max_distance
    return i[keep].astype(np.int64), j[keep].astype(np.int64), distance[keep], best[keep].astype(np.int64)


def kind_sets(kind: str) -> tuple[str, str]:
    """``"external-train"`` -> ("external", "train"): the image sets of Id_a and Id_b."""
    a, _, b = kind.partition("-")
    return a, b


def find_duplicates(
    sets: Mapping[str, tuple[Sequence[str], np.ndarray]],
    kinds: Sequence[str],
    max_distance: int,
    transforms: bool = True,
) -> pd.DataFrame:
    """Every pair of each kind, from hashes, in one call.

    Parameters
    ----------
    sets : mapping set name ("train", "test", "external") -> (ids, hashes (n, 2, 8) uint64)
    kinds : sequence of str
        Kinds of :data:`hpa_ens.contract.duplicates.DUPLICATE_KINDS`, e.g. ``["train-test", "test-test",
        "external-train", "external-test"]``. For ``a-b`` the 8 transforms of each b image are compared
        with the a images; for ``a-a`` each pair once, Id_a before Id_b in the set's order.
    max_distance : int
    transforms : bool

    Returns
    -------
    pairs : DataFrame Id_a, Id_b, distance (int64), kind; sorted by kind, distance, Id_a, Id_b (same
        hashes, same bytes).
    """
    rows = []
    for kind in kinds:
        if kind not in DUPLICATE_KINDS:
            raise ParameterError(f"The 'kinds' parameter must name kinds of {', '.join(DUPLICATE_KINDS)}. "
                                 f"Got {kind!r} instead.")
        a, b = kind_sets(kind)
        if a not in sets or b not in sets:
            raise ParameterError(f"The 'kinds' parameter asks for {kind!r} but no {a if a not in sets else b} "
                                 f"images were given. Got sets {sorted(sets)} instead.")
        ids_a, hashes_a = np.asarray(sets[a][0], dtype=object), sets[a][1]
        ids_b, hashes_b = np.asarray(sets[b][0], dtype=object), sets[b][1]
        if a == b:
            if len(ids_a) < 2:
                continue
            i, j, dist, _ = find_pairs(hashes_a, hashes_a, max_distance, upper_only=True, transforms=transforms)
            rows.append(pd.DataFrame({"Id_a": ids_a[i], "Id_b": ids_a[j], "distance": dist, "kind": kind}))
        elif len(ids_a) and len(ids_b):
            i, j, dist, _ = find_pairs(hashes_b, hashes_a, max_distance, transforms=transforms)
            rows.append(pd.DataFrame({"Id_a": ids_a[j], "Id_b": ids_b[i], "distance": dist, "kind": kind}))
    if not rows:
        return empty_duplicates()
    out = pd.concat(rows, ignore_index=True)
    out["distance"] = out["distance"].astype(np.int64)
    return out.sort_values(["kind", "distance", "Id_a", "Id_b"], kind="stable").reset_index(drop=True)[DUPLICATE_COLUMNS]


def duplicate_frame(
    train_ids: Sequence[str],
    train_hashes: np.ndarray,
    test_ids: Sequence[str],
    test_hashes: np.ndarray,
    max_distance: int,
    transforms: bool = True,
) -> pd.DataFrame:
    """Train<->test and test<->test pairs (:func:`find_duplicates` with those two kinds)."""
    return find_duplicates({"train": (train_ids, train_hashes), "test": (test_ids, test_hashes)},
                           ["train-test", "test-test"], max_distance, transforms)


def precision_recall(found: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Pair-level precision and recall of ``found`` against ``truth`` (both Id_a,Id_b,kind; order-free)."""
    def pairs(df):
        return {(k, *sorted((a, b))) for a, b, k in zip(df["Id_a"], df["Id_b"], df["kind"])}

    f, t = pairs(found), pairs(truth)
    tp = len(f & t)
    return {"tp": tp, "fp": len(f - t), "fn": len(t - f),
            "precision": tp / len(f) if f else 1.0, "recall": tp / len(t) if t else 1.0}


# ---------------------------------------------------------------------------------------- the stage
def default_kinds(external: bool) -> list[str]:
    """train-test and test-test, plus external-train and external-test when there is an external set."""
    return ["train-test", "test-test"] + (["external-train", "external-test"] if external else [])


def check_options(max_distance: int, min_std: float, cache: str | os.PathLike | None = None,
                  owner: str = "run_dedup") -> None:
    """Refuse a ``max_distance`` outside 0..64, a negative or non-finite ``min_std`` and a cache not ending in .npz.

    ``owner`` names who was given the values in the message (:func:`run_dedup`, or the command as typed).
    """
    check_param("max_distance", max_distance, "an int in [0, 64]", 0 <= max_distance <= 64, owner)
    check_param("min_std", min_std, "a finite number >= 0", bool(np.isfinite(min_std)) and min_std >= 0, owner)
    if cache is not None and not str(cache).endswith(".npz"):
        raise ParameterError(f"The 'cache' parameter of {owner} must be a path ending in .npz. Got {str(cache)!r} "
                             f"instead.")


def run_dedup(folders: Mapping[str, str], kinds: Sequence[str], max_distance: int = 8, min_std: float = 2.0,
              transforms: bool = True, cache_path: str | None = None, n_jobs: int = 1,
              ids: Mapping[str, Sequence[str]] | None = None,
              channels: Sequence[str] = CHANNELS,
              progress: Callable[[int, int, str], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """Hash every set, drop near-blank images, find the pairs of every kind.

    Parameters
    ----------
    folders : mapping set name ("train", "test", "external") -> image folder
    kinds : kinds to search (see :func:`find_duplicates`)
    max_distance : int in [0, 64]
    min_std : float >= 0
        Images whose 32x32 green or channel-mean std (0..255 units) is below this are skipped (near-blank).
    transforms : bool
        Try the 8 flips/rotations.
    cache_path : path ending in .npz, optional
        Hash cache, read and (when hashes were added) rewritten.
    n_jobs : int
    ids : mapping set name -> Ids, optional
        Hash only these Ids of a set (e.g. the labelled external images); default every complete Id.
    channels : sequence of str
    progress : callable, optional
        ``progress(n_hashed, n_to_hash, "<set> (<k> cached)")`` per set (see :func:`compute_hashes`).

    Returns
    -------
    pairs : DataFrame Id_a, Id_b, distance, kind
    info : dict with ``provenance`` (for the sidecar: folders, parameters) and per-set counts.
    """
    import time

    from .contract.image_folders import folder_record

    check_options(max_distance, min_std, cache_path)
    for kind in kinds:  # before any image is read
        check_param("kinds", kind, f"one of {list(DUPLICATE_KINDS)}", kind in DUPLICATE_KINDS, "run_dedup")
        absent = [name for name in kind_sets(kind) if name not in folders]
        if absent:
            raise ParameterError(f"The 'kinds' parameter of run_dedup asks for {kind!r}, which needs a {absent[0]!r} "
                                 f"folder. Got folders {sorted(folders)} instead.")
    # Provenance first: listing every folder is cheap and fails early on a missing one.
    records = {name: folder_record(folder) for name, folder in folders.items()}
    cache = read_cache(cache_path) if cache_path else {}
    n_cached = len(cache)
    t0 = time.perf_counter()
    sets, counts = {}, {}
    for name, folder in folders.items():
        got_ids, hashes, stds = compute_hashes(folder, ids=(ids or {}).get(name), cache=cache, n_jobs=n_jobs,
                                               channels=channels, description=name, progress=progress)
        ok = (stds >= min_std).all(axis=1)
        sets[name] = (np.asarray(got_ids, dtype=object)[ok], hashes[ok])
        counts[name] = {"images": len(got_ids), "near_blank": int((~ok).sum())}
    seconds_hash = time.perf_counter() - t0
    if cache_path and len(cache) != n_cached:
        write_cache(cache_path, cache)
    t1 = time.perf_counter()
    pairs = find_duplicates(sets, kinds, max_distance, transforms)
    provenance = {"producer": "hpa_ens.dedup", "folders": records, "kinds": list(kinds),
                  "max_distance": int(max_distance), "min_std": float(min_std), "transforms": bool(transforms),
                  "hash": "pHash 64 bit of the protein channel and of the channel mean", "images": counts}
    return pairs, {"provenance": provenance, "counts": counts, "new_hashes": len(cache) - n_cached,
                   "seconds_hash": seconds_hash, "seconds_pairs": time.perf_counter() - t1}


if __name__ == "__main__":  # python -m hpa_ens.dedup: the command lives in hpa_ens.commands.dedup
    from hpa_ens.commands import launch

    launch("dedup", __spec__.name)
