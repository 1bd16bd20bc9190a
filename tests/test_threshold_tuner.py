"""ThresholdTuner is a real scikit-learn estimator: clone, params, Pipeline, cross_val_predict, GridSearchCV."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks

from hpa_ens import thresholds as T
from hpa_ens.thresholds import ThresholdTuner
from hpa_ens.validation import ParameterError


def _data(n=300, K=4, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, K)) < np.linspace(0.1, 0.4, K)).astype(int)
    probs = np.clip(0.45 * y + 0.6 * rng.random((n, K)), 0, 1)
    return probs, y


def _test_rows(n=200, K=4, seed=1):
    return _data(n, K, seed)


# ------------------------------------------------------------------------------- sklearn's checks
# The generic checks that apply to a multi-label transformer. Left out, because they fit on data the
# estimator must refuse (sklearn draws X from uniform(0, 3) and a 1-D integer y, and ThresholdTuner takes
# probabilities in [0, 1] with an (n, K) 0/1 label matrix): check_dont_overwrite_parameters,
# check_estimators_overwrite_params, check_fit_check_is_fitted, check_n_features_in, check_fit_idempotent,
# check_estimators_unfitted. Each is re-stated below on valid multi-label data with the same assertion.
@pytest.mark.parametrize("check", [
    estimator_checks.check_no_attributes_set_in_init,
    estimator_checks.check_get_params_invariance,
    estimator_checks.check_set_params,
    estimator_checks.check_parameters_default_constructible,
], ids=lambda c: c.__name__)
def test_sklearn_generic_checks(check):
    check("ThresholdTuner", ThresholdTuner())


def test_fit_does_not_overwrite_or_add_public_attributes():
    """check_dont_overwrite_parameters / check_estimators_overwrite_params on probabilities and a label matrix."""
    import joblib

    probs, y = _data()
    test, _ = _test_rows()
    tuner = ThresholdTuner(target=np.array([0.2, 0.2, 0.3, 0.3]), rule_params={"reps": 5}, n_boot=10)
    before = tuner.__dict__.copy()
    hashes = {k: joblib.hash(v) for k, v in tuner.get_params().items()}
    tuner.fit(probs, y, test_probs=test)
    public = [k for k in tuner.__dict__ if not k.startswith("_") and not k.endswith("_")]
    assert sorted(public) == sorted(before)
    assert all(tuner.__dict__[k] is before[k] for k in before)
    assert {k: joblib.hash(v) for k, v in tuner.get_params().items()} == hashes


def test_fitted_attributes_and_idempotent_fit():
    """check_fit_check_is_fitted / check_n_features_in / check_fit_idempotent on valid data."""
    probs, y = _data()
    tuner = ThresholdTuner(method="boot", n_boot=10)
    with pytest.raises(NotFittedError):
        tuner.transform(probs)
    with pytest.raises(NotFittedError):
        tuner.predict(probs)
    first = tuner.fit(probs, y).thresholds_.copy()
    assert tuner.n_features_in_ == 4 and tuner.method_ == "boot" and tuner.rank_by_ == "ratio"
    np.testing.assert_array_equal(tuner.fit(probs, y).thresholds_, first)
    with pytest.raises(ParameterError, match="must have 4 columns"):
        tuner.transform(probs[:, :3])


def test_clone_get_params_set_params_round_trip():
    target = np.array([0.1, 0.2, 0.3, 0.4])
    tuner = ThresholdTuner(method="directional", target=target, min_labels=0, max_labels=2, rank_by="margin",
                           rule_params={"floor": 0.5}, n_boot=7, seed=3)
    params = tuner.get_params()
    assert set(params) == {"method", "target", "min_labels", "max_labels", "rank_by", "rule_params", "n_boot", "seed"}
    twin = clone(tuner)
    assert twin is not tuner
    got = twin.get_params()
    np.testing.assert_array_equal(got.pop("target"), params["target"])
    assert got == {k: v for k, v in params.items() if k != "target"}
    twin.set_params(method="exact", n_boot=9, rule_params=None)
    assert twin.get_params()["method"] == "exact" and twin.n_boot == 9 and tuner.method == "directional"
    with pytest.raises(ValueError, match="Invalid parameter"):
        twin.set_params(floor=1.0)
    # A fitted estimator clones to an unfitted one with the same parameters.
    probs, y = _data()
    fitted = ThresholdTuner(method="exact").fit(probs, y)
    with pytest.raises(NotFittedError):
        clone(fitted).transform(probs)


def test_transform_only_applies_and_rules_reading_test_rows_need_them_at_fit():
    probs, y = _data()
    test, _ = _test_rows()
    target = np.array([0.2, 0.2, 0.3, 0.3])
    with pytest.raises(ParameterError, match="'test_probs' parameter of ThresholdTuner.fit must be given"):
        ThresholdTuner(method="directional", target=target).fit(probs, y)
    tuner = ThresholdTuner(target=target, n_boot=10).fit(probs, y, test_probs=test)
    assert tuner.method_ == T.DEFAULT_WITH_TARGET
    import joblib

    state = {k: joblib.hash(v) for k, v in tuner.__dict__.items()}
    first = tuner.transform(test)
    other, _ = _test_rows(seed=5)
    tuner.transform(other)
    assert {k: joblib.hash(v) for k, v in tuner.__dict__.items()} == state  # nothing learnt or changed
    np.testing.assert_array_equal(tuner.transform(test), first)


def test_fit_transform_is_the_transform_of_the_fitted_rows():
    """The old fit_transform(oof, y, test) returned the transform of *test*; sklearn's is the transform of X."""
    probs, y = _data()
    test, _ = _test_rows()
    target = np.array([0.2, 0.2, 0.3, 0.3])
    tuner = ThresholdTuner(method="match", target=target)
    out = tuner.fit_transform(probs, y, test_probs=test)
    assert out.shape == probs.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, ThresholdTuner(method="match", target=target)
                                  .fit(probs, y, test_probs=test).transform(probs))
    np.testing.assert_array_equal(tuner.predict(probs), out)


@pytest.mark.parametrize("method", ["exact", "boot", "match", "directional", "plugin", "gated"])
def test_tuner_thresholds_are_choose(method):
    probs, y = _data(seed=3)
    test, _ = _test_rows(seed=4)
    target = np.array([0.15, 0.25, 0.2, 0.35])
    tuner = ThresholdTuner(method=method, target=target, n_boot=12, seed=2).fit(probs, y, test_probs=test)
    expected, report = T.choose(method, probs, y, test, target, n_boot=12, seed=2)
    np.testing.assert_array_equal(tuner.thresholds_, expected)
    assert tuner.info_.keys() == report["info"].keys()
    posterior = T.Posterior.fit(probs, y, target)
    want = T.apply_thresholds(test, expected, 1, None, rank_by="posterior", posterior=posterior)
    np.testing.assert_array_equal(tuner.transform(test), want.astype(np.uint8))


def test_every_parameter_is_honoured_or_refused():
    probs, y = _data(seed=6)
    test, _ = _test_rows(seed=7)
    boot = ThresholdTuner(method="boot", n_boot=5, seed=0).fit(probs, y).thresholds_
    assert not np.array_equal(boot, ThresholdTuner(method="boot", n_boot=5, seed=1).fit(probs, y).thresholds_)
    assert not np.array_equal(boot, ThresholdTuner(method="boot", n_boot=40, seed=0).fit(probs, y).thresholds_)
    robust = ThresholdTuner(method="exact", rule_params={"robust": "bootstrap", "rare_max": 1000}, n_boot=5)
    np.testing.assert_array_equal(robust.fit(probs, y).thresholds_,
                                  T.robust_thresholds(probs, y, "bootstrap", 1000, 5, seed=0)[0])
    capped = ThresholdTuner(method="exact", min_labels=2, max_labels=2).fit(probs, y)
    assert (capped.transform(test).sum(axis=1) == 2).all()
    none = ThresholdTuner(method="exact", min_labels=0).fit(probs, y)
    np.testing.assert_array_equal(none.transform(test), (test > none.thresholds_).astype(np.uint8))
    ranked = ThresholdTuner(method="exact", rank_by="prob").fit(probs, y)
    np.testing.assert_array_equal(ranked.transform(test),
                                  T.apply_thresholds(test, ranked.thresholds_, 1, rank_by="prob").astype(np.uint8))
    bad = [(dict(method="nope"), "must be one of exact, boot, match"), (dict(rank_by="best"), "rank_by"),
           (dict(min_labels=-1), "min_labels"), (dict(min_labels=2, max_labels=1), "max_labels"),
           (dict(n_boot=0), "n_boot"), (dict(seed=1.5), "seed"), (dict(rule_params=[1]), "rule_params"),
           (dict(method="exact", rule_params={"floor": 1.0}), "'floor' parameter of choose"),
           (dict(method="exact", min_labels=5), "min_labels")]
    for params, match in bad:
        with pytest.raises(ParameterError, match=match):
            ThresholdTuner(**params).fit(probs, y)


def test_optuna_rule_sets_the_label_rule_it_found():
    probs, y = _data(seed=8)
    test, _ = _test_rows(seed=9)
    tuner = ThresholdTuner(method="optuna", min_labels=1, max_labels=3, rule_params={"n_trials": 5}).fit(
        probs, y, test_probs=test)
    assert 0 <= tuner.min_labels_ <= 1 and 1 <= tuner.max_labels_ <= 3
    assert tuner.info_["n_trials_total"] == 5
    counts = tuner.transform(test).sum(axis=1)
    assert counts.min() >= tuner.min_labels_ and counts.max() <= tuner.max_labels_


# ------------------------------------------------------------------------------------ composition
def test_in_a_pipeline_after_a_probability_step():
    probs, y = _data(seed=10)
    logits = np.log(probs.clip(1e-6, 1 - 1e-6)) - np.log1p(-probs.clip(1e-6, 1 - 1e-6))
    test, _ = _test_rows(seed=11)
    test_logits = np.log(test.clip(1e-6, 1 - 1e-6)) - np.log1p(-test.clip(1e-6, 1 - 1e-6))
    pipe = Pipeline([("sigmoid", FunctionTransformer(expit)), ("tuner", ThresholdTuner(method="exact"))])
    pipe.fit(logits, y)
    alone = ThresholdTuner(method="exact").fit(expit(logits), y)
    np.testing.assert_array_equal(pipe.named_steps["tuner"].thresholds_, alone.thresholds_)
    np.testing.assert_array_equal(pipe.predict(test_logits), alone.predict(expit(test_logits)))
    np.testing.assert_array_equal(pipe.transform(test_logits), alone.transform(expit(test_logits)))
    # Fit parameters reach the step: a rule that reads test rows inside a pipeline.
    target = np.array([0.2, 0.2, 0.3, 0.3])
    matched = Pipeline([("sigmoid", FunctionTransformer(expit)), ("tuner", ThresholdTuner(method="match", target=target))])
    matched.fit(logits, y, tuner__test_probs=expit(test_logits))
    np.testing.assert_array_equal(matched.named_steps["tuner"].thresholds_,
                                  T.match_thresholds(expit(test_logits), target))


@pytest.mark.parametrize("method", ["exact", "boot"])
def test_cross_val_predict_equals_the_fold_loop(method):
    probs, y = _data(n=400, seed=12)
    cv = KFold(4, shuffle=True, random_state=0)
    got = cross_val_predict(ThresholdTuner(method=method, n_boot=8), probs, y, cv=cv)
    want = np.zeros_like(y)
    for train, held in cv.split(probs):
        want[held] = ThresholdTuner(method=method, n_boot=8).fit(probs[train], y[train]).predict(probs[held])
    assert got.shape == y.shape
    np.testing.assert_array_equal(got, want)


def test_grid_search_over_one_parameter_with_a_macro_f1_scorer():
    probs, y = _data(n=400, seed=13)
    cv = KFold(3, shuffle=True, random_state=1)
    scorer = make_scorer(f1_score, average="macro", zero_division=0)
    search = GridSearchCV(ThresholdTuner(method="exact"), {"min_labels": [0, 1, 2]}, scoring=scorer, cv=cv)
    search.fit(probs, y)
    # The oracle: the same folds scored by hand.
    means = {}
    for m in (0, 1, 2):
        scores = [f1_score(y[held], ThresholdTuner(method="exact", min_labels=m).fit(probs[tr], y[tr]).predict(probs[held]),
                           average="macro", zero_division=0) for tr, held in cv.split(probs)]
        means[m] = np.mean(scores)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [means[0], means[1], means[2]])
    assert search.best_params_["min_labels"] == max(means, key=means.get)
    np.testing.assert_array_equal(search.best_estimator_.thresholds_, T.exact_thresholds(y, probs)[0])
