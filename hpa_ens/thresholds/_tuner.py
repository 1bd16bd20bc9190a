"""``ThresholdTuner``: the threshold rules as a scikit-learn transformer (fit on OOF rows, apply to any rows)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..validation import ParameterError, check_param
from ._choose import choose, resolve_method
from ._cuts import check_probs
from ._decision import RANK_RULES, apply_thresholds, resolve_fill_rule
from ._registry import RULES

__all__ = ["ThresholdTuner"]


class ThresholdTuner(TransformerMixin, BaseEstimator):
    """Per-class thresholds and the label rule, in scikit-learn's shape: ``fit`` on OOF rows, ``transform`` any rows.

    Parameters
    ----------
    method : str or None, default None
        A rule of :data:`hpa_ens.thresholds.RULES` (:func:`~hpa_ens.thresholds.available_rules`); None picks the
        benchmark's winner: ``checked`` with a ``target``, ``boot`` without (``match`` when fitted on test
        rows alone).
    target : array-like of shape (K,) in (0, 1), default None
        Target positive share per class on the test rows (e.g. leaderboard-probed shares).
    min_labels : int, default 1
        Labels forced per row (the row is topped up by ``rank_by``).
    max_labels : int or None, default None
        Cap on labels per row (None: no cap).
    rank_by : str or None, default None
        How rows with too few labels are topped up, one of :data:`hpa_ens.thresholds.RANK_RULES`; None picks
        :func:`~hpa_ens.thresholds.default_rank_rule` (``posterior`` with OOF rows and a target, else ``ratio``).
    rule_params : dict or None, default None
        Further parameters of the rule (``RULES[method].params``, e.g. ``{"robust": "bootstrap"}`` for ``exact``,
        ``{"floor": 0.5}`` for ``directional``, ``{"tolerance": 0.2}`` for ``match``); an unknown one is refused.
    n_boot : int, default 50
        Bootstrap resamples of the rules that resample (``boot``, ``directional``, ``exact`` with
        ``robust="bootstrap"``, …); the others take no resamples.
    seed : int, default 0
        Seed of the rules that resample or search (``optuna``).

    Attributes
    ----------
    thresholds_ : ndarray of shape (K,)
    method_ : str, the rule used
    min_labels_, max_labels_ : the label rule applied (the parameters, or the one ``optuna`` chose)
    rank_by_ : str, the fill rule used
    posterior_ : hpa_ens.thresholds.Posterior or None, fitted on the OOF rows for ``rank_by_ == "posterior"``
    info_ : dict, the rule's report (:func:`~hpa_ens.thresholds.choose`)
    warnings_ : list of str, e.g. classes without an OOF positive
    n_features_in_ : int, K

    Examples
    --------
    >>> import numpy as np
    >>> from hpa_ens.thresholds import ThresholdTuner
    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random((400, 3)) < 0.3).astype(int)
    >>> oof = np.clip(0.6 * y + 0.5 * rng.random((400, 3)), 0, 1)
    >>> tuner = ThresholdTuner(method="boot").fit(oof, y)
    >>> tuner.transform(oof[:5]).shape
    (5, 3)
    """

    def __init__(self, method=None, target=None, min_labels=1, max_labels=None, rank_by=None, rule_params=None,
                 n_boot=50, seed=0):
        self.method = method
        self.target = target
        self.min_labels = min_labels
        self.max_labels = max_labels
        self.rank_by = rank_by
        self.rule_params = rule_params
        self.n_boot = n_boot
        self.seed = seed

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # the labels of the OOF rows
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags

    def _check_params(self) -> None:
        owner = "ThresholdTuner"
        if self.method is not None:
            RULES[self.method]  # an unknown name: one error listing the valid ones
        check_param("rank_by", self.rank_by, f"None or one of {RANK_RULES}",
                    self.rank_by is None or self.rank_by in RANK_RULES, owner)
        check_param("min_labels", self.min_labels, "an int >= 0",
                    isinstance(self.min_labels, (int, np.integer)) and self.min_labels >= 0, owner)
        check_param("max_labels", self.max_labels, "None or an int >= max(1, min_labels)", self.max_labels is None
                    or (isinstance(self.max_labels, (int, np.integer)) and self.max_labels >= max(1, self.min_labels)),
                    owner)
        check_param("rule_params", self.rule_params, "None or a dict of the rule's parameters",
                    self.rule_params is None or isinstance(self.rule_params, dict), owner)
        check_param("n_boot", self.n_boot, "an int >= 1",
                    isinstance(self.n_boot, (int, np.integer)) and self.n_boot >= 1, owner)
        check_param("seed", self.seed, "an int", isinstance(self.seed, (int, np.integer)), owner)

    def fit(self, X, y=None, test_probs=None) -> "ThresholdTuner":
        """Learn the thresholds (and, for the ``posterior`` fill, the calibration) from OOF rows.

        Parameters
        ----------
        X : array-like of shape (n_oof, K), OOF probabilities (None only for a rule that reads no OOF rows, e.g.
            ``match``, fitted on ``test_probs`` alone)
        y : array-like of shape (n_oof, K), their 0/1 labels
        test_probs : array-like of shape (n_test, K), optional
            The test rows, for the rules that read them (``match``, ``directional``, ``trusted``, ``simulated``, ``checked``, ``plugin``, ``optuna``, …):
            those refuse to fit without them.

        Returns
        -------
        self
        """
        self._check_params()
        has_oof = X is not None
        if has_oof and y is None:
            raise ParameterError("The 'y' parameter of ThresholdTuner.fit must be the 0/1 labels of X. Got None instead.")
        method = resolve_method(self.method, self.target is not None, has_oof)
        rule = RULES[method]
        if rule.needs_test and test_probs is None:
            raise ParameterError(f"The 'test_probs' parameter of ThresholdTuner.fit must be given for method "
                                 f"{method!r}: the rule reads the test rows. Got None instead.")
        params = {"n_boot": self.n_boot, "seed": self.seed}
        params |= {k: v for k, v in (("min_labels", self.min_labels), ("max_labels", self.max_labels))
                   if k in rule.params}
        params |= dict(self.rule_params or {})
        thresholds, report = choose(method, X, y, test_probs, self.target, **params)
        rank_by, posterior = resolve_fill_rule(self.rank_by, None if X is None else check_probs(X, name="X"), y,
                                               self.target)
        check_param("min_labels", self.min_labels, f"an int in [0, {len(thresholds)}] (the number of classes)",
                    self.min_labels <= len(thresholds), "ThresholdTuner")
        self.thresholds_ = thresholds
        self.method_ = method
        self.min_labels_ = int(report.get("min_labels", self.min_labels))
        max_labels = report.get("max_labels", self.max_labels)
        self.max_labels_ = None if max_labels is None else int(max_labels)
        self.rank_by_ = rank_by
        self.posterior_ = posterior
        self.info_ = report["info"]
        self.warnings_ = report["warnings"]
        self.n_features_in_ = len(thresholds)
        return self

    def transform(self, X) -> np.ndarray:
        """0/1 predictions after the thresholds and the min/max-labels rule.

        Parameters
        ----------
        X : array-like of shape (n_samples, K), probabilities

        Returns
        -------
        ndarray of shape (n_samples, K), uint8
        """
        check_is_fitted(self, "thresholds_")
        X = check_probs(X, name="X")
        if X.shape[1] != self.n_features_in_:
            raise ParameterError(f"The 'X' parameter of ThresholdTuner.transform must have {self.n_features_in_} "
                                 f"columns (the classes it was fitted on). Got {X.shape[1]} instead.")
        pred = apply_thresholds(X, self.thresholds_, self.min_labels_, self.max_labels_, rank_by=self.rank_by_,
                                posterior=self.posterior_)
        return pred.astype(np.uint8)

    def predict(self, X) -> np.ndarray:
        """The same as :meth:`transform`: the label sets, shape (n_samples, K), uint8."""
        return self.transform(X)
