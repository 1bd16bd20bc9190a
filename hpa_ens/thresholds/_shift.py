"""Thresholds under label shift: the pieces of the rules that use target class shares without overfitting them.

The OOF-optimal cut (:func:`hpa_ens.thresholds.exact_thresholds`) is tuned for the *train* class shares;
the matched cut (:func:`hpa_ens.thresholds.match_thresholds`) trusts a target share blindly and ignores
that the F1-best number of predicted rows is not the number of true positives. The rules built from these
pieces sit between the two (docs/thresholds.md has the benchmark that chose among them):

- :func:`bootstrap_cuts`: the OOF-optimal cut's median and spread over Poisson-bootstrap resamples,
  optionally with the OOF rows re-weighted to the target shares (positives of class k weighted by
  ``pi'_k / pi_k``, negatives by ``(1 - pi'_k) / (1 - pi_k)``: under a pure label shift this is the F1
  the cut would score on the target distribution);
- :func:`trust_blend`: per class, a logit-space blend of the OOF side and the matched cut weighted by the
  inverse of each one's bootstrap variance plus a common floor;
- :func:`gated_blend`: the same blend, opened per class only as far as the target share differs from the
  train share -- no announced shift, no move away from the OOF cut;
- :func:`directional_blend`: ``gated`` for classes whose share rises, the matched cut (weighted up with the
  size of the fall, without the trust cap) for classes whose share falls;
- :func:`trusted_blend` (the default rule with a target): ``directional``'s matched weight, discounted where
  matching cannot be right -- where the F1-best count under the announced shares is not the announced count (a
  weak class's best cut predicts more rows than it has positives), and by the announced shares' own sampling
  error when they come from a probe of ``target_n`` rows;
- :func:`simulated_f1` / :func:`one_se_weight` (the default rule with a target, ``simulated``): one weight between
  the OOF-F1-best cut and the matched cut for the whole set, chosen by simulating label shifts toward the target
  on the OOF rows themselves -- how far the announced shares can be trusted *on this data*;
- :func:`plugin_thresholds`: the plug-in rule of Jansche (2007), Lipton et al. (2014) and Koyejo et al.
  (2014): calibrated (and prior-corrected) test probabilities, cut where the *expected* F1 on the test rows
  is highest (the cut sits near F1*/2 of the calibrated probabilities).

Arrays: ``probs`` ``(n_samples, K)`` in [0, 1]; ``y_true`` the same shape, 0/1; shares ``(K,)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..utils import expit, logit
from ..validation import check_param
from ._cuts import NEVER, check_probs, check_shares, exact_thresholds, match_thresholds, sorted_cuts

__all__ = ["GATE_SCALE", "GATED_FLOOR", "BLEND_FLOOR", "FALL_SCALE", "COUNT_SCALE", "BootCuts", "bootstrap_cuts",
           "matched_spread", "share_logit_se", "logit_blend", "trust_blend", "gated_blend", "directional_blend",
           "trusted_blend", "SIMULATION_GRID", "SIMULATION_REPS", "POOL_FRACTION", "simulated_f1", "one_se_weight",
           "SHIFT_CHECK_Z", "label_shift_z",
           "plugin_thresholds"]

#: ``gated``: logit distance between target and train share at which the gate is 63 % open, and the
#: trust floor (docs/thresholds.md: both read off the benchmark, so say so when quoting its figures).
GATE_SCALE = 0.1
GATED_FLOOR = 1.0
#: ``blend``: the common logit spread floor of the plain trust blend.
BLEND_FLOOR = 0.25
#: ``directional``: logit distance at which a class whose share *falls* gives the matched cut 63 % of the weight
#: (read off ``benchmarks/shift_gates.py``'s seeds 0..9; checked on seeds 20..29, drawn after it was chosen).
FALL_SCALE = 0.5
#: ``trusted``: log count ratio (F1-best count under the target / announced count) at which the matched weight
#: falls to 1/e (a round value: 0.7, 1.0 and 1.5 did alike on the shaping block of ``benchmarks/shift.py``).
COUNT_SCALE = 1.0
#: ``simulated``: the OOF side's weights it chooses among (1: the exact cut, 0: the matched cut), the simulated
#: repetitions and the share of the OOF rows drawn into the pseudo-test pool (chosen on the shaping seeds 0..9 of
#: ``benchmarks/shift.py``'s patterns; benchmarks/shift_heldout_log.md, runs 3-5).
SIMULATION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
SIMULATION_REPS = 20
POOL_FRACTION = 0.5
#: The rule ``checked``'s bound, in standard errors: a class whose test scores' mean lies further than this from what
#: a pure label shift to the announced share predicts keeps the exact cut (benchmarks/shift_heldout_log.md, section 6:
#: the conventional two standard errors, fixed before the third held-out block was scored).
SHIFT_CHECK_Z = 2.0


def _robust_spread(values: np.ndarray) -> float:
    """IQR / 1.349 of the logits of ``values``: a standard deviation that ignores the tails."""
    q75, q25 = np.percentile(logit(values), [75, 25])
    return (q75 - q25) / 1.349


# ------------------------------------------------------------------------------- bootstrap cuts
@dataclass
class BootCuts:
    """Bootstrap summary of the OOF-optimal cut per class.

    Attributes
    ----------
    median : ndarray of shape (K,), median threshold over resamples (NEVER for a class without positives)
    spread : ndarray of shape (K,), robust standard deviation (IQR / 1.349) of the logit threshold
    exact : ndarray of shape (K,), the cut on the full (weighted) OOF rows
    share : ndarray of shape (K,), median over resamples of the (weighted) share of rows the best cut predicts
        (0 for a class without positives)
    """

    median: np.ndarray
    spread: np.ndarray
    exact: np.ndarray
    share: np.ndarray


def _best_cut(tp: np.ndarray, fp: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Index of the best cut per row of cumulative (weighted) tp/fp counts, shape (n_rows,)."""
    n_pos = tp[:, -1:]
    denom = tp + fp + n_pos
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    f1[:, ~valid] = -1.0
    return np.argmax(f1, axis=1)  # first maximum = fewest predicted rows


def bootstrap_cuts(y_true, probs, n_boot: int = 50, seed: int = 0, train_share=None, target_share=None) -> BootCuts:
    """Median and spread of the OOF-optimal cut over Poisson(1) bootstrap resamples, per class.

    Each column is sorted once; a resample is a vector of Poisson(1) row weights, so every resample's
    F1 curve is two weighted cumulative sums over the same sorted order (no re-sorting). With
    ``target_share`` the rows are also importance-weighted to the target shares (a label-shift
    correction of the OOF F1): positives of class k by ``target_k / train_k``, negatives by
    ``(1 - target_k) / (1 - train_k)``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, K), 0/1
    probs : array-like of shape (n_samples, K)
    n_boot : int >= 1
    seed : int
    train_share : array-like of shape (K,), optional
        Shares the OOF rows stand for (default: their label means).
    target_share : array-like of shape (K,), optional

    Returns
    -------
    BootCuts
    """
    probs, y = check_probs(probs, y_true)
    check_param("n_boot", n_boot, "an int >= 1", isinstance(n_boot, (int, np.integer)) and n_boot >= 1)
    n, K = probs.shape
    train = y.mean(axis=0) if train_share is None else np.asarray(train_share, dtype=np.float64)
    pos_w, neg_w = np.ones(K), np.ones(K)
    if target_share is not None:
        target = check_shares(target_share, K, "target_share", open_interval=True)
        ok = (train > 0) & (train < 1)
        pos_w[ok] = target[ok] / train[ok]
        neg_w[ok] = (1.0 - target[ok]) / (1.0 - train[ok])
    cuts = sorted_cuts(probs, y)
    (y_desc,) = cuts.aligned
    rng = np.random.default_rng(seed)
    median, spread, exact, share = np.full(K, NEVER), np.zeros(K), np.full(K, NEVER), np.zeros(K)
    for k in range(K):
        yk = y_desc[k].astype(np.float64)
        if yk.sum() == 0:
            continue  # no positives: never predict (the caller may override with a target)
        weights = np.vstack([np.ones(n), rng.poisson(1.0, size=(n_boot, n)).astype(np.float64)])
        tp = np.zeros((n_boot + 1, n + 1))
        fp = np.zeros((n_boot + 1, n + 1))
        np.cumsum(weights * (yk * pos_w[k]), axis=1, out=tp[:, 1:])
        np.cumsum(weights * ((1.0 - yk) * neg_w[k]), axis=1, out=fp[:, 1:])
        best = _best_cut(tp, fp, cuts.valid[k])
        class_cuts = cuts.thresholds[k, best]
        rows = np.arange(n_boot + 1)
        class_shares = (tp[rows, best] + fp[rows, best]) / (tp[:, -1] + fp[:, -1])
        exact[k] = class_cuts[0]
        drew = tp[1:, -1] > 0  # a resample that drew no positive says nothing
        boot = class_cuts[1:][drew]
        if len(boot) == 0:
            median[k], share[k] = class_cuts[0], class_shares[0]
            continue
        median[k] = float(np.median(boot))
        spread[k] = _robust_spread(boot)
        share[k] = float(np.median(class_shares[1:][drew]))
    return BootCuts(median=median, spread=spread, exact=exact, share=share)


def matched_spread(test_probs, target_share, n_boot: int = 50, seed: int = 0) -> np.ndarray:
    """Robust standard deviation of the logit matched cut over Poisson-bootstrap resamples of the test rows.

    Parameters
    ----------
    test_probs : array-like of shape (n_test, K)
    target_share : array-like of shape (K,)
    n_boot : int
    seed : int

    Returns
    -------
    spread : ndarray of shape (K,)
    """
    test_probs = check_probs(test_probs, name="test_probs")
    target = np.asarray(target_share, dtype=np.float64)
    cuts = sorted_cuts(test_probs)
    n, K = test_probs.shape
    rng = np.random.default_rng(seed)
    out = np.zeros(K)
    w = rng.poisson(1.0, size=(n_boot, n)).astype(np.float64)
    m = np.zeros((n_boot, n + 1))
    np.cumsum(w, axis=1, out=m[:, 1:])
    total = m[:, -1:]
    for k in range(K):
        distance = np.abs(m - target[k] * total)
        distance[:, ~cuts.valid[k]] = np.inf
        out[k] = _robust_spread(cuts.thresholds[k, np.argmin(distance, axis=1)])
    return out


def share_logit_se(target_share, target_n=None) -> np.ndarray:
    """Standard error of the logit of shares estimated from ``target_n`` rows: ``1 / sqrt(N p (1 - p))``.

    The sampling error of a share ``p`` probed on ``N`` rows is ``sqrt(p (1 - p) / N)``; on the logit scale the
    blends work in (delta method) it is the value returned. Zeros without ``target_n`` (shares taken as exact).

    Parameters
    ----------
    target_share : array-like of shape (K,), in (0, 1)
    target_n : int >= 1, optional

    Returns
    -------
    se : ndarray of shape (K,)

    Examples
    --------
    >>> share_logit_se([0.5, 0.1], 100).round(3).tolist()
    [0.2, 0.333]
    """
    target = np.asarray(target_share, dtype=np.float64)
    if target_n is None:
        return np.zeros_like(target)
    check_param("target_n", target_n, "an int >= 1",
                isinstance(target_n, (int, np.integer)) and not isinstance(target_n, bool) and target_n >= 1)
    return 1.0 / np.sqrt(target_n * target * (1.0 - target))


# ------------------------------------------------------------------------------------ blends
def logit_blend(oof_cut, matched_cut, w_oof) -> np.ndarray:
    """``expit(w logit(oof_cut) + (1 - w) logit(matched_cut))`` per class, shape (K,).

    Exactly the OOF cut where ``w >= 1`` (no logit round trip), :data:`hpa_ens.thresholds.NEVER` where both
    cuts are NEVER.

    Parameters
    ----------
    oof_cut, matched_cut, w_oof : array-like of shape (K,)
    """
    oof_cut = np.asarray(oof_cut, dtype=np.float64)
    matched_cut = np.asarray(matched_cut, dtype=np.float64)
    out = expit(w_oof * logit(oof_cut) + (1.0 - w_oof) * logit(matched_cut))
    out = np.where(w_oof >= 1.0, oof_cut, out)
    return np.where((oof_cut >= NEVER) & (matched_cut >= NEVER), NEVER, out)


def trust_blend(oof_cut, oof_spread, matched_cut, matched_spread_, floor: float = BLEND_FLOOR
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-class logit-space blend of an OOF-side cut and the matched cut, weighted by trust.

    ``w_k = (1 / (s_oof^2 + f^2)) / (1 / (s_oof^2 + f^2) + 1 / (s_match^2 + f^2))`` with ``s`` the bootstrap
    spreads of the two logit cuts and ``f`` the common ``floor``: two steady cuts weigh equally (neither
    is unbiased under a shift), a cut that moves with the resample loses weight to the steadier one.

    Parameters
    ----------
    oof_cut, oof_spread, matched_cut, matched_spread_ : array-like of shape (K,)
    floor : float > 0, logit units

    Returns
    -------
    thresholds : ndarray of shape (K,)
    weight : ndarray of shape (K,), the OOF side's weight
    """
    check_param("floor", floor, "a float > 0", np.isscalar(floor) and floor > 0)
    a = 1.0 / (np.asarray(oof_spread, dtype=np.float64) ** 2 + floor ** 2)
    b = 1.0 / (np.asarray(matched_spread_, dtype=np.float64) ** 2 + floor ** 2)
    w = a / (a + b)
    return logit_blend(oof_cut, matched_cut, w), w


def gated_blend(oof_cut, oof_spread, matched_cut, matched_spread_, train_share, target_share,
                scale: float = GATE_SCALE, floor: float = GATED_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """:func:`trust_blend` whose matched side opens only as far as the target differs from train.

    ``w_match,k = (1 - exp(-|logit target_k - logit train_k| / scale)) * (1 - w_trust,k)``: a class whose
    announced share equals its train share keeps its OOF cut (matching a share the OOF rows already have
    only adds the proportional cut's error); a strongly shifted class gets the trust blend.

    Parameters
    ----------
    oof_cut, oof_spread, matched_cut, matched_spread_, train_share, target_share : array-like of shape (K,)
    scale : float > 0, logit units
    floor : float > 0, see :func:`trust_blend`

    Returns
    -------
    thresholds : ndarray of shape (K,)
    weight : ndarray of shape (K,), the OOF side's weight
    """
    check_param("scale", scale, "a float > 0", np.isscalar(scale) and scale > 0)
    _, w_trust = trust_blend(oof_cut, oof_spread, matched_cut, matched_spread_, floor)
    gate = 1.0 - np.exp(-np.abs(logit(target_share) - logit(train_share)) / scale)
    w = 1.0 - gate * (1.0 - w_trust)
    return logit_blend(oof_cut, matched_cut, w), w


def directional_blend(oof_cut, oof_spread, matched_cut, matched_spread_, train_share, target_share,
                      scale: float = GATE_SCALE, floor: float = GATED_FLOOR,
                      fall_scale: float = FALL_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gated_blend` for classes whose share rises; the matched cut, uncapped, for those whose share falls.

    A class whose share falls (Aggresome: 1.35 % of train, 0.1 % on the leaderboard) has an OOF cut tuned where
    it was far more common: lenient, it predicts several times the announced count and its precision
    collapses, so trusting it half-way (``gated``'s trust cap) costs F1. There the matched weight is
    ``1 - exp(-d / fall_scale)`` with ``d = |logit target - logit train|``. A class whose share rises keeps a
    strict OOF cut that under-predicts while its matched count is topped up by the fill (which favours classes
    whose share rose), so there the two cuts' blend (``gated``) does better than either.

    Parameters
    ----------
    oof_cut, oof_spread, matched_cut, matched_spread_, train_share, target_share : array-like of shape (K,)
    scale, floor : see :func:`gated_blend` (classes whose share rises)
    fall_scale : float > 0, logit units (classes whose share falls)

    Returns
    -------
    thresholds : ndarray of shape (K,)
    weight : ndarray of shape (K,), the OOF side's weight
    """
    check_param("fall_scale", fall_scale, "a float > 0", np.isscalar(fall_scale) and fall_scale > 0)
    _, w_gated = gated_blend(oof_cut, oof_spread, matched_cut, matched_spread_, train_share, target_share, scale, floor)
    target, train = np.asarray(target_share, dtype=np.float64), np.asarray(train_share, dtype=np.float64)
    w = np.where(target < train, np.exp(-np.abs(logit(target) - logit(train)) / fall_scale), w_gated)
    return logit_blend(oof_cut, matched_cut, w), w


def trusted_blend(oof_cut, oof_spread, matched_cut, matched_spread_, train_share, target_share, best_share,
                  target_n=None, count_scale: float = COUNT_SCALE, scale: float = GATE_SCALE,
                  floor: float = GATED_FLOOR, fall_scale: float = FALL_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """:func:`directional_blend`, its matched weight discounted by the evidence that matching is wrong.

    Matching predicts the announced count ``target * n``; the F1-best count is another wherever the model is
    imperfect (a weak class's best cut predicts more rows than it has positives). ``best_share`` is that
    best count as a share, measured on the OOF rows re-weighted to the announced shares (the ``share`` of
    :func:`bootstrap_cuts` with ``target_share``); ``b = |log(best_share / target)|`` is how far off the
    matched count is. A class whose OOF cut already predicts about the announced share gains nothing from
    matching, and a class whose best count is far from it loses by matching, so the matched weight is
    ``directional``'s times ``exp(-b' / count_scale)``.

    With ``target_n`` (the announced shares are a probe of that many rows) each share carries a logit sampling
    error ``se`` (:func:`share_logit_se`): the announced shift ``d = logit target - logit train`` is shrunk to
    ``d^3 / (d^2 + se^2)`` before ``directional``'s weights are taken (a shift inside the noise opens no
    gate), and the matched count's error grows to ``b' = sqrt(b^2 + se^2)``. Without ``target_n``, ``b' = b``.

    Parameters
    ----------
    oof_cut, oof_spread, matched_cut, matched_spread_, train_share, target_share : array-like of shape (K,)
        As :func:`directional_blend`.
    best_share : array-like of shape (K,), the F1-best share under the target (0: never predict, ``b`` infinite)
    target_n : int >= 1, optional, the rows behind ``target_share``
    count_scale : float > 0, log count ratio at which the matched weight falls to 1/e
    scale, floor, fall_scale : see :func:`directional_blend`

    Returns
    -------
    thresholds : ndarray of shape (K,)
    weight : ndarray of shape (K,), the OOF side's weight
    """
    check_param("count_scale", count_scale, "a float > 0", np.isscalar(count_scale) and count_scale > 0)
    target, train = np.asarray(target_share, dtype=np.float64), np.asarray(train_share, dtype=np.float64)
    se = share_logit_se(target, target_n)
    gate_target = target
    if target_n is not None:  # the announced shift, shrunk by its signal-to-noise ratio
        d = logit(target) - logit(train)
        gate_target = expit(logit(train) + np.divide(d ** 3, d ** 2 + se ** 2, out=np.zeros_like(d), where=d != 0))
    _, w_directional = directional_blend(oof_cut, oof_spread, matched_cut, matched_spread_, train, gate_target,
                                         scale, floor, fall_scale)
    best = np.asarray(best_share, dtype=np.float64)
    with np.errstate(divide="ignore"):
        b = np.abs(np.log(best / target))  # inf where the best cut predicts nothing: no trust in a count
    w_match = (1.0 - w_directional) * np.exp(-np.sqrt(b ** 2 + se ** 2) / count_scale)
    w = 1.0 - w_match
    return logit_blend(oof_cut, matched_cut, w), w


# ---------------------------------------------------------------------------------- simulated
def _f1_at_cuts(scores: np.ndarray, y: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """F1 of ``scores > cut`` against boolean ``y`` for every cut, shape (len(cuts),)."""
    pred = scores[:, None] > cuts[None, :]
    tp = (pred & y[:, None]).sum(axis=0)
    denom = pred.sum(axis=0) + y.sum()
    return np.divide(2.0 * tp, denom, out=np.zeros(len(cuts)), where=denom > 0)


def simulated_f1(y_true, probs, n_test: int, target_share, target_n=None, reps: int = SIMULATION_REPS,
                 seed: int = 0, pool_fraction: float = POOL_FRACTION) -> np.ndarray:
    """F1 of every :data:`SIMULATION_GRID` blend of the exact and the matched cut on label shifts simulated on OOF rows.

    Each repetition splits the rows at random: ``1 - pool_fraction`` of them give the exact cut, and per class a
    pseudo-test of ``n_test`` rows is drawn from the rest with replacement, its positives
    ``Binomial(n_test, target_k)`` (a pure label shift toward the announced share, class by class). Its announced
    share is the drawn share, or with ``target_n`` a probe of that many rows of it
    (``Binomial(target_n, share) / target_n``, at least half a row). The matched cut is taken on the pseudo-test
    and every blend ``expit(w logit(exact) + (1 - w) logit(matched))`` is scored there. A class whose pool or
    whose other part has no positive, or whose draw has none, adds nothing to that repetition.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, K), 0/1
    probs : array-like of shape (n_samples, K), the OOF probabilities
    n_test : int >= 1, the test rows the cuts are for
    target_share : array-like of shape (K,), in (0, 1)
    target_n : int >= 1, optional, the rows behind ``target_share``
    reps : int >= 1
    seed : int
    pool_fraction : float in (0, 1)

    Returns
    -------
    f1 : ndarray of shape (reps, len(SIMULATION_GRID)), F1 summed over classes, per repetition and weight
    """
    probs, y = check_probs(probs, y_true)
    n, K = probs.shape
    target = check_shares(target_share, K, "target_share", open_interval=True)
    check_param("n_test", n_test, "an int >= 1", isinstance(n_test, (int, np.integer)) and n_test >= 1)
    check_param("reps", reps, "an int >= 1", isinstance(reps, (int, np.integer)) and reps >= 1)
    check_param("pool_fraction", pool_fraction, "a float in (0, 1)",
                np.isscalar(pool_fraction) and 0 < pool_fraction < 1)
    share_logit_se(target, target_n)  # checks target_n
    rng = np.random.default_rng(seed)
    grid = np.asarray(SIMULATION_GRID)
    per_rep = np.zeros((reps, len(grid)))
    n_pool = int(round(pool_fraction * n))
    y = y.astype(bool)
    for rep in range(reps):
        order = rng.permutation(n)
        pool, part = order[:n_pool], order[n_pool:]
        exact_part = exact_thresholds(y[part], probs[part])[0]
        for k in range(K):
            pos, neg = pool[y[pool, k]], pool[~y[pool, k]]
            n_pos = rng.binomial(n_test, target[k])
            if len(pos) == 0 or len(neg) == 0 or not y[part, k].any() or n_pos == 0:
                continue  # nothing to learn about this class from these rows
            rows = np.concatenate([rng.choice(pos, n_pos), rng.choice(neg, n_test - n_pos)])
            scores, labels = probs[rows, k], y[rows, k]
            announced = n_pos / n_test
            if target_n is not None:
                announced = max(rng.binomial(target_n, announced), 0.5) / target_n
            matched = match_thresholds(scores[:, None], [announced])[0]
            cuts = logit_blend(np.full(len(grid), exact_part[k]), np.full(len(grid), matched), grid)
            per_rep[rep] += _f1_at_cuts(scores, labels, cuts)
    return per_rep


def one_se_weight(per_rep) -> float:
    """The largest :data:`SIMULATION_GRID` weight whose mean simulated F1 is within one standard error of the best.

    Breiman's one-standard-error rule, leaning to the exact cut (the choice that trusts nothing announced); the
    standard error is that of the paired per-repetition difference to the best weight.

    Parameters
    ----------
    per_rep : array-like of shape (reps, len(SIMULATION_GRID)), :func:`simulated_f1`

    Returns
    -------
    weight : float, the OOF side's weight

    Examples
    --------
    >>> one_se_weight([[3.0, 2.0, 1.0, 0.5, 0.0], [3.1, 2.1, 1.1, 0.6, 0.1]])
    0.0
    >>> one_se_weight([[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    1.0
    """
    per_rep = np.asarray(per_rep, dtype=np.float64)
    check_param("per_rep", per_rep, f"a 2-d array with {len(SIMULATION_GRID)} columns",
                per_rep.ndim == 2 and per_rep.shape[1] == len(SIMULATION_GRID) and len(per_rep) >= 1)
    mean = per_rep.mean(axis=0)
    diff = per_rep - per_rep[:, [int(np.argmax(mean))]]
    se = diff.std(axis=0, ddof=1) / np.sqrt(len(per_rep)) if len(per_rep) > 1 else np.zeros(len(mean))
    return float(np.asarray(SIMULATION_GRID)[np.flatnonzero(diff.mean(axis=0) >= -se).max()])


def label_shift_z(y_true, probs, test_probs, target_share, target_n=None) -> np.ndarray:
    """Per class, how many standard errors the mean test score lies from what a pure label shift predicts.

    Under a label shift to the announced share ``t``, a test score of class ``k`` comes from the OOF positives'
    scores with probability ``t`` and from the negatives' otherwise, so its mean is ``t mu_pos + (1 - t) mu_neg``.
    The standard error adds the test mean's sampling variance (the mixture's variance over ``n_test``), the OOF
    means' own (``t^2 var_pos / n_pos + (1 - t)^2 var_neg / n_neg``) and, with ``target_n``, the announced share's
    (``(mu_pos - mu_neg)^2 t (1 - t) / target_n``). A class without OOF positives or negatives, or with no
    spread, gives 0 (no evidence either way). Test scores that no label shift to the announced share gives (a
    class whose test rows rank differently from its OOF rows, or a wrong announcement) show as a large ``|z|``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, K), 0/1
    probs : array-like of shape (n_samples, K), the OOF probabilities
    test_probs : array-like of shape (n_test, K)
    target_share : array-like of shape (K,), in (0, 1)
    target_n : int >= 1, optional, the rows behind ``target_share``

    Returns
    -------
    z : ndarray of shape (K,)

    Examples
    --------
    >>> y = np.array([[1], [1], [0], [0]])
    >>> probs = np.array([[0.9], [0.7], [0.2], [0.4]])
    >>> float(label_shift_z(y, probs, np.array([[0.8], [0.3], [0.6]]), [0.25])[0].round(3))
    0.953
    """
    probs, y = check_probs(probs, y_true)
    test = check_probs(test_probs, name="test_probs")
    K = probs.shape[1]
    check_param("test_probs", test, f"an array with {K} columns", test.shape[1] == K)
    t = check_shares(target_share, K, "target_share", open_interval=True)
    share_logit_se(t, target_n)  # checks target_n
    n_test = len(test)
    z = np.zeros(K)
    for k in range(K):
        pos, neg = probs[y[:, k], k], probs[~y[:, k], k]
        if len(pos) == 0 or len(neg) == 0:
            continue
        gap = pos.mean() - neg.mean()
        expected = t[k] * pos.mean() + (1 - t[k]) * neg.mean()
        var = (t[k] * pos.var() + (1 - t[k]) * neg.var() + t[k] * (1 - t[k]) * gap ** 2) / n_test
        var += t[k] ** 2 * pos.var() / len(pos) + (1 - t[k]) ** 2 * neg.var() / len(neg)
        if target_n is not None:
            var += gap ** 2 * t[k] * (1 - t[k]) / target_n
        if var > 0:
            z[k] = (test[:, k].mean() - expected) / np.sqrt(var)
    return z


# ------------------------------------------------------------------------------------ plug-in
def plugin_thresholds(test_probs, calibrated_test, target_share=None) -> np.ndarray:
    """Cut each test column where the expected F1 under calibrated probabilities is highest.

    ``E-F1(m) ~= 2 sum_{top m} q / (m + P)``, with ``q`` the calibrated (and prior-corrected) test
    probabilities in the order of the raw scores and ``P`` the expected positive count (``target_share *
    n`` when a target is given, else ``sum q``). The chosen cut is placed between raw test scores, so
    it is a threshold on the raw probabilities like every other rule's.

    Parameters
    ----------
    test_probs : array-like of shape (n_test, K), raw scores
    calibrated_test : array-like of shape (n_test, K), their calibrated probabilities
    target_share : array-like of shape (K,), optional

    Returns
    -------
    thresholds : ndarray of shape (K,)
    """
    test_probs = check_probs(test_probs, name="test_probs")
    q = np.asarray(calibrated_test, dtype=np.float64)
    cuts = sorted_cuts(test_probs, q)
    (q_desc,) = cuts.aligned
    K, n = cuts.scores.shape
    gain = np.zeros((K, n + 1))
    np.cumsum(q_desc, axis=1, out=gain[:, 1:])
    P = gain[:, -1] if target_share is None else np.asarray(target_share, dtype=np.float64) * n
    m = np.arange(n + 1, dtype=np.float64)[None, :]
    denom = m + P[:, None]
    f1 = np.divide(2.0 * gain, denom, out=np.zeros_like(gain), where=denom > 0)
    f1[~cuts.valid] = -1.0
    best = np.argmax(f1, axis=1)
    return cuts.thresholds[np.arange(K), best]
