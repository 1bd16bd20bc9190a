"""Calibrated class probabilities for a shifted test set: isotonic per class on OOF rows, then a prior correction.

:class:`Posterior` is what the ``posterior`` fill rule of :func:`hpa_ens.decision.apply_thresholds` ranks by
(a row left without a label gets the class most likely to be right on the *target* distribution), and
what ``thresholds.json`` carries so that ``submit`` applies exactly the rule that was tuned.

- calibration: per class, :class:`sklearn.isotonic.IsotonicRegression` fitted on the OOF probabilities and
  their labels (monotone, so it never reorders a column); only its breakpoints are kept, and
  :meth:`Posterior.calibrated` interpolates them as ``IsotonicRegression.predict`` does;
- prior correction (Saerens, Latinne and Decaestecker, 2002): :func:`adjust_priors` moves the calibrated
  probabilities from the OOF rows' class shares to the target shares (identity without a target).

Arrays: ``probs`` ``(n_samples, K)`` in [0, 1]; shares ``(K,)`` in (0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .validation import ContractError, ParameterError

__all__ = ["Posterior", "adjust_priors"]

_CLIP = 1e-6


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
    old = np.clip(np.asarray(old_share, dtype=np.float64), _CLIP, 1 - _CLIP)
    new = np.clip(np.asarray(new_share, dtype=np.float64), _CLIP, 1 - _CLIP)
    r, s = new / old, (1.0 - new) / (1.0 - old)
    num = r * p
    den = num + s * (1.0 - p)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


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
        return {"x": [v.tolist() for v in self.x], "y": [v.tolist() for v in self.y],
                "train_share": self.train_share.tolist(), "target_share": self.target_share.tolist()}

    @classmethod
    def from_json(cls, doc, n_classes: int, source: str = "posterior") -> "Posterior":
        """Read and check the ``to_json`` form; a ContractError names ``source`` and what is wrong."""
        def bad(what, got):
            return ContractError(f"{source}: 'posterior' {what}. Got {got!r} instead.")

        if not isinstance(doc, Mapping):
            raise bad("must be an object with x, y, train_share and target_share", type(doc).__name__)
        arrays = {}
        for key in ("x", "y"):
            value = doc.get(key)
            if not isinstance(value, list) or len(value) != n_classes:
                raise bad(f"'{key}' must hold one list per class ({n_classes})",
                          f"{len(value)} lists" if isinstance(value, list) else value)
            try:
                arrays[key] = tuple(np.asarray(v, dtype=np.float64).reshape(-1) for v in value)
            except (TypeError, ValueError):
                raise bad(f"'{key}' must hold lists of numbers", str(value)[:60]) from None
        for k, (x, y) in enumerate(zip(arrays["x"], arrays["y"])):
            if len(x) == 0 or len(x) != len(y) or not (np.isfinite(x).all() and np.isfinite(y).all()):
                raise bad(f"class {k} must have as many finite x as y breakpoints (at least one)", (len(x), len(y)))
            if (np.diff(x) < 0).any() or (np.diff(y) < 0).any() or y.min() < 0 or y.max() > 1:
                raise bad(f"class {k} must be a non-decreasing map into [0, 1]", (x[:3].tolist(), y[:3].tolist()))
        shares = {}
        for key in ("train_share", "target_share"):
            s = np.asarray(doc.get(key, []), dtype=np.float64) if isinstance(doc.get(key), list) else np.empty(0)
            if s.shape != (n_classes,) or not (np.isfinite(s).all() and ((s > 0) & (s < 1)).all()):
                raise bad(f"'{key}' must be {n_classes} shares in (0, 1)", doc.get(key))
            shares[key] = s
        return cls(arrays["x"], arrays["y"], shares["train_share"], shares["target_share"])
