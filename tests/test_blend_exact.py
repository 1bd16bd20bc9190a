"""The fast blend paths give the old results exactly (hpa_ens.ensemble, issue 20).

Oracles: ``scipy.stats.rankdata`` for ranks, sklearn's ``f1_score`` at every distinct cut for the
exact macro F1, and the pre-speed-up Caruana / Nelder-Mead loops (copied below, scoring every
candidate with ``hpa_ens.thresholds.exact_macro_f1``).
"""

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import f1_score

from hpa_ens.validation import ContractError, ParameterError
from hpa_ens.ensemble import blend, caruana_weights, fit_weights, rank_blend
from hpa_ens.ensemble._blend import _LogLossGrad, _average_ranks, _logloss_and_grad
from hpa_ens.ensemble._exact_f1 import _ExactMacroF1
from hpa_ens.testing.simulate import simple_folds
from hpa_ens.thresholds import exact_macro_f1, exact_thresholds


# ------------------------------------------------------------------------------------------ oracles
def old_rank_blend(probs_list):
    arr = np.stack([np.asarray(p, dtype=np.float64) for p in probs_list])
    ranks = (rankdata(arr, axis=1, method="average") - 1.0) / max(arr.shape[1] - 1, 1)
    w = np.full(len(arr), 1.0 / len(arr))
    return np.clip(np.tensordot(w / w.sum(), np.stack(list(ranks)), axes=1), 0.0, 1.0)


def old_caruana_counts(Y, oof_list, n_iter):
    """The loop before the speed-up: every candidate blend scored by exact_macro_f1."""
    arr = np.stack([np.asarray(p, dtype=np.float64) for p in oof_list])
    Y = np.asarray(Y, dtype=np.float64)
    counts = np.zeros(len(arr), dtype=np.int64)
    first = int(np.argmin([-exact_macro_f1(Y, p) for p in arr]))
    counts[first] = 1
    running = arr[first].copy()
    for _ in range(n_iter):
        size = counts.sum()
        trial = [-exact_macro_f1(Y, (running * size + p) / (size + 1)) for p in arr]
        pick = int(np.argmin(trial))
        counts[pick] += 1
        running = (running * size + arr[pick]) / (size + 1)
    return counts


def old_fit_weights_f1(Y, oof_list):
    from scipy.optimize import minimize

    arr = np.stack([np.asarray(p, dtype=np.float64) for p in oof_list])
    start = np.full(len(arr), 1.0 / len(arr))

    def loss(z):
        w = np.abs(z)
        return 0.0 if w.sum() == 0 else -exact_macro_f1(Y, np.tensordot(w / w.sum(), arr, axes=1))

    result = minimize(loss, start, method="Nelder-Mead", options={"maxfev": 60 * len(arr), "xatol": 1e-3,
                                                                  "fatol": 1e-6})
    w = np.abs(result.x)
    if loss(w) > loss(start):
        w = start
    return w / w.sum()


def brute_force_best_f1(y, p):
    """Per class, the best sklearn F1 over predicting ``p > t`` for t at every distinct value and 'nothing'."""
    best = []
    for k in range(y.shape[1]):
        cuts = [np.zeros(len(y), dtype=bool)] + [p[:, k] >= v for v in np.unique(p[:, k])]
        best.append(max(f1_score(y[:, k], c, zero_division=0.0) for c in cuts))
    return np.array(best)


def tie_heavy(rng, n, k, n_models, levels):
    """Probabilities on a coarse grid (many ties), one model duplicated (tied candidates), some -0.0."""
    Y = (rng.random((n, k)) < rng.uniform(0.05, 0.5, k)).astype(np.uint8)
    probs = [np.clip(np.round((0.35 * Y + 0.65 * rng.random((n, k))) * levels) / levels, 0, 1)
             for _ in range(n_models)]
    probs[-1] = probs[0].copy()
    probs[1][probs[1] == 0] = -0.0
    return Y, probs


# ---------------------------------------------------------------------------------------------- rank
@pytest.mark.parametrize("seed", range(4))
def test_average_ranks_equal_scipy_with_ties_nan_and_signed_zero(seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        n, rows = int(rng.integers(1, 40)), int(rng.integers(1, 6))
        x = rng.integers(0, int(rng.integers(1, 6)), size=(rows, n)) / 4.0
        x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
        if rng.random() < 0.3:
            x[int(rng.integers(rows)), int(rng.integers(n))] = np.nan
        np.testing.assert_array_equal(_average_ranks(x), rankdata(x, axis=1, method="average"))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_rank_blend_equals_scipy_rankdata_blend(n_jobs):
    rng = np.random.default_rng(3)
    probs = [np.round(rng.random((500, 7)), 2) for _ in range(4)]  # about 5 ties per distinct value
    probs.append(rng.random((500, 7)))
    got = rank_blend(probs, n_jobs=n_jobs)
    assert np.array_equal(got, old_rank_blend(probs))  # bit for bit
    assert np.array_equal(rank_blend(probs[:1] * 2), old_rank_blend(probs[:1] * 2))
    one_row = [rng.random((1, 3)), rng.random((1, 3))]
    assert np.array_equal(rank_blend(one_row), old_rank_blend(one_row))


# ------------------------------------------------------------------------------------ exact macro F1
@pytest.mark.parametrize("seed", range(3))
def test_exact_macro_f1_scorer_equals_exact_thresholds_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    for trial in range(60):
        n, k = int(rng.integers(1, 30)), int(rng.integers(1, 5))
        Y = (rng.random((n, k)) < rng.random()).astype(np.uint8)
        levels = int(rng.integers(1, 8))
        p = rng.random((n, k)) if trial % 3 == 0 else rng.integers(0, levels + 1, size=(n, k)) / levels
        p[p == 0] = -0.0 if trial % 2 else 0.0
        score = _ExactMacroF1(Y.T)
        per_class = score.per_class(np.ascontiguousarray(p.T))
        assert np.array_equal(per_class, exact_thresholds(Y, p)[1])  # the same floats
        assert score(np.ascontiguousarray(p.T)) == exact_macro_f1(Y, p)
        np.testing.assert_allclose(per_class, brute_force_best_f1(Y, p), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_exact_macro_f1_above_any_floor_is_the_same(seed):
    """Sorting only the rows above a floor gives the same floats, whatever the floor (a bad one falls back)."""
    rng = np.random.default_rng(10 + seed)
    for trial in range(150):
        n, k = int(rng.integers(1, 40)), int(rng.integers(1, 5))
        Y = (rng.random((n, k)) < rng.random()).astype(np.uint8)
        levels = int(rng.integers(1, 8))
        p = rng.random((n, k)) if trial % 2 else rng.integers(0, levels + 1, size=(n, k)) / levels
        floor = rng.choice([-np.inf, -0.0, 0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0], size=k)
        got = _ExactMacroF1(Y.T).per_class_above(np.ascontiguousarray(p.T), floor)
        assert np.array_equal(got, exact_thresholds(Y, p)[1])


# ------------------------------------------------------------------------------------------- caruana
@pytest.mark.parametrize("seed", range(4))
def test_caruana_picks_what_the_old_loop_picked(seed):
    rng = np.random.default_rng(seed)
    n, k, n_models = int(rng.integers(40, 300)), int(rng.integers(2, 9)), int(rng.integers(2, 7))
    Y = (rng.random((n, k)) < rng.uniform(0.02, 0.5, k)).astype(np.uint8)
    probs = [np.clip(rng.uniform(0.1, 0.6) * Y + rng.random((n, k)), 0, 1) for _ in range(n_models)]
    expected = old_caruana_counts(Y, probs, 12)
    np.testing.assert_array_equal(caruana_weights(Y, probs, n_iter=12), expected / expected.sum())


@pytest.mark.parametrize("levels", [2, 5, 20])
def test_caruana_tie_heavy_inputs_pick_the_same_models(levels):
    rng = np.random.default_rng(levels)
    Y, probs = tie_heavy(rng, 200, 6, 5, levels)
    expected = old_caruana_counts(Y, probs, 15)
    got = caruana_weights(Y, probs, n_iter=15)
    np.testing.assert_array_equal(got, expected / expected.sum())
    assert got[-1] == 0  # the duplicate of model 0 ties with it and loses on index


def test_cross_fitted_caruana_equals_the_old_per_fold_loop():
    rng = np.random.default_rng(7)
    Y, probs = tie_heavy(rng, 240, 5, 4, 10)
    folds = simple_folds(len(Y), 3, seed=0)
    oof, test, w = blend(probs, probs, "caruana", Y, n_iter=6, folds=folds, n_jobs=1)
    counts = old_caruana_counts(Y, probs, 6)
    np.testing.assert_array_equal(w, counts / counts.sum())
    for fold in np.unique(folds):
        rows = folds == fold
        c = old_caruana_counts(Y[~rows], [p[~rows] for p in probs], 6)
        wk = c / c.sum()
        expected = np.clip(np.tensordot(wk / wk.sum(), np.stack([p[rows] for p in probs]), axes=1), 0, 1)
        np.testing.assert_array_equal(oof[rows], expected)


def test_caruana_refuses_bad_probabilities_and_labels():
    rng = np.random.default_rng(0)
    Y = (rng.random((50, 3)) < 0.3).astype(np.uint8)
    probs = [rng.random((50, 3)), rng.random((50, 3))]
    bad = probs[1].copy()
    bad[4, 2] = np.nan
    with pytest.raises(ContractError, match="NaN"):
        caruana_weights(Y, [probs[0], bad])
    bad[4, 2] = 1.5
    with pytest.raises(ContractError, match="outside"):
        blend([probs[0], bad], probs, "caruana", Y, folds=simple_folds(50, 2, 0))
    with pytest.raises(ParameterError, match="0 and 1"):
        caruana_weights(Y * 2, probs)
    with pytest.raises(ParameterError, match="shape"):
        caruana_weights(Y[:10], probs)


# ------------------------------------------------------------------------------------------ weighted
def test_logloss_gradient_shortcut_is_bit_identical():
    rng = np.random.default_rng(1)
    Y = (rng.random((300, 6)) < 0.2).astype(np.float64)
    arr = np.stack([rng.random((300, 6)) for _ in range(4)])
    arr[0, :10] = 0.0  # outside the clip: no gradient there
    arr[:, 10:20] = 1.0
    fast = _LogLossGrad(Y, arr)
    for _ in range(5):
        w = rng.random(4)
        w /= w.sum()
        loss, grad = fast(w)
        loss0, grad0 = _logloss_and_grad(w, Y, arr)
        assert loss == loss0 and np.array_equal(grad, grad0)


def test_fit_weights_f1_equals_the_old_nelder_mead():
    rng = np.random.default_rng(2)
    Y, probs = tie_heavy(rng, 150, 4, 3, 12)
    np.testing.assert_array_equal(fit_weights(Y, probs, "f1"), old_fit_weights_f1(Y, probs))


@pytest.mark.parametrize("method", ["rank", "weighted", "caruana"])
def test_same_bytes_whatever_n_jobs(method):
    rng = np.random.default_rng(5)
    Y, probs = tie_heavy(rng, 300, 5, 4, 30)
    test = [p[:100] for p in probs]
    folds = simple_folds(len(Y), 4, seed=1)
    one = blend(probs, test, method, Y, n_iter=5, folds=folds, n_jobs=1)
    two = blend(probs, test, method, Y, n_iter=5, folds=folds, n_jobs=2)
    for a, b in zip(one, two):
        assert (a is None and b is None) or a.tobytes() == b.tobytes()


def test_weighted_blend_weights_are_fit_weights_on_all_rows():
    rng = np.random.default_rng(9)
    Y, probs = tie_heavy(rng, 400, 6, 5, 50)
    _, _, w = blend(probs, probs, "weighted", Y, folds=simple_folds(len(Y), 3, seed=0), n_jobs=2)
    assert w.tobytes() == fit_weights(Y, probs).tobytes()
