"""Per-class LightGBM stacking (hpa_ens.stack)."""

import json

import lightgbm as lgb
import numpy as np
import pytest

from hpa_ens.io import sha256_file
from hpa_ens.blend import mean_blend
from hpa_ens.contract import read_prediction_set
from hpa_ens.testing.simulate import simple_folds, simulate_base_models, write_simulated_sets
from hpa_ens.stack import default_params, fit_predict_stack, main, stack_features


def _labels(n, seed=0):
    rng = np.random.default_rng(seed)
    prevalence = np.r_[0.4, 0.25, 0.15, np.full(22, 0.06), 0.02, 0.01, 0.005]
    Y = (rng.random((n, 28)) < prevalence).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    return Y


@pytest.fixture(scope="module")
def small():
    Y = _labels(600)
    probs = simulate_base_models(Y, n_models=3, seed=0)
    return Y, probs, simple_folds(600, 3, seed=0)


FAST = dict(n_rounds=20, early_stopping_rounds=5, min_positives=10)


def test_stack_features_shapes():
    probs = [np.full((4, 28), 0.25), np.full((4, 28), 0.75)]
    for kind, width in (("probs", 31), ("logits", 31), ("both", 59)):
        X, names = stack_features(probs, kind, ["a", "b"])
        assert X.shape == (4, 2 * width) and len(names) == X.shape[1] and X.dtype == np.float32
    X, names = stack_features(probs, "probs", ["a", "b"])
    assert X[0, names.index("b:n_at_0.5")] == 28 and X[0, names.index("a:max")] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="features"):
        stack_features(probs, "ranks")


def test_shared_dataset_with_set_label_equals_fresh_dataset():
    """The speed trick: one binned Dataset, labels swapped per class, gives the same models."""
    rng = np.random.default_rng(0)
    X = rng.random((400, 6)).astype(np.float32)
    labels = [(X[:, j] + 0.3 * rng.random(400) > 0.7).astype(float) for j in range(3)]
    params = default_params(0) | {"min_data_in_leaf": 5}
    shared = lgb.Dataset(X, label=labels[0], params=params, free_raw_data=False).construct()
    for y in labels:
        shared.set_label(y)
        a = lgb.train(params, shared, num_boost_round=15).predict(X)
        b = lgb.train(params, lgb.Dataset(X, label=y, params=params), num_boost_round=15).predict(X)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_fit_predict_stack_is_honest_and_deterministic(small):
    Y, probs, folds = small
    X, _ = stack_features(list(probs))
    blend = mean_blend(list(probs))
    r1 = fit_predict_stack(X, Y, folds, X[:50], blend, blend[:50], **FAST)
    r2 = fit_predict_stack(X, Y, folds, X[:50], blend, blend[:50], **FAST)
    assert r1.oof.shape == Y.shape and r1.test.shape == (50, 28)
    assert np.array_equal(r1.oof, r2.oof) and np.array_equal(r1.test, r2.test)
    assert ((r1.oof >= 0) & (r1.oof <= 1)).all()
    assert {"lgbm", "mean"} <= set(r1.method.ravel())  # common classes boosted, rare ones fall back
    # Honesty: scrambling fold 0's labels must not change fold 0's OOF predictions.
    Y2 = Y.copy()
    rows = np.flatnonzero(folds == 0)
    Y2[rows] = Y[np.random.default_rng(1).permutation(rows)]
    r3 = fit_predict_stack(X, Y2, folds, X[:50], blend, blend[:50], **FAST)
    np.testing.assert_array_equal(r3.oof[rows], r1.oof[rows])
    assert not np.array_equal(r3.oof[folds != 0], r1.oof[folds != 0])


def test_stack_learns_what_a_blend_cannot():
    """Class 1 is signalled by model 0's class-0 column: only a stacker over all columns finds it."""
    rng = np.random.default_rng(3)
    Y = _labels(900, 3)
    probs = rng.random((2, 900, 28)) * 0.5
    probs[0, :, 0] = 0.3 + 0.6 * Y[:, 1] * rng.random(900) + 0.1 * rng.random(900)
    folds = simple_folds(900, 3, seed=0)
    X, _ = stack_features(list(probs))
    blend = mean_blend(list(probs))
    res = fit_predict_stack(X, Y, folds, X[:10], blend, blend[:10], n_rounds=40, early_stopping_rounds=10)
    from hpa_ens.thresholds import exact_thresholds

    assert exact_thresholds(Y, res.oof)[1][1] > exact_thresholds(Y, blend)[1][1] + 0.2


def test_rare_fallbacks_and_dynamic(small):
    Y, probs, folds = small
    X, _ = stack_features(list(probs))
    blend = mean_blend(list(probs))
    few = slice(0, 200)
    lr = fit_predict_stack(X[few], Y[few], folds[few], X[:20], blend[few], blend[:20], rare="logistic",
                           n_rounds=5, early_stopping_rounds=2, min_positives=10_000)
    assert set(lr.method.ravel()) == {"logistic"} and (lr.n_trees == 0).all()
    dyn = fit_predict_stack(X, Y, folds, X[:20], blend, blend[:20], dynamic=True, **FAST)
    boosted = dyn.method == "lgbm"
    kept_blend = np.isfinite(dyn.inner_gain) & (dyn.method == "mean")
    assert boosted.any()
    # The choice follows the inner-split comparison exactly.
    assert (dyn.inner_gain[kept_blend] <= 0).all() and (dyn.inner_gain[boosted] > 0).all()


def test_cli_writes_prediction_set_and_report(tmp_path):
    paths = write_simulated_sets(tmp_path / "data", _labels(400, 1), n_models=3, seed=0, n_folds=2)
    argv = ["--labels", str(paths["labels"]), "--folds", str(paths["folds"]),
            "--models", *map(str, paths["models"]), "--n-rounds", "15", "--early-stopping", "5",
            "--min-positives", "8", "--dynamic"]
    assert main(argv + ["--out", str(tmp_path / "s1")]) == 0
    assert main(argv + ["--out", str(tmp_path / "s2")]) == 0
    ps = read_prediction_set(tmp_path / "s1")
    assert ps.oof.shape == (len(paths["train_idx"]), 28) and ps.test.shape == (len(paths["test_idx"]), 28)
    assert set(ps.meta["inputs"]) == {"model_0", "model_1", "model_2"}
    assert ps.meta["params"]["dynamic"] is True and ps.meta["folds_sha256"] == sha256_file(paths["folds"])
    for name in ("oof.csv", "test.csv"):
        assert sha256_file(tmp_path / "s1" / name) == sha256_file(tmp_path / "s2" / name)
    report = json.loads((tmp_path / "s1" / "stack_report.json").read_text())
    assert set(report["macro"]) == {f"best single ({max(report['single_models'], key=report['single_models'].get)})",
                                    "mean blend", "stack"}
    assert "on OOF" in report["verdict"] and len(report["per_class"]["stack"]) == 28
    assert (tmp_path / "s1" / "stack_report.png").stat().st_size > 1000


def test_cli_refuses_misaligned_folds(tmp_path, capsys):
    from hpa_ens.cli import run

    paths = write_simulated_sets(tmp_path / "data", _labels(200, 2), n_models=2, seed=0, n_folds=3)
    lines = paths["folds"].read_text().splitlines()
    paths["folds"].write_text("\n".join(lines[:-1]) + "\n")  # one train Id without a fold
    code = run(main, ["--labels", str(paths["labels"]), "--folds", str(paths["folds"]),
                      "--models", *map(str, paths["models"]), "--out", str(tmp_path / "s")])
    assert code == 2 and "missing" in capsys.readouterr().err
