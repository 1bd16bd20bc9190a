"""Near-duplicate search: speed (images/s, pair search) and precision/recall on planted near-copies.

Base images are built from the real 512x512 PNGs in ../shared/hpa/images (each cut into four 256x256
quadrants so every base image has its own green channel; 4 quadrants as the 4 channels). Test images
are near-copies of some train images (shift, noise, brightness, JPEG, flip, rot90), near-copies of
other test images, and unrelated images. Baselines measured in the same process: our own hash called
one image at a time, and ``imagehash.phash`` (the ``[dev]`` extra) on the *same* 32x32 green
thumbnails our hash reads, 8 dihedral transforms each; the bits where the two hashes differ are counted
(imagehash needs an 8-bit thumbnail, so rounding can move a DCT coefficient across the median). Both
sides of a ratio are timed the same way: one warm-up call each (imagehash's first call imports
scipy.fftpack), then the same number of interleaved calls, the median of each. Without
``../shared/hpa/images`` the script says so and emits nothing.

Run: .venv/bin/python benchmarks/bench_dedup.py [--quick] [--synth DIR]
(``--synth DIR``: also score against a ``python -m hpa_ens.synth`` set's truth/duplicates.csv.)
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

os.environ.setdefault("HPA_ENS_NO_PROGRESS", "1")
from hpa_ens import dedup  # noqa: E402
from hpa_ens.classes import CHANNELS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import emit, time_same_way  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "hpa" / "images"
COPIES = ("shift4", "shift8", "noise5", "bright", "jpeg75", "hflip", "rot90")
#: Column names of the recall table (docs/dedup_submit.md).
COPY_NAMES = {"bright": "bright ×1.2", "noise5": "noise σ5", "jpeg75": "JPEG q75", "hflip": "hflip", "rot90": "rot90",
              "shift4": "shift 4 px", "shift8": "shift 8 px"}
#: Rows of the per-image speed table: the key in time_hashing's result -> the row's name.
SPEED_ROWS = {"decode 4 channels (ms/image)": "decode 4 PNG channels",
              "our hash, batched (ms/image, 2 hashes x 8 variants)": "ours, batched, 8 transforms each (green + mean)",
              "our hash, one image per call (ms/image)": "ours, one image per call",
              "ours, same thumbnails, 8 transforms batched (ms/image)":
                  "ours on the 32×32 green thumbnails only, 8 transforms",
              "imagehash.phash, same green thumbnails, 8 transforms (ms/image)":
                  "imagehash.phash on the same thumbnails, 8 transforms"}


def quadrants() -> list[np.ndarray]:
    out = []
    for path in sorted(SHARED.glob("*.png")):
        img = np.asarray(Image.open(path))
        out += [img[:256, :256], img[:256, 256:], img[256:, :256], img[256:, 256:]]
    return out


def near_copy(stack: np.ndarray, how: str, rng) -> np.ndarray:
    x = stack.astype(np.float32)
    if how.startswith("shift"):
        s = int(how[5:])
        x = np.roll(x, (s, -s), axis=(1, 2))
        x[:, :s] = x[:, s: s + 1]  # edge replicate instead of wrap-around
    elif how == "noise5":
        x = x + rng.normal(0, 5, x.shape)
    elif how == "bright":
        x = x * 1.2 + 5
    elif how == "jpeg75":
        planes = []
        for plane in stack:
            buf = io.BytesIO()
            Image.fromarray(plane).save(buf, format="JPEG", quality=75)
            planes.append(np.asarray(Image.open(io.BytesIO(buf.getvalue()))))
        x = np.stack(planes).astype(np.float32)
    elif how == "hflip":
        x = x[:, :, ::-1]
    elif how == "rot90":
        x = np.rot90(x, 1, axes=(1, 2))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def write(folder: Path, image_id: str, stack: np.ndarray) -> None:
    for ch, plane in zip(CHANNELS, stack):
        Image.fromarray(np.ascontiguousarray(plane)).save(folder / f"{image_id}_{ch}.png", compress_level=1)


def build(root: Path, n_base: int, rng) -> pd.DataFrame:
    quads = quadrants()
    n_base = min(n_base, len(quads))
    order = rng.permutation(len(quads))[:n_base]
    bases = []
    for k, q in enumerate(order):
        others = rng.choice(np.delete(np.arange(len(quads)), q), 3, replace=False)
        chans = [quads[others[0]], quads[q], quads[others[1]], quads[others[2]]]  # green = quadrant q
        bases.append(np.stack(chans))
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    n_train = n_base // 2
    truth = []
    for k in range(n_train):
        write(root / "train", f"tr{k:03d}", bases[k])
    for k in range(n_train):  # every train image gets one near-copy in test
        how = COPIES[k % len(COPIES)]
        write(root / "test", f"te_copy{k:03d}", near_copy(bases[k], how, rng))
        truth.append(("train-test", f"tr{k:03d}", f"te_copy{k:03d}", how))
    rest = list(range(n_train, n_base))
    for m, k in enumerate(rest):  # unrelated test images; every other one gets a test near-copy
        write(root / "test", f"te_new{k:03d}", bases[k])
        if m % 2 == 0:
            how = COPIES[m % len(COPIES)]
            write(root / "test", f"te_twin{k:03d}", near_copy(bases[k], how, rng))
            truth.append(("test-test", f"te_new{k:03d}", f"te_twin{k:03d}", how))
    return pd.DataFrame(truth, columns=["kind", "Id_a", "Id_b", "copy"])


def score(found: pd.DataFrame, truth: pd.DataFrame) -> tuple[dict, dict]:
    pr = dedup.precision_recall(found, truth)
    got = {(k, *sorted((a, b))) for a, b, k in zip(found.Id_a, found.Id_b, found.kind)}
    per_copy = {}
    for how, group in truth.groupby("copy"):
        hits = sum((k, *sorted((a, b))) in got for a, b, k in zip(group.Id_a, group.Id_b, group.kind))
        per_copy[how] = f"{hits}/{len(group)}"
    return pr, per_copy


def time_hashing(folder: Path, ids: list[str]) -> dict:
    """Images/s of decode + hash: batched (ours), one image at a time (ours), imagehash."""
    stacks = [dedup.load_channels(dedup.channel_paths(folder, i)) for i in ids]
    t0 = time.perf_counter()
    for i in ids:
        dedup.load_channels(dedup.channel_paths(folder, i))
    t_decode = (time.perf_counter() - t0) / len(ids)
    batch = np.stack(stacks)
    dedup.hash_images(batch[:2])  # warm-up: first-call costs belong to no row
    t0 = time.perf_counter()
    dedup.hash_images(batch)
    t_batch = (time.perf_counter() - t0) / len(ids)
    t0 = time.perf_counter()
    for s in stacks:
        dedup.hash_images(s[None])
    t_single = (time.perf_counter() - t0) / len(ids)
    out = {"decode 4 channels (ms/image)": t_decode * 1e3, "our hash, batched (ms/image, 2 hashes x 8 variants)": t_batch * 1e3,
           "our hash, one image per call (ms/image)": t_single * 1e3}
    out.update(compare_imagehash(stacks))
    return out


def compare_imagehash(stacks: list[np.ndarray], repeats: int = 5) -> dict:
    """imagehash.phash on the *same* 32x32 thumbnails our hash reads: speed, and where the bits differ.

    Our thumbnails are float block means; imagehash takes an 8-bit image, so each thumbnail is rounded
    to uint8 for it (imagehash's own 32x32 resize of a 32x32 image changes nothing). Any bit that
    differs comes from that rounding moving a DCT coefficient across the block's median. Both sides: one
    warm-up call, then ``repeats`` interleaved calls, medians.
    """
    try:
        import imagehash
    except ImportError:
        return {"imagehash": "not installed (pip install imagehash, in the [dev] extra)"}
    small = dedup.downscale(np.stack([s[1] for s in stacks]))  # green thumbnails, (n, 32, 32) float
    thumbs = [Image.fromarray(np.clip(np.rint(t), 0, 255).astype(np.uint8)) for t in small]
    transforms = (None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180,
                  Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270,
                  Image.Transpose.TRANSVERSE)
    timing = time_same_way({
        "imagehash": lambda: [[imagehash.phash(t if tr is None else t.transpose(tr)) for tr in transforms]
                              for t in thumbs],
        "ours": lambda: dedup.phash_small(small)}, repeats=repeats, warmup=1)
    theirs, ours = timing["imagehash"]["result"], timing["ours"]["result"]
    t_ih, t_ours = timing["imagehash"]["wall"] / len(thumbs), timing["ours"]["wall"] / len(thumbs)

    def as_uint64(h):
        return dedup._bits_to_uint64(np.asarray(h.hash, dtype=bool).reshape(1, 64))[0]

    identity = np.array([as_uint64(h[0]) for h in theirs], dtype=np.uint64)
    dist = dedup.hamming(ours[:, 0], identity).astype(int)
    same_image = np.array([as_uint64(imagehash.phash(Image.fromarray(np.clip(np.rint(t), 0, 255).astype(np.uint8))))
                           for t in np.round(small)], dtype=np.uint64)
    rounded = dedup.hamming(dedup.phash_small(np.round(small))[:, 0], same_image).astype(int)
    counts = {d: int((dist == d).sum()) for d in sorted(set(dist.tolist()))}
    return {"imagehash.phash, same green thumbnails, 8 transforms (ms/image)": t_ih * 1e3,
            "ours, same thumbnails, 8 transforms batched (ms/image)": t_ours * 1e3,
            "speed-up ours vs imagehash on the same thumbnails": t_ih / t_ours,
            "bits differing, ours (float thumbnail) vs imagehash (uint8 thumbnail): images per distance": counts,
            "bits differing when both read the same uint8 thumbnail (max)": int(rounded.max()),
            "_hash_distance": dist, "_speedup": t_ih / t_ours, "_repeats": repeats}


def time_pairs(n_train: int, n_test: int, repeats: int = 3) -> dict:
    """Pair search on random hashes with and without the 8 transforms: a warm-up call each, then ``repeats``
    interleaved calls, medians."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 2**63, size=(n_train, 2, 8), dtype=np.uint64)
    test = rng.integers(0, 2**63, size=(n_test, 2, 8), dtype=np.uint64)
    train_ids, test_ids = [f"a{k}" for k in range(n_train)], [f"b{k}" for k in range(n_test)]
    timing = time_same_way({
        "8": lambda: dedup.duplicate_frame(train_ids, train, test_ids, test, 6),
        "1": lambda: dedup.duplicate_frame(train_ids, train, test_ids, test, 6, transforms=False)},
        repeats=repeats, warmup=1)
    t8, t1 = timing["8"]["wall"], timing["1"]["wall"]
    pairs = n_test * (n_train + n_test / 2)
    return {"pairs compared": f"{n_test} x ({n_train} train + test/2)",
            "8 transforms (s)": t8, "identity only (s)": t1, "ns per pair x transform": t8 / pairs / 8 * 1e9,
            "repeats": repeats}


def emit_recall_row(distance: int, transforms: bool, pr: dict, per_copy: dict, n_pairs: int) -> None:
    """One row of the pivot table "dedup-recall": precision, recall, then hits per copy type."""
    row = f"{distance}, {'yes' if transforms else 'no'}"
    default = distance == dedup_default_distance() and transforms
    note = f"{n_pairs} planted pairs; row = max distance, dihedral transforms"
    for col, value in (("precision", pr["precision"]), ("recall", pr["recall"])):
        emit(f"dedup recall: {row}, {col}", value, col, table="dedup-recall", row=row, col=col, bold=default, note=note)
    for how in COPY_NAMES:
        if how in per_copy:
            hits, total = (int(x) for x in per_copy[how].split("/"))
            emit(f"dedup recall: {row}, {how}", hits, f"of {total}", table="dedup-recall", row=row,
                 col=COPY_NAMES[how], note=note)


def dedup_default_distance() -> int:
    """``run_dedup``'s default max_distance (the row shown in bold)."""
    import inspect

    return int(inspect.signature(dedup.run_dedup).parameters["max_distance"].default)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--synth", default=None, help="a python -m hpa_ens.synth output folder to score too")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not present")
        return
    rng = np.random.default_rng(0)
    n_base = 56 if args.quick else 112
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth = build(root, n_base, rng)
        n_train = len(list((root / "train").glob("*_green.png")))
        n_test = len(list((root / "test").glob("*_green.png")))
        print(f"planted set: {n_train} train, {n_test} test (256 px, 4 channels), {len(truth)} true pairs")
        test_ids = dedup.list_image_ids(root / "test")
        timing = time_hashing(root / "test", test_ids)
        for key, value in timing.items():
            if not key.startswith("_"):
                print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
        if "_speedup" in timing:
            dist = timing["_hash_distance"]
            emit("dedup: our batched pHash vs imagehash.phash on the same thumbnails (8 transforms)",
                 timing["ours, same thumbnails, 8 transforms batched (ms/image)"], "ms/image",
                 baseline=timing["imagehash.phash, same green thumbnails, 8 transforms (ms/image)"],
                 baseline_name="imagehash.phash", ratio=timing["_speedup"],
                 differs="implementation only: the same 32×32 green thumbnails, 8 transforms each (imagehash reads "
                         "them rounded to uint8)",
                 note=f"median of {timing['_repeats']} after a warm-up, both sides; identical hashes on {int((dist == 0).sum())}/{len(dist)} images, 1-2 bits apart on "
                      f"{int(((dist >= 1) & (dist <= 2)).sum())} (uint8 rounding of the thumbnail), more on "
                      f"{int((dist > 2).sum())}")
        for key, row in SPEED_ROWS.items():
            if isinstance(timing.get(key), float):
                emit(f"dedup speed: {row}", timing[key], "ms/image", table="dedup-speed", row=row, col="per image",
                     note=f"{len(test_ids)} planted test images, 256 px, 4 channels")
        cache: dict = {}
        t0 = time.perf_counter()
        tr = dedup.compute_hashes(root / "train", cache=cache)
        te = dedup.compute_hashes(root / "test", cache=cache)
        t_all = time.perf_counter() - t0
        print(f"  end to end (decode+hash, n_jobs=1): {(n_train + n_test) / t_all:.1f} images/s")
        emit("dedup: end to end, decode + hash, n_jobs=1", (n_train + n_test) / t_all, "images/s",
             note=f"{n_train + n_test} planted images, 256 px, 4 PNG channels each")
        print("max_distance  transforms  precision  recall  (tp/fp/fn)  recall per copy type")
        for transforms in (True, False):
            for d in (4, 6, 8, 10, 12):
                found = dedup.duplicate_frame(tr[0], tr[1], te[0], te[1], d, transforms=transforms)
                pr, per_copy = score(found, truth)
                print(f"  {d:>2}          {str(transforms):<10}  {pr['precision']:.3f}      {pr['recall']:.3f}   "
                      f"({pr['tp']}/{pr['fp']}/{pr['fn']})  {per_copy}")
                emit_recall_row(d, transforms, pr, per_copy, len(truth))
    if args.synth:
        synth = Path(args.synth)
        cache = {}
        tr = dedup.compute_hashes(synth / "train", cache=cache)
        te = dedup.compute_hashes(synth / "test", cache=cache)
        truth = pd.read_csv(synth / "truth" / "duplicates.csv", dtype=str)
        for d in (4, 6, 8):
            pr = dedup.precision_recall(dedup.duplicate_frame(tr[0], tr[1], te[0], te[1], d), truth)
            print(f"synthetic set {synth}: max_distance {d}: precision {pr['precision']:.3f} recall {pr['recall']:.3f} "
                  f"({pr['tp']}/{pr['fp']}/{pr['fn']})")
    sizes = (5000, 2000) if args.quick else (31072, 11702)
    res = time_pairs(*sizes)
    print(f"pair search: {res['pairs compared']}: 8 transforms {res['8 transforms (s)']:.2f} s, identity only "
          f"{res['identity only (s)']:.2f} s ({res['ns per pair x transform']:.2f} ns per pair x transform)")
    emit("dedup: pair search on random hashes, 8 transforms vs identity only",
         res["8 transforms (s)"], "s", baseline=res["identity only (s)"], baseline_name="identity only",
         differs="configuration: every pair under 8 dihedral transforms (8× the comparisons) vs the identity only",
         note=f"{res['pairs compared']} pairs; {res['ns per pair x transform']:.2f} ns per pair x transform; "
              f"median of {res['repeats']} after a warm-up, both sides")


if __name__ == "__main__":
    main()
