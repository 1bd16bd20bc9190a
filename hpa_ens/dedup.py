"""Near-duplicate images by perceptual hash: train <-> test and test <-> test pairs.

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

Hashes are cached per Id in an ``.npz`` (no pickle) keyed by path, mtime and size of each channel file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.fft

from ._validation import ContractError, check_param, read_csv_strings
from .classes import CHANNELS
from ._validation import ContractError, ParameterError

HASH_SIZE = 8  # 8x8 low-frequency DCT block -> 64 bits
SMALL = 32  # the image is reduced to 32x32 before the DCT (imagehash's highfreq_factor 4)
N_TRANSFORMS = 8
#: Names of the 8 dihedral transforms in the order the variants are stored (applied to the image).
TRANSFORMS = tuple(
    ("transpose+" if t else "") + {(0, 0): "identity", (1, 0): "hflip", (0, 1): "vflip", (1, 1): "rot180"}[(h, v)]
    for t in (0, 1) for v in (0, 1) for h in (0, 1)
)
KINDS = ("green", "all")
CACHE_VERSION = 1
DUPLICATE_COLUMNS = ["Id_a", "Id_b", "distance", "kind"]


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
    """Ids with all ``channels`` as ``{Id}_{channel}.png`` in ``folder``, sorted.

    Refuses an Id that has some channels but not all (a half-copied folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ContractError(f"{folder}: not a folder of {{Id}}_{{channel}}.png images.")
    found: dict[str, set[str]] = {}
    for entry in os.scandir(folder):
        name = entry.name
        if not name.endswith(".png"):
            continue
        stem = name[:-4]
        for ch in channels:
            if stem.endswith("_" + ch):
                found.setdefault(stem[: -len(ch) - 1], set()).add(ch)
                break
    if not found:
        raise ContractError(f"{folder}: no {{Id}}_{{channel}}.png images (channels {', '.join(channels)}).")
    want = set(channels)
    for image_id, have in sorted(found.items()):
        if have != want:
            missing = sorted(want - have, key=list(channels).index)
            raise ContractError(
                f"{folder}: Id {image_id!r} lacks channel(s) {', '.join(missing)}. Got only {', '.join(sorted(have))} instead."
            )
    return sorted(found)


def channel_paths(folder, image_id: str, channels: Sequence[str] = CHANNELS) -> list[Path]:
    return [Path(folder) / f"{image_id}_{ch}.png" for ch in channels]


def load_channels(paths: Sequence[Path], size: int | None = None) -> np.ndarray:
    """Decode single-channel PNGs of one image into (n_channels, S, S) uint8.

    Sizes that are not multiples of 32 are resized (bilinear) to the next multiple of 32 below.
    """
    from PIL import Image

    arrays = []
    for path in paths:
        with Image.open(path) as img:
            if img.mode not in ("L", "I;16", "I"):
                img = img.convert("L")
            arr = np.asarray(img)
        if arr.dtype != np.uint8:  # 16-bit PNGs: scale to 0..255 so min_std means the same thing
            arr = (arr.astype(np.float64) / max(float(arr.max()), 1.0) * 255.0).astype(np.uint8)
        arrays.append(arr)
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ContractError(f"{paths[0]}: the channels of one image differ in size. Got {sorted(shapes)} instead.")
    h, w = arrays[0].shape
    target = size or max(SMALL, (min(h, w) // SMALL) * SMALL)
    if (h, w) != (target, target):
        from PIL import Image

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
    # Downscale each channel once; the channel mean of block means is the block mean of the channel mean.
    small = downscale(stack.reshape(n * c, h, w)).reshape(n, c, SMALL, SMALL)
    green, mean = small[:, green_index], small.mean(axis=1)
    hashes = np.stack([phash_small(green), phash_small(mean)], axis=1)
    stds = np.stack([green.std(axis=(1, 2)), mean.std(axis=(1, 2))], axis=1)
    return hashes, stds.astype(np.float32)


def _hash_batch(folder: str, ids: Sequence[str], channels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    stacks = [load_channels(channel_paths(folder, i, channels)) for i in ids]
    shapes = {s.shape for s in stacks}
    if len(shapes) == 1:
        return hash_images(np.stack(stacks), list(channels).index("green"))
    parts = [hash_images(s[None], list(channels).index("green")) for s in stacks]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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
    except (OSError, KeyError, ValueError) as err:
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
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Hash every image of ``folder`` (reusing ``cache`` entries, adding new ones to it).

    Returns
    -------
    ids : list of str, length n_images
    hashes : ndarray of shape (n_images, 2, 8), uint64
    stds : ndarray of shape (n_images, 2), float32
    """
    from joblib import Parallel, delayed

    from .cli import progress

    ids = list_image_ids(folder, channels) if ids is None else list(ids)
    cache = {} if cache is None else cache
    keys = [file_key(channel_paths(folder, i, channels)) for i in ids]
    todo = [i for i, k in zip(ids, keys) if k not in cache]
    batches = [todo[s: s + batch_size] for s in range(0, len(todo), batch_size)]
    key_of = dict(zip(ids, keys))
    if batches:
        with progress() as bar:
            task = bar.add_task(f"{description} ({len(ids) - len(todo)} cached)", total=len(todo))
            runner = Parallel(n_jobs=n_jobs, return_as="generator")
            results = runner(delayed(_hash_batch)(str(folder), b, tuple(channels)) for b in batches)
            for batch, (h, s) in zip(batches, results):
                for j, image_id in enumerate(batch):
                    cache[key_of[image_id]] = (h[j], s[j])
                bar.advance(task, len(batch))
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


def duplicate_frame(
    train_ids: Sequence[str],
    train_hashes: np.ndarray,
    test_ids: Sequence[str],
    test_hashes: np.ndarray,
    max_distance: int,
    transforms: bool = True,
) -> pd.DataFrame:
    """Train<->test and test<->test pairs as ``Id_a,Id_b,distance,kind`` (Id_a = train Id for train-test).

    Sorted by kind, distance, Id_a, Id_b, so the same hashes give the same bytes.
    """
    rows = []
    if len(train_ids) and len(test_ids):
        i, j, dist, _ = find_pairs(test_hashes, train_hashes, max_distance, transforms=transforms)
        rows.append(pd.DataFrame({"Id_a": np.asarray(train_ids, dtype=object)[j],
                                  "Id_b": np.asarray(test_ids, dtype=object)[i],
                                  "distance": dist, "kind": "train-test"}))
    if len(test_ids) > 1:
        i, j, dist, _ = find_pairs(test_hashes, test_hashes, max_distance, upper_only=True, transforms=transforms)
        ids = np.asarray(test_ids, dtype=object)
        rows.append(pd.DataFrame({"Id_a": ids[i], "Id_b": ids[j], "distance": dist, "kind": "test-test"}))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object if c != "distance" else np.int64) for c in DUPLICATE_COLUMNS})
    out = pd.concat(rows, ignore_index=True)
    out["distance"] = out["distance"].astype(np.int64)
    return out.sort_values(["kind", "distance", "Id_a", "Id_b"], kind="stable").reset_index(drop=True)[DUPLICATE_COLUMNS]


def read_duplicates(path) -> pd.DataFrame:
    """Read ``Id_a,Id_b,...,kind`` (ours, or the synthetic set's truth file); extra columns are kept."""
    path = Path(path)
    df = read_csv_strings(path, "a header Id_a,Id_b,distance,kind")
    missing = [c for c in ("Id_a", "Id_b", "kind") if c not in df.columns]
    if missing:
        raise ContractError(f"{path}: missing column(s) {missing}; expected Id_a,Id_b,distance,kind. "
                            f"Got {','.join(map(str, df.columns))} instead.")
    bad = ~df["kind"].isin(["train-test", "test-test"])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        raise ContractError(f"{path}, row {row}: kind must be 'train-test' or 'test-test'. Got {df['kind'].iloc[row - 1]!r} instead.")
    same = df["Id_a"] == df["Id_b"]
    if same.any():
        row = int(np.flatnonzero(same.to_numpy())[0]) + 1
        raise ContractError(f"{path}, row {row}: a pair must join two different Ids. Got {df['Id_a'].iloc[row - 1]!r} twice instead.")
    return df


def precision_recall(found: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Pair-level precision and recall of ``found`` against ``truth`` (both Id_a,Id_b,kind; order-free)."""
    def pairs(df):
        return {(k, *sorted((a, b))) for a, b, k in zip(df["Id_a"], df["Id_b"], df["kind"])}

    f, t = pairs(found), pairs(truth)
    tp = len(f & t)
    return {"tp": tp, "fp": len(f - t), "fn": len(t - f),
            "precision": tp / len(f) if f else 1.0, "recall": tp / len(t) if t else 1.0}


# -------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    import time

    from .cli import console, parser
    from .io import atomic_open

    ap = parser("python -m hpa_ens.dedup", "Find near-duplicate images (train<->test, test<->test) by perceptual hash.")
    ap.add_argument("--train-dir", required=True, help="folder of {Id}_{red,green,blue,yellow}.png train images")
    ap.add_argument("--test-dir", required=True, help="folder of test images")
    ap.add_argument("--out", required=True, help="output CSV Id_a,Id_b,distance,kind")
    ap.add_argument("--max-distance", type=int, default=8, help="largest Hamming distance (of 64 bits) kept")
    ap.add_argument("--min-std", type=float, default=2.0,
                    help="skip images whose 32x32 green or channel-mean std (0..255) is below this (near-blank)")
    ap.add_argument("--no-transforms", action="store_true", help="do not try the 8 flips/rotations")
    ap.add_argument("--cache", default=None, help="hash cache (.npz), reused when files are unchanged")
    ap.add_argument("--n-jobs", type=int, default=1, help="parallel decoding processes (joblib; -1 = all cores)")
    args = ap.parse_args(argv)
    check_param("max_distance", args.max_distance, "an int in [0, 64]", 0 <= args.max_distance <= 64, "hpa_ens.dedup")
    check_param("n_jobs", args.n_jobs, "a non-zero int", args.n_jobs != 0, "hpa_ens.dedup")
    if args.cache is not None and not str(args.cache).endswith(".npz"):
        raise ParameterError(f"The 'cache' parameter of hpa_ens.dedup must be a path ending in .npz. Got {args.cache!r} instead.")

    cache = read_cache(args.cache) if args.cache else {}
    n_cached = len(cache)
    t0 = time.perf_counter()
    train_ids, train_h, train_s = compute_hashes(args.train_dir, cache=cache, n_jobs=args.n_jobs, description="train")
    test_ids, test_h, test_s = compute_hashes(args.test_dir, cache=cache, n_jobs=args.n_jobs, description="test")
    t_hash = time.perf_counter() - t0
    if args.cache and len(cache) != n_cached:
        write_cache(args.cache, cache)
    train_ok = (train_s >= args.min_std).all(axis=1)
    test_ok = (test_s >= args.min_std).all(axis=1)
    t1 = time.perf_counter()
    frame = duplicate_frame(np.asarray(train_ids, object)[train_ok], train_h[train_ok],
                            np.asarray(test_ids, object)[test_ok], test_h[test_ok],
                            args.max_distance, transforms=not args.no_transforms)
    t_pair = time.perf_counter() - t1
    with atomic_open(args.out, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")
    counts = frame["kind"].value_counts()
    console.print(
        f"{len(train_ids)} train + {len(test_ids)} test images hashed in {t_hash:.1f} s "
        f"({len(cache) - n_cached} new); skipped near-blank: {int((~train_ok).sum())} train, {int((~test_ok).sum())} test; "
        f"pairs in {t_pair:.1f} s: {int(counts.get('train-test', 0))} train-test, {int(counts.get('test-test', 0))} test-test "
        f"-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    from .cli import entry

    entry(main)
