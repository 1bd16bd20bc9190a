"""The rule `checked` (the default with a target): `simulated` plus a per-class label-shift check."""

from __future__ import annotations

import numpy as np
import pytest

from hpa_ens import thresholds as T
from hpa_ens.thresholds import exact_thresholds, label_shift_z
from hpa_ens.validation import ParameterError


def _pools(rng, n=4000, K=3, share=0.3):
    """OOF rows whose positives score higher than their negatives, class by class."""
    y = (rng.random((n, K)) < share).astype(np.uint8)
    probs = np.clip(np.where(y == 1, rng.beta(5, 2, (n, K)), rng.beta(2, 5, (n, K))), 1e-4, 1 - 1e-4)
    return y, probs


def _label_shifted_test(rng, y, probs, target, n_test):
    """Test rows drawn from the OOF rows under a pure label shift: per class, Binomial(n_test, t) positives."""
    test = np.empty((n_test, y.shape[1]))
    for k, t in enumerate(target):
        n_pos = rng.binomial(n_test, t)
        pos, neg = probs[y[:, k] == 1, k], probs[y[:, k] == 0, k]
        test[:, k] = rng.permutation(np.concatenate([rng.choice(pos, n_pos), rng.choice(neg, n_test - n_pos)]))
    return test


def test_label_shift_z_is_standard_normal_under_a_label_shift():
    """Over many test draws that *are* a label shift to the announced share, z has mean ~0 and spread ~1 (the
    OOF means' own variance, fixed across the draws, makes it a little under 1)."""
    rng = np.random.default_rng(0)
    y, probs = _pools(rng, n=20000)
    target = np.array([0.1, 0.45, 0.7])
    zs = np.array([label_shift_z(y, probs, _label_shifted_test(rng, y, probs, target, 300), target)
                   for _ in range(400)])
    assert np.all(np.abs(zs.mean(axis=0)) < 0.15)
    assert np.all((zs.std(axis=0) > 0.85) & (zs.std(axis=0) < 1.1))


def test_label_shift_z_sees_test_scores_that_no_label_shift_gives():
    rng = np.random.default_rng(1)
    y, probs = _pools(rng)
    target = np.array([0.3, 0.3, 0.3])
    test = _label_shifted_test(rng, y, probs, target, 2000)
    test[:, 1] = np.clip(test[:, 1] + 0.1, 0, 1)  # class 1's test rows score higher than its OOF rows
    z = label_shift_z(y, probs, test, target)
    assert z[1] > 5 and np.all(np.abs(z[[0, 2]]) < 4)
    # The same test rows announced at the share their scores imply (more positives) agree again.
    implied = target.copy()
    implied[1] = (test[:, 1].mean() - probs[y[:, 1] == 0, 1].mean()) / (
        probs[y[:, 1] == 1, 1].mean() - probs[y[:, 1] == 0, 1].mean())
    assert abs(label_shift_z(y, probs, test, implied)[1]) < 1e-6


def test_label_shift_z_by_hand():
    """Two OOF positives, two negatives, one class: the formula written out."""
    y = np.array([[1], [1], [0], [0]])
    probs = np.array([[0.9], [0.7], [0.2], [0.4]])
    test = np.array([[0.8], [0.3], [0.6]])
    t = 0.25
    mp, mn, vp, vn = 0.8, 0.3, 0.01, 0.01
    var = (t * vp + (1 - t) * vn + t * (1 - t) * (mp - mn) ** 2) / 3 + t ** 2 * vp / 2 + (1 - t) ** 2 * vn / 2
    want = (test.mean() - (t * mp + (1 - t) * mn)) / np.sqrt(var)
    assert label_shift_z(y, probs, test, [t])[0] == pytest.approx(want, rel=1e-12)
    # An announced share from a probe of 10 rows is less certain: the same gap is fewer standard errors.
    var_n = var + (mp - mn) ** 2 * t * (1 - t) / 10
    assert label_shift_z(y, probs, test, [t], target_n=10)[0] == pytest.approx(
        want * np.sqrt(var / var_n), rel=1e-12)


def test_label_shift_z_without_positives_is_zero():
    y = np.array([[0, 1], [0, 0], [0, 1]])
    probs = np.array([[0.1, 0.9], [0.2, 0.1], [0.3, 0.8]])
    z = label_shift_z(y, probs, np.array([[0.9, 0.9]]), [0.5, 0.5])
    assert z[0] == 0.0 and z[1] != 0.0


def _case(seed=2, n_test=400):
    rng = np.random.default_rng(seed)
    y, probs = _pools(rng, n=3000, K=4)
    target = np.array([0.2, 0.5, 0.35, 0.1])
    return y, probs, _label_shifted_test(rng, y, probs, target, n_test), target


def test_checked_without_a_bound_is_simulated():
    y, probs, test, target = _case()
    want = T.choose("simulated", probs, y, test, target, seed=3)[0]
    got = T.choose("checked", probs, y, test, target, seed=3, check_z=np.inf)[0]
    np.testing.assert_array_equal(got, want)


def test_checked_keeps_the_exact_cut_where_the_test_scores_disagree():
    y, probs, test, target = _case()
    test[:, 2] = np.clip(test[:, 2] - 0.15, 1e-4, 1)  # class 2: scores no label shift to 0.35 gives
    thr, info = T.choose("checked", probs, y, test, target, seed=3)
    z = label_shift_z(y, probs, test, target)
    flagged = np.abs(z) > T.SHIFT_CHECK_Z
    assert flagged[2] and not flagged[[0, 1, 3]].any()
    assert thr[2] == exact_thresholds(y, probs)[0][2]
    simulated = T.choose("simulated", probs, y, test, target, seed=3)[0]
    np.testing.assert_array_equal(thr[~flagged], simulated[~flagged])
    np.testing.assert_array_equal(info["info"]["trust_weight"][flagged], 1.0)


def test_checked_is_the_default_with_a_target_and_says_what_it_flagged():
    y, probs, test, target = _case()
    test[:, 0] = np.clip(test[:, 0] + 0.2, 0, 1 - 1e-4)
    thr, report = T.choose(None, probs, y, test, target, seed=3)
    assert report["method"] == "checked" == T.resolve_method(None, has_target=True)
    info = report["info"]
    np.testing.assert_array_equal(info["shift_z"], label_shift_z(y, probs, test, target))
    np.testing.assert_array_equal(info["shift_flagged"], np.abs(info["shift_z"]) > T.SHIFT_CHECK_Z)
    assert info["shift_flagged"][0] and info["check_z"] == T.SHIFT_CHECK_Z


@pytest.mark.parametrize("bad", [0, -1.0, "2", True])
def test_checked_refuses_a_bad_bound_in_one_line(bad):
    y, probs, test, target = _case()
    with pytest.raises(ParameterError, match=r"The 'check_z' parameter must be a number > 0 or None \(no check\)\. "
                                             r"Got .* instead\."):
        T.choose("checked", probs, y, test, target, check_z=bad)


def test_checked_with_no_check_is_simulated():
    y, probs, test, target = _case()
    test[:, 2] = np.clip(test[:, 2] - 0.15, 1e-4, 1)
    np.testing.assert_array_equal(T.choose("checked", probs, y, test, target, seed=4, check_z=None)[0],
                                  T.choose("simulated", probs, y, test, target, seed=4)[0])


def test_label_shift_z_refuses_mismatched_columns():
    y, probs, test, target = _case()
    with pytest.raises(ParameterError, match="'test_probs'"):
        label_shift_z(y, probs, test[:, :2], target)
