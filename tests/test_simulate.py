"""Simulated base models (hpa_ens.testing.simulate)."""

import numpy as np

from hpa_ens.thresholds import exact_thresholds
from hpa_ens.testing.simulate import draw_toward_distribution, holdout_split, simple_folds, simulate_base_models


def _labels(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.4, 0.05, 0.1, 0.05, 0.06, 0.08, 0.03, 0.09, 0.01, 0.01, 0.01, 0.03, 0.02, 0.02,
                           0.03, 0.005, 0.02, 0.01, 0.03, 0.05, 0.01, 0.1, 0.03, 0.09, 0.02, 0.25, 0.03, 0.004])
    Y = (rng.random((n, 28)) < prevalence).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


def test_simulation_is_deterministic_and_valid():
    Y = _labels(800)
    a = simulate_base_models(Y, n_models=3, seed=5)
    b = simulate_base_models(Y, n_models=3, seed=5)
    assert a.shape == (3, 800, 28)
    assert np.array_equal(a, b)
    assert (a > 0).all() and (a < 1).all()
    assert not np.array_equal(a, simulate_base_models(Y, n_models=3, seed=6))


def test_simulation_is_realistic():
    Y = _labels(3000)
    probs = simulate_base_models(Y, n_models=4, seed=0)
    singles = [exact_thresholds(Y, p)[1].mean() for p in probs]
    blended = exact_thresholds(Y, probs.mean(0))[1].mean()
    assert 0.3 < min(singles) and max(singles) < 0.9
    assert blended > max(singles)  # models are partly independent: averaging helps
    at_half = np.mean([(2 * ((p > 0.5) & (Y == 1)).sum(0) / np.maximum((p > 0.5).sum(0) + Y.sum(0), 1)).mean()
                       for p in probs])
    assert at_half < max(singles)  # miscalibrated: 0.5 is not the best threshold
    # Look-alikes: lysosome scores rise on peroxisome images that are not lysosomes.
    mean = probs.mean(0)
    lookalike = (Y[:, 8] == 1) & (Y[:, 10] == 0)
    neither = (Y[:, 8] == 0) & (Y[:, 9] == 0) & (Y[:, 10] == 0)
    assert mean[lookalike, 10].mean() > 1.5 * mean[neither, 10].mean()


def test_draw_toward_distribution_moves_shares():
    Y = _labels(4000)
    target = Y.mean(0).copy()
    target[0], target[25] = 0.25, 0.40
    idx = draw_toward_distribution(Y, target, 1000, seed=0)
    assert len(np.unique(idx)) == 1000 and np.all(np.diff(idx) > 0)
    before = np.abs(Y.mean(0) - target).sum()
    after = np.abs(Y[idx].mean(0) - target).sum()
    assert after < 0.8 * before
    train, test = holdout_split(Y, 0.25, target, seed=0)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(Y)


def test_simple_folds_balanced():
    folds = simple_folds(103, 5, seed=2)
    assert sorted(np.bincount(folds)) == [20, 20, 21, 21, 21]
    assert np.array_equal(folds, simple_folds(103, 5, seed=2))
