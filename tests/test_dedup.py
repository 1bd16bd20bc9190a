"""Perceptual hashes, the pair search (against brute force) and the dedup CLI on planted copies."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from hpa_ens import dedup
from hpa_ens.classes import CHANNELS


def _smooth_images(rng, n, size=128):
    """Random blobs: textured like cells, different images hash far apart."""
    noise = rng.random((n, 4, size, size))
    smooth = ndimage.gaussian_filter(noise, sigma=(0, 0, 6, 6))
    smooth = (smooth - smooth.min(axis=(2, 3), keepdims=True)) / np.ptp(smooth, axis=(2, 3), keepdims=True)
    return (smooth * 255).astype(np.uint8)


def _write(folder: Path, image_id: str, stack: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for ch, plane in zip(CHANNELS, stack):
        Image.fromarray(plane).save(folder / f"{image_id}_{ch}.png")


def _brute_hamming(a: int, b: int) -> int:
    return bin(int(a) ^ int(b)).count("1")


def test_hamming_matches_brute_force():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, size=50, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 50).astype(np.uint64)
    b = rng.integers(0, 2**63, size=50, dtype=np.uint64)
    got = dedup.hamming(a[:, None], b[None, :])
    want = np.array([[_brute_hamming(x, y) for y in b] for x in a])
    np.testing.assert_array_equal(got, want)


def _apply(images, name):
    out = np.swapaxes(images, 1, 2) if name.startswith("transpose") else images
    base = name.split("+")[-1]
    if base in ("hflip", "rot180"):
        out = out[:, :, ::-1]
    if base in ("vflip", "rot180"):
        out = out[:, ::-1, :]
    return np.ascontiguousarray(out)


def test_dihedral_variants_equal_hash_of_transformed_image():
    images = _smooth_images(np.random.default_rng(1), 5)[:, 1]
    variants = dedup.phash_variants(images)
    assert len(set(dedup.TRANSFORMS)) == dedup.N_TRANSFORMS
    for t, name in enumerate(dedup.TRANSFORMS):
        np.testing.assert_array_equal(dedup.phash(_apply(images, name)), variants[:, t], err_msg=name)


def test_real_png_hash_robust_to_noise_and_far_from_others(shared_hpa):
    paths = sorted((shared_hpa / "images").glob("*_green.png"))[:6]
    images = np.stack([np.asarray(Image.open(p)) for p in paths])
    rng = np.random.default_rng(2)
    noisy = np.clip(images + rng.normal(0, 4, images.shape), 0, 255).astype(np.uint8)
    d_same = dedup.hamming(dedup.phash(images), dedup.phash(noisy))
    h = dedup.phash(images)
    d_other = dedup.hamming(h[:, None], h[None, :])[~np.eye(len(h), dtype=bool)]
    assert d_same.max() <= 4
    assert d_other.min() > 10


def test_find_pairs_matches_brute_force():
    rng = np.random.default_rng(3)
    n_q, n_r = 40, 60
    ref = rng.integers(0, 2**63, size=(n_r, 2, 8), dtype=np.uint64)
    query = rng.integers(0, 2**63, size=(n_q, 2, 8), dtype=np.uint64)
    # plant near-copies: query k's transform 3 is reference 2k with a few bits flipped
    for k in range(10):
        for kind in range(2):
            query[k, kind, 3] = ref[2 * k, kind, 0] ^ np.uint64((1 << int(rng.integers(0, 5))) - 1)
    i, j, dist, tr = dedup.find_pairs(query, ref, max_distance=6, chunk_bytes=1000)
    got = set(zip(i.tolist(), j.tolist(), dist.tolist()))
    want = set()
    for a in range(n_q):
        for b in range(n_r):
            d = min(max(_brute_hamming(query[a, 0, t], ref[b, 0, 0]), _brute_hamming(query[a, 1, t], ref[b, 1, 0]))
                    for t in range(8))
            if d <= 6:
                want.add((a, b, d))
    assert got == want
    assert len(want) >= 10


def test_find_pairs_upper_only_skips_self_and_mirror():
    rng = np.random.default_rng(4)
    h = rng.integers(0, 2**63, size=(20, 2, 8), dtype=np.uint64)
    h[7, :, 0] = h[3, :, 0]
    i, j, dist, _ = dedup.find_pairs(h, h, max_distance=3, upper_only=True)
    assert {(a, b) for a, b in zip(i.tolist(), j.tolist())} >= {(3, 7)}
    assert (j > i).all()


@pytest.fixture
def planted(tmp_path):
    """A train/test folder with known near-copies (noise, brightness, flip, transpose) and a blank image."""
    rng = np.random.default_rng(5)
    base = _smooth_images(rng, 12)
    train, test = tmp_path / "train", tmp_path / "test"
    for k in range(6):
        _write(train, f"tr{k}", base[k])
    noisy = np.clip(base[0] + rng.normal(0, 6, base[0].shape), 0, 255).astype(np.uint8)
    _write(test, "te_noisy", noisy)
    _write(test, "te_bright", np.clip(base[1].astype(int) * 1.15 + 5, 0, 255).astype(np.uint8))
    _write(test, "te_flip", base[2][:, :, ::-1].copy())
    _write(test, "te_rot", np.ascontiguousarray(np.swapaxes(base[3], 1, 2)[:, ::-1]))
    _write(test, "te_a", base[6])
    _write(test, "te_b", np.clip(base[6].astype(int) + rng.integers(-3, 4, base[6].shape), 0, 255).astype(np.uint8))
    _write(test, "te_other", base[7])
    _write(test, "te_blank", np.full_like(base[8], 3))
    _write(test, "te_blank2", np.full_like(base[8], 3))
    truth = {("train-test", "tr0", "te_noisy"), ("train-test", "tr1", "te_bright"), ("train-test", "tr2", "te_flip"),
             ("train-test", "tr3", "te_rot"), ("test-test", "te_a", "te_b")}
    return train, test, truth


def _pairs(df):
    return {(k, a, b) if k == "train-test" else (k, *sorted((a, b))) for a, b, k in zip(df.Id_a, df.Id_b, df.kind)}


def test_cli_finds_planted_copies_and_caches(planted, tmp_path):
    train, test, truth = planted
    out, cache = tmp_path / "dupes.csv", tmp_path / "hashes.npz"
    argv = ["--train-dir", str(train), "--test-dir", str(test), "--out", str(out), "--cache", str(cache)]
    assert dedup.main(argv) == 0
    found = pd.read_csv(out, dtype={"distance": int})
    assert list(found.columns) == ["Id_a", "Id_b", "distance", "kind"]
    assert _pairs(found) == truth  # blank images (identical hashes) are skipped, not paired
    assert (found["distance"] <= 8).all()
    first = out.read_bytes()

    # the cache is plain arrays (no pickle) and is reused: same bytes out
    with np.load(cache, allow_pickle=False) as data:
        assert data["hashes"].dtype == np.uint64 and len(data["keys"]) == 6 + 9
    assert dedup.main(argv) == 0
    assert out.read_bytes() == first

    # a changed file (new mtime/size) is rehashed, not served stale from the cache
    _write(test, "te_noisy", _smooth_images(np.random.default_rng(99), 1)[0])
    st = os.stat(test / "te_noisy_green.png")
    os.utime(test / "te_noisy_green.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert dedup.main(argv) == 0
    assert ("train-test", "tr0", "te_noisy") not in _pairs(pd.read_csv(out))


def test_no_transforms_misses_flipped_copy(planted, tmp_path):
    train, test, truth = planted
    out = tmp_path / "d.csv"
    dedup.main(["--train-dir", str(train), "--test-dir", str(test), "--out", str(out), "--no-transforms"])
    found = _pairs(pd.read_csv(out))
    assert ("train-test", "tr2", "te_flip") not in found
    assert ("train-test", "tr0", "te_noisy") in found


def test_missing_channel_is_refused_in_one_line(planted, tmp_path, capsys):
    from hpa_ens.cli import run

    train, test, _ = planted
    (test / "te_other_red.png").unlink()
    code = run(dedup.main, ["--train-dir", str(train), "--test-dir", str(test), "--out", str(tmp_path / "d.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "te_other" in err and "red" in err and len(err.splitlines()) == 1


def test_precision_recall_counts():
    truth = pd.DataFrame({"Id_a": ["a", "c"], "Id_b": ["b", "d"], "kind": ["test-test", "train-test"]})
    found = pd.DataFrame({"Id_a": ["b", "x"], "Id_b": ["a", "y"], "kind": ["test-test", "test-test"]})
    pr = dedup.precision_recall(found, truth)
    assert (pr["tp"], pr["fp"], pr["fn"]) == (1, 1, 1)
    assert pr["precision"] == pytest.approx(0.5) and pr["recall"] == pytest.approx(0.5)
