"""Threshold tuning (hpa_ens.thresholds): exact search vs brute force and sklearn, matching, robust variants,
Optuna, the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import f1_score

from hpa_ens import thresholds as T
from hpa_ens.commands._cli import run
from hpa_ens.io import sha256_file
from hpa_ens.classes import N_CLASSES
from hpa_ens.contract import probs_frame, write_prediction_set
from hpa_ens.labels import write_labels
from hpa_ens.metrics import macro_f1
from hpa_ens.commands.thresholds import main
from hpa_ens.thresholds import Posterior, apply_thresholds

REPO = Path(__file__).resolve().parents[1]


def brute_best_f1(scores: np.ndarray, y: np.ndarray) -> float:
    """Best F1 over every threshold that changes the prediction (each distinct score, below all, above all)."""
    candidates = np.concatenate([np.unique(scores), [-1.0, 2.0]])
    y = y.astype(bool)
    best = 0.0
    for t in candidates:  # F1 by its definition (sklearn is checked at the chosen cut, below)
        pred = scores > t
        tp, fp, fn = np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & y)
        best = max(best, 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return best


# Scores drawn from a few values so ties are common.
small_case = st.integers(1, 14).flatmap(lambda n: st.tuples(
    arrays(np.float64, (n, 3), elements=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5000000000000001, 0.9, 1.0])),
    arrays(np.bool_, (n, 3)),
))


@settings(max_examples=120, deadline=None)
@given(small_case)
def test_exact_equals_brute_force_and_sklearn(case):
    probs, y = case
    thr, best = T.exact_thresholds(y, probs)
    for k in range(probs.shape[1]):
        assert best[k] == pytest.approx(brute_best_f1(probs[:, k], y[:, k]), abs=1e-12)
        # The cut really delivers that F1: ties all fall on one side.
        assert f1_score(y[:, k], probs[:, k] > thr[k], zero_division=0) == pytest.approx(best[k], abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(small_case)
def test_curves_cover_every_distinct_cut(case):
    probs, y = case
    curves = T.f1_curves(probs, y)
    for k in range(probs.shape[1]):
        valid = curves.f1[k] >= 0
        # One realisable cut per distinct score, plus "predict nothing".
        assert valid.sum() == len(np.unique(probs[:, k])) + 1
        for m in np.flatnonzero(valid):
            pred = probs[:, k] > curves.thresholds[k, m]
            assert pred.sum() == m
            assert curves.f1[k, m] == pytest.approx(f1_score(y[:, k], pred, zero_division=0), abs=1e-12)
        assert curves.thresholds[k, 0] == T.NEVER


def test_threshold_midway_between_neighbouring_scores():
    probs = np.array([[0.9], [0.7], [0.7], [0.2], [0.1]])
    y = np.array([[1], [1], [1], [0], [0]])
    thr, best = T.exact_thresholds(y, probs)
    assert best[0] == 1.0
    assert thr[0] == pytest.approx((0.7 + 0.2) / 2)


def test_adjacent_floats_still_separate():
    hi = 0.3
    lo = np.nextafter(hi, 0)
    probs = np.array([[hi], [lo]])
    thr, best = T.exact_thresholds(np.array([[1], [0]]), probs)
    assert best[0] == 1.0
    assert (probs[:, 0] > thr[0]).tolist() == [True, False]


def test_class_without_positives_never_predicted():
    rng = np.random.default_rng(0)
    probs = rng.random((50, 3))
    y = np.zeros((50, 3), dtype=bool)
    y[:10, 0] = True
    thr, best = T.exact_thresholds(y, probs)
    assert thr[1] == T.NEVER and thr[2] == T.NEVER and best[1] == 0
    assert not (probs[:, 1:] > thr[1:]).any()


def test_exact_on_many_rows_matches_sklearn_macro():
    rng = np.random.default_rng(1)
    y = rng.random((3000, N_CLASSES)) < np.linspace(0.01, 0.4, N_CLASSES)
    probs = np.clip(0.3 * y + rng.random(y.shape) * 0.7, 0, 1)
    thr, best = T.exact_thresholds(y, probs)
    sk = f1_score(y, probs > thr, average=None, zero_division=0)
    np.testing.assert_allclose(sk, best, atol=1e-12)
    # Any perturbation of one threshold cannot beat the exact cut.
    for k in (0, 13, 27):
        for delta in (-0.05, -0.01, 0.01, 0.05):
            assert f1_score(y[:, k], probs[:, k] > thr[k] + delta, zero_division=0) <= best[k] + 1e-12


# ------------------------------------------------------------------------------------------ matching
@settings(max_examples=60, deadline=None)
@given(small_case, st.lists(st.floats(0, 1), min_size=3, max_size=3))
def test_match_is_nearest_realisable_share(case, shares):
    probs, _ = case
    shares = np.array(shares)
    thr = T.match_thresholds(probs, shares)
    n = len(probs)
    for k in range(3):
        achievable = [0] + [int((probs[:, k] >= v).sum()) for v in np.unique(probs[:, k])]
        best_gap = min(abs(c - shares[k] * n) for c in achievable)
        got = int((probs[:, k] > thr[k]).sum())
        assert abs(got - shares[k] * n) == pytest.approx(best_gap)


def test_match_zero_share_is_never():
    probs = np.random.default_rng(2).random((40, 2))
    thr = T.match_thresholds(probs, [0.0, 0.25])
    assert thr[0] == T.NEVER
    assert (probs[:, 1] > thr[1]).sum() == 10


def _toy(n=400, n_test=300, seed=0, n_classes=4):
    rng = np.random.default_rng(seed)
    prevalence = np.linspace(0.05, 0.4, n_classes)
    y = rng.random((n, n_classes)) < prevalence
    oof = np.clip(0.35 * y + 0.65 * rng.random(y.shape), 0, 1)
    y_test = rng.random((n_test, n_classes)) < prevalence
    test = np.clip(0.35 * y_test + 0.65 * rng.random(y_test.shape), 0, 1)
    return y, oof, test


def test_match_within_band_respects_band_and_beats_plain_match():
    y, oof, test = _toy()
    target = np.array([0.1, 0.2, 0.3, 0.35])
    curves = T.f1_curves(oof, y)
    matched = T.match_thresholds(test, target)
    for tol in (0.0, 0.1, 0.3):
        thr = T.match_thresholds_within(curves, test, target, tol)
        share = T.predicted_share(test, thr)
        matched_share = T.predicted_share(test, matched)
        inside = np.abs(share - target) <= tol * target + 1e-12
        assert (inside | np.isclose(share, matched_share)).all()
        f1 = curves.f1_at(thr)
        assert (f1 >= curves.f1_at(matched) - 1e-12).all()
        np.testing.assert_allclose(f1, f1_score(y, oof > thr, average=None, zero_division=0), atol=1e-12)
    # An unbounded band gives back the exact optimum.
    thr = T.match_thresholds_within(curves, test, target, 1e9)
    np.testing.assert_allclose(curves.f1_at(thr), T.exact_thresholds(y, oof)[1], atol=1e-12)


# ------------------------------------------------------------------------------------------- robust
def test_bootstrap_only_touches_selected_classes_and_is_seeded():
    y, oof, _ = _toy(seed=3)
    exact, _ = T.exact_thresholds(y, oof)
    a = T.bootstrap_thresholds(oof, y, classes=[0], n_boot=20, seed=5)
    b = T.bootstrap_thresholds(oof, y, classes=[0], n_boot=20, seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[1:], exact[1:])
    # The average of cuts lies inside the range of the column's scores.
    assert oof[:, 0].min() <= a[0] <= oof[:, 0].max()


def test_shrink_formula_and_robust_dispatch():
    thr = np.array([0.6, 0.6, T.NEVER])
    f1 = np.array([0.4, 0.4, 0.0])
    n_pos = np.array([10, 1000, 0])
    out = T.shrink_thresholds(thr, f1, n_pos, strength=10)
    assert out[0] == pytest.approx(0.5 * 0.6 + 0.5 * 0.2)
    assert out[1] == pytest.approx((1000 / 1010) * 0.6 + (10 / 1010) * 0.2)
    assert out[2] == T.NEVER
    y, oof, _ = _toy(seed=4)
    exact, best = T.exact_thresholds(y, oof)
    got, rare = T.robust_thresholds(oof, y, "shrink", rare_max=int(y[:, 0].sum()) + 1, strength=10)
    assert rare.tolist() == [True, False, False, False]
    np.testing.assert_array_equal(got[1:], exact[1:])
    assert got[0] == pytest.approx(T.shrink_thresholds(exact, best, y.sum(0), 10)[0])
    none, rare_none = T.robust_thresholds(oof, y, "none")
    np.testing.assert_array_equal(none, exact)
    assert not rare_none.any()


# ------------------------------------------------------------------------------------------- optuna
def test_coupled_thresholds_endpoints():
    base = np.array([0.2, 0.5, T.NEVER, T.NEVER])
    matched = np.array([0.4, 0.3, 0.7, T.NEVER])
    np.testing.assert_array_equal(T.coupled_thresholds(base, matched, 0.0), base)
    np.testing.assert_array_equal(T.coupled_thresholds(base, matched, 1.0), matched)
    half = T.coupled_thresholds(base, matched, 0.5, 0.0)
    assert base[0] < half[0] < matched[0] and matched[1] < half[1] < base[1]
    assert half[3] == T.NEVER
    up = T.coupled_thresholds(base, matched, 0.5, 0.5)
    assert (up[:3] > half[:3]).all()


def test_tune_coupled_seeded_feasible_and_consistent():
    y, oof, test = _toy(seed=6)
    base, _ = T.exact_thresholds(y, oof)
    target = y.mean(0) * 0.8
    matched = T.match_thresholds(test, target)
    kw = dict(n_trials=12, seed=3, tolerance=0.1, min_labels_range=(0, 1), max_labels_range=(1, 3))
    a = T.tune_coupled(oof, y, test, base, matched, target, **kw)
    b = T.tune_coupled(oof, y, test, base, matched, target, **kw)
    assert a["params"] == b["params"]
    np.testing.assert_array_equal(a["thresholds"], b["thresholds"])
    scored = T.evaluate_thresholds(oof, y, a["thresholds"], a["min_labels"], a["max_labels"], test)
    assert scored["macro_f1"] == pytest.approx(a["value"])
    assert scored["macro_f1"] == pytest.approx(macro_f1(y, apply_thresholds(oof, a["thresholds"], a["min_labels"], a["max_labels"])))
    if a["feasible"]:
        assert T.distribution_gap(scored["test_share"], target) <= 0.1 + 1e-12
    assert 0 <= a["min_labels"] <= 1 and 1 <= a["max_labels"] <= 3


# ---------------------------------------------------------------------------------------------- CLI
def make_set(tmp_path: Path, n=120, n_test=80, seed=0, empty_class=27):
    rng = np.random.default_rng(seed)
    prevalence = np.linspace(0.03, 0.45, N_CLASSES)
    y = rng.random((n, N_CLASSES)) < prevalence
    y[:, empty_class] = False
    y[np.arange(n), rng.integers(0, N_CLASSES - 1, n)] = True  # every image has a label
    ids = [f"tr{i:04d}" for i in range(n)]
    test_ids = [f"te{i:04d}" for i in range(n_test)]
    oof = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1)
    test = rng.random((n_test, N_CLASSES))
    write_labels(tmp_path / "train.csv", ids, y.astype(np.uint8))
    pred = tmp_path / "pred"
    write_prediction_set(pred, probs_frame(ids, oof), probs_frame(test_ids, test), {"name": "toy"})
    return tmp_path / "train.csv", pred, y, oof, test


def test_cli_exact_writes_consistent_json_and_plots(tmp_path):
    labels, pred, y, oof, test = make_set(tmp_path)
    out = tmp_path / "thr.json"
    code = run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--method", "exact",
                      "--target-dist", "train", "--plots", str(tmp_path / "plots")])
    assert code == 0
    res = json.loads(out.read_text())
    thr = np.array(res["thresholds"])
    assert res["method"] == "exact" and thr.shape == (N_CLASSES,)
    np.testing.assert_allclose(thr, T.exact_thresholds(y, oof)[0])
    assert thr[27] == T.NEVER and any("class 27" in w for w in res["warnings"])
    # With OOF rows and a target, empty rows are filled by the posterior; the in-sample OOF report (the cuts
    # tuned on every row) cross-fits it (5 interleaved parts, each filled by a calibration fitted on the other four).
    assert res["rank_by"] == "posterior" and len(res["posterior"]["x"]) == N_CLASSES
    target = np.array(res["target_share"])
    pred_labels = np.zeros(oof.shape, dtype=bool)
    for j in range(5):
        rows = np.arange(len(oof)) % 5 == j
        post = Posterior.fit(oof[~rows], y[~rows], target)
        pred_labels[rows] = apply_thresholds(oof[rows], thr, res["min_labels"], res["max_labels"], "posterior", post)
    assert res["oof_macro_f1_in_sample"] == pytest.approx(f1_score(y, pred_labels, average="macro", zero_division=0))
    np.testing.assert_allclose(res["oof_per_class_f1_in_sample"],
                               f1_score(y, pred_labels, average=None, zero_division=0))
    # The reported OOF score is cross-fitted (issue 27): each part gets the exact cuts of the other four parts
    # (class 27, without positives, the matched cut) and their posterior fill.
    assert res["oof_score_folds"] == "5 interleaved parts"
    crossed, no_rule = np.zeros(oof.shape, dtype=bool), np.zeros(oof.shape, dtype=bool)
    for j in range(5):
        rows = np.arange(len(oof)) % 5 == j
        cuts = T.exact_thresholds(y[~rows], oof[~rows])[0]
        cuts[27] = T.match_thresholds(test, target)[27]
        post = Posterior.fit(oof[~rows], y[~rows], target)
        crossed[rows] = apply_thresholds(oof[rows], cuts, res["min_labels"], res["max_labels"], "posterior", post)
        no_rule[rows] = oof[rows] > cuts
    assert res["oof_macro_f1"] == pytest.approx(f1_score(y, crossed, average="macro", zero_division=0))
    np.testing.assert_allclose(res["oof_per_class_f1"], f1_score(y, crossed, average=None, zero_division=0))
    assert res["oof_macro_f1_no_rule"] == pytest.approx(f1_score(y, no_rule, average="macro", zero_division=0))
    assert res["oof_macro_f1"] < res["oof_macro_f1_in_sample"]  # tuned and scored on the same rows flatters
    np.testing.assert_allclose(res["target_share"], np.clip(y.mean(0), 0.5 / len(y), 1))
    full = Posterior.fit(oof, y, target)  # submit applies the calibration fitted on every OOF row
    np.testing.assert_allclose(res["test_share"], apply_thresholds(test, thr, 1, 5, "posterior", full).mean(0))
    assert res["inputs"]["labels"] == sha256_file(labels)
    assert res["inputs"]["pred"]["oof.csv"] == sha256_file(pred / "oof.csv")
    # Provenance: the prediction set the thresholds were tuned on, and the plots (issue 17.3, 17.6).
    assert res["prediction_set"]["test.csv"] == sha256_file(pred / "test.csv")
    assert res["prediction_set"]["oof.csv"] == sha256_file(pred / "oof.csv")
    assert res["task"]["class_names"][0] == "Nucleoplasm" and len(res["task"]["class_names"]) == N_CLASSES
    assert sorted(Path(p).name for p in res["plots"]) == ["f1_curves.png", "shares.png"]
    for name in ("f1_curves.png", "shares.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_cli_match_with_target_file(tmp_path):
    labels, pred, y, oof, test = make_set(tmp_path, seed=1)
    target = np.full(N_CLASSES, 0.1)
    (tmp_path / "dist.csv").write_text("lb,train\n" + "".join(f"{v},{v}\n" for v in target))
    out = tmp_path / "thr.json"
    code = run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--method", "match",
                      "--target-dist", str(tmp_path / "dist.csv"), "--min-labels", "0", "--max-labels", "0"])
    assert code == 0
    res = json.loads(out.read_text())
    # 10% of 80 test rows = 8 per class; continuous scores make every cut realisable.
    np.testing.assert_allclose(res["test_share"], 0.1)
    assert res["max_labels"] is None
    # Class 27 has no positives but the target says it occurs: it follows the target.
    assert res["thresholds"][27] < 1.0


def test_cli_optuna_same_seed_same_bytes(tmp_path):
    labels, pred, *_ = make_set(tmp_path, seed=2)
    outs = []
    for i in range(2):
        out = tmp_path / f"o{i}.json"
        assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--method", "optuna",
                          "--trials", "6", "--seed", "7", "--tolerance", "0.5", "--target-dist", "train"]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    res = json.loads(outs[0])
    assert res["method"] == "optuna" and res["params"]["n_trials_total"] == 6


def test_two_processes_share_one_journal(tmp_path):
    labels, pred, *_ = make_set(tmp_path, seed=3)
    journal = tmp_path / "study.journal"
    env = dict(os.environ, HPA_ENS_NO_PROGRESS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "hpa_ens.tune_thresholds", "--labels", str(labels),
                               "--pred", str(pred), "--out", str(tmp_path / f"w{i}.json"), "--method", "optuna",
                               "--trials", "5", "--seed", str(i), "--storage", str(journal)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    import optuna
    from hpa_ens.thresholds import journal_storage

    names = optuna.get_all_study_names(journal_storage(str(journal)))
    assert len(names) == 1
    study = optuna.load_study(study_name=names[0], storage=journal_storage(str(journal)))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 10
    assert len({t.number for t in complete}) == 10
    results = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(2)]
    assert all(r["params"]["study_name"] == names[0] for r in results)


def test_cli_bad_input_is_one_line_error(tmp_path, capsys):
    labels, pred, *_ = make_set(tmp_path, seed=4)
    code = run(main, ["--labels", str(labels), "--pred", str(tmp_path / "nope"), "--out", str(tmp_path / "x.json")])
    assert code == 2
    assert not (tmp_path / "x.json").exists()
    code = run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(tmp_path / "x.json"),
                      "--max-labels", "1", "--min-labels", "2"])
    assert code == 2


# ------------------------------------------------------------------------- cross-fitted OOF scores (issue 27)
def test_cross_fitted_exact_equals_per_fold_oracle_and_is_not_in_sample():
    rng = np.random.default_rng(11)
    y = (rng.random((240, 5)) < [0.5, 0.3, 0.2, 0.1, 0.05]).astype(np.uint8)
    oof = np.clip(0.35 * y + 0.65 * rng.random(y.shape), 0, 1)
    folds = rng.permutation(np.arange(240) % 4)
    pred, cuts = T.cross_fitted_predictions("exact", oof, y, folds, min_labels=0, return_thresholds=True)
    want = np.zeros(y.shape, dtype=bool)
    for f in range(4):
        fit = folds != f
        fold_cuts = T.exact_thresholds(y[fit], oof[fit])[0]
        np.testing.assert_array_equal(cuts[f], fold_cuts)
        want[~fit] = oof[~fit] > fold_cuts
    np.testing.assert_array_equal(pred, want)
    honest = f1_score(y, pred, average="macro", zero_division=0)
    in_sample = f1_score(y, oof > T.exact_thresholds(y, oof)[0], average="macro", zero_division=0)
    assert honest < in_sample  # the exact cut is the best cut for the rows it was tuned on
    # An int is that many interleaved parts; the label rule and a posterior fill apply per fold.
    parts = np.arange(240) % 3
    target = np.full(5, 0.2)
    pred3 = T.cross_fitted_predictions("boot", oof, y, 3, target=target, min_labels=1, max_labels=2, n_boot=5)
    want3 = np.zeros(y.shape, dtype=bool)
    for f in range(3):
        fit = parts != f
        fold_cuts, _ = T.choose("boot", oof[fit], y[fit], None, target, n_boot=5)
        post = Posterior.fit(oof[fit], y[fit], target)
        want3[~fit] = apply_thresholds(oof[~fit], fold_cuts, 1, 2, "posterior", post)
    np.testing.assert_array_equal(pred3, want3)
    assert (pred3.sum(axis=1) >= 1).all() and (pred3.sum(axis=1) <= 2).all()


def test_cross_fitted_optuna_never_touches_a_shared_storage(tmp_path):
    rng = np.random.default_rng(12)
    y = (rng.random((120, 4)) < 0.3).astype(np.uint8)
    oof = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1)
    test = rng.random((60, 4))
    target = np.full(4, 0.3)
    journal = tmp_path / "study.journal"
    kwargs = dict(n_trials=3, tolerance=None, seed=1)
    alone = T.cross_fitted_predictions("optuna", oof, y, 3, test, target, **kwargs)
    shared = T.cross_fitted_predictions("optuna", oof, y, 3, test, target, storage=str(journal), study_name="s",
                                        **kwargs)
    np.testing.assert_array_equal(alone, shared)
    assert not journal.exists()


@pytest.mark.parametrize("folds, message", [(1, "int in \\[2"), (np.zeros(50), "at least two folds"),
                                            (np.arange(10) % 2, "one fold id per OOF row")])
def test_cross_fitted_refuses_bad_folds(folds, message):
    rng = np.random.default_rng(0)
    y = (rng.random((50, 3)) < 0.4).astype(np.uint8)
    with pytest.raises(ValueError, match=message):
        T.cross_fitted_predictions("exact", rng.random((50, 3)), y, folds)


def test_cli_oof_score_cross_fitted_over_folds_file(tmp_path):
    from hpa_ens.contract import write_folds

    import pandas as pd

    labels, pred, y, oof, test = make_set(tmp_path, seed=5)
    ids = pd.read_csv(labels)["Id"].tolist()
    fold_of = np.random.default_rng(5).permutation(np.arange(len(ids)) % 3)
    write_folds(tmp_path / "folds.csv", pd.Series(fold_of, index=ids))
    out = tmp_path / "thr.json"
    assert run(main, ["--labels", str(labels), "--pred", str(pred), "--folds", str(tmp_path / "folds.csv"),
                      "--out", str(out), "--method", "exact", "--min-labels", "0", "--max-labels", "0"]) == 0
    res = json.loads(out.read_text())
    assert res["oof_score_folds"] == str(tmp_path / "folds.csv")
    want = np.zeros(oof.shape, dtype=bool)
    for f in range(3):
        fit = fold_of != f
        want[~fit] = oof[~fit] > T.exact_thresholds(y[fit], oof[fit])[0]
    assert res["oof_macro_f1"] == pytest.approx(f1_score(y, want, average="macro", zero_division=0))
    assert res["oof_macro_f1_no_rule"] == pytest.approx(res["oof_macro_f1"])  # no label rule here
    in_sample = f1_score(y, oof > np.array(res["thresholds"]), average="macro", zero_division=0)
    assert res["oof_macro_f1_in_sample"] == pytest.approx(in_sample) and in_sample > res["oof_macro_f1"]


def test_cli_folds_without_oof_rows_and_pred_spellings(tmp_path, capsys):
    labels, pred, y, oof, test = make_set(tmp_path, seed=6)
    only = tmp_path / "only"
    write_prediction_set(only, None, probs_frame([f"te{i:04d}" for i in range(len(test))], test), {"name": "only"})
    (tmp_path / "folds.csv").write_text("Id,fold\n" + "".join(f"tr{i:04d},{i % 2}\n" for i in range(len(oof))))
    out = tmp_path / "thr.json"
    assert run(main, ["--pred", str(only), "--folds", str(tmp_path / "folds.csv"), "--target-dist", "hpa2018-lb",
                      "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "'--folds'" in err and "test-only" in err and len(err.splitlines()) == 1 and not out.exists()
    assert run(main, ["--out", str(out)]) == 2
    assert "'--pred'" in capsys.readouterr().err
    # --models still names the prediction set, with a one-line deprecation warning.
    from hpa_ens.commands.thresholds import build_parser

    assert "--models" not in build_parser().format_help()
    assert run(main, ["--labels", str(labels), "--models", str(pred), "--out", str(out), "--method", "exact"]) == 0
    assert "--models is deprecated in hpa-ens thresholds: use --pred" in capsys.readouterr().err
    first = out.read_bytes()
    assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--method", "exact"]) == 0
    assert out.read_bytes() == first and "deprecated" not in capsys.readouterr().err


def test_cli_builtin_target_name_is_the_packaged_file(tmp_path, capsys):
    from importlib import resources

    from hpa_ens.commands.thresholds import build_parser

    assert "hpa2018-lb" in build_parser().format_help()
    labels, pred, *_ = make_set(tmp_path, seed=7)
    packaged = Path(str(resources.files("hpa_ens").joinpath("data/lb_label_distribution.csv")))
    docs = []
    for i, target in enumerate(("hpa2018-lb", str(packaged))):
        out = tmp_path / f"t{i}.json"
        assert run(main, ["--labels", str(labels), "--pred", str(pred), "--out", str(out), "--method", "match",
                          "--target-dist", target]) == 0
        docs.append(json.loads(out.read_text()))
    assert docs[0]["thresholds"] == docs[1]["thresholds"] and docs[0]["target_share"] == docs[1]["target_share"]
    assert docs[0]["params"]["target_dist"] == "hpa2018-lb"
    assert docs[0]["inputs"]["target_dist"] == docs[1]["inputs"]["target_dist"] == sha256_file(packaged)
