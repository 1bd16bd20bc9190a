"""Label-shift threshold rules (hpa_ens.thresholds), the registry, the thresholds contract, and the command's paths."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from hpa_ens import thresholds as T
from hpa_ens.validation import ContractError, ParameterError
from hpa_ens.commands._cli import run
from hpa_ens.commands.thresholds import main
from hpa_ens.contract import probs_frame, write_prediction_set
from hpa_ens.contract.thresholds import (ThresholdsRecord, check_share_estimable, check_thresholds_match,
                                         read_target_shares, read_thresholds, write_thresholds)
from hpa_ens.io import sha256_file
from hpa_ens.labels import write_labels
from hpa_ens.task import Task, load_task
from hpa_ens.testing.label_noise import simulate_label_noise_models
from hpa_ens.thresholds import Posterior, apply_thresholds, no_positive_rule, open_storage, resolve_method

REPO = Path(__file__).resolve().parents[1]


def _data(n=600, K=4, seed=0, prevalence=(0.05, 0.15, 0.3, 0.5)):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, K)) < np.asarray(prevalence)[:K]).astype(np.uint8)
    probs = np.clip(0.35 * y + 0.65 * rng.random((n, K)), 0, 1)
    return y, probs


# ---------------------------------------------------------------------------------- bootstrap cuts
def test_bootstrap_cuts_full_sample_equals_exact():
    y, probs = _data()
    boot = T.bootstrap_cuts(y, probs, n_boot=5, seed=1)
    np.testing.assert_array_equal(boot.exact, T.exact_thresholds(y, probs)[0])
    # The same target as the rows' own shares re-weights nothing.
    same = T.bootstrap_cuts(y, probs, n_boot=5, seed=1, target_share=y.mean(0))
    np.testing.assert_array_equal(same.exact, boot.exact)
    np.testing.assert_array_equal(same.median, boot.median)
    assert (boot.spread >= 0).all()


def test_reweighted_cut_maximises_sklearn_weighted_f1():
    y, probs = _data(n=300, seed=3)
    target = np.array([0.2, 0.05, 0.6, 0.3])
    boot = T.bootstrap_cuts(y, probs, n_boot=1, target_share=target)
    train = y.mean(0)
    for k in range(y.shape[1]):
        w = np.where(y[:, k] == 1, target[k] / train[k], (1 - target[k]) / (1 - train[k]))
        best = max(f1_score(y[:, k], probs[:, k] > t, sample_weight=w, zero_division=0)
                   for t in np.concatenate([np.unique(probs[:, k]), [-1.0, 1.0]]))
        got = f1_score(y[:, k], probs[:, k] > boot.exact[k], sample_weight=w, zero_division=0)
        assert got == pytest.approx(best)


def test_bootstrap_median_is_seeded_and_class_without_positives_never():
    y, probs = _data(seed=2)
    y[:, 0] = 0
    a = T.bootstrap_cuts(y, probs, n_boot=20, seed=4)
    b = T.bootstrap_cuts(y, probs, n_boot=20, seed=4)
    np.testing.assert_array_equal(a.median, b.median)
    assert a.median[0] == T.NEVER


# ---------------------------------------------------------------------------------- prior shift
def test_adjust_priors_identity_and_round_trip():
    p = np.random.default_rng(0).random((50, 3))
    old, new = np.array([0.2, 0.5, 0.7]), np.array([0.05, 0.5, 0.9])
    np.testing.assert_allclose(T.adjust_priors(p, old, old), p)
    np.testing.assert_allclose(T.adjust_priors(T.adjust_priors(p, old, new), new, old), p, atol=1e-12)
    # Bayes' rule by hand for one value.
    q = T.adjust_priors(np.array([[0.5, 0.5, 0.5]]), old, new)[0, 0]
    assert q == pytest.approx(0.5 * 0.05 / 0.2 / (0.5 * 0.05 / 0.2 + 0.5 * 0.95 / 0.8))


def test_em_recovers_a_known_prior_shift():
    rng = np.random.default_rng(0)
    train_prior, test_prior = 0.3, 0.08
    y = rng.random(20000) < test_prior
    x = rng.normal(np.where(y, 1.5, -1.5), 1.0)
    # Exact posterior under the train prior (calibrated for it).
    lik = np.exp(-0.5 * (x - 1.5) ** 2) / (np.exp(-0.5 * (x - 1.5) ** 2) + np.exp(-0.5 * (x + 1.5) ** 2))
    p = lik * train_prior / (lik * train_prior + (1 - lik) * (1 - train_prior))
    with warnings.catch_warnings():
        warnings.simplefilter("error", T.EMConvergenceWarning)  # converges: not a word
        est = T.em_priors(p[:, None], np.array([train_prior]))
    assert est[0] == pytest.approx(y.mean(), abs=0.01)


def _weak_probs(seed=0):
    """Probabilities that barely tell the classes apart: EM's fixed point pulls slowly (still moving after 200)."""
    return np.clip(0.3 + 0.05 * np.random.default_rng(seed).standard_normal((500, 1)), 0.01, 0.99)


def test_em_that_stops_before_converging_warns_with_count_and_last_change():
    p = _weak_probs()
    # the iterates by hand: the estimate is the 200th, the last change the step from the 199th
    iterates = [np.array([0.3])]
    for _ in range(200):
        iterates.append(np.clip(T.adjust_priors(p, [0.3], iterates[-1]).mean(axis=0), 1e-6, 1 - 1e-6))
    last = abs(iterates[-1][0] - iterates[-2][0])
    assert last > 1e-7
    with pytest.warns(T.EMConvergenceWarning, match=re.escape(
            f"did not converge in 200 iterations: the last one still moved the estimated test shares by {last:.3g} "
            "(class 0; tol 1e-07)")):
        est = T.em_priors(p, [0.3])
    np.testing.assert_array_equal(est, iterates[-1])
    with pytest.warns(T.EMConvergenceWarning, match=r"in 3 iterations: .* by 0\.00[0-9]+ \(class 0; tol 1e-07\)"):
        T.em_priors(p, [0.3], max_iter=3)
    # given the iterations, it settles far from where it stopped: the warning was due
    with warnings.catch_warnings():
        warnings.simplefilter("error", T.EMConvergenceWarning)
        settled = T.em_priors(p, [0.3], max_iter=5000)
    assert abs(settled[0] - est[0]) > 0.01
    for bad, match in [(dict(max_iter=0), "'max_iter' parameter of em_priors must be an int >= 1. Got 0"),
                       (dict(tol=0.0), "'tol' parameter of em_priors must be a float > 0. Got 0.0")]:
        with pytest.raises(ParameterError, match=match):
            T.em_priors(p, [0.3], **bad)


def test_cli_unconverged_em_is_one_warning_line_and_a_note(tmp_path, capsys):
    """plugin without a target estimates the test shares by EM; when it stops early the command says so once."""
    K, n, n_test = 28, 150, 90
    rng = np.random.default_rng(0)
    y = (rng.random((n, K)) < np.linspace(0.04, 0.4, K)).astype(np.uint8)
    y[np.arange(n), rng.integers(0, K, n)] = 1
    ids, test_ids = [f"tr{i}" for i in range(n)], [f"te{i}" for i in range(n_test)]
    oof = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1)
    test = 0.45 + 0.1 * rng.random((n_test, K))  # a narrow band: calibrated, it barely moves the shares
    write_labels(tmp_path / "train.csv", ids, y)
    write_prediction_set(tmp_path / "pred", probs_frame(ids, oof), probs_frame(test_ids, test), {"name": "toy"})
    out = tmp_path / "thr.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error", T.EMConvergenceWarning)  # the command turns it into its own line
        assert run(main, ["--labels", str(tmp_path / "train.csv"), "--pred", str(tmp_path / "pred"), "--out", str(out),
                          "--method", "plugin"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "em_priors" in line]
    assert len(lines) == 1
    assert lines[0].startswith("warning: em_priors did not converge in 200 iterations: the last one still moved "
                               "the estimated test shares by ")
    assert read_thresholds(out).report["warnings"] == [lines[0].removeprefix("warning: ")]


def test_plugin_maximises_expected_f1_brute_force():
    rng = np.random.default_rng(5)
    test = rng.random((40, 2))
    q = test ** 2  # a monotone "calibration"
    thr = T.plugin_thresholds(test, q)
    for k in range(2):
        def expected(t):
            pred = test[:, k] > t
            return 2 * q[pred, k].sum() / (pred.sum() + q[:, k].sum())
        best = max(expected(t) for t in np.concatenate([test[:, k], [1.0]]))
        assert expected(thr[k]) == pytest.approx(best)


def test_trust_blend_weights():
    oof, matched = np.array([0.2, 0.2, 0.2]), np.array([0.6, 0.6, 0.6])
    thr, w = T.trust_blend(oof, [0.0, 10.0, 0.0], matched, [0.0, 0.0, 10.0], floor=0.25)
    assert w[0] == pytest.approx(0.5)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert logit(thr[0]) == pytest.approx((logit(0.2) + logit(0.6)) / 2)
    assert thr[1] == pytest.approx(0.6, abs=1e-3) and thr[2] == pytest.approx(0.2, abs=1e-3)


def test_gated_blend_shut_without_shift_open_with_it():
    oof, matched = np.array([0.2, 0.2]), np.array([0.6, 0.6])
    spread = np.zeros(2)
    train = np.array([0.1, 0.1])
    thr, w = T.gated_blend(oof, spread, matched, spread, train, np.array([0.1, 0.5]))
    assert thr[0] == 0.2 and w[0] == 1.0  # no announced shift: the OOF cut, bit for bit
    blend, _ = T.trust_blend(oof, spread, matched, spread, T.GATED_FLOOR)
    gate = 1 - np.exp(-abs(np.log(0.5 / 0.5) - np.log(0.1 / 0.9)) / T.GATE_SCALE)
    assert w[1] == pytest.approx(1 - gate * 0.5) and gate > 0.999
    assert thr[1] == pytest.approx(blend[1], abs=1e-6)


def test_directional_blend_is_gated_where_the_share_rises_and_leans_on_match_where_it_falls():
    oof, matched = np.array([0.2, 0.2, 0.2, 0.2]), np.array([0.6, 0.6, 0.05, 0.05])
    spread = np.array([0.3, 0.0, 0.2, 0.0])
    train = np.array([0.1, 0.1, 0.1, 0.1])
    target = np.array([0.1, 0.3, 0.05, 0.001])  # unshifted, rises, falls a little, falls a lot
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    thr, w = T.directional_blend(oof, spread, matched, spread, train, target)
    gated, w_gated = T.gated_blend(oof, spread, matched, spread, train, target)
    np.testing.assert_array_equal(thr[:2], gated[:2])  # no fall: exactly gated (the OOF cut when unshifted)
    np.testing.assert_array_equal(w[:2], w_gated[:2])
    assert thr[0] == 0.2
    d = np.abs(logit(target[2:]) - logit(train[2:]))
    np.testing.assert_allclose(w[2:], np.exp(-d / T.FALL_SCALE))
    np.testing.assert_allclose(logit(thr[2:]), w[2:] * logit(0.2) + (1 - w[2:]) * logit(0.05), rtol=1e-9)
    assert w[3] < 0.001 < w[2] < w_gated[2]  # a large fall: (almost) the matched cut, beyond gated's trust cap
    with pytest.raises(ParameterError, match="fall_scale"):
        T.directional_blend(oof, spread, matched, spread, train, target, fall_scale=0.0)


def test_share_logit_se_is_the_probe_sampling_error_on_the_logit_scale():
    np.testing.assert_allclose(T.share_logit_se([0.5, 0.1, 0.01], 400),
                               [1 / np.sqrt(400 * p * (1 - p)) for p in (0.5, 0.1, 0.01)])
    # Delta method: sd of the logit of a binomial share, by simulation, for a share well inside (0, 1).
    rng = np.random.default_rng(0)
    share = rng.binomial(2000, 0.2, size=20000) / 2000
    assert np.std(np.log(share / (1 - share))) == pytest.approx(T.share_logit_se([0.2], 2000)[0], rel=0.03)
    np.testing.assert_array_equal(T.share_logit_se([0.3, 0.2]), [0.0, 0.0])  # no probe: exact shares
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ParameterError, match="'target_n'.*Got"):
            T.share_logit_se([0.3], bad)


def test_bootstrap_share_is_the_f1_best_count_under_the_target():
    rng = np.random.default_rng(11)
    n = 2000
    y = (rng.random((n, 2)) < [0.3, 0.3]).astype(np.uint8)
    probs = np.column_stack([np.where(y[:, 0] == 1, 0.6 + 0.4 * rng.random(n), 0.5 * rng.random(n)),  # separable
                             1 / (1 + np.exp(-rng.normal(0.5 * y[:, 1], 1.0)))])  # weak: best count >> positives
    train = y.mean(0)
    target = np.array([0.1, 0.1])
    boot = T.bootstrap_cuts(y, probs, n_boot=30, seed=2, train_share=train, target_share=target)
    # A separable class: the best cut predicts exactly its positives, i.e. the target share of the re-weighted rows.
    assert boot.share[0] == pytest.approx(0.1, rel=0.05)
    # A weak class predicts more rows than it has positives, further so at a lower share (F1 rewards recall).
    assert boot.share[1] > 2 * target[1]
    # Without re-weighting, the separable class's best share is its own share; the cuts are unchanged by ``share``.
    plain = T.bootstrap_cuts(y, probs, n_boot=30, seed=2)
    assert plain.share[0] == pytest.approx(train[0], rel=0.05)
    np.testing.assert_array_equal(plain.exact, T.exact_thresholds(y, probs)[0])
    y[:, 1] = 0
    assert T.bootstrap_cuts(y, probs, n_boot=5).share[1] == 0.0  # no positives: no count


def test_trusted_blend_discounts_matching_by_the_count_error():
    oof, matched = np.full(5, 0.2), np.array([0.6, 0.05, 0.05, 0.05, 0.6])
    spread = np.array([0.3, 0.2, 0.0, 0.0, 0.1])
    train = np.full(5, 0.1)
    target = np.array([0.3, 0.05, 0.01, 0.01, 0.1])  # rises, falls, falls a lot (twice), unshifted
    _, w_dir = T.directional_blend(oof, spread, matched, spread, train, target)
    # The F1-best count equals the announced count: exactly directional's weights.
    thr, w = T.trusted_blend(oof, spread, matched, spread, train, target, best_share=target)
    np.testing.assert_allclose(w, w_dir, rtol=0, atol=1e-15)
    np.testing.assert_allclose(thr, T.directional_blend(oof, spread, matched, spread, train, target)[0], rtol=1e-12)
    # A best count 2x (or 1/2 of) the announced one: the matched weight times exp(-log 2 / COUNT_SCALE).
    best = target * np.array([2.0, 0.5, 1.0, 3.0, 2.0])
    thr, w = T.trusted_blend(oof, spread, matched, spread, train, target, best_share=best)
    b = np.abs(np.log(best / target))
    np.testing.assert_allclose(1 - w, (1 - w_dir) * np.exp(-b / T.COUNT_SCALE), rtol=1e-12)
    assert w[3] > w[2]  # same fall, the class whose best count is 3x the announced one keeps more of its OOF cut
    assert thr[4] == 0.2 and w[4] == 1.0  # unshifted: the OOF cut, bit for bit, whatever the count
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(logit(thr[:4]), w[:4] * logit(0.2) + (1 - w[:4]) * logit(matched[:4]), rtol=1e-9)
    # A best cut that predicts nothing gives no count to trust: the OOF cut.
    thr, w = T.trusted_blend(oof, spread, matched, spread, train, target, best_share=np.zeros(5))
    assert (w == 1.0).all() and (thr == 0.2).all()
    with pytest.raises(ParameterError, match="'count_scale'.*Got 0"):
        T.trusted_blend(oof, spread, matched, spread, train, target, target, count_scale=0)


def test_trusted_blend_trusts_a_probed_share_only_beyond_its_sampling_error():
    oof, matched, spread = np.full(3, 0.2), np.full(3, 0.05), np.zeros(3)
    train = np.full(3, 0.2)
    target = np.array([0.19, 0.05, 0.05])  # a fall inside a small probe's noise; a large fall (twice)
    exact_shares = T.trusted_blend(oof, spread, matched, spread, train, target, target)[1]
    _, w = T.trusted_blend(oof, spread, matched, spread, train, target, target, target_n=100)
    se = T.share_logit_se(target, 100)
    assert se[0] > 0.2 > abs(np.log(0.19 / 0.81) - np.log(0.2 / 0.8))
    assert 1 - w[0] < 0.1 * (1 - exact_shares[0])  # the small fall is mostly noise: (almost) no matching
    # A large fall is trusted, less by the matched count's own error: the weight times exp(-se / COUNT_SCALE).
    d = np.log(0.05 / 0.95) - np.log(0.2 / 0.8)
    shrunk = 1 / (1 + np.exp(-(np.log(0.2 / 0.8) + d ** 3 / (d ** 2 + se[1] ** 2))))
    w_dir = T.directional_blend(oof, spread, matched, spread, train, np.array([shrunk]))[1]
    np.testing.assert_allclose(1 - w[1], (1 - w_dir[0]) * np.exp(-se[1] / T.COUNT_SCALE), rtol=1e-12)
    # A huge probe is (almost) the exact shares.
    np.testing.assert_allclose(T.trusted_blend(oof, spread, matched, spread, train, target, target,
                                               target_n=10 ** 12)[1], exact_shares, atol=1e-4)
    with pytest.raises(ParameterError, match="'target_n'"):
        T.trusted_blend(oof, spread, matched, spread, train, target, target, target_n=0)


def test_trusted_rule_keeps_a_weak_class_off_the_matched_count():
    """Planted: two classes whose share falls from 0.3 to 0.1; one separable, one weak. ``directional`` matches
    both; ``trusted`` matches the separable one (its best count is the announced count) and keeps the weak one
    near its OOF cut (its best count is far above the announced one)."""
    rng = np.random.default_rng(5)
    n, n_test = 3000, 1500
    def draw(rows, share):
        y = (rng.random((rows, 2)) < share).astype(np.uint8)
        p = np.column_stack([np.where(y[:, 0] == 1, 0.55 + 0.45 * rng.random(rows), 0.5 * rng.random(rows)),
                             1 / (1 + np.exp(-rng.normal(0.5 * y[:, 1], 1.0)))])
        return y, p
    y, oof = draw(n, 0.3)
    yt, test = draw(n_test, 0.1)
    target = yt.mean(0)
    cuts, report = T.choose("trusted", oof, y, test, target, n_boot=20, seed=0)
    _, dir_report = T.choose("directional", oof, y, test, target, n_boot=20, seed=0)
    w, w_dir = report["info"]["trust_weight"], dir_report["info"]["trust_weight"]
    assert w[0] == pytest.approx(w_dir[0], abs=0.05)  # separable: best count = announced count, as directional
    assert report["info"]["best_share"][1] > 2 * target[1] and w[1] > w_dir[1] + 0.3  # weak: mostly its OOF cut
    f1 = lambda thr: f1_score(yt[:, 1], test[:, 1] > thr, zero_division=0)  # noqa: E731
    assert f1(cuts[1]) > f1(T.choose("directional", oof, y, test, target, n_boot=20, seed=0)[0][1])
    # target_n goes to the rule (and only to rules that take it).
    noisy, noisy_report = T.choose("trusted", oof, y, test, target, n_boot=20, seed=0, target_n=50)
    assert (noisy_report["info"]["trust_weight"] >= w - 1e-12).all() and noisy_report["params"]["target_n"] == 50
    with pytest.raises(ParameterError, match="'target_n' parameter of choose\\('directional'\\)"):
        T.choose("directional", oof, y, test, target, target_n=50)


@pytest.mark.parametrize("method", T.available_rules(include_legacy=True))
def test_every_rule_returns_valid_thresholds(method):
    y, probs = _data(seed=7)
    test = _data(n=300, seed=8)[1]
    thr, _ = T.choose(method, probs, y, test, np.array([0.1, 0.1, 0.2, 0.4]), n_boot=10)
    assert thr.shape == (4,) and np.isfinite(thr).all() and ((thr >= -1e-9) & (thr <= 1.0)).all()


def test_rules_refuse_missing_inputs_in_one_line():
    y, probs = _data()
    with pytest.raises(ParameterError, match="test-only"):
        T.choose("exact", None, None, probs, None)
    with pytest.raises(ParameterError, match="target"):
        T.choose("match", None, None, probs, None)
    with pytest.raises(ParameterError, match=r"Got 'nope' instead"):
        T.choose("nope", probs, y, probs, None)
    with pytest.raises(ParameterError, match=r"\(0, 1\)"):
        T.choose("match", None, None, probs, [0.0, 0.1, 0.1, 0.1])


def test_threshold_tuner_matches_functions():
    y, probs = _data(seed=11)
    test = _data(n=200, seed=12)[1]
    target = np.array([0.1, 0.2, 0.25, 0.45])
    tuner = T.ThresholdTuner(target=target, n_boot=10, min_labels=1).fit(probs, y, test)
    assert tuner.method_ == T.DEFAULT_WITH_TARGET
    thr, _ = T.choose(T.DEFAULT_WITH_TARGET, probs, y, test, target, n_boot=10)
    np.testing.assert_array_equal(tuner.thresholds_, thr)
    # With OOF rows and a target, rows left empty are filled by the posterior corrected to the target.
    assert tuner.rank_by_ == "posterior"
    posterior = Posterior.fit(probs, y, target)
    want = apply_thresholds(test, thr, 1, rank_by="posterior", posterior=posterior)
    np.testing.assert_array_equal(tuner.transform(test), want.astype(np.uint8))
    by_ratio = T.ThresholdTuner(target=target, n_boot=10, min_labels=1, rank_by="ratio").fit(probs, y, test)
    np.testing.assert_array_equal(by_ratio.transform(test), apply_thresholds(test, thr, 1).astype(np.uint8))
    # A rule reading test rows learns from them at fit (transform only applies): without them, fit refuses.
    matched = T.ThresholdTuner(method="match", target=target).fit(probs, y, test_probs=test)
    np.testing.assert_array_equal(matched.thresholds_, T.match_thresholds(test, target))
    with pytest.raises(ParameterError, match="'test_probs' parameter of ThresholdTuner.fit must be given"):
        T.ThresholdTuner(method="match", target=target).fit(probs, y)
    assert T.ThresholdTuner().fit(probs, y).method_ == T.DEFAULT_WITHOUT_TARGET
    assert T.ThresholdTuner().fit(probs, y).rank_by_ == "ratio"  # no target: no shift to correct for
    with pytest.raises(ParameterError, match="posterior"):
        T.ThresholdTuner(method="match", target=target, rank_by="posterior").fit(None, None, test)


def test_posterior_equals_isotonic_then_odds_correction():
    from sklearn.isotonic import IsotonicRegression

    y, probs = _data(n=500, seed=3)
    test = np.vstack([_data(n=100, seed=4)[1], np.zeros((1, 4)), np.ones((1, 4))])  # beyond the OOF range too
    target = np.array([0.05, 0.3, 0.5, 0.2])
    post = Posterior.fit(probs, y, target)
    for k in range(4):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probs[:, k], y[:, k])
        q = iso.predict(test[:, k])
        np.testing.assert_allclose(post.calibrated(test)[:, k], q, atol=1e-12)
        pi, pt = y[:, k].mean(), target[k]
        odds = q / (1 - q + 1e-300) * (pt / (1 - pt)) / (pi / (1 - pi))
        expected = np.where(q >= 1, 1.0, odds / (1 + odds))
        np.testing.assert_allclose(post.transform(test)[:, k], expected, atol=1e-9)
    # JSON round trip gives the same map; a broken map is refused naming the class.
    back = Posterior.from_json(json.loads(json.dumps(post.to_json())), 4, "t.json")
    np.testing.assert_array_equal(back.transform(test), post.transform(test))
    broken = post.to_json()
    broken["y"][2] = broken["y"][2][::-1] if len(broken["y"][2]) > 1 else [2.0]
    with pytest.raises(ContractError, match="t.json: 'posterior' class 2"):
        Posterior.from_json(broken, 4, "t.json")
    with pytest.raises(ContractError, match="one list per class"):
        Posterior.from_json(post.to_json(), 5, "t.json")


def test_posterior_fill_picks_the_likeliest_class_under_the_target():
    # Two classes, same raw score on an empty row: the one the target makes commoner is chosen,
    # and flipping the target flips the choice (ratio/prob cannot tell them apart).
    rng = np.random.default_rng(0)
    y = (rng.random((2000, 2)) < 0.2).astype(int)
    oof = 0.3 * y + 0.7 * rng.random((2000, 2))  # overlapping classes: calibrated 0.5 is neither 0 nor 1
    row = np.array([[0.5, 0.5]])
    thr = np.array([0.9, 0.9])
    for target, want in (([0.05, 0.5], 1), ([0.5, 0.05], 0)):
        post = Posterior.fit(oof, y, np.array(target))
        pred = apply_thresholds(row, thr, 1, rank_by="posterior", posterior=post)
        assert pred[0].tolist() == [want == 0, want == 1]
    with pytest.raises(ParameterError, match="posterior"):
        apply_thresholds(row, thr, 1, rank_by="posterior")


# ------------------------------------------------------------------------------------- decision
def test_rank_rules_pick_differently():
    probs = np.array([[0.30, 0.10, 0.05]])
    thr = np.array([0.9, 0.12, 0.5])
    pick = {r: int(np.argmax(apply_thresholds(probs, thr, 1, rank_by=r)[0])) for r in ("ratio", "margin", "logit", "prob")}
    assert pick == {"ratio": 1, "margin": 1, "logit": 1, "prob": 0}
    probs2 = np.array([[0.45, 0.02, 0.0]])
    thr2 = np.array([0.5, 0.01, 0.9])  # ratios 0.9, 2.0, 0
    assert int(np.argmax(apply_thresholds(probs2, thr2, 1, rank_by="ratio")[0])) == 1
    with pytest.raises(ParameterError):
        apply_thresholds(probs, thr, 1, rank_by="best")


# ------------------------------------------------------------------------------------- simulator
def test_label_noise_simulator_shape_seed_and_lookalikes():
    rng = np.random.default_rng(0)
    Y = (rng.random((3000, 12)) < 0.1).astype(np.uint8)
    P = simulate_label_noise_models(Y, 3, seed=1)
    assert P.shape == (3, 3000, 12) and ((P > 0) & (P < 1)).all()
    np.testing.assert_array_equal(P, simulate_label_noise_models(Y, 3, seed=1))
    # A positive of class 8 raises class 9's score on rows where 9 is negative (look-alikes).
    only8 = (Y[:, 8] == 1) & (Y[:, 9] == 0) & (Y[:, 10] == 0)
    none = (Y[:, 8] == 0) & (Y[:, 9] == 0) & (Y[:, 10] == 0)
    assert P[:, only8, 9].mean() > P[:, none, 9].mean() + 0.02
    # Positives score higher than negatives in every column.
    for k in range(12):
        assert P[:, Y[:, k] == 1, k].mean() > P[:, Y[:, k] == 0, k].mean()


# ------------------------------------------------------------------------------------- contract
TASK6 = Task("six", ("a", "b", "c", "d", "e", "f"))


def test_target_shares_by_class_column_names_and_order(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("class,share\n2,0.3\n0,0.1\n1,0.2\n3,0.4\n4,0.5\n5,0.6\n")
    np.testing.assert_allclose(read_target_shares(f, TASK6), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    f.write_text("name,lb\nf,0.6\ne,0.5\nd,0.4\nc,0.3\nb,0.2\na,0.1\n")
    np.testing.assert_allclose(read_target_shares(f, TASK6), [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])


@pytest.mark.parametrize("text, match", [
    ("class,share\n0,0.1\n1,0.2\n2,0.3\n3,0.4\n4,0.5\n", r"no row for class 5 \(f\)"),
    ("class,share\n0,0.1\n1,0.2\n2,0.3\n3,0.4\n4,0.5\n5,0\n", r"class 5 \(f\) must lie in \(0, 1\)"),
    ("class,share\n0,0.1\n1,1.2\n2,0.3\n3,0.4\n4,0.5\n5,0.2\n", r"class 1 \(b\)"),
    ("class,share\n0,0.1\n0,0.2\n2,0.3\n3,0.4\n4,0.5\n5,0.2\n", r"class 0 \(a\) appears twice"),
    ("class,share\n0,0.1\n1,0.2\n2,0.3\n3,0.4\n4,0.5\n9,0.2\n", r"class '9' is not a class"),
    ("share\n0.1\n0.2\n0.3\n", r"3 share rows for a task of 6 classes"),
])
def test_target_shares_bad_input(tmp_path, text, match):
    f = tmp_path / "t.csv"
    f.write_text(text)
    with pytest.raises(ContractError, match=match):
        read_target_shares(f, TASK6)


def test_real_lb_file_reads_as_hpa_shares(shared_hpa):
    lb = shared_hpa / "lb_label_distribution.csv"
    shares = read_target_shares(lb, load_task("hpa2018"))
    assert shares.shape == (28,) and shares[0] == pytest.approx(0.36239782)
    with pytest.raises(ContractError, match="28 share rows for a task of 19"):
        read_target_shares(lb, load_task("hpa2021"))


def test_share_too_small_for_test_set_warns_naming_class():
    notes = check_share_estimable(np.array([0.5, 0.001, 0.2, 0.2, 0.2, 0.2]), 200, TASK6)
    assert len(notes) == 1 and "class 1 (b)" in notes[0] and "1000 rows" in notes[0]


def _pset(tmp_path, name="p", seed=0, K=6):
    rng = np.random.default_rng(seed)
    ids, test_ids = [f"r{i}" for i in range(30)], [f"t{i}" for i in range(20)]
    folder = tmp_path / name
    folder.mkdir()
    (folder / "oof.csv").write_text("Id," + ",".join(map(str, range(K))) + "\n"
                                    + "".join(f"{i}," + ",".join(f"{v:.6f}" for v in rng.random(K)) + "\n" for i in ids))
    (folder / "test.csv").write_text("Id," + ",".join(map(str, range(K))) + "\n"
                                     + "".join(f"{i}," + ",".join(f"{v:.6f}" for v in rng.random(K)) + "\n" for i in test_ids))
    return folder


def test_thresholds_record_round_trip_and_binding(tmp_path):
    folder = _pset(tmp_path)
    from hpa_ens.contract.thresholds import prediction_set_hashes

    rec = ThresholdsRecord(thresholds=[0.1, 0.2, 0.3, 0.4, 0.5, 1.0], method="boot", class_names=list(TASK6.class_names),
                           task_name="six", min_labels=1, max_labels=3, rank_by="margin",
                           prediction_set=prediction_set_hashes(folder), plots=["x.png"],
                           report={"oof_macro_f1": 0.5})
    path = write_thresholds(tmp_path / "thr.json", rec)
    back = read_thresholds(path, TASK6)
    assert back.thresholds == rec.thresholds and back.rank_by == "margin" and back.plots == ["x.png"]
    doc = json.loads(path.read_text())
    assert doc["prediction_set"]["test.csv"] == sha256_file(folder / "test.csv")
    assert doc["oof_macro_f1"] == 0.5 and doc["min_labels"] == 1  # report keys also at the top level
    check_thresholds_match(back, folder)  # same set: fine
    check_thresholds_match(back, {"outputs": {"test.csv": sha256_file(folder / "test.csv")}})
    other = _pset(tmp_path, "q", seed=1)
    with pytest.raises(ContractError, match="not the one the thresholds were tuned on"):
        check_thresholds_match(back, other)
    with pytest.raises(ContractError, match="thresholds were tuned for 6 classes"):
        read_thresholds(path, load_task("hpa2018"))
    doc["thresholds"] = doc["thresholds"][:5]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ContractError, match="one value per class"):
        read_thresholds(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ContractError, match="not valid JSON"):
        read_thresholds(tmp_path / "bad.json")


def test_no_positive_rule():
    thr = np.array([0.3, 0.4, 0.5])
    notes = no_positive_rule(thr, [5, 0, 3], None, ["a", "b", "c"], np.array([0.1, 0.2, 0.3]))
    assert thr.tolist() == [0.3, T.NEVER, 0.5] and "class 1 (b)" in notes[0] and "never" in notes[0]
    thr = np.array([0.3, 0.4, 0.5])
    notes = no_positive_rule(thr, [5, 0, 3], np.array([0.1, 0.05, 0.2]), ["a", "b", "c"], np.array([0.1, 0.2, 0.3]))
    assert thr.tolist() == [0.3, 0.2, 0.5] and "matched" in notes[0]


def test_resolve_method():
    assert resolve_method(None, True, True) == T.DEFAULT_WITH_TARGET
    assert resolve_method(None, False, True) == T.DEFAULT_WITHOUT_TARGET
    assert resolve_method(None, True, False) == "match"
    assert resolve_method("exact", True, True) == "exact"


# ------------------------------------------------------------------------------------- registry
def test_registry_menu_legacy_names_and_errors():
    assert T.available_rules() == ("exact", "boot", "match", "directional", "trusted", "simulated", "checked", "plugin",
                                     "optuna")
    assert set(T.available_rules(include_legacy=True)) - set(T.available_rules()) == {"blend", "gated", "prior", "reweight"}
    assert all(T.get_rule(n).summary and T.get_rule(n).legacy == (n not in T.available_rules())
               for n in T.available_rules(include_legacy=True))
    with pytest.raises(ParameterError, match=r"one of exact, boot, match, directional, trusted, simulated, checked, plugin, optuna "
                                             r"\(or a legacy rule: blend, gated, prior, reweight\)\. Got 'nope' instead"):
        T.get_rule("nope")
    # The metadata says what each rule reads; choose refuses in one line what a rule cannot run without.
    assert T.get_rule("match").reads_oof() is False and T.get_rule("match").reads_oof({"tolerance": 0.1}) is True
    assert T.get_rule("exact").needs_test is False and T.get_rule("directional").needs_target is True
    registry = T.RuleRegistry()

    @registry.register("half", summary="every cut at 0.5", needs_oof=False, params={"level": 0.5})
    def _half(oof, y, test, target, *, level):
        return np.full(test.shape[1], level), {"level": level}

    assert registry.names() == ("half",) and registry["half"](None, None, np.zeros((2, 3)), None)[0].tolist() == [0.5] * 3
    with pytest.raises(ParameterError, match="not one of the rule 'half'"):
        registry["half"](None, None, np.zeros((2, 3)), None, lvl=1)
    with pytest.raises(ParameterError, match="new rule name"):
        registry.register("half", summary="again")(_half)


def test_choose_checks_params_columns_and_applies_the_no_positive_rule():
    y, probs = _data(seed=5)
    test = _data(n=300, seed=6)[1]
    target = np.array([0.1, 0.1, 0.2, 0.4])
    with pytest.raises(ParameterError, match="'floor' parameter of choose\\('boot'\\)"):
        T.choose("boot", probs, y, test, floor=1.0)
    with pytest.raises(ParameterError, match="must have 4 columns like 'oof_probs'"):
        T.choose("boot", probs, y, test[:, :3])
    # n_boot and seed are accepted by every rule and reach the rules that resample.
    assert T.choose("match", None, None, test, target, n_boot=3, seed=1)[1]["params"] == {"tolerance": None}
    a, _ = T.choose("boot", probs, y, n_boot=5, seed=0)
    np.testing.assert_array_equal(a, T.bootstrap_cuts(y, probs, 5, 0).median)
    y0 = y.copy()
    y0[:, 1] = 0
    cuts, report = T.choose("boot", probs, y0, test, class_names=list("abcd"), labels_name="train.csv", n_boot=5)
    assert cuts[1] == T.NEVER and report["warnings"] == [
        "class 1 (b) has no positives in train.csv; threshold set to never predict (1.0)."]
    cuts, report = T.choose("exact", probs, y0, test, target)
    assert cuts[1] == T.match_thresholds(test, target)[1] and "matched to target share 0.1" in report["warnings"][0]
    assert report["info"] == {"rare_classes": []} and report["method"] == "exact"
    cuts, report = T.choose("match", probs, y0, test, target)  # the matched cut is the rule itself: no warning
    np.testing.assert_array_equal(cuts, T.match_thresholds(test, target))
    assert report["warnings"] == []
    # Without a method: the default with a target, boot without, match for test rows alone.
    assert T.choose(None, probs, y, test, target, n_boot=5)[1]["method"] == "checked"
    assert T.choose(None, probs, y, n_boot=5)[1]["method"] == "boot"
    assert T.choose(None, None, None, test, target)[1]["method"] == "match"


def test_optuna_refines_the_exact_cut_with_its_no_positive_rule():
    y, probs = _data(seed=9)
    test = _data(n=200, seed=10)[1]
    y[:, 0] = 0
    target = np.array([0.1, 0.1, 0.2, 0.4])
    cuts, report = T.choose("optuna", probs, y, test, target, n_trials=3, tolerance=None, min_labels=0, max_labels=2)
    base, _ = T.choose("exact", probs, y, test, target)
    first = T.tune_coupled(probs, y, test, base, T.match_thresholds(test, target), target, n_trials=3, seed=0,
                           tolerance=None, min_labels_range=(0, 0), max_labels_range=(1, 2))
    np.testing.assert_array_equal(cuts, first["thresholds"])
    assert report["min_labels"] == first["min_labels"] and report["max_labels"] == first["max_labels"]
    assert list(report["info"])[:3] == ["rare_classes", "trials", "seed"] and "min_labels" not in report["info"]
    assert len(report["warnings"]) == 1 and "class 0 (0)" in report["warnings"][0]


# ------------------------------------------------------------------------------------------- CLI
def _hpa_set(tmp_path, seed=0, n=150, n_test=90):
    K = 28
    rng = np.random.default_rng(seed)
    y = (rng.random((n, K)) < np.linspace(0.04, 0.4, K)).astype(np.uint8)
    y[np.arange(n), rng.integers(0, K, n)] = 1
    ids, test_ids = [f"tr{i}" for i in range(n)], [f"te{i}" for i in range(n_test)]
    oof = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1)
    test = rng.random((n_test, K))
    write_labels(tmp_path / "train.csv", ids, y)
    write_prediction_set(tmp_path / "pred", probs_frame(ids, oof), probs_frame(test_ids, test), {"name": "toy"})
    target = tmp_path / "lb.csv"
    target.write_text("lb\n" + "".join(f"{v}\n" for v in np.linspace(0.05, 0.3, K)))
    return tmp_path / "train.csv", tmp_path / "pred", target, y, oof, test


def test_cli_default_with_target_is_benchmark_winner(tmp_path):
    labels, pred, target, y, oof, test = _hpa_set(tmp_path)
    out = tmp_path / "thr.json"
    assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--target-dist", str(target),
                      "--n-boot", "10"]) == 0
    rec = read_thresholds(out)
    assert rec.method == T.DEFAULT_WITH_TARGET
    shares = read_target_shares(target, load_task("hpa2018"))
    expected, _ = T.choose(T.DEFAULT_WITH_TARGET, oof, y, test, shares, n_boot=10)
    np.testing.assert_allclose(rec.thresholds, expected)
    check_thresholds_match(rec, pred)


def test_cli_target_n_goes_to_the_default_rule_and_is_recorded(tmp_path, capsys):
    labels, pred, target, y, oof, test = _hpa_set(tmp_path)
    out = tmp_path / "thr.json"
    assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--target-dist", str(target),
                      "--n-boot", "10", "--target-n", "120"]) == 0
    rec = read_thresholds(out)
    shares = read_target_shares(target, load_task("hpa2018"))
    expected, report = T.choose("checked", oof, y, test, shares, n_boot=10, target_n=120)
    assert rec.method == "checked" and rec.params["target_n"] == 120
    np.testing.assert_array_equal(rec.thresholds, expected)
    np.testing.assert_array_equal(rec.params["trust_weight"], report["info"]["trust_weight"])
    capsys.readouterr()
    # A rule that reads no sampling error refuses the flag in one line naming the rules that take it.
    assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(tmp_path / "x.json"),
                      "--target-dist", str(target), "--method", "directional", "--target-n", "120"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'--target-n'" in err and "(trusted, simulated, checked)" in err and "Got 120 instead" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


def test_cli_bad_target_file_writes_nothing(tmp_path, capsys):
    labels, pred, target, *_ = _hpa_set(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("lb\n" + "0.1\n" * 27)
    out = tmp_path / "thr.json"
    assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--target-dist", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "27 share rows for a task of 28" in err and "Traceback" not in err
    bad.write_text("class,lb\n" + "".join(f"{k},{0.1 if k != 4 else 1.5}\n" for k in range(28)))
    assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--target-dist", str(bad),
                      "--plots", str(tmp_path / "plots")]) == 2
    assert "class 4 (Nuclear speckles)" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "plots").exists()


def test_cli_legacy_method_still_runs_but_is_not_in_the_usage(tmp_path):
    from hpa_ens.commands.thresholds import build_parser

    usage = build_parser().format_usage()
    assert "{exact,boot,match,directional,trusted,simulated,checked,plugin,optuna}" in usage and "gated" not in usage
    labels, pred, target, y, oof, test = _hpa_set(tmp_path)
    out = tmp_path / "gated.json"
    assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--target-dist", str(target),
                      "--method", "gated", "--n-boot", "10", "--blend-floor", "0.5"]) == 0
    rec = read_thresholds(out)
    shares = read_target_shares(target, load_task("hpa2018"))
    expected, report = T.choose("gated", oof, y, test, shares, n_boot=10, floor=0.5)
    assert rec.method == "gated" and rec.params["blend_floor"] == 0.5 and rec.params["n_boot"] == 10
    np.testing.assert_array_equal(rec.thresholds, expected)
    np.testing.assert_array_equal(rec.params["trust_weight"], report["info"]["trust_weight"])


@pytest.mark.parametrize("flags, name", [
    (["--n-boot", "0"], "--n-boot"), (["--trials", "0"], "--trials"), (["--blend-floor", "0"], "--blend-floor"),
    (["--tolerance", "-1"], "--tolerance"), (["--min-labels", "29"], "--min-labels"),
    (["--storage", "x.journal"], "--storage"), (["--target-n", "0"], "--target-n"), (["--target-n", "50"], "--target-n"),
])
def test_cli_bad_flags_say_got_instead(tmp_path, capsys, flags, name):
    labels, pred, *_ = _hpa_set(tmp_path)
    assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(tmp_path / "o.json"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert f"'{name}'" in err and "Got" in err and "instead" in err and len(err.splitlines()) == 1


def test_unopenable_storage_url_is_one_line(tmp_path):
    with pytest.raises(ContractError, match="cannot open the Optuna storage"):
        open_storage(f"sqlite:///{tmp_path}/no/such/dir/study.db")
    with pytest.raises(ContractError, match="cannot open the Optuna storage"):
        open_storage("nosuchdialect://user@host/db")


def test_two_workers_share_one_sqlite_study(tmp_path):
    import optuna

    labels, pred, *_ = _hpa_set(tmp_path, seed=3)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    # Create the study once before the workers start (SQLite races when workers create it together).
    optuna.create_study(storage=open_storage(url), study_name="shared", direction="maximize")
    env = dict(os.environ, HPA_ENS_NO_PROGRESS="1", PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-m", "hpa_ens.tune_thresholds", "--labels", str(labels), "--pred",
                               str(pred), "--out", str(tmp_path / f"w{i}.json"), "--method", "optuna", "--trials", "4",
                               "--seed", str(i), "--storage", url, "--study-name", "shared"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    study = optuna.load_study(study_name="shared", storage=open_storage(url))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 8 and len({t.number for t in complete}) == 8


def test_cli_test_only_set_match_and_refusal(tmp_path, capsys):
    labels, pred, target, y, oof, test = _hpa_set(tmp_path)
    only = tmp_path / "only"
    write_prediction_set(only, None, probs_frame([f"te{i}" for i in range(len(test))], test), {"name": "only"})
    out = tmp_path / "m.json"
    assert run(main, ["--pred", str(only), "--out", str(out), "--target-dist", str(target)]) == 0
    rec = read_thresholds(out)
    assert rec.method == "match" and rec.prediction_set["oof.csv"] is None
    np.testing.assert_allclose(rec.thresholds, T.match_thresholds(test, read_target_shares(target, load_task())))
    assert run(main, ["--labels", str(labels), "--pred", str(only), "--out", str(tmp_path / "e.json"),
                      "--method", "exact"]) == 2
    err = capsys.readouterr().err
    assert "test-only" in err and "out-of-fold" in err and not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("name", ["yeast", "emotions"])
def test_cli_mulan_task_through_command_line(tmp_path, name):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from mulan_data import MULAN_DIR, load_mulan

    if not (MULAN_DIR / name).exists():
        pytest.skip(f"../shared/multilabel/{name} is not present (the MULAN data beside the checkout)")
    data = load_mulan(name)
    K = data.n_classes
    task_csv = tmp_path / "task.csv"
    task_csv.write_text("id,name\n" + "".join(f"{k},{n}\n" for k, n in enumerate(data.label_names)))
    rng = np.random.default_rng(0)
    oof = np.clip(0.4 * data.Y_train + 0.6 * rng.random(data.Y_train.shape), 0, 1)
    test = np.clip(0.4 * data.Y_test + 0.6 * rng.random(data.Y_test.shape), 0, 1)
    (tmp_path / "train.csv").write_text("Id,Target\n" + "".join(
        f"{i},{' '.join(str(k) for k in np.flatnonzero(row))}\n" for i, row in zip(data.train_ids, data.Y_train)))
    task = load_task(task_csv)
    write_prediction_set(tmp_path / "pred", probs_frame(data.train_ids, oof), probs_frame(data.test_ids, test),
                         {"name": name}, task=task)
    out = tmp_path / "thr.json"
    assert run(main, ["--task", str(task_csv), "--labels", str(tmp_path / "train.csv"), "--pred", str(tmp_path / "pred"),
                      "--out", str(out), "--target-dist", "train", "--n-boot", "10"]) == 0
    rec = read_thresholds(out, task)
    assert len(rec.thresholds) == K and rec.class_names == list(data.label_names)


def test_docstring_examples_run():
    import doctest
    import importlib

    for name in ("_tuner", "_choose", "_rules", "_shift", "_cuts", "_calibration", "_decision"):
        module = importlib.import_module(f"hpa_ens.thresholds.{name}")
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0, name


def test_shift_gates_benchmark_scores_the_shipped_default():
    """benchmarks/shift_gates.py's `gated` row must be tune_thresholds('gated'), and its blend must reduce to
    the OOF side at weight 0 and to the matched cut at weight 1 (else the table compares something else)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import shift_gates as G

    rng = np.random.default_rng(3)
    y = (rng.random((600, 4)) < [0.3, 0.1, 0.05, 0.2]).astype(np.uint8)
    oof = np.clip(0.5 * y + 0.6 * rng.random(y.shape), 0, 1)
    test = np.clip(0.5 * (rng.random((300, 4)) < 0.15) + 0.6 * rng.random((300, 4)), 0, 1)
    target = np.array([0.2, 0.15, 0.05, 0.1])  # class 2 unshifted: gate shut, the OOF side alone
    side = G.sides(oof, y, test, target, seed=0)
    shipped, _ = T.choose("gated", oof, y, test, target, seed=0)
    np.testing.assert_array_equal(G.thresholds_of("gated", side, y.mean(axis=0), target), shipped)
    directional, _ = T.choose("directional", oof, y, test, target, seed=0)
    np.testing.assert_array_equal(G.thresholds_of("directional", side, y.mean(axis=0), target), directional)
    falls = target < y.mean(axis=0)
    np.testing.assert_allclose(directional[falls], G.thresholds_of("exp 0.5", side, y.mean(axis=0), target)[falls])
    np.testing.assert_array_equal(G.blend(side, np.zeros(4)), side["boot"])
    np.testing.assert_allclose(G.blend(side, np.ones(4)), side["match"], rtol=1e-9)
    w = G.SHAPES["exp 0.5"](side)
    assert w[2] < 0.2 < w[0]  # class 0's announced shift is larger than class 2's


def test_four_workers_started_together_on_a_new_sqlite_file_share_one_study(tmp_path):
    """Issue 27: workers started at once on a new SQLite file raced creating its tables ("table studies already
    exists"); the schema and the study are now created under a lock file beside the .db."""
    import optuna

    labels, pred, *_ = _hpa_set(tmp_path, seed=4)
    db = tmp_path / "fresh" / "study.db"
    db.parent.mkdir()
    url = f"sqlite:///{db}"
    env = dict(os.environ, HPA_ENS_NO_PROGRESS="1", PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-m", "hpa_ens.tune_thresholds", "--labels", str(labels), "--pred",
                               str(pred), "--out", str(tmp_path / f"w{i}.json"), "--method", "optuna", "--trials", "3",
                               "--seed", str(i), "--storage", url], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    names = {json.loads((tmp_path / f"w{i}.json").read_text())["params"]["study_name"] for i in range(4)}
    assert len(names) == 1  # the same inputs: one study name, derived from them
    summaries = optuna.get_all_study_summaries(storage=open_storage(url))
    assert [s.study_name for s in summaries] == list(names)
    study = optuna.load_study(study_name=names.pop(), storage=open_storage(url))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 12 and len({t.number for t in complete}) == 12
    assert not (tmp_path / "fresh" / "study.db.lock").exists()  # released and removed
