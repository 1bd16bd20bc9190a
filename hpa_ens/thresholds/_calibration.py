"""Calibrated class probabilities for a shifted test set: isotonic per class on OOF rows, then a prior correction.

:class:`Posterior` is what the ``posterior`` fill rule of :func:`hpa_ens.thresholds.apply_thresholds` ranks by
(a row left without a label gets the class most likely to be right on the *target* distribution), and
what ``thresholds.json`` carries so that ``submit`` applies exactly the rule that was tuned.

- calibration: per class, :class:`sklearn.isotonic.IsotonicRegression` fitted on the OOF probabilities and
  their labels (monotone, so it never reorders a column); only its breakpoints are kept, and
  :meth:`Posterior.calibrated` interpolates them as ``IsotonicRegression.predict`` does;
- prior correction (Saerens, Latinne and Decaestecker, 2002): :func:`adjust_priors` moves the calibrated
  probabilities from the OOF rows' class shares to the target shares (identity without a target);
- :func:`em_priors`: the same authors' EM estimate of the test shares when none is announced.

Arrays: ``probs`` ``(n_samples, K)`` in [0, 1]; shares ``(K,)`` in (0, 1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from ..contract.thresholds import read_posterior
from ..validation import ParameterError, check_param
from ._cuts import check_probs

__all__ = ["Posterior", "adjust_priors", "em_priors", "calibrate", "EMConvergenceWarning"]


class EMConvergenceWarning(RuntimeWarning):
    """:func:`em_priors` stopped at ``max_iter`` before the shares settled: the estimate it returns may be off."""

#: Shares are kept inside [1e-6, 1 - 1e-6] so that odds stay finite.
_SHARE_CLIP = 1e-6


def adjust_priors(probs, old_share, new_share) -> np.ndarray:
    """Odds correction of probabilities from ``old_share`` to ``new_share`` (Saerens et al., 2002).

    ``p' = r p / (r p + s (1 - p))``, ``r = new / old``, ``s = (1 - new) / (1 - old)``, per class.

    Parameters
    ----------
    probs : array-like of shape (n_samples, K) or (K,)
    old_share, new_share : array-like of shape (K,), in (0, 1)

    Returns
    -------
    ndarray of the shape of ``probs``
    """
    p = np.asarray(probs, dtype=np.float64)
    old = np.clip(np.asarray(old_share, dtype=np.float64), _SHARE_CLIP, 1 - _SHARE_CLIP)
    new = np.clip(np.asarray(new_share, dtype=np.float64), _SHARE_CLIP, 1 - _SHARE_CLIP)
    r, s = new / old, (1.0 - new) / (1.0 - old)
    num = r * p
    den = num + s * (1.0 - p)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def em_priors(test_probs, train_share, max_iter: int = 200, tol: float = 1e-7) -> np.ndarray:
    """Saerens-Latinne-Decaestecker EM estimate of each class's share on the test rows.

    Iterates ``pi <- mean(adjust_priors(p, train, pi))`` per class (a binary problem per class) until
    the shares move by less than ``tol``. Assumes the probabilities are calibrated for ``train_share``.

    Parameters
    ----------
    test_probs : array-like of shape (n_test, K), calibrated probabilities
    train_share : array-like of shape (K,)
    max_iter : int >= 1
    tol : float > 0

    Returns
    -------
    shares : ndarray of shape (K,)
        The last iterate; when the shares still moved by ``tol`` or more after ``max_iter`` iterations it
        comes with an :class:`EMConvergenceWarning` naming the iteration count and the last change.
    """
    check_param("max_iter", max_iter, "an int >= 1", isinstance(max_iter, Integral) and not isinstance(max_iter, bool)
                and max_iter >= 1, "em_priors")
    check_param("tol", tol, "a float > 0", isinstance(tol, Real) and not isinstance(tol, bool) and tol > 0, "em_priors")
    p = np.asarray(test_probs, dtype=np.float64)
    train = np.clip(np.asarray(train_share, dtype=np.float64), _SHARE_CLIP, 1 - _SHARE_CLIP)
    pi = train.copy()
    for _ in range(max_iter):
        new = np.clip(adjust_priors(p, train, pi).mean(axis=0), _SHARE_CLIP, 1 - _SHARE_CLIP)
        change = np.abs(new - pi)
        if np.max(change) < tol:
            return new
        pi = new
    worst = int(np.argmax(change))
    warnings.warn(f"em_priors did not converge in {max_iter} iterations: the last one still moved the estimated "
                  f"test shares by {change[worst]:.3g} (class {worst}; tol {tol:g}); the estimate may be off",
                  EMConvergenceWarning, stacklevel=2)
    return pi


@dataclass(frozen=True)
class Posterior:
    """Isotonic calibration per class (fitted on OOF rows) followed by a prior correction to target shares.

    Attributes
    ----------
    x, y : tuple of K ndarrays
        Breakpoints of each class's isotonic map: ``x`` increasing raw scores, ``y`` calibrated values in [0, 1].
    train_share : ndarray of shape (K,)
        Class shares of the OOF rows the calibration was fitted on (clipped into (0, 1)).
    target_share : ndarray of shape (K,)
        Shares to correct toward (``train_share`` when no target was given: no correction).
    """

    x: tuple
    y: tuple
    train_share: np.ndarray
    target_share: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.x)

    @classmethod
    def fit(cls, oof_probs, y_true, target_share=None) -> "Posterior":
        """Fit on OOF probabilities ``(n, K)`` and their 0/1 labels; ``target_share`` ``(K,)`` optional."""
        from sklearn.isotonic import IsotonicRegression

        oof = np.asarray(oof_probs, dtype=np.float64)
        y = np.asarray(y_true, dtype=np.float64)
        if oof.ndim != 2 or y.shape != oof.shape or len(oof) == 0:
            raise ParameterError(f"The 'oof_probs' and 'y_true' parameters of Posterior.fit must be 2-D arrays of one "
                                 f"non-empty shape. Got {oof.shape} and {y.shape} instead.")
        n, K = oof.shape
        xs, ys = [], []
        for k in range(K):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof[:, k], y[:, k])
            xs.append(np.asarray(iso.X_thresholds_, dtype=np.float64))
            ys.append(np.asarray(iso.y_thresholds_, dtype=np.float64))
        train = np.clip(y.mean(axis=0), 0.5 / n, 1 - 0.5 / n)  # a class without positives: half a row
        target = train if target_share is None else np.asarray(target_share, dtype=np.float64)
        if target.shape != (K,) or not (np.isfinite(target).all() and ((target > 0) & (target < 1)).all()):
            raise ParameterError(f"The 'target_share' parameter of Posterior.fit must be {K} shares in (0, 1). "
                                 f"Got {target.tolist() if target.size <= 8 else target.shape} instead.")
        return cls(tuple(xs), tuple(ys), train, target.copy())

    def calibrated(self, probs) -> np.ndarray:
        """Isotonic-calibrated probabilities, shape of ``probs`` ``(n, K)`` (no prior correction)."""
        p = np.asarray(probs, dtype=np.float64)
        out = np.empty_like(p)
        for k in range(self.n_classes):
            out[:, k] = np.interp(p[:, k], self.x[k], self.y[k])  # = IsotonicRegression.predict (clip)
        return out

    def transform(self, probs) -> np.ndarray:
        """Calibrated, prior-corrected probabilities, shape ``(n, K)``."""
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.n_classes:
            raise ParameterError(f"The 'probs' parameter of Posterior.transform must have {self.n_classes} columns. "
                                 f"Got shape {p.shape} instead.")
        return adjust_priors(self.calibrated(p), self.train_share, self.target_share)

    def to_json(self) -> dict:
        """The ``posterior`` object of ``thresholds.json`` (:func:`hpa_ens.contract.thresholds.read_posterior`)."""
        return {"x": [v.tolist() for v in self.x], "y": [v.tolist() for v in self.y],
                "train_share": self.train_share.tolist(), "target_share": self.target_share.tolist()}

    @classmethod
    def from_json(cls, doc, n_classes: int, source: str = "posterior") -> "Posterior":
        """Read and check the ``to_json`` form; a ContractError names ``source`` and what is wrong."""
        arrays = read_posterior(doc, n_classes, source)
        return cls(arrays["x"], arrays["y"], arrays["train_share"], arrays["target_share"])

    @classmethod
    def from_record(cls, record) -> "Posterior | None":
        """The calibration a :class:`hpa_ens.contract.ThresholdsRecord` fills by, or None when it has none."""
        return None if record.posterior is None else cls.from_json(record.posterior, record.n_classes)


def calibrate(oof_probs, y_true, probs) -> np.ndarray:
    """Isotonic calibration per class fitted on the OOF rows, applied to ``probs`` (monotone: ranks kept).

    Parameters
    ----------
    oof_probs, y_true : array-like of shape (n_oof, K)
    probs : array-like of shape (n, K)

    Returns
    -------
    ndarray of shape (n, K)
    """
    oof_probs, y = check_probs(oof_probs, y_true, "oof_probs")
    probs = check_probs(probs, name="probs")
    return Posterior.fit(oof_probs, y).calibrated(probs)
