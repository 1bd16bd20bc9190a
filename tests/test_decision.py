import numpy as np
import pytest

from hpa_ens.thresholds import apply_thresholds


def test_strictly_greater():
    probs = np.array([[0.5, 0.6, 0.2]])
    assert apply_thresholds(probs, [0.5, 0.5, 0.5], min_labels=0).tolist() == [[False, True, False]]


def test_empty_row_gets_best_ratio_class():
    probs = np.array([[0.30, 0.10, 0.05]])
    thr = [0.9, 0.12, 0.5]  # ratios 0.33, 0.83, 0.1 -> class 1, not the highest probability
    assert apply_thresholds(probs, thr, min_labels=1, rank_by="ratio").tolist() == [[False, True, False]]
    assert apply_thresholds(probs, thr, min_labels=1).tolist() == [[False, True, False]]  # the default
    assert apply_thresholds(probs, thr, min_labels=1, rank_by="prob").tolist() == [[True, False, False]]


def test_max_labels_keeps_top_ratios_and_min_never_drops():
    rng = np.random.default_rng(0)
    probs = rng.random((500, 28))
    thr = rng.uniform(0.05, 0.95, 28)
    plain = apply_thresholds(probs, thr, min_labels=0)
    capped = apply_thresholds(probs, thr, min_labels=2, max_labels=4, rank_by="ratio")
    counts = capped.sum(1)
    assert counts.min() >= 2 and counts.max() <= 4
    ratio = probs / thr
    for i in range(len(probs)):
        if plain[i].sum() > 4:
            kept = np.flatnonzero(capped[i])
            assert set(kept) <= set(np.flatnonzero(plain[i]))
            assert ratio[i, kept].min() >= ratio[i, plain[i] & ~capped[i]].max()
        elif plain[i].sum() >= 2:
            assert (capped[i] == plain[i]).all()
        else:
            assert (capped[i] >= plain[i]).all()
            added = capped[i] & ~plain[i]
            assert ratio[i, added].min() >= ratio[i, ~capped[i]].max()


def test_bad_parameters():
    with pytest.raises(ValueError, match="The 'thresholds' parameter must be"):
        apply_thresholds(np.zeros((2, 28)), [0.5] * 27)
    with pytest.raises(ValueError, match="The 'max_labels' parameter of apply_thresholds must be"):
        apply_thresholds(np.zeros((2, 28)), 0.5, min_labels=3, max_labels=2)
