"""benchmarks/shift_candidate.py: the candidate rule `simulated` computes what its docstring and the held-out log say."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hpa_ens import thresholds as T
from hpa_ens.thresholds import exact_thresholds, logit_blend, match_thresholds

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import shift_candidate as SC  # noqa: E402


def _brute_one_se(per_rep: np.ndarray) -> float:
    """The one-standard-error choice, written out weight by weight."""
    reps, n_w = per_rep.shape
    means = [per_rep[:, j].mean() for j in range(n_w)]
    best = max(range(n_w), key=lambda j: means[j])
    chosen = 0
    for j in range(n_w):
        diff = [per_rep[r, j] - per_rep[r, best] for r in range(reps)]
        mean = sum(diff) / reps
        se = (sum((d - mean) ** 2 for d in diff) / (reps - 1)) ** 0.5 / reps ** 0.5
        if mean >= -se:
            chosen = j
    return SC.GRID[chosen]


@pytest.mark.parametrize("seed", range(20))
def test_one_se_weight_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    per_rep = rng.normal(size=(int(rng.integers(3, 30)), len(SC.GRID))) * rng.random() + rng.normal(size=len(SC.GRID))
    assert SC.one_se_weight(per_rep) == _brute_one_se(per_rep)


def test_one_se_weight_leans_to_the_exact_cut_only_within_the_noise():
    steady = np.tile([5.0, 4.0, 3.0, 2.0, 1.0], (20, 1)) + np.linspace(0, 1e-3, 20)[:, None]
    assert SC.one_se_weight(steady) == 0.0  # the matched cut wins every repetition by far
    noisy = np.random.default_rng(0).normal(size=(20, 5)) + [0.05, 0.04, 0.03, 0.02, 0.0]
    assert SC.one_se_weight(noisy) == 1.0  # differences far inside the noise: the cut that trusts nothing


def _set(n, n_test, seed, signal):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < [0.3, 0.15, 0.08]).astype(np.uint8)
    oof = np.clip(signal * y + (1 - signal) * rng.random(y.shape), 0, 1)
    yt = (rng.random((n_test, 3)) < [0.15, 0.3, 0.04]).astype(np.uint8)
    test = np.clip(signal * yt + (1 - signal) * rng.random(yt.shape), 0, 1)
    return oof, y, test, yt.mean(axis=0)


def test_simulated_f1_is_seeded_and_shaped():
    oof, y, test, target = _set(400, 200, 0, 0.5)
    a = SC.simulated_f1(oof, y, len(test), target, reps=4, seed=1)
    b = SC.simulated_f1(oof, y, len(test), target, reps=4, seed=1)
    c = SC.simulated_f1(oof, y, len(test), target, reps=4, seed=2)
    assert a.shape == (4, len(SC.GRID))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert ((a >= 0) & (a <= 3)).all()  # F1 summed over 3 classes


def test_simulated_f1_of_separable_scores_is_perfect_at_every_weight():
    # Positives score above 0.55, negatives below 0.45: every cut between the two clouds is right, and both the
    # exact and the matched cut (announced share = the drawn share) lie there.
    oof, y, test, target = _set(600, 300, 1, 0.55)
    per_rep = SC.simulated_f1(oof, y, len(test), target, reps=3, seed=0)
    np.testing.assert_allclose(per_rep, 3.0)


def test_registered_rule_is_the_blend_at_the_simulated_weight():
    SC.register()
    SC.register()  # twice: no second registration
    assert "simulated" in T.available_rules(include_legacy=True)
    assert "simulated" not in T.available_rules()  # a candidate, off the documented menu
    oof, y, test, target = _set(500, 250, 2, 0.4)
    thr, info = T.choose("simulated", oof, y, test, target, seed=3, reps=6)
    w = SC.one_se_weight(SC.simulated_f1(oof, y, len(test), target, reps=6, seed=3))
    expected = logit_blend(exact_thresholds(y, oof)[0], match_thresholds(test, target), np.full(3, w))
    np.testing.assert_allclose(thr, expected)
    np.testing.assert_array_equal(info["info"]["trust_weight"], np.full(3, w))
    # with a probe's row count the announced shares in the simulation are noisy: another draw, same shape
    thr_n, _ = T.choose("simulated", oof, y, test, target, seed=3, reps=6, target_n=50)
    assert thr_n.shape == (3,)
