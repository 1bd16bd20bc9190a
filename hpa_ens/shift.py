"""Thresholds under label shift: rules that use target class shares without overfitting them.

The OOF-optimal cut (:func:`hpa_ens.thresholds.exact_thresholds`) is tuned for the *train* class shares;
the matched cut (:func:`hpa_ens.thresholds.match_thresholds`) trusts a target share blindly and ignores
that the F1-best number of predicted rows is not the number of true positives. The rules here sit
between the two (see docs/thresholds.md for the benchmark that chose among them):

- :func:`bootstrap_cuts`: the OOF-optimal cut's median and spread over Poisson-bootstrap resamples,
  optionally with the OOF rows re-weighted to the target shares (positives of class k weighted by
  ``pi'_k / pi_k``, negatives by ``(1 - pi'_k) / (1 - pi_k)``: under a pure label shift this is the F1
  the cut would score on the target distribution);
- :func:`trust_blend`: per class, a logit-space blend of the OOF side and the matched cut weighted by the
  inverse of each one's bootstrap variance plus a common floor;
- :func:`gated_blend`: the same blend, opened per class only as far as the target share differs from the
  train share -- no announced shift, no move away from the OOF cut;
- :func:`directional_blend` (the default with a target): ``gated`` for classes whose share rises, the matched
  cut (weighted up with the size of the fall, without the trust cap) for classes whose share falls;
- :func:`em_priors` / :func:`adjust_priors`: Saerens-Latinne-Decaestecker (2002) EM estimate of the
  test shares and the odds correction of probabilities toward new shares;
- :func:`plugin_thresholds`: the plug-in rule of Jansche (2007), Lipton et al. (2014) and Koyejo et al.
  (2014): calibrate on OOF (isotonic), correct toward the target shares, and cut where the *expected* F1
  on the test rows is highest (the cut sits near F1*/2 of the calibrated probabilities).

:func:`tune_thresholds` dispatches on a method name; :class:`ThresholdTuner` is the scikit-learn-shaped
front end. Arrays: ``probs`` ``(n_samples, K)`` in [0, 1]; ``y_true`` the same shape, 0/1; shares ``(K,)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import thresholds as T
from .validation import ParameterError, check_param
from .calibration import Posterior, adjust_priors
from .decision import RANK_RULES, apply_thresholds, default_rank_rule

__all__ = [
    "METHODS",
    "NEEDS_OOF",
    "NEEDS_TEST",
    "DEFAULT_WITH_TARGET",
    "DEFAULT_WITHOUT_TARGET",
    "BootCuts",
    "bootstrap_cuts",
    "matched_spread",
    "trust_blend",
    "gated_blend",
    "directional_blend",
    "calibrate",
    "adjust_priors",
    "em_priors",
    "plugin_thresholds",
    "tune_thresholds",
    "default_method",
    "ThresholdTuner",
]

#: Every rule :func:`tune_thresholds` knows (``optuna`` lives in :mod:`hpa_ens.tune_thresholds`).
METHODS = ("exact", "boot", "match", "blend", "gated", "directional", "prior", "reweight", "plugin")
#: Rules that read OOF rows and their labels (a test-only prediction set cannot feed them).
NEEDS_OOF = ("exact", "boot", "blend", "gated", "directional", "prior", "reweight", "plugin")
#: Rules that read the test rows.
NEEDS_TEST = ("match", "blend", "gated", "directional", "prior", "reweight", "plugin")
#: Rules that need a target share (the others estimate one by EM or ignore it).
NEEDS_TARGET = ("match", "blend", "gated", "directional")
#: The defaults chosen by ``benchmarks/shift.py`` (docs/thresholds.md has the table).
DEFAULT_WITH_TARGET = "directional"
DEFAULT_WITHOUT_TARGET = "boot"
#: ``gated``: logit distance between target and train share at which the gate is 63 % open, and the
#: trust floor (docs/thresholds.md: both read off the benchmark, so say so when quoting its figures).
GATE_SCALE = 0.1
GATED_FLOOR = 1.0
#: ``directional``: logit distance at which a class whose share *falls* gives the matched cut 63 % of the weight
#: (read off ``benchmarks/shift_gates.py``'s seeds 0..9; checked on seeds 20..29, drawn after it was chosen).
FALL_SCALE = 0.5

_CLIP = 1e-6


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), _CLIP, 1.0 - _CLIP)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def _check_share_vector(share, n_classes: int, name: str = "target") -> np.ndarray:
    share = np.asarray(share, dtype=np.float64)
    check_param(name, share.tolist() if share.size <= 8 else f"array of shape {share.shape}",
                f"an array of {n_classes} shares in (0, 1)",
                share.shape == (n_classes,) and bool(np.isfinite(share).all())
                and bool(((share > 0) & (share < 1)).all()))
    return share


# ------------------------------------------------------------------------------- bootstrap cuts
@dataclass
class BootCuts:
    """Bootstrap summary of the OOF-optimal cut per class.

    Attributes
    ----------
    median : ndarray of shape (K,), median threshold over resamples (NEVER for a class without positives)
    spread : ndarray of shape (K,), robust standard deviation (IQR / 1.349) of the logit threshold
    exact : ndarray of shape (K,), the cut on the full (weighted) OOF rows
    """

    median: np.ndarray
    spread: np.ndarray
    exact: np.ndarray


def _class_cut_f1(tp: np.ndarray, fp: np.ndarray, valid: np.ndarray) -> np.ndarray:
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
    probs, y = T._check_xy(probs, y_true)
    check_param("n_boot", n_boot, "an int >= 1", isinstance(n_boot, (int, np.integer)) and n_boot >= 1)
    n, K = probs.shape
    train = y.mean(axis=0) if train_share is None else np.asarray(train_share, dtype=np.float64)
    pos_w, neg_w = np.ones(K), np.ones(K)
    if target_share is not None:
        target = _check_share_vector(target_share, K, "target_share")
        ok = (train > 0) & (train < 1)
        pos_w[ok] = target[ok] / train[ok]
        neg_w[ok] = (1.0 - target[ok]) / (1.0 - train[ok])
    scores_desc, y_desc = T._sorted_desc(probs, y)
    thresholds, valid = T._cut_thresholds(scores_desc)
    rng = np.random.default_rng(seed)
    median, spread, exact = np.full(K, T.NEVER), np.zeros(K), np.full(K, T.NEVER)
    for k in range(K):
        yk = y_desc[k].astype(np.float64)
        if yk.sum() == 0:
            continue  # no positives: never predict (the caller may override with a target)
        weights = np.vstack([np.ones(n), rng.poisson(1.0, size=(n_boot, n)).astype(np.float64)])
        tp = np.zeros((n_boot + 1, n + 1))
        fp = np.zeros((n_boot + 1, n + 1))
        np.cumsum(weights * (yk * pos_w[k]), axis=1, out=tp[:, 1:])
        np.cumsum(weights * ((1.0 - yk) * neg_w[k]), axis=1, out=fp[:, 1:])
        best = _class_cut_f1(tp, fp, valid[k])
        cuts = thresholds[k, best]
        exact[k] = cuts[0]
        boot = cuts[1:][tp[1:, -1] > 0]  # a resample that drew no positive says nothing
        if len(boot) == 0:
            median[k] = cuts[0]
            continue
        median[k] = float(np.median(boot))
        q75, q25 = np.percentile(_logit(boot), [75, 25])
        spread[k] = (q75 - q25) / 1.349
    return BootCuts(median=median, spread=spread, exact=exact)


def matched_spread(test_probs, target_share, n_boot: int = 50, seed: int = 0) -> np.ndarray:
    """Robust standard deviation of the logit matched cut over Poisson-bootstrap resamples of the test rows.

    Returns
    -------
    spread : ndarray of shape (K,)
    """
    test_probs = T._check_xy(test_probs, name="test_probs")
    target = np.asarray(target_share, dtype=np.float64)
    (scores_desc,) = T._sorted_desc(test_probs)
    thresholds, valid = T._cut_thresholds(scores_desc)
    n, K = test_probs.shape
    rng = np.random.default_rng(seed)
    out = np.zeros(K)
    w = rng.poisson(1.0, size=(n_boot, n)).astype(np.float64)
    m = np.zeros((n_boot, n + 1))
    np.cumsum(w, axis=1, out=m[:, 1:])
    total = m[:, -1:]
    for k in range(K):
        distance = np.abs(m - target[k] * total)
        distance[:, ~valid[k]] = np.inf
        cuts = thresholds[k, np.argmin(distance, axis=1)]
        q75, q25 = np.percentile(_logit(cuts), [75, 25])
        out[k] = (q75 - q25) / 1.349
    return out


def trust_blend(oof_cut, oof_spread, matched_cut, matched_spread_, floor: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
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
    oof_cut = np.asarray(oof_cut, dtype=np.float64)
    matched_cut = np.asarray(matched_cut, dtype=np.float64)
    out = _sigmoid(w * _logit(oof_cut) + (1.0 - w) * _logit(matched_cut))
    never = oof_cut >= T.NEVER
    out = np.where(never & (matched_cut >= T.NEVER), T.NEVER, out)
    return out, w


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
    gate = 1.0 - np.exp(-np.abs(_logit(target_share) - _logit(train_share)) / scale)
    w = 1.0 - gate * (1.0 - w_trust)
    return _logit_blend(oof_cut, matched_cut, w), w


def _logit_blend(oof_cut, matched_cut, w_oof) -> np.ndarray:
    """``sigmoid(w logit(oof_cut) + (1 - w) logit(matched_cut))`` per class, shape (K,): exactly the OOF cut where
    ``w >= 1`` (no logit round trip), :data:`hpa_ens.thresholds.NEVER` where both cuts are NEVER."""
    oof_cut = np.asarray(oof_cut, dtype=np.float64)
    matched_cut = np.asarray(matched_cut, dtype=np.float64)
    out = _sigmoid(w_oof * _logit(oof_cut) + (1.0 - w_oof) * _logit(matched_cut))
    out = np.where(w_oof >= 1.0, oof_cut, out)
    return np.where((oof_cut >= T.NEVER) & (matched_cut >= T.NEVER), T.NEVER, out)


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
    w = np.where(target < train, np.exp(-np.abs(_logit(target) - _logit(train)) / fall_scale), w_gated)
    return _logit_blend(oof_cut, matched_cut, w), w


# ----------------------------------------------------------------------------------- prior shift
def em_priors(test_probs, train_share, max_iter: int = 200, tol: float = 1e-7) -> np.ndarray:
    """Saerens-Latinne-Decaestecker EM estimate of each class's share on the test rows.

    Iterates ``pi <- mean(adjust_priors(p, train, pi))`` per class (a binary problem per class) until
    the shares move by less than ``tol``. Assumes the probabilities are calibrated for ``train_share``.

    Returns
    -------
    shares : ndarray of shape (K,)
    """
    p = np.asarray(test_probs, dtype=np.float64)
    train = np.clip(np.asarray(train_share, dtype=np.float64), _CLIP, 1 - _CLIP)
    pi = train.copy()
    for _ in range(max_iter):
        new = np.clip(adjust_priors(p, train, pi).mean(axis=0), _CLIP, 1 - _CLIP)
        if np.max(np.abs(new - pi)) < tol:
            return new
        pi = new
    return pi


def calibrate(oof_probs, y_true, probs) -> np.ndarray:
    """Isotonic calibration per class fitted on the OOF rows, applied to ``probs`` (monotone: ranks kept)."""
    oof_probs, y = T._check_xy(oof_probs, y_true, "oof_probs")
    probs = T._check_xy(probs, name="probs")
    return Posterior.fit(oof_probs, y).calibrated(probs)


def plugin_thresholds(test_probs, calibrated_test, target_share=None, expected_pos=None) -> np.ndarray:
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
    expected_pos : ignored (reserved)

    Returns
    -------
    thresholds : ndarray of shape (K,)
    """
    test_probs = T._check_xy(test_probs, name="test_probs")
    q = np.asarray(calibrated_test, dtype=np.float64)
    scores_desc, q_desc = T._sorted_desc(test_probs, q)
    thresholds, valid = T._cut_thresholds(scores_desc)
    K, n = scores_desc.shape
    gain = np.zeros((K, n + 1))
    np.cumsum(q_desc, axis=1, out=gain[:, 1:])
    P = gain[:, -1] if target_share is None else np.asarray(target_share, dtype=np.float64) * n
    m = np.arange(n + 1, dtype=np.float64)[None, :]
    denom = m + P[:, None]
    f1 = np.divide(2.0 * gain, denom, out=np.zeros_like(gain), where=denom > 0)
    f1[~valid] = -1.0
    best = np.argmax(f1, axis=1)
    return thresholds[np.arange(K), best]


# ----------------------------------------------------------------------------------- dispatcher
def default_method(has_target: bool) -> str:
    """The benchmark's winner: :data:`DEFAULT_WITH_TARGET` with a target share, else :data:`DEFAULT_WITHOUT_TARGET`."""
    return DEFAULT_WITH_TARGET if has_target else DEFAULT_WITHOUT_TARGET


def check_method_inputs(method: str, has_oof: bool, has_test: bool, has_target: bool) -> None:
    """Refuse, in one line saying why, a rule whose inputs are missing."""
    check_param("method", method, f"one of {', '.join(METHODS)}", method in METHODS)
    if method in NEEDS_OOF and not has_oof:
        raise ParameterError(f"The 'method' parameter must name a rule that needs no OOF rows (match) for a test-only "
                             f"prediction set: '{method}' tunes on OOF probabilities and their labels. Got {method!r} instead.")
    if method in NEEDS_TEST and not has_test:
        raise ParameterError(f"The 'method' parameter must name a rule that needs no test rows when none are given: "
                             f"'{method}' reads the test probabilities. Got {method!r} instead.")
    if method in NEEDS_TARGET and not has_target:
        raise ParameterError(f"The 'method' parameter must name a rule that needs no target shares when none is "
                             f"given: '{method}' matches test shares to a target. Got {method!r} instead.")


def tune_thresholds(method: str, oof_probs=None, y_true=None, test_probs=None, target_share=None, *,
                    n_boot: int = 50, floor: float | None = None, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Per-class thresholds by one of :data:`METHODS`.

    Parameters
    ----------
    method : str
        ``exact`` OOF-optimal cut; ``boot`` bootstrap-median OOF cut; ``match`` the cut giving the target
        share on test; ``blend`` trust-weighted blend of ``boot`` and ``match``; ``gated`` the ``blend``
        opened per class as far as the target share differs from the train share (:func:`gated_blend`);
        ``directional`` ``gated`` where the share rises, the matched cut where it falls (:func:`directional_blend`);
        ``prior`` test probabilities corrected toward the target (EM estimate without one), then the
        OOF-optimal cut; ``reweight`` bootstrap-median OOF cut with the OOF rows re-weighted to the target
        shares (EM estimate without one); ``plugin`` expected-F1 cut on the calibrated, prior-corrected test rows.
    oof_probs, y_true : array-like of shape (n_oof, K), optional for ``match``
    test_probs : array-like of shape (n_test, K), optional for ``exact`` and ``boot``
    target_share : array-like of shape (K,) in (0, 1), optional
    n_boot, floor, seed : bootstrap resamples, :func:`trust_blend` floor (None: the rule's own), seed

    Returns
    -------
    thresholds : ndarray of shape (K,)
    info : dict
        What the rule used: ``trust_weight``, ``estimated_share``, ``oof_spread`` where relevant.
    """
    check_method_inputs(method, oof_probs is not None, test_probs is not None, target_share is not None)
    info: dict = {}
    if test_probs is not None:
        test_probs = T._check_xy(test_probs, name="test_probs")
    K = test_probs.shape[1] if test_probs is not None else np.asarray(oof_probs).shape[1]
    target = None if target_share is None else _check_share_vector(target_share, K)
    if method == "match":
        return T.match_thresholds(test_probs, target), info
    oof_probs, y = T._check_xy(oof_probs, y_true, "oof_probs")
    if test_probs is not None and test_probs.shape[1] != K:
        raise ParameterError(f"The 'test_probs' parameter must have {K} columns like 'oof_probs'. "
                             f"Got {test_probs.shape[1]} instead.")
    train = y.mean(axis=0)
    if method == "exact":
        return T.exact_thresholds(y, oof_probs)[0], info
    if method == "boot":
        boot = bootstrap_cuts(y, oof_probs, n_boot, seed)
        return boot.median, {"oof_spread": boot.spread}
    if method in ("prior", "reweight", "plugin") and target is None:
        # Without a target, the test shares are estimated by EM on calibrated probabilities.
        target = em_priors(calibrate(oof_probs, y, test_probs), train)
        info["estimated_share"] = target
    if method == "prior":
        cut, _ = T.exact_thresholds(y, oof_probs)
        # p' = adjust(p, train -> target) > cut  <=>  p > adjust(cut, target -> train)
        return np.where(cut >= T.NEVER, T.NEVER, adjust_priors(cut, target, train)), info
    if method == "plugin":
        q = adjust_priors(calibrate(oof_probs, y, test_probs), train, target)
        return plugin_thresholds(test_probs, q, target), info
    side = bootstrap_cuts(y, oof_probs, n_boot, seed, train_share=train,
                          target_share=target if method == "reweight" else None)
    if method == "reweight":
        return side.median, info | {"oof_spread": side.spread}
    matched = T.match_thresholds(test_probs, target)
    spread = matched_spread(test_probs, target, n_boot, seed)
    if method in ("gated", "directional"):
        rule = gated_blend if method == "gated" else directional_blend
        thr, w = rule(side.median, side.spread, matched, spread, train, target,
                      floor=GATED_FLOOR if floor is None else floor)
    else:
        thr, w = trust_blend(side.median, side.spread, matched, spread, 0.25 if floor is None else floor)
    no_pos = y.sum(axis=0) == 0
    thr[no_pos] = matched[no_pos]  # nothing to learn from OOF: the target alone decides
    return thr, info | {"trust_weight": w, "oof_spread": side.spread}


# ------------------------------------------------------------------------------ sklearn front end
@dataclass
class ThresholdTuner:
    """Per-class thresholds in scikit-learn's shape: ``fit(oof_probs, y)``, then ``transform(test_probs)``.

    Parameters
    ----------
    method : str or None
        One of :data:`METHODS`; None picks :func:`default_method` (the benchmark's winner with or without
        a target).
    target : array-like of shape (K,), optional
        Target positive share per class on the test rows (e.g. leaderboard-probed shares).
    min_labels, max_labels : int, int or None
        Labels forced per row / cap per row, applied by :func:`hpa_ens.decision.apply_thresholds`.
    rank_by : str or None
        How rows with too few labels are topped up (see :data:`hpa_ens.decision.RANK_RULES`); None picks
        :func:`hpa_ens.decision.default_rank_rule` (``posterior`` with OOF rows and a target).
    n_boot, floor, seed : see :func:`tune_thresholds`

    Attributes
    ----------
    thresholds_ : ndarray of shape (K,)
        Set by ``fit`` (rules that read test rows need ``test_probs`` at ``fit`` or are finished by the
        first ``transform``).
    method_ : str, the rule used
    rank_by_ : str, the fill rule used
    posterior_ : hpa_ens.calibration.Posterior or None, fitted on the OOF rows for ``rank_by_ == "posterior"``
    info_ : dict

    Examples
    --------
    >>> import numpy as np
    >>> from hpa_ens.shift import ThresholdTuner
    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random((400, 3)) < 0.3).astype(int)
    >>> oof = np.clip(0.6 * y + 0.5 * rng.random((400, 3)), 0, 1)
    >>> tuner = ThresholdTuner(method="boot").fit(oof, y)
    >>> tuner.transform(oof[:5]).shape
    (5, 3)
    """

    method: str | None = None
    target: object = None
    min_labels: int = 1
    max_labels: int | None = None
    rank_by: str | None = None
    n_boot: int = 50
    floor: float | None = None
    seed: int = 0
    thresholds_: np.ndarray | None = field(default=None, init=False, repr=False)
    method_: str | None = field(default=None, init=False, repr=False)
    rank_by_: str | None = field(default=None, init=False, repr=False)
    posterior_: Posterior | None = field(default=None, init=False, repr=False)
    info_: dict = field(default_factory=dict, init=False, repr=False)

    def _resolved(self) -> str:
        return self.method if self.method is not None else default_method(self.target is not None)

    def fit(self, oof_probs=None, y=None, test_probs=None) -> "ThresholdTuner":
        """Tune on OOF rows (and, for rules that read them, the test rows).

        Parameters
        ----------
        oof_probs, y : array-like of shape (n_oof, K)
        test_probs : array-like of shape (n_test, K), optional
        """
        check_param("rank_by", self.rank_by, f"None or one of {RANK_RULES}",
                    self.rank_by is None or self.rank_by in RANK_RULES, "ThresholdTuner")
        self.method_ = self._resolved()
        has_oof = oof_probs is not None and y is not None
        self.rank_by_ = self.rank_by or default_rank_rule(has_oof, self.target is not None)
        check_param("rank_by", self.rank_by_, "a rule other than 'posterior' without OOF rows to calibrate on",
                    has_oof or self.rank_by_ != "posterior", "ThresholdTuner")
        self.posterior_ = (Posterior.fit(oof_probs, y, self.target) if self.rank_by_ == "posterior" else None)
        self._oof, self._y = oof_probs, y
        self.thresholds_ = None
        if test_probs is not None or self.method_ not in NEEDS_TEST:
            self.thresholds_, self.info_ = tune_thresholds(
                self.method_, oof_probs, y, test_probs, self.target, n_boot=self.n_boot, floor=self.floor,
                seed=self.seed)
        else:
            check_method_inputs(self.method_, oof_probs is not None, True, self.target is not None)
        return self

    def transform(self, test_probs) -> np.ndarray:
        """0/1 predictions of shape (n_test, K) after the thresholds and the min/max-labels rule."""
        if self.method_ is None:
            raise ParameterError("The 'ThresholdTuner' parameter must be fitted before transform. Got an unfitted tuner instead.")
        if self.thresholds_ is None:
            self.thresholds_, self.info_ = tune_thresholds(
                self.method_, self._oof, self._y, test_probs, self.target, n_boot=self.n_boot, floor=self.floor,
                seed=self.seed)
        pred = apply_thresholds(np.asarray(test_probs, dtype=np.float64), self.thresholds_, self.min_labels,
                                self.max_labels, rank_by=self.rank_by_, posterior=self.posterior_)
        return pred.astype(np.uint8)

    def fit_transform(self, oof_probs, y, test_probs) -> np.ndarray:
        return self.fit(oof_probs, y, test_probs).transform(test_probs)
