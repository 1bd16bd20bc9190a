"""The threshold rule `simulated` (the default with a target): its simulation, its weight choice and the rule."""

from __future__ import annotations

import numpy as np
import pytest

from hpa_ens import thresholds as T
from hpa_ens.thresholds import (SIMULATION_GRID, exact_thresholds, logit_blend, match_thresholds, one_se_weight,
                                simulated_f1)
from hpa_ens.validation import ParameterError


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
    return SIMULATION_GRID[chosen]


@pytest.mark.parametrize("seed", range(20))
def test_one_se_weight_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    per_rep = rng.normal(size=(int(rng.integers(3, 30)), len(SIMULATION_GRID))) * rng.random() + rng.normal(size=len(SIMULATION_GRID))
    assert one_se_weight(per_rep) == _brute_one_se(per_rep)


def test_one_se_weight_leans_to_the_exact_cut_only_within_the_noise():
    steady = np.tile([5.0, 4.0, 3.0, 2.0, 1.0], (20, 1)) + np.linspace(0, 1e-3, 20)[:, None]
    assert one_se_weight(steady) == 0.0  # the matched cut wins every repetition by far
    noisy = np.random.default_rng(0).normal(size=(20, 5)) + [0.05, 0.04, 0.03, 0.02, 0.0]
    assert one_se_weight(noisy) == 1.0  # differences far inside the noise: the cut that trusts nothing


def _set(n, n_test, seed, signal):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < [0.3, 0.15, 0.08]).astype(np.uint8)
    oof = np.clip(signal * y + (1 - signal) * rng.random(y.shape), 0, 1)
    yt = (rng.random((n_test, 3)) < [0.15, 0.3, 0.04]).astype(np.uint8)
    test = np.clip(signal * yt + (1 - signal) * rng.random(yt.shape), 0, 1)
    return oof, y, test, yt.mean(axis=0)


def test_simulated_f1_is_seeded_and_shaped():
    oof, y, test, target = _set(400, 200, 0, 0.5)
    a = simulated_f1(y, oof, len(test), target, reps=4, seed=1)
    b = simulated_f1(y, oof, len(test), target, reps=4, seed=1)
    c = simulated_f1(y, oof, len(test), target, reps=4, seed=2)
    assert a.shape == (4, len(SIMULATION_GRID))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert ((a >= 0) & (a <= 3)).all()  # F1 summed over 3 classes


def test_simulated_f1_of_separable_scores_is_perfect_at_every_weight():
    # Positives score above 0.55, negatives below 0.45: every cut between the two clouds is right, and both the
    # exact and the matched cut (announced share = the drawn share) lie there.
    oof, y, test, target = _set(600, 300, 1, 0.55)
    per_rep = simulated_f1(y, oof, len(test), target, reps=3, seed=0)
    np.testing.assert_allclose(per_rep, 3.0)


def test_rule_is_the_blend_at_the_simulated_weight():
    assert T.default_method(True) == "checked" and "simulated" in T.available_rules()
    assert "simulated" in T.RULES and "no such rule" not in T.RULES  # membership, not the listing error
    oof, y, test, target = _set(500, 250, 2, 0.4)
    thr, report = T.choose("simulated", oof, y, test, target, seed=3, reps=6)
    w = one_se_weight(simulated_f1(y, oof, len(test), target, reps=6, seed=3))
    expected = logit_blend(exact_thresholds(y, oof)[0], match_thresholds(test, target), np.full(3, w))
    np.testing.assert_allclose(thr, expected)
    np.testing.assert_array_equal(report["info"]["trust_weight"], np.full(3, w))
    assert report["params"]["reps"] == 6 and report["params"]["target_n"] is None
    # with a probe's row count the simulation's announced shares are themselves probed
    probed = simulated_f1(y, oof, len(test), target, target_n=50, reps=6, seed=3)
    assert not np.array_equal(probed, simulated_f1(y, oof, len(test), target, reps=6, seed=3))
    thr_n, report_n = T.choose("simulated", oof, y, test, target, seed=3, reps=6, target_n=50)
    assert report_n["params"]["target_n"] == 50
    np.testing.assert_allclose(thr_n, logit_blend(exact_thresholds(y, oof)[0], match_thresholds(test, target),
                                                  np.full(3, one_se_weight(probed))))


def _shifted(seed, n_oof, n_test, signal):
    """OOF rows at train shares and test rows at far larger ones (a pure label shift), scores ``signal * y + noise``."""
    rng = np.random.default_rng(seed)

    def draw(n, shares):
        y = (rng.random((n, 4)) < shares).astype(np.uint8)
        return y, np.clip(signal * y + (1 - signal) * rng.random(y.shape), 0, 1)

    y, oof = draw(n_oof, [0.05, 0.1, 0.08, 0.04])
    yt, test = draw(n_test, [0.3, 0.35, 0.25, 0.3])
    return oof, y, test, yt


@pytest.mark.parametrize("seed", range(3))
def test_the_weight_leans_to_whichever_cut_scores_better_on_the_test_rows(seed):
    from hpa_ens.metrics import macro_f1

    def test_f1(cuts):
        return macro_f1(yt, (test > cuts).astype(np.uint8))

    # Few OOF rows, separable scores, many test rows: the exact cut is imprecise, the matched count exact.
    oof, y, test, yt = _shifted(seed, 300, 5000, 0.5)
    target = yt.mean(axis=0)
    assert test_f1(match_thresholds(test, target)) > test_f1(exact_thresholds(y, oof)[0])  # the oracle
    assert one_se_weight(simulated_f1(y, oof, len(test), target, seed=0)) <= 0.25
    # Many OOF rows, overlapping scores: the F1-best count is not the announced count, and the exact cut wins.
    oof, y, test, yt = _shifted(seed, 4000, 3000, 0.4)
    target = yt.mean(axis=0)
    assert test_f1(exact_thresholds(y, oof)[0]) > test_f1(match_thresholds(test, target)) + 0.01
    assert one_se_weight(simulated_f1(y, oof, len(test), target, seed=0)) >= 0.75


@pytest.mark.parametrize("kwargs, name", [(dict(n_test=0), "n_test"), (dict(reps=0), "reps"),
                                          (dict(pool_fraction=1.0), "pool_fraction"), (dict(target_n=0), "target_n")])
def test_simulated_f1_refuses_bad_settings_in_one_line(kwargs, name):
    oof, y, test, target = _set(100, 50, 0, 0.5)
    args = dict(n_test=50) | kwargs
    with pytest.raises(ParameterError, match=f"'{name}'") as err:
        simulated_f1(y, oof, args.pop("n_test"), target, **args)
    assert len(str(err.value).splitlines()) == 1 and "Got" in str(err.value)
    with pytest.raises(ParameterError, match="'per_rep'"):
        one_se_weight(np.ones((3, 4)))
