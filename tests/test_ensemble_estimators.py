"""Stacker and Blender are scikit-learn estimators (hpa_ens.ensemble).

scikit-learn's own checks run on both (those that apply to a multi-label probability estimator; the
left-out ones are listed with their reasons below), then the API the project relies on: clone,
get_params/set_params, Pipeline, cross_val_predict and GridSearchCV against hand-written loops (the
oracles), the two forms of X, NotFittedError, and the LightGBM parameters that lgb_params may not set.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from hpa_ens.ensemble import Blender, Stacker, mean_blend
from hpa_ens.testing.simulate import simple_folds, simulate_base_models
from hpa_ens.thresholds import exact_macro_f1
from hpa_ens.validation import ContractError, ParameterError

K = 4
#: Small and fast: a handful of trees, one thread (results depend on the seed and the thread count only).
QUICK = dict(n_rounds=8, early_stopping_rounds=3, min_positives=5, n_jobs=1)


def _labels(n, seed=0):
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, K)) < [0.4, 0.3, 0.2, 0.15]).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


@pytest.fixture(scope="module")
def world():
    """OOF sets, labels and folds on 240 rows; test sets on 60 more rows of the same models."""
    Y = _labels(300)
    probs = simulate_base_models(Y, n_models=3, seed=0)
    sets, tests = [p[:240] for p in probs], [p[240:] for p in probs]
    return sets, Y[:240], simple_folds(240, 3, seed=0), tests, Y[240:]


def side_by_side(sets):
    return np.hstack(sets)


# ------------------------------------------------------------------------------ scikit-learn's checks
#: The generic checks that do not apply, and why (everything else must pass).
_Y_NOT_0_1 = ("the check draws its binary labels as {1, 2}; a multi-label target is an indicator matrix of "
              "0 and 1, so the estimator refuses them")


def _expected_failed_checks(estimator):
    if isinstance(estimator, Stacker):
        return {"check_estimators_dtypes": _Y_NOT_0_1, "check_fit2d_1feature": _Y_NOT_0_1}
    if estimator.method == "rank":
        return {"check_methods_subset_invariance": "the rank blend ranks within the rows it is given (so that a "
                "threshold tuned on OOF ranks acts as a quantile on test): a subset's ranks differ by design"}
    return {}


# Blender("caruana") is left out of the generic run: its exact-F1 objective needs probabilities in [0, 1]
# and refuses the checks' Gaussian X; its API is tested below on probabilities instead.
@parametrize_with_checks([Stacker(n_rounds=5, early_stopping_rounds=2, n_jobs=1, cv=3), Blender(), Blender("rank"),
                          Blender("weighted", n_jobs=1)], expected_failed_checks=_expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# -------------------------------------------------------------------------- parameters and cloning
@pytest.mark.parametrize("estimator", [
    Stacker(features="both", dynamic=True, rare="logistic", min_positives=3, n_rounds=9, early_stopping_rounds=4,
            inner_fraction=0.3, learning_rate=0.2, num_leaves=5, n_jobs=1, seed=4, cv=3,
            lgb_params={"max_bin": 31}, keep_models=False),
    Blender("caruana", objective="logloss", n_iter=3, n_jobs=2),
], ids=["Stacker", "Blender"])
def test_clone_get_params_and_set_params_round_trip(estimator, world):
    params = estimator.get_params()
    copy = clone(estimator)
    assert copy is not estimator and copy.get_params() == params
    if isinstance(estimator, Stacker):
        assert copy.lgb_params == {"max_bin": 31} and copy.lgb_params is not estimator.lgb_params
    sets, Y, folds, *_ = world
    estimator.fit(sets, Y, folds)
    fresh = clone(estimator)
    assert not [k for k in vars(fresh) if k.endswith("_")]  # nothing learnt travels with a clone
    assert fresh.set_params(n_jobs=1) is fresh and fresh.get_params()["n_jobs"] == 1
    assert estimator.get_params() == params  # fit changed no parameter
    with pytest.raises(ValueError, match="Invalid parameter"):
        fresh.set_params(not_a_parameter=1)


def test_init_only_stores_parameters():
    # Bad values are accepted by __init__ and refused by fit, as scikit-learn's convention wants.
    stacker = Stacker(features="ranks", lgb_params={"eta": 0.5})
    assert stacker.features == "ranks" and stacker.lgb_params == {"eta": 0.5}
    blender = Blender("median", n_iter=-1)
    assert blender.method == "median" and blender.n_iter == -1
    with pytest.raises(ParameterError, match="'features' parameter of Stacker"):
        stacker.fit([np.full((6, 2), 0.5)], np.eye(6, 2))
    with pytest.raises(ParameterError, match="'method' parameter of Blender"):
        blender.fit([np.full((6, 2), 0.5)], np.eye(6, 2))


@pytest.mark.parametrize("key,owner", [
    ("learning_rate", "learning_rate"), ("eta", "learning_rate"), ("shrinkage_rate", "learning_rate"),
    ("num_leaves", "num_leaves"), ("max_leaves", "num_leaves"), ("seed", "seed"), ("random_state", "seed"),
    ("num_threads", "n_jobs"), ("n_jobs", "n_jobs"), ("nthread", "n_jobs"),
    ("num_iterations", "n_rounds"), ("n_estimators", "n_rounds"), ("num_boost_round", "n_rounds"),
    ("early_stopping_round", "early_stopping_rounds"), ("early_stopping_rounds", "early_stopping_rounds"),
])
def test_lgb_params_refuses_keys_a_parameter_owns(key, owner, world):
    sets, Y, folds, *_ = world
    stacker = Stacker(lgb_params={key: 3}, **QUICK)
    with pytest.raises(ParameterError) as err:
        stacker.fit(sets, Y, folds)
    message = str(err.value)
    assert "\n" not in message and "'lgb_params' parameter of Stacker" in message
    assert repr(key) in message and f"'{owner}' parameter instead" in message


@pytest.mark.parametrize("key", ["objective", "application", "loss"])
def test_lgb_params_refuses_another_objective(key):
    with pytest.raises(ParameterError, match="one binary model per class"):
        Stacker(lgb_params={key: "regression"}).lightgbm_params()


def test_every_lightgbm_parameter_reaches_lightgbm(world):
    sets, Y, folds, *_ = world
    stacker = Stacker(learning_rate=0.3, num_leaves=4, seed=7, n_jobs=1, lgb_params={"min_data_in_leaf": 10},
                      **{k: v for k, v in QUICK.items() if k != "n_jobs"}).fit(sets, Y, folds)
    used = stacker.result_.params
    assert (used["learning_rate"], used["num_leaves"], used["seed"], used["num_threads"], used["min_data_in_leaf"]) \
        == (0.3, 4, 7, 1, 10)
    assert used["objective"] == "binary" and used["max_bin"] == 63  # the defaults under the extra keys stay
    # They change the models: the same stack with LightGBM's min_data_in_leaf left at the default differs.
    # (dynamic=False on both sides: on these 240 rows the dynamic default keeps the blend in every fold.)
    stacker = Stacker(learning_rate=0.3, num_leaves=4, seed=7, n_jobs=1, lgb_params={"min_data_in_leaf": 10},
                      dynamic=False, **{k: v for k, v in QUICK.items() if k != "n_jobs"}).fit(sets, Y, folds)
    base = Stacker(learning_rate=0.3, num_leaves=4, seed=7, dynamic=False, **QUICK).fit(sets, Y, folds)
    assert (base.result_.method == "lgbm").any() and not np.array_equal(base.oof_, stacker.oof_)


# ----------------------------------------------------------------------------------- fit and predict
@pytest.mark.parametrize("make", [lambda: Stacker(**QUICK), lambda: Blender("caruana", n_iter=3)],
                         ids=["Stacker", "Blender"])
def test_not_fitted_error_before_fit(make, world):
    sets, *_ = world
    with pytest.raises(NotFittedError):
        make().predict(sets)


def test_stacker_without_kept_models_refuses_to_predict_but_kept_the_test_rows(world):
    sets, Y, folds, tests, _ = world
    light = Stacker(keep_models=False, **QUICK).fit(sets, Y, folds, X_test=tests)
    assert light.models_ is None
    with pytest.raises(NotFittedError, match="keep_models=False"):
        light.predict(tests)
    full = Stacker(**QUICK).fit(sets, Y, folds)
    np.testing.assert_array_equal(light.oof_, full.oof_)
    np.testing.assert_allclose(light.result_.test, full.predict(tests), rtol=0, atol=1e-15)


@pytest.mark.parametrize("make", [lambda: Stacker(**QUICK), lambda: Blender("weighted", n_jobs=1),
                                  lambda: Blender("caruana", n_iter=4, n_jobs=1), lambda: Blender("rank")],
                         ids=["Stacker", "weighted", "caruana", "rank"])
def test_one_array_of_sets_side_by_side_is_the_list_of_sets(make, world):
    sets, Y, folds, tests, _ = world
    as_list = make().fit(sets, Y, folds)
    as_array = make().fit(side_by_side(sets), Y, folds)
    assert as_array.n_features_in_ == 3 * K and (as_array.n_sets_, as_array.n_classes_) == (3, K)
    np.testing.assert_array_equal(as_array.oof_, as_list.oof_)
    np.testing.assert_array_equal(as_array.predict(side_by_side(tests)), as_list.predict(tests))
    np.testing.assert_array_equal(as_list.predict(side_by_side(tests)), as_list.predict(tests))
    with pytest.raises(ValueError, match=f"X has {2 * K} features, but .* is expecting {3 * K} features"):
        as_array.predict(side_by_side(tests[:2]))
    with pytest.raises(ValueError, match="3 sets"):
        as_array.predict(tests[:2])


def test_a_2d_array_needs_y_for_k():
    with pytest.raises(ParameterError, match="K comes from y of shape"):
        Blender("mean").fit(np.full((10, 8), 0.5))
    with pytest.raises(ContractError, match="not a multiple"):
        Blender("mean").fit(np.full((10, 7), 0.5), np.zeros((10, 2)))


def test_without_folds_the_stacker_draws_seeded_kfold_folds(world):
    sets, Y, *_ = world
    drawn = np.empty(len(Y), dtype=int)
    for k, (_, rows) in enumerate(KFold(4, shuffle=True, random_state=3).split(Y)):
        drawn[rows] = k
    implicit = Stacker(cv=4, seed=3, **QUICK).fit(sets, Y)
    explicit = Stacker(cv=2, seed=3, **QUICK).fit(sets, Y, drawn)  # folds given: cv is not used
    np.testing.assert_array_equal(implicit.oof_, explicit.oof_)
    assert len(implicit.models_) == 4


def test_bad_labels_and_values_are_refused_in_one_line(world):
    sets, Y, folds, *_ = world
    with pytest.raises(ParameterError, match="only 0 and 1"):
        Stacker(**QUICK).fit(sets, Y * 2, folds)
    bad = [s.copy() for s in sets]
    bad[1][5, 2] = np.nan
    with pytest.raises(ContractError, match=r"set 1: 1 values are NaN or infinite; first at row 6, column '2'"):
        Stacker(**QUICK).fit(bad, Y, folds)
    with pytest.raises(ContractError, match="set 1"):
        Blender("mean").fit(bad, Y)
    with pytest.raises(ParameterError, match="requires y to be passed"):
        Stacker(**QUICK).fit(sets, None, folds)


def test_blender_refuses_an_objective_its_method_does_not_use(world):
    sets, Y, *_ = world
    for method in ("mean", "rank"):
        with pytest.raises(ParameterError, match="'objective' parameter of Blender"):
            Blender(method, objective="f1").fit(sets, Y)
    with pytest.raises(ParameterError, match="'n_iter' parameter of Blender"):
        Blender("mean", n_iter=-1).fit(sets, Y)


def test_score_is_macro_f1_at_exact_thresholds(world):
    sets, Y, folds, tests, Y_test = world
    for estimator in (Stacker(**QUICK).fit(sets, Y, folds), Blender("weighted", n_jobs=1).fit(sets, Y)):
        assert estimator.score(tests, Y_test) == exact_macro_f1(Y_test, estimator.predict(tests))


def test_a_fitted_stacker_pickles(world):
    sets, Y, folds, tests, _ = world
    stacker = Stacker(**QUICK).fit(sets, Y, folds)
    again = pickle.loads(pickle.dumps(stacker))
    np.testing.assert_array_equal(again.predict(tests), stacker.predict(tests))


# ------------------------------------------------------------------------- inside scikit-learn's tools
def test_stacker_and_blender_in_a_pipeline(world):
    sets, Y, folds, tests, _ = world
    clip = FunctionTransformer(np.clip, kw_args={"a_min": 0.01, "a_max": 0.99})
    X, X_test = side_by_side(sets), side_by_side(tests)
    pipe = Pipeline([("clip", clip), ("stack", Stacker(**QUICK))]).fit(X, Y, stack__folds=folds)
    direct = Stacker(**QUICK).fit(np.clip(X, 0.01, 0.99), Y, folds)
    np.testing.assert_array_equal(pipe.predict(X_test), direct.predict(np.clip(X_test, 0.01, 0.99)))
    assert pipe.predict(X_test).shape == (len(X_test), K)
    blend = Pipeline([("clip", clip), ("blend", Blender("weighted", n_jobs=1))]).fit(X, Y)
    np.testing.assert_array_equal(blend.predict(X_test),
                                  Blender("weighted", n_jobs=1).fit(np.clip(X, 0.01, 0.99), Y)
                                  .predict(np.clip(X_test, 0.01, 0.99)))


@pytest.mark.parametrize("make", [lambda: Stacker(cv=3, **QUICK), lambda: Blender("caruana", n_iter=4, n_jobs=1)],
                         ids=["Stacker", "Blender"])
def test_cross_val_predict_equals_the_hand_written_loop(make, world):
    sets, Y, *_ = world
    X = side_by_side(sets)
    got = cross_val_predict(make(), X, Y, cv=3)
    expected = np.empty(Y.shape)
    for train, test in KFold(3).split(X):
        expected[test] = make().fit(X[train], Y[train]).predict(X[test])
    np.testing.assert_array_equal(got, expected)


def test_cross_val_predict_hands_each_fit_its_rows_folds(world):
    sets, Y, folds, *_ = world
    X = side_by_side(sets)
    got = cross_val_predict(Stacker(**QUICK), X, Y, cv=2, params={"folds": folds})
    expected = np.empty(Y.shape)
    for train, test in KFold(2).split(X):
        expected[test] = Stacker(**QUICK).fit(X[train], Y[train], folds[train]).predict(X[test])
    np.testing.assert_array_equal(got, expected)


def test_grid_search_over_one_parameter_with_exact_macro_f1(world):
    sets, Y, *_ = world
    X = side_by_side(sets)
    scorer = make_scorer(exact_macro_f1)
    grid = {"num_leaves": [3, 8]}
    search = GridSearchCV(Stacker(cv=2, **QUICK), grid, scoring=scorer, cv=2).fit(X, Y)
    means = []
    for leaves in grid["num_leaves"]:
        scores = [exact_macro_f1(Y[test], Stacker(cv=2, num_leaves=leaves, **QUICK).fit(X[train], Y[train])
                                 .predict(X[test])) for train, test in KFold(2).split(X)]
        means.append(np.mean(scores))
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], means, rtol=0, atol=1e-15)
    assert search.best_params_ == {"num_leaves": grid["num_leaves"][int(np.argmax(means))]}
    # The refit estimator is a fitted Stacker on every row.
    np.testing.assert_array_equal(search.best_estimator_.oof_,
                                  Stacker(cv=2, **QUICK, **search.best_params_).fit(X, Y).oof_)


def test_grid_search_over_the_blender_objective(world):
    sets, Y, *_ = world
    X = side_by_side(sets)
    search = GridSearchCV(Blender("weighted", n_jobs=1), {"objective": ["logloss", "f1"]}, cv=3).fit(X, Y)
    means = [np.mean([exact_macro_f1(Y[test], Blender("weighted", objective, n_jobs=1).fit(X[train], Y[train])
                                     .predict(X[test])) for train, test in KFold(3).split(X)])
             for objective in ("logloss", "f1")]
    # No scoring given: the estimator's own score, macro F1 at exact thresholds.
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], means, rtol=0, atol=1e-15)


def test_mean_blender_predicts_the_mean_blend(world):
    sets, Y, _, tests, _ = world
    np.testing.assert_array_equal(Blender().fit(side_by_side(sets), Y).predict(side_by_side(tests)),
                                  mean_blend(tests))
