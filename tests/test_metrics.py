import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import f1_score, precision_recall_fscore_support

from hpa_ens.metrics import bootstrap_macro_f1, class_report, macro_f1, per_class_f1


@st.composite
def indicator_pairs(draw):
    n = draw(st.integers(1, 40))
    k = draw(st.integers(2, 8))  # one column is "binary" to sklearn, not multilabel
    y_true = draw(arrays(np.bool_, (n, k)))
    y_pred = draw(arrays(np.bool_, (n, k)))
    # Force some columns with no positives and/or no predictions.
    if draw(st.booleans()):
        y_true[:, 0] = False
    if draw(st.booleans()):
        y_pred[:, -1] = False
    return y_true, y_pred


@settings(max_examples=300, deadline=None)
@given(indicator_pairs())
def test_macro_f1_equals_sklearn(pair):
    y_true, y_pred = pair
    expected = f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert abs(macro_f1(y_true, y_pred) - expected) <= 1e-12
    np.testing.assert_allclose(per_class_f1(y_true, y_pred), f1_score(y_true, y_pred, average=None, zero_division=0), atol=1e-12)


def test_class_with_nothing_scores_zero():
    y = np.zeros((5, 3), dtype=int)
    y[:, 1] = 1
    assert macro_f1(y, y) == pytest.approx(1 / 3)


def test_class_report_matches_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.random((300, 28)) < 0.1
    y_pred = rng.random((300, 28)) < 0.12
    report = class_report(y_true, y_pred)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    np.testing.assert_allclose(report.precision, p)
    np.testing.assert_allclose(report.recall, r)
    np.testing.assert_allclose(report.f1, f)
    np.testing.assert_array_equal(report.support, s)


def test_bootstrap_interval_brackets_and_narrows():
    rng = np.random.default_rng(1)
    y_true = rng.random((2000, 28)) < 0.2
    y_pred = y_true ^ (rng.random(y_true.shape) < 0.1)
    score, low, high = bootstrap_macro_f1(y_true, y_pred, n_boot=300, seed=0)
    assert low < score < high and high - low < 0.05
    _, low_s, high_s = bootstrap_macro_f1(y_true[:200], y_pred[:200], n_boot=300, seed=0)
    assert high_s - low_s > high - low
    assert bootstrap_macro_f1(y_true, y_pred, n_boot=50, seed=3) == bootstrap_macro_f1(y_true, y_pred, n_boot=50, seed=3)


def test_shape_mismatch_refused():
    with pytest.raises(ValueError, match="must be 2-D arrays of one shape"):
        macro_f1(np.zeros((3, 28)), np.zeros((4, 28)))


# ------------------------------------------------------------------- arrays or DataFrames (17.2)
def _frames(seed=0, n=120, k=6):
    import pandas as pd

    rng = np.random.default_rng(seed)
    y_true = rng.random((n, k)) < 0.3
    y_pred = y_true ^ (rng.random((n, k)) < 0.2)
    ids = [f"img{i:03d}" for i in range(n)]
    return (pd.DataFrame(y_true.astype(np.uint8), index=ids, columns=range(k)),
            pd.DataFrame(y_pred.astype(np.uint8), index=ids, columns=range(k)), y_true, y_pred)


@pytest.mark.parametrize("fn", [macro_f1, per_class_f1])
def test_shuffled_prediction_rows_score_like_aligned_ones(fn):
    truth, pred, y_true, y_pred = _frames()
    shuffled = pred.sample(frac=1.0, random_state=1)
    assert not shuffled.index.equals(truth.index)
    want = f1_score(y_true, y_pred, average="macro" if fn is macro_f1 else None, zero_division=0)
    np.testing.assert_allclose(fn(truth, shuffled), want, atol=1e-12)
    np.testing.assert_allclose(fn(truth, pred), want, atol=1e-12)
    # by position the shuffled rows would score something else: the alignment is what makes it right
    assert abs(macro_f1(y_true, shuffled.to_numpy()) - macro_f1(y_true, y_pred)) > 0.05


def test_class_report_aligns_frames_and_columns():
    truth, pred, y_true, y_pred = _frames(2)
    shuffled = pred.sample(frac=1.0, random_state=3)[list(reversed(pred.columns))]
    report = class_report(truth, shuffled)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    np.testing.assert_allclose(report.f1, f)
    np.testing.assert_array_equal(report.support, s)
    assert bootstrap_macro_f1(truth, shuffled, n_boot=20)[0] == pytest.approx(f.mean())


def test_frames_with_different_ids_are_refused():
    truth, pred, *_ = _frames()
    with pytest.raises(ValueError, match="1 Ids of y_true are missing"):
        macro_f1(truth, pred.iloc[1:])
    other = pred.rename(index={"img000": "elsewhere"})
    with pytest.raises(ValueError, match="missing"):
        per_class_f1(truth, other)
    with pytest.raises(ValueError, match="same class columns"):
        class_report(truth, pred.drop(columns=[0]).assign(extra=0))


@pytest.mark.parametrize("fn", [macro_f1, per_class_f1, class_report, bootstrap_macro_f1])
def test_probabilities_are_refused_like_sklearn(fn):
    rng = np.random.default_rng(0)
    y_true = rng.random((50, 5)) < 0.3
    probs = rng.random((50, 5))
    # the oracle refuses them too
    with pytest.raises(ValueError):
        f1_score(y_true, probs, average="macro")
    with pytest.raises(ValueError, match=r"binary indicator matrix.*Got probabilities or scores instead"):
        fn(y_true, probs)
    with pytest.raises(ValueError, match="'y_true'.*Got probabilities"):
        fn(probs, y_true)
    nan = y_true.astype(float)
    nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="Got NaN or infinite values instead"):
        fn(y_true, nan)
    # 0/1 floats and ints are labels, not probabilities
    assert macro_f1(y_true.astype(float), y_true.astype(np.int64)) == 1.0
