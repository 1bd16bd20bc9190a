"""hpa_ens.images.otsu_threshold: the one Otsu threshold of cell segmentation and the feature model.

The two implementations it replaced are kept below, verbatim, as oracles: each caller's settings must give
exactly (==, not approximately) the threshold its old implementation gave, on real HPA channels and on
synthetic images, so the nuclei, cells and features computed from them keep their bytes.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hpa_ens.images import otsu_threshold, read_channel


def segment_otsu_before(values: np.ndarray, bins: int = 256) -> float:
    """base_models/segment.py:otsu_threshold before the merge (np.histogram on the data range, run middle)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return hi
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float((edges[1:][best[0]] + edges[1:][best[-1]]) / 2)


def features_otsu_before(values: np.ndarray, bins: int = 256) -> float:
    """base_models/features.py:otsu_threshold before the merge (256 fixed bins on [0, 1], first argmax)."""
    hist = np.bincount(np.clip((values.ravel() * (bins - 1)).round().astype(np.int64), 0, bins - 1), minlength=bins)
    centers = np.arange(bins) / (bins - 1)
    w0 = np.cumsum(hist)[:-1].astype(np.float64)
    w1 = hist.sum() - w0
    m0 = np.cumsum(hist * centers)[:-1]
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] + hist[-1] * centers[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    k = int(np.argmax(between))
    return float((centers[k] + centers[k + 1]) / 2)


def _segment_inputs(channel: np.ndarray) -> list[np.ndarray]:
    """What segment_nuclei / segment_cells threshold: smoothed float32 channels (and the raw one)."""
    f = channel.astype(np.float32)
    return [channel, ndimage.gaussian_filter(f, 1.5), ndimage.gaussian_filter(f + f[::-1], 1.5),
            ndimage.gaussian_filter(f[::4, ::4], 1.5)]


def _feature_inputs(channel: np.ndarray) -> list[np.ndarray]:
    """What the feature model's cells feature thresholds: a smoothed float32 channel in [0, 1]."""
    f = channel.astype(np.float32) / 255.0
    return [ndimage.gaussian_filter(f, 1.0), ndimage.gaussian_filter(f[::4, ::4], 1.0), f]


def _assert_both_callers_unchanged(channels) -> int:
    n = 0
    for channel in channels:
        if channel.max() == channel.min():
            continue
        for values in _segment_inputs(channel):
            assert otsu_threshold(values) == segment_otsu_before(values)
            assert otsu_threshold(values, bins=64) == segment_otsu_before(values, bins=64)
            n += 1
        for values in _feature_inputs(channel):
            assert otsu_threshold(values, binning="unit", ties="first") == features_otsu_before(values)
            assert otsu_threshold(values, 64, "unit", "first") == features_otsu_before(values, 64)
            n += 1
    return n


def test_both_callers_keep_their_thresholds_on_real_hpa_channels(shared_hpa):
    paths = sorted((shared_hpa / "images").glob("*.png"))
    assert len(paths) >= 20
    assert _assert_both_callers_unchanged(read_channel(p) for p in paths) >= 7 * 20


def test_both_callers_keep_their_thresholds_on_synthetic_images(tmp_path):
    from hpa_ens.images import read_image
    from hpa_ens.synth import generate

    generate(tmp_path / "synth", 6, 2, size=96, seed=3, n_jobs=1)
    ids = [p.name[: -len("_blue.png")] for p in sorted((tmp_path / "synth" / "train").glob("*_blue.png"))]
    channels = [c for i in ids for c in read_image(tmp_path / "synth" / "train", i)]
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (40, 40)).astype(np.uint8) for _ in range(4)]
    assert _assert_both_callers_unchanged(channels + noise) >= 7 * 24


def test_ties_and_edge_cases_of_the_old_implementations():
    # Two modes with an empty gap between them: every cut in the gap scores the same.
    gap = np.r_[np.full(50, 0.1), np.full(30, 0.8)].astype(np.float32)
    assert otsu_threshold(gap, binning="unit", ties="first") == features_otsu_before(gap)
    assert otsu_threshold(gap) == segment_otsu_before(gap)
    assert otsu_threshold(gap, binning="unit") == pytest.approx(0.45, abs=1 / 255)  # the middle of the gap
    assert features_otsu_before(gap) < 0.11  # the first cut: right after the lower mode
    # Values outside [0, 1] go to the end bins with the unit binning.
    wide = np.r_[np.linspace(-0.5, 0.2, 40), np.linspace(0.7, 1.6, 60)]
    assert otsu_threshold(wide, binning="unit", ties="first") == features_otsu_before(wide)
    # Integers, and a constant: nothing is above the value.
    ints = np.r_[np.full(10, 3), np.full(10, 200)]
    assert otsu_threshold(ints) == segment_otsu_before(ints)
    assert otsu_threshold(np.full(9, 7.0)) == segment_otsu_before(np.full(9, 7.0)) == 7.0
    assert otsu_threshold(np.full(9, 0.5), binning="unit") == 0.5


def test_otsu_separates_two_modes_and_refuses_bad_parameters():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(20, 3, 500), rng.normal(100, 5, 300)])
    assert 40 < otsu_threshold(values) < 80
    unit = np.clip(values / 120, 0, 1)
    assert 40 / 120 < otsu_threshold(unit, binning="unit") < 80 / 120
    with pytest.raises(ValueError, match="The 'binning' parameter of otsu_threshold must be one of range, unit"):
        otsu_threshold(values, binning="fixed")
    with pytest.raises(ValueError, match="The 'ties' parameter"):
        otsu_threshold(values, ties="last")
    with pytest.raises(ValueError, match="The 'bins' parameter"):
        otsu_threshold(values, bins=1)
