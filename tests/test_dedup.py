"""Perceptual hashes, the pair search (against brute force) and the dedup CLI on planted copies."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from hpa_ens import dedup
from hpa_ens.classes import CHANNELS
from hpa_ens.commands import dedup as dedup_command


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
    assert dedup_command.main(argv) == 0
    found = pd.read_csv(out, dtype={"distance": int})
    assert list(found.columns) == ["Id_a", "Id_b", "distance", "kind"]
    assert _pairs(found) == truth  # blank images (identical hashes) are skipped, not paired
    assert (found["distance"] <= 8).all()
    first = out.read_bytes()

    # the cache is plain arrays (no pickle) and is reused: same bytes out
    with np.load(cache, allow_pickle=False) as data:
        assert data["hashes"].dtype == np.uint64 and len(data["keys"]) == 6 + 9
    assert dedup_command.main(argv) == 0
    assert out.read_bytes() == first

    # a changed file (new mtime/size) is rehashed, not served stale from the cache
    _write(test, "te_noisy", _smooth_images(np.random.default_rng(99), 1)[0])
    st = os.stat(test / "te_noisy_green.png")
    os.utime(test / "te_noisy_green.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert dedup_command.main(argv) == 0
    assert ("train-test", "tr0", "te_noisy") not in _pairs(pd.read_csv(out))


def test_no_transforms_misses_flipped_copy(planted, tmp_path):
    train, test, truth = planted
    out = tmp_path / "d.csv"
    dedup_command.main(["--train-dir", str(train), "--test-dir", str(test), "--out", str(out), "--no-transforms"])
    found = _pairs(pd.read_csv(out))
    assert ("train-test", "tr2", "te_flip") not in found
    assert ("train-test", "tr0", "te_noisy") in found


def test_missing_channel_is_refused_in_one_line(planted, tmp_path, capsys):
    from hpa_ens.commands._cli import run

    train, test, _ = planted
    (test / "te_other_red.png").unlink()
    code = run(dedup_command.main, ["--train-dir", str(train), "--test-dir", str(test), "--out", str(tmp_path / "d.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "te_other" in err and "red" in err and len(err.splitlines()) == 1


def test_precision_recall_counts():
    truth = pd.DataFrame({"Id_a": ["a", "c"], "Id_b": ["b", "d"], "kind": ["test-test", "train-test"]})
    found = pd.DataFrame({"Id_a": ["b", "x"], "Id_b": ["a", "y"], "kind": ["test-test", "test-test"]})
    pr = dedup.precision_recall(found, truth)
    assert (pr["tp"], pr["fp"], pr["fn"]) == (1, 1, 1)
    assert pr["precision"] == pytest.approx(0.5) and pr["recall"] == pytest.approx(0.5)


# ------------------------------------------------------------------- duplicates.csv contract
from hpa_ens.contract.duplicates import read_duplicates, write_duplicates  # noqa: E402
from hpa_ens.validation import ContractError, ParameterError  # noqa: E402


@pytest.mark.parametrize("distance", ["x", "", "3.5", "-1", "65", "nan"])
def test_unparseable_distance_is_an_error_not_an_exact_twin(tmp_path, distance):
    path = tmp_path / "d.csv"
    path.write_text(f"Id_a,Id_b,distance,kind\na,b,4,train-test\nc,d,{distance},test-test\n")
    with pytest.raises(ContractError, match=r"d.csv, row 2: distance must be an integer 0..64"):
        read_duplicates(path)


def test_max_distance_filters_and_needs_a_distance_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("Id_a,Id_b,distance,kind\na,b,4,train-test\nc,d,9,test-test\ne,f,0,external-train\n")
    got = read_duplicates(path, max_distance=4)
    assert got["Id_a"].tolist() == ["a", "e"] and got["distance"].dtype == np.int64
    assert read_duplicates(path, kinds=["test-test"])["Id_a"].tolist() == ["c"]
    nodist = tmp_path / "n.csv"
    nodist.write_text("Id_a,Id_b,kind\na,b,train-test\n")
    assert len(read_duplicates(nodist)) == 1  # fine without a filter
    with pytest.raises(ParameterError, match="no distance column"):
        read_duplicates(nodist, max_distance=4)
    with pytest.raises(ParameterError, match="max_distance"):
        read_duplicates(path, max_distance=-1)


@pytest.mark.parametrize("content, message", [
    ("Id_a,Id_b,distance,kind\na,b,1,train-val\n", "row 1: kind must be one of"),
    ("Id_a,Id_b,distance,kind\na,a,1,test-test\n", "row 1: a pair must join two different Ids"),
    ("Id_a,distance,kind\na,1,test-test\n", "missing column"),
    ("Id_a,Id_b,distance,kind\na,../b,1,test-test\n", "row 1: Id '../b' contains a path separator"),
    ("", "empty"),
])
def test_broken_duplicates_files_are_refused(tmp_path, content, message):
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(ContractError, match=message):
        read_duplicates(path)


def test_write_duplicates_round_trip_and_sidecar(tmp_path):
    frame = pd.DataFrame({"Id_a": ["a", "e"], "Id_b": ["b", "t"], "distance": [3, 0],
                          "kind": ["train-test", "external-test"]})
    write_duplicates(tmp_path / "d.csv", frame, {"producer": "test"})
    back = read_duplicates(tmp_path / "d.csv")
    pd.testing.assert_frame_equal(back, frame)
    meta = json.loads((tmp_path / "d.meta.json").read_text())
    assert meta["n_pairs"] == {"external-test": 1, "train-test": 1} and meta["producer"] == "test"


def test_cli_writes_provenance_and_reads_16_bit(planted, tmp_path):
    train, test, truth = planted
    # A 16-bit copy of the train image tr4 (value * 257 is exactly the 8-bit picture after the fixed
    # 255/65535 scaling every reader uses) is found as its twin.
    base = np.stack([np.asarray(Image.open(train / f"tr4_{c}.png")) for c in CHANNELS])
    for c, plane in zip(CHANNELS, base):
        Image.fromarray(plane.astype(np.uint16) * 257).save(test / f"te16_{c}.png")
    out = tmp_path / "d.csv"
    assert dedup_command.main(["--train-dir", str(train), "--test-dir", str(test), "--out", str(out), "--n-jobs", "2"]) == 0
    found = _pairs(read_duplicates(out))
    assert found == truth | {("train-test", "tr4", "te16")}
    meta = json.loads((tmp_path / "d.meta.json").read_text())
    assert meta["folders"]["train"]["n_files"] == 24 and meta["max_distance"] == 8
    assert meta["images"]["test"] == {"images": 10, "near_blank": 2}


def test_corrupt_png_is_one_line_naming_the_file(planted, tmp_path, capsys):
    from hpa_ens.commands._cli import run

    train, test, _ = planted
    (test / "te_a_green.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "d.csv"
    code = run(dedup_command.main, ["--train-dir", str(train), "--test-dir", str(test), "--out", str(out), "--n-jobs", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "te_a_green.png" in err and "cannot decode" in err
    assert not out.exists()


def test_same_picture_at_another_resolution_is_an_exact_twin(tmp_path):
    """HPAv18 images are larger than Kaggle's: a 4x upsampled copy has the same block means, distance 0."""
    base = _smooth_images(np.random.default_rng(8), 3, size=64)
    for k in range(3):
        _write(tmp_path / "train", f"tr{k}", base[k])
    _write(tmp_path / "ext", "big", np.repeat(np.repeat(base[1], 4, axis=1), 4, axis=2))  # 256 px
    sets = {name: dedup.compute_hashes(tmp_path / name)[:2] for name in ("train", "ext")}
    pairs = dedup.find_duplicates({"train": sets["train"], "external": sets["ext"]}, ["external-train"], 8)
    assert pairs[["Id_a", "Id_b", "distance"]].values.tolist() == [["big", "tr1", 0]]
    small = np.stack([dedup.downscale(i) for i in base])
    for got, want in zip(dedup.hash_small_images(small), dedup.hash_images(base)):
        np.testing.assert_array_equal(got, want)


def test_compute_hashes_reports_progress_per_set_and_skips_it_when_cached(tmp_path):
    for k, image in enumerate(_smooth_images(np.random.default_rng(9), 3, size=32)):
        _write(tmp_path / "train", f"tr{k}", image)
    calls, cache = [], {}
    dedup.compute_hashes(tmp_path / "train", cache=cache, description="train", batch_size=2,
                         progress=lambda *c: calls.append(c))
    assert calls == [(0, 3, "train (0 cached)"), (2, 3, "train (0 cached)"), (3, 3, "train (0 cached)")]
    calls.clear()
    dedup.compute_hashes(tmp_path / "train", cache=cache, progress=lambda *c: calls.append(c))
    assert calls == []  # nothing to hash: no progress to report


def test_run_dedup_refuses_bad_parameters_before_reading_an_image(tmp_path):
    from hpa_ens.validation import ParameterError

    folders = {"train": tmp_path / "nowhere", "test": tmp_path / "nowhere"}
    with pytest.raises(ParameterError, match="'kinds' parameter of run_dedup asks for 'external-test'.*'external'"):
        dedup.run_dedup(folders, ["external-test"])
    with pytest.raises(ParameterError, match="'max_distance' parameter of run_dedup"):
        dedup.run_dedup(folders, ["train-test"], max_distance=65)
    with pytest.raises(ParameterError, match="'cache' parameter of run_dedup"):
        dedup.run_dedup(folders, ["train-test"], cache_path=tmp_path / "c.npy")
