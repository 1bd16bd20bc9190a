"""Data exploration (hpa_ens.eda): label numbers, plots, index pages, streaming channel statistics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hpa_ens import channel_stats as CS
from hpa_ens import eda
from hpa_ens.commands import eda as eda_command
from hpa_ens.commands._cli import run
from hpa_ens.labels import write_labels


def _random_labels(n: int, n_classes: int = 28, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 0.3 * np.exp(-np.arange(n_classes) / 5.0) + 0.01
    return (rng.random((n, n_classes)) < p).astype(np.uint8)


def test_label_summary_matches_brute_force():
    Y = _random_labels(500, seed=1)
    s = eda.label_summary(Y)
    per_image = [int(r.sum()) for r in Y]
    assert s["n_images"] == 500
    assert s["n_single_label"] == sum(c == 1 for c in per_image)
    assert s["n_no_label"] == sum(c == 0 for c in per_image)
    assert s["labels_per_image"] == [per_image.count(k) for k in range(max(per_image) + 1)]
    assert s["mean_labels"] == pytest.approx(np.mean(per_image))
    for k in range(28):
        with_k = [i for i in range(500) if Y[i, k]]
        assert s["class_counts"][k] == len(with_k)
        alone = sum(per_image[i] == 1 for i in with_k)
        assert s["single_label_share"][k] == pytest.approx(alone / len(with_k) if with_k else 0.0)
    best = max((sum(Y[i, a] and Y[i, b] for i in range(500)), a, b) for a in range(28) for b in range(a + 1, 28))
    assert s["top_pairs"][0][2] == best[0]


def test_cooccurrence_is_row_normalised():
    Y = _random_labels(300, n_classes=6, seed=2)
    counts, given_row = eda.cooccurrence(Y)
    np.testing.assert_array_equal(counts, (Y.T.astype(int) @ Y.astype(int)))
    present = np.diag(counts) > 0
    np.testing.assert_allclose(np.diag(given_row)[present], 1.0)
    i, j = 0, 3
    assert given_row[i, j] == pytest.approx(((Y[:, i] == 1) & (Y[:, j] == 1)).sum() / Y[:, i].sum())


def test_merge_moments_equals_numpy_on_the_concatenation():
    rng = np.random.default_rng(0)
    parts = [rng.random(n) * s for n, s in ((10, 1.0), (1, 0.2), (500, 3.0), (37, 0.01))]
    acc = (0, 0.0, 0.0)
    for part in parts:
        acc = CS.merge_moments(acc, (part.size, part.mean(), ((part - part.mean()) ** 2).sum()))
    everything = np.concatenate(parts)
    assert acc[0] == everything.size
    assert acc[1] == pytest.approx(everything.mean(), rel=1e-12)
    assert np.sqrt(acc[2] / acc[0]) == pytest.approx(everything.std(), rel=1e-12)


def _write_images(folder, n_ids=5, size=12, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = {c: [] for c in ("red", "green", "blue", "yellow")}
    for i in range(n_ids):
        for c in pixels:
            arr = rng.integers(0, 256, size=(size, size), dtype=np.uint8) // (1 + "rgby".index(c[0]))
            Image.fromarray(arr, mode="L").save(folder / f"id{i}_{c}.png")
            pixels[c].append(arr.astype(np.float64) / 255.0)
    (folder / "notes.txt").write_text("not an image")
    return pixels


def test_channel_stats_streaming_matches_numpy_and_is_job_independent(tmp_path):
    pixels = _write_images(tmp_path / "img")
    one = CS.channel_stats(tmp_path / "img", n_jobs=1, chunk_size=3)
    two = CS.channel_stats(tmp_path / "img", n_jobs=2, chunk_size=2)
    assert one["channels"] == ["red", "green", "blue", "yellow"]
    assert one["n_images"] == 5 and one["size"] == 12 and one["n_files"] == [5, 5, 5, 5]
    for k, c in enumerate(one["channels"]):
        stacked = np.stack(pixels[c])
        assert one["mean"][k] == pytest.approx(stacked.mean(), rel=1e-12)
        assert one["std"][k] == pytest.approx(stacked.std(), rel=1e-12)
    np.testing.assert_allclose(one["mean"], two["mean"], rtol=1e-13)
    np.testing.assert_allclose(one["std"], two["std"], rtol=1e-13)
    subset = CS.channel_stats(tmp_path / "img", max_images=2, seed=1)
    assert subset["n_images"] == 2


def test_channel_stats_scales_16_bit_and_reports_mixed_sizes(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    arr16 = np.full((4, 6), 65535 // 2, dtype=np.uint16)
    Image.fromarray(arr16).save(folder / "a_red.png")
    Image.fromarray(np.full((4, 4), 51, dtype=np.uint8), mode="L").save(folder / "b_red.png")
    stats = CS.channel_stats(folder)
    # 16-bit -> uint8 as hpa_ens.images does everywhere: round(v * 255 / 65535) = 127, then / 255.
    as_uint8 = round((65535 // 2) * 255 / 65535)
    assert as_uint8 == 127
    expected = np.concatenate([np.full(24, as_uint8 / 255.0), np.full(16, 0.2)])
    assert stats["mean"][0] == pytest.approx(expected.mean())
    assert stats["n_files"] == [2, 0, 0, 0] and stats["size"] is None
    assert stats["sizes"] == [[4, 4, 1], [4, 6, 1]]


def test_cli_on_synthetic_labels_and_images(tmp_path):
    Y = _random_labels(60, seed=3)
    Y[Y.sum(axis=1) == 0, 1] = 1
    ids = [f"id{i}" for i in range(60)]
    write_labels(tmp_path / "train.csv", ids, Y)
    _write_images(tmp_path / "img", n_ids=3, size=8)
    out = tmp_path / "eda"
    assert run(eda_command.main, ["--labels", str(tmp_path / "train.csv"), "--images", str(tmp_path / "img"),
                          "--out", str(out), "--dpi", "30"]) == 0
    stats = json.loads((out / "channel_stats.json").read_text())
    assert set(stats) >= {"channels", "mean", "std", "n_images", "size"} and stats["n_images"] == 3
    for name in ("class_counts", "cooccurrence", "labels_per_image", "single_label_share"):
        with Image.open(out / f"{name}.png") as im:
            assert im.format == "PNG"
    assert not (out / "target_share.png").exists()
    md = (out / "index.md").read_text()
    assert "channel mean" in md and "class_counts.png" in md
    # Same input, same bytes (plots carry no timestamp).
    again = tmp_path / "eda2"
    assert run(eda_command.main, ["--labels", str(tmp_path / "train.csv"), "--out", str(again), "--dpi", "30"]) == 0
    for name in ("class_counts.png", "cooccurrence.png", "labels_per_image.png", "single_label_share.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes()


def test_cli_refuses_folder_without_images(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "x.txt").write_text("")
    assert run(eda_command.main, ["--images", str(tmp_path / "img"), "--out", str(tmp_path / "o")]) == 2
    assert "no images named" in capsys.readouterr().err


def test_real_labels_report(shared_hpa, tmp_path):
    out = tmp_path / "eda"
    assert run(eda_command.main, ["--labels", str(shared_hpa / "train.csv"), "--target-dist",
                          str(shared_hpa / "lb_label_distribution.csv"), "--out", str(out), "--dpi", "30"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    raw = pd.read_csv(shared_hpa / "train.csv")
    n_tokens = raw["Target"].str.split().str.len()
    assert summary["n_images"] == len(raw) == 31072
    assert summary["n_single_label"] == int((n_tokens == 1).sum()) == 15126  # the README's figure
    assert summary["max_labels"] == n_tokens.max()
    assert summary["class_counts"][27] == min(summary["class_counts"])
    lb = pd.read_csv(shared_hpa / "lb_label_distribution.csv")
    np.testing.assert_allclose(summary["target_share"], lb["lb"])
    np.testing.assert_allclose(summary["class_share"], lb["train"], rtol=1e-9)
    assert (out / "target_share.png").exists()
    html_text = (out / "index.html").read_text()
    assert "15,126" in html_text and "Rods &amp; rings" in html_text
    assert "15,126" in (out / "index.md").read_text()


# ------------------------------------------------------------ bad images, the contract, any K
from hpa_ens.contract.channel_stats import read_channel_stats, write_channel_stats  # noqa: E402
from hpa_ens.validation import ContractError  # noqa: E402


@pytest.mark.parametrize("n_jobs", ["1", "2"])
def test_corrupt_png_is_one_line_and_leaves_no_output_folder(tmp_path, capsys, n_jobs):
    Y = _random_labels(20, seed=5)
    Y[Y.sum(axis=1) == 0, 1] = 1
    write_labels(tmp_path / "train.csv", [f"id{i}" for i in range(20)], Y)
    _write_images(tmp_path / "img", n_ids=6, size=8)
    (tmp_path / "img" / "id4_blue.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    out = tmp_path / "eda"
    code = run(eda_command.main, ["--labels", str(tmp_path / "train.csv"), "--images", str(tmp_path / "img"),
                          "--out", str(out), "--n-jobs", n_jobs])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "id4_blue.png" in err and "cannot decode" in err
    assert not out.exists()


def test_channel_stats_reads_jpg_and_goes_through_the_contract(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    for c, value in zip(("red", "green", "blue", "yellow"), (10, 60, 110, 200)):
        Image.fromarray(np.full((16, 16), value, dtype=np.uint8)).save(folder / f"x_{c}.jpg", quality=95)
    stats = CS.channel_stats(folder)
    np.testing.assert_allclose(stats["mean"], np.array([10, 60, 110, 200]) / 255, atol=2 / 255)
    assert stats["images"]["n_files"] == 4 and len(stats["images"]["listing_sha256"]) == 64
    stats["std"] = [0.01, 0.02, 0.03, 0.04]
    write_channel_stats(tmp_path / "cs.json", stats)
    back = read_channel_stats(tmp_path / "cs.json", channels=["green", "red"])
    assert back.channels == ("green", "red")
    np.testing.assert_allclose(back.std, [0.02, 0.01])
    np.testing.assert_allclose(back.mean, [stats["mean"][1], stats["mean"][0]])


@pytest.mark.parametrize("record, message", [
    ({"channels": ["red"], "mean": [0.1]}, "missing key"),
    ({"channels": ["red", "red"], "mean": [0.1, 0.1], "std": [0.1, 0.1], "n_images": 1}, "distinct"),
    ({"channels": ["red", "green"], "mean": [0.1], "std": [0.1, 0.1], "n_images": 1}, "'mean' must hold 2"),
    ({"channels": ["red"], "mean": [12.0], "std": [0.1], "n_images": 1}, "mean of channel 'red'"),
    ({"channels": ["red"], "mean": [0.1], "std": [float("nan")], "n_images": 1}, "std of channel 'red'"),
    ({"channels": ["red"], "mean": [0.1], "std": [0.1], "n_images": -1}, "n_images"),
])
def test_bad_channel_stats_are_refused_naming_the_file(tmp_path, record, message):
    path = tmp_path / "cs.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ContractError, match=message):
        read_channel_stats(path)
    with pytest.raises(ContractError, match=message):
        write_channel_stats(tmp_path / "out.json", record)
    assert not (tmp_path / "out.json").exists()


def test_channel_stats_read_refuses_absent_or_constant_channel(tmp_path):
    path = tmp_path / "cs.json"
    path.write_text(json.dumps({"channels": ["red", "green"], "mean": [0.1, 0.2], "std": [0.1, 0.0], "n_images": 3}))
    assert read_channel_stats(path).channels == ("red", "green")
    with pytest.raises(ContractError, match="std 0"):
        read_channel_stats(path, channels=["red", "green"])
    with pytest.raises(ContractError, match="no statistics for channel"):
        read_channel_stats(path, channels=["yellow"])
    path.write_text("{not json")
    with pytest.raises(ContractError, match="cs.json: not valid JSON"):
        read_channel_stats(path)


def test_array_channel_stats_equals_numpy_and_the_folder_version(tmp_path):
    pixels = _write_images(tmp_path / "img", n_ids=4, size=10)
    from_folder = CS.channel_stats(tmp_path / "img")
    cache = np.stack([np.stack([(pixels[c][i] * 255).round().astype(np.uint8) for c in pixels]) for i in range(4)])
    from_array = CS.array_channel_stats(cache, max_images=None)
    np.testing.assert_allclose(from_array["mean"], from_folder["mean"], rtol=1e-12)
    np.testing.assert_allclose(from_array["std"], from_folder["std"], rtol=1e-12)
    sub = CS.array_channel_stats(cache, max_images=2)  # evenly spaced rows 0 and 3
    np.testing.assert_allclose(sub["mean"][1], cache[[0, 3], 1].mean() / 255, rtol=1e-12)


def test_cli_on_a_k_class_task(tmp_path):
    (tmp_path / "task.csv").write_text("id,name\n0,alpha\n1,beta\n2,gamma\n")
    (tmp_path / "l.csv").write_text("Id,Target\na,0\nb,1 2\nc,\nd,2\n")
    out = tmp_path / "eda"
    from hpa_ens.labels import EmptyTargetWarning

    with pytest.warns(EmptyTargetWarning, match="1 of 4 rows have no label"):
        assert run(eda_command.main, ["--labels", str(tmp_path / "l.csv"), "--task", str(tmp_path / "task.csv"),
                              "--out", str(out), "--dpi", "30"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["class_counts"] == [1, 1, 2] and summary["n_no_label"] == 1
    assert summary["class_names"] == ["alpha", "beta", "gamma"]
    assert "2 gamma" in (out / "index.md").read_text()


def test_channel_stats_reports_progress_per_file(tmp_path):
    _write_images(tmp_path / "img", n_ids=5, size=6)
    calls = []
    CS.channel_stats(tmp_path / "img", chunk_size=3, progress=lambda *c: calls.append(c))
    assert calls == [(0, 20, "channel stats"), (3, 20, "channel stats"), (6, 20, "channel stats"),
                     (9, 20, "channel stats"), (12, 20, "channel stats"), (15, 20, "channel stats"),
                     (18, 20, "channel stats"), (20, 20, "channel stats")]


def test_array_channel_stats_floors_the_std_only_when_asked():
    cache = np.zeros((3, 2, 4, 4), dtype=np.uint8)
    cache[:, 1] = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10  # channel 0 is constant
    plain = CS.array_channel_stats(cache, channels=["a", "b"])
    floored = CS.array_channel_stats(cache, channels=["a", "b"], min_std=1e-3)
    assert plain["std"][0] == 0.0 and floored["std"][0] == 1e-3
    assert floored["std"][1] == plain["std"][1] == pytest.approx((np.arange(16) * 10 / 255).std(), rel=1e-12)
    with pytest.raises(ValueError, match="'min_std' parameter of array_channel_stats"):
        CS.array_channel_stats(cache, min_std=-1.0)


def test_base_models_normalisation_is_the_one_channel_stats_core():
    """base_models.data.channel_stats: evenly spaced images, std floored at 1e-3, numbers of the one core
    (the sums of pixels and of their squares it used before agree to rounding)."""
    pytest.importorskip("torch", reason="needs the [train] extra")
    from base_models.data import channel_stats as base_channel_stats

    rng = np.random.default_rng(11)
    cache = rng.integers(0, 256, size=(30, 4, 8, 8), dtype=np.uint8)
    cache[:, 3] = 7  # a constant channel: std floored
    mean, std = base_channel_stats(cache, max_images=12)
    rows = np.unique(np.linspace(0, 29, 12).astype(int))
    block = cache[rows].astype(np.float64) / 255.0
    want_mean = block.mean(axis=(0, 2, 3))
    want_std = np.sqrt(np.maximum((block ** 2).mean(axis=(0, 2, 3)) - want_mean ** 2, 0.0))
    np.testing.assert_allclose(mean, want_mean, rtol=1e-13)
    np.testing.assert_allclose(std[:3], want_std[:3], rtol=1e-12)
    assert std[3] == 1e-3
    record = CS.array_channel_stats(cache, max_images=12, min_std=1e-3)
    np.testing.assert_array_equal(mean, record["mean"])
    np.testing.assert_array_equal(std, record["std"])


def test_explore_refuses_parameters_it_would_ignore(tmp_path):
    from hpa_ens.validation import ParameterError

    with pytest.raises(ParameterError, match="'labels_path' parameter of explore"):
        eda.explore()
    _write_images(tmp_path / "img", n_ids=2, size=6)
    with pytest.raises(ParameterError, match="'target_dist' parameter of explore needs 'labels_path'"):
        eda.explore(images=tmp_path / "img", target_dist="lb.csv")
