"""The per-class LightGBM stacker over prediction sets, as a scikit-learn estimator.

For each class, a binary LightGBM model sees **all sets' K probabilities** (so label correlations and
look-alike confusions are learnable) plus cheap per-image features (each set's max probability, label
count at 0.5 and mean binary entropy). Honest OOF: for fold k the stacker is fitted on the other folds'
OOF rows and predicts fold k; test = mean of the fold models.

Speed: one binned ``lgb.Dataset`` per fold is built once and shared by the K classes (only the label
changes, via ``set_label``), with early stopping on an inner split of the fold's training rows.
LightGBM uses every available CPU unless ``n_jobs`` says otherwise. (The ``hpa-ens stack`` command
also sets OpenMP's passive wait policy before LightGBM loads, unless the user set one: a library
import never changes the process's environment.)

Rare classes (fewer than ``min_positives`` positives in a fold's training rows) fall back to a
regularised logistic regression or to the calibrated mean blend. With ``dynamic``:

- per (fold, class), the calibrated mean blend is kept when the stack does not beat it on that fold's
  inner split (rows of the other folds only, never the rows being scored);
- for the whole set, when the resulting stack's OOF macro F1 at exact per-class thresholds does not
  beat the mean blend's (the "mean blend + exact thresholds" baseline), the output *is* the mean blend.
  The choice reads OOF rows only, never test rows; it is recorded in ``StackResult.fallback``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ..thresholds import exact_macro_f1, exact_thresholds
from ..utils import logit, resolve_n_jobs
from ..validation import ContractError, ParameterError, check_indicator, check_param
from ._blend import mean_blend
from ._sets import SetsEstimator

FEATURES = ("probs", "logits", "both")
RARE_FALLBACKS = ("logistic", "mean")
_EPS = 1e-6

#: Early-stopping patience on the inner split. The best round averages about 65 trees on the HPA-shaped
#: stack, so a patience of 30 grew 46 % more trees than it kept; 20 gives the same OOF F1 (0.7184 vs 0.7180
#: on 10,000 rows x 10 models) with fewer wasted rounds (docs/stack_blend.md).
EARLY_STOPPING_ROUNDS = 20

#: LightGBM parameters a Stacker parameter owns (with LightGBM's aliases): ``lgb_params`` may not set them.
_OWNED_LGB_PARAMS = {
    "learning_rate": ("learning_rate", "shrinkage_rate", "eta"),
    "num_leaves": ("num_leaves", "num_leaf", "max_leaves", "max_leaf", "max_leaf_nodes"),
    "seed": ("seed", "random_seed", "random_state"),
    "n_jobs": ("num_threads", "num_thread", "nthread", "nthreads", "n_jobs"),
    "n_rounds": ("num_iterations", "num_iteration", "n_iter", "num_tree", "num_trees", "num_round", "num_rounds",
                 "nrounds", "num_boost_round", "n_estimators", "max_iter"),
    "early_stopping_rounds": ("early_stopping_round", "early_stopping_rounds", "early_stopping", "n_iter_no_change"),
}
#: The stacker fits one binary model per class: its objective is not a choice.
_FIXED_LGB_PARAMS = ("objective", "objective_type", "app", "application", "loss")

__all__ = ["FEATURES", "RARE_FALLBACKS", "EARLY_STOPPING_ROUNDS", "Stacker", "StackResult", "stack_features",
           "default_params", "rare_fallback", "inner_split"]


def stack_features(probs_list, features: str = "probs", names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """The stacker's input matrix.

    Parameters
    ----------
    probs_list : sequence of ndarray of shape (n_samples, n_classes)
        One array per model, rows aligned by Id.
    features : {"probs", "logits", "both"}
        Per model, the K probabilities, their logits, or both.
    names : sequence of str, optional
        Model names, used in the feature names.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32
        Per model: the K class columns (once or twice), then max probability, label count at 0.5
        and mean binary entropy.
    feature_names : list of str
    """
    check_param("features", features, f"one of {FEATURES}", features in FEATURES, "stack_features")
    names = list(names) if names is not None else [f"m{i}" for i in range(len(probs_list))]
    blocks, cols = [], []
    for name, probs in zip(names, probs_list):
        probs = np.asarray(probs, dtype=np.float64)
        if features in ("probs", "both"):
            blocks.append(probs)
            cols += [f"{name}:p{k}" for k in range(probs.shape[1])]
        if features in ("logits", "both"):
            blocks.append(logit(probs, _EPS))
            cols += [f"{name}:logit{k}" for k in range(probs.shape[1])]
        clipped = np.clip(probs, _EPS, 1 - _EPS)
        entropy = -(clipped * np.log(clipped) + (1 - clipped) * np.log1p(-clipped)).mean(axis=1)
        blocks.append(np.column_stack([probs.max(axis=1), (probs > 0.5).sum(axis=1), entropy]))
        cols += [f"{name}:max", f"{name}:n_at_0.5", f"{name}:entropy"]
    return np.hstack(blocks).astype(np.float32), cols


def default_params(seed: int = 0, num_threads: int | None = None, learning_rate: float = 0.1,
                   num_leaves: int = 15) -> dict:
    """LightGBM parameters of the stacker.

    ``num_threads`` None (or 0/-1) means every available CPU (affinity and cgroup aware). Results are
    deterministic per seed and thread count.
    """
    return {
        "objective": "binary",
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.5,  # halves histogram work; the K*M inputs are highly redundant
        "lambda_l2": 1.0,
        "max_bin": 63,
        "verbose": -1,
        "num_threads": resolve_n_jobs(num_threads),
        "deterministic": True,
        "force_col_wise": True,
        "seed": seed,
        "feature_pre_filter": False,
    }


@dataclass
class StackResult:
    """OOF and test predictions of the stack, and what was done per fold and class.

    ``method[k, c]`` is "lgbm", "logistic" or "mean" (fold k, class c); ``n_trees[k, c]`` the
    early-stopped tree count (0 when not LightGBM); ``inner_gain[k, c]`` the stack's F1 minus the
    blend's on fold k's inner split (NaN when not measured). ``fallback`` is "blend" when the dynamic
    set-level rule replaced the stack by the mean blend, else None; ``oof_macro`` holds the OOF macro F1
    at exact thresholds of the stack and of the mean blend that the rule compared.
    """

    oof: np.ndarray
    test: np.ndarray | None
    method: np.ndarray
    n_trees: np.ndarray
    inner_gain: np.ndarray
    params: dict = field(default_factory=dict)
    fallback: str | None = None
    oof_macro: dict = field(default_factory=dict)


# ------------------------------------------------------------------------- per (fold, class) models
class _Constant:
    def __init__(self, rate: float):
        self.rate = rate

    def predict(self, X, blend_col):
        return np.full(len(blend_col), self.rate)


class _Platt:
    """The blend's column Platt-scaled on the fit rows, so its scale matches the stack's probabilities."""

    def __init__(self, model):
        self.model = model

    def predict(self, X, blend_col):
        return self.model.predict_proba(logit(blend_col, _EPS)[:, None])[:, 1]


class _Logistic:
    def __init__(self, mean, std, model):
        self.mean, self.std, self.model = mean, std, model

    def predict(self, X, blend_col):
        return self.model.predict_proba((X - self.mean) / self.std)[:, 1]


class _Booster:
    def __init__(self, booster, best: int):
        self.booster, self.best = booster, best

    def predict(self, X, blend_col):
        return self.booster.predict(X, num_iteration=self.best)


def _fit_platt(blend_fit, y_fit, C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    if y_fit.min() == y_fit.max():  # no positives (or only positives): nothing to learn
        return _Constant(float(y_fit.mean()))
    return _Platt(LogisticRegression(C=C).fit(logit(blend_fit, _EPS)[:, None], y_fit))


def _fit_logistic(X_fit, y_fit, C: float = 0.05, seed: int = 0):
    """Regularised logistic regression on standardised features (the rare-class fallback)."""
    from sklearn.linear_model import LogisticRegression

    if y_fit.min() == y_fit.max():
        return _Constant(float(y_fit.mean()))
    mean, std = X_fit.mean(axis=0), X_fit.std(axis=0) + 1e-6
    # class_weight="balanced" shifts the intercept; F1 thresholds are tuned afterwards, so only the
    # ranking matters, but outputs stay (0, 1) probabilities all the same.
    model = LogisticRegression(C=C, max_iter=500, class_weight="balanced", random_state=seed)
    return _Logistic(mean, std, model.fit((X_fit - mean) / std, y_fit))


def rare_fallback(rare: str, X_fit, y_fit, blend_fit, seed: int = 0):
    """The model a rare class gets: ``"logistic"`` on the features or ``"mean"`` (the Platt-scaled blend).

    Returns an object with ``predict(X, blend_col) -> ndarray (n,)``.
    """
    if rare == "logistic":
        return _fit_logistic(X_fit, y_fit, seed=seed)
    return _fit_platt(blend_fit, y_fit)


def inner_split(train_rows: np.ndarray, fold, inner_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(early-stopping rows, fit rows) of a fold's training rows: a seeded draw, reproducible per fold."""
    rng = np.random.default_rng([seed, int(fold)])
    shuffled = rng.permutation(train_rows)
    n_inner = max(1, int(round(inner_fraction * len(train_rows))))
    return np.sort(shuffled[:n_inner]), np.sort(shuffled[n_inner:])


def _stack_core(X, Y, folds, blend_oof, test_inputs, *, params, n_rounds, early_stopping_rounds, inner_fraction,
                min_positives, rare, dynamic, seed, keep_models, progress):
    """Fit every (fold, class) model; predict fold k's rows and (if given) the test inputs.

    ``test_inputs`` is None or (X_test, blend_test). Returns (oof, test | None, method, n_trees,
    inner_gain, models | None) with ``models[fold_index][class]``.
    """
    import lightgbm as lgb

    n_classes = Y.shape[1]
    fold_ids = np.unique(folds)
    oof = np.zeros((len(X), n_classes))
    test = None if test_inputs is None else np.zeros((len(test_inputs[0]), n_classes))
    method = np.full((len(fold_ids), n_classes), "", dtype=object)
    n_trees = np.zeros((len(fold_ids), n_classes), dtype=np.int64)
    inner_gain = np.full((len(fold_ids), n_classes), np.nan)
    models = [[None] * n_classes for _ in fold_ids] if keep_models else None
    for fi, k in enumerate(fold_ids):
        train_rows, score_rows = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        es_rows, fit_rows = inner_split(train_rows, k, inner_fraction, seed)
        # One binned Dataset per fold, shared by all classes; only the label changes (set_label).
        fit_set = lgb.Dataset(X[fit_rows], label=Y[fit_rows, 0], params=params, free_raw_data=False).construct()
        es_set = lgb.Dataset(X[es_rows], label=Y[es_rows, 0], params=params, reference=fit_set,
                             free_raw_data=False).construct()
        for c in range(n_classes):
            y_train = Y[train_rows, c]
            if y_train.sum() < min_positives:
                model = rare_fallback(rare, X[train_rows], y_train, blend_oof[train_rows, c], seed)
                method[fi, c] = rare
            else:
                fit_set.set_label(Y[fit_rows, c])
                es_set.set_label(Y[es_rows, c])
                booster = lgb.train(params, fit_set, num_boost_round=n_rounds, valid_sets=[es_set],
                                    callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)])
                model = _Booster(booster, booster.best_iteration or n_rounds)
                method[fi, c], n_trees[fi, c] = "lgbm", model.best
                if dynamic:
                    # Decide on the inner split (rows of other folds) only; fold k stays unseen.
                    y_es = Y[es_rows, c]
                    pair = np.column_stack([model.predict(X[es_rows], None), blend_oof[es_rows, c]])
                    f1 = exact_thresholds(np.column_stack([y_es, y_es]), pair)[1]
                    inner_gain[fi, c] = f1[0] - f1[1]
                    if f1[0] <= f1[1]:
                        # Calibrated on the fit rows so the fold columns share one probability scale.
                        model = _fit_platt(blend_oof[fit_rows, c], Y[fit_rows, c])
                        method[fi, c] = "mean"
            oof[score_rows, c] = model.predict(X[score_rows], blend_oof[score_rows, c])
            if test is not None:
                test[:, c] += model.predict(test_inputs[0], test_inputs[1][:, c]) / len(fold_ids)
            if keep_models:
                models[fi][c] = model
            if progress is not None:
                progress()
        del fit_set, es_set
    return oof, test, method, n_trees, inner_gain, models



def _check_folds(folds, n: int) -> np.ndarray:
    folds = np.asarray(folds)
    if folds.shape != (n,):
        raise ContractError(f"The folds have shape {folds.shape}; expected ({n},), one fold per OOF row.")
    if len(np.unique(folds)) < 2:
        raise ContractError(f"The folds must hold at least 2 folds. Got {np.unique(folds).tolist()} instead.")
    return folds


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class Stacker(SetsEstimator):
    """Per-class LightGBM stacking over prediction sets, a scikit-learn estimator.

    ``fit`` fits K binary models per fold on the other folds' rows; ``predict`` is the mean of the fold
    models on new sets; ``oof_`` holds each OOF row predicted by the fold models that did not see it.

    Parameters
    ----------
    features : {"probs", "logits", "both"}, default "probs"
        What the models see of each set: its K probabilities, their logits, or both (plus, always, each
        set's max probability, label count at 0.5 and mean binary entropy; :func:`stack_features`).
    dynamic : bool, default False
        Per (fold, class) keep the calibrated blend where the stack loses on the inner split, and for
        the whole set fall back to the mean blend when the stack does not beat it on OOF (exact
        per-class thresholds on both sides).
    rare : {"mean", "logistic"}, default "mean"
        Fallback of a class with fewer than ``min_positives`` positives in a fold's training rows: the
        mean blend Platt-scaled on those rows, or an L2 logistic regression on the standardised features.
    min_positives : int >= 1, default 20
    n_rounds : int >= 1, default 400
        Boosting rounds at most (early stopping decides).
    early_stopping_rounds : int >= 1, default :data:`EARLY_STOPPING_ROUNDS`
        Patience on the inner split.
    inner_fraction : float in (0, 0.5], default 0.2
        Share of a fold's training rows held out for early stopping (and the dynamic choice).
    learning_rate : float > 0, default 0.1
    num_leaves : int >= 2, default 15
    n_jobs : int or None, default None
        LightGBM threads, in joblib's convention; None, 0 or -1: every available CPU. Results are
        deterministic per seed and thread count.
    seed : int, default 0
        Seeds LightGBM, the inner splits, the logistic fallback and the ``cv`` folds.
    cv : int >= 2, default 5
        Without ``folds`` at ``fit``: the number of folds, drawn by
        ``sklearn.model_selection.KFold(cv, shuffle=True, random_state=seed)``. Unused when ``fit``
        is given ``folds`` (the shared ``folds.csv`` of the base models, which their OOF rows follow).
    lgb_params : dict or None, default None
        Further LightGBM parameters, merged over :func:`default_params`. A key that a parameter above
        owns (``learning_rate``, ``num_leaves``, ``seed``, ``num_threads``/``n_jobs``, the round count,
        early stopping, and their LightGBM aliases) or the objective (binary, one model per class) is
        refused, naming the parameter to use.
    keep_models : bool, default True
        Keep the K fold models per fold, so that ``predict`` can run later. ``False`` drops each model
        once it has predicted its fold (and the test sets given to ``fit``): memory stays flat in the
        number of classes, ``result_.test`` holds the test predictions, and ``predict`` is refused.
        The command line stacks this way.

    Attributes
    ----------
    oof_ : ndarray of shape (n_train, K)
        Honest out-of-fold stack predictions (each row from the fold models that did not see it).
    result_ : StackResult
        What was done per fold and class; ``result_.test`` holds the predictions of ``X_test`` when
        ``fit`` was given it, else None.
    models_ : list of list, or None
        ``models_[fold][class]``: the fitted per-(fold, class) models; None with ``keep_models=False``.
    n_sets_, n_classes_, n_features_in_ : int
        The sets, classes and columns (``n_sets_ * n_classes_``) seen at ``fit``.

    Examples
    --------
    >>> stacker = Stacker(dynamic=True).fit(oof_sets, Y, folds)   # doctest: +SKIP
    >>> test = stacker.predict(test_sets)                          # doctest: +SKIP
    >>> result = Stacker(keep_models=False).fit(oof_sets, Y, folds, X_test=test_sets).result_  # doctest: +SKIP
    """

    def __init__(self, *, features: str = "probs", dynamic: bool = False, rare: str = "mean",
                 min_positives: int = 20, n_rounds: int = 400,
                 early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
                 inner_fraction: float = 0.2, learning_rate: float = 0.1, num_leaves: int = 15,
                 n_jobs: int | None = None, seed: int = 0, cv: int = 5, lgb_params: dict | None = None,
                 keep_models: bool = True):
        self.features = features
        self.dynamic = dynamic
        self.rare = rare
        self.min_positives = min_positives
        self.n_rounds = n_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.inner_fraction = inner_fraction
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.n_jobs = n_jobs
        self.seed = seed
        self.cv = cv
        self.lgb_params = lgb_params
        self.keep_models = keep_models

    def lightgbm_params(self) -> dict:
        """The LightGBM parameters a fit uses (every parameter checked first: errors come before any work)."""
        check_param("features", self.features, f"one of {FEATURES}", self.features in FEATURES, "Stacker")
        check_param("dynamic", self.dynamic, "a bool", isinstance(self.dynamic, (bool, np.bool_)), "Stacker")
        check_param("rare", self.rare, f"one of {RARE_FALLBACKS}", self.rare in RARE_FALLBACKS, "Stacker")
        check_param("inner_fraction", self.inner_fraction, "a float in (0, 0.5]",
                    _is_number(self.inner_fraction) and 0.0 < self.inner_fraction <= 0.5, "Stacker")
        check_param("min_positives", self.min_positives, "an int >= 1",
                    _is_int(self.min_positives) and self.min_positives >= 1, "Stacker")
        # LightGBM's own errors for these arrive late and as tracebacks; refuse them here, before any work.
        check_param("learning_rate", self.learning_rate, "a float > 0",
                    isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0, "Stacker")
        check_param("num_leaves", self.num_leaves, "an int >= 2",
                    isinstance(self.num_leaves, (int, np.integer)) and self.num_leaves >= 2, "Stacker")
        check_param("n_rounds", self.n_rounds, "an int >= 1",
                    isinstance(self.n_rounds, (int, np.integer)) and self.n_rounds >= 1, "Stacker")
        check_param("early_stopping_rounds", self.early_stopping_rounds, "an int >= 1",
                    isinstance(self.early_stopping_rounds, (int, np.integer)) and self.early_stopping_rounds >= 1,
                    "Stacker")
        check_param("seed", self.seed, "an int >= 0", _is_int(self.seed) and self.seed >= 0, "Stacker")
        check_param("cv", self.cv, "an int >= 2", _is_int(self.cv) and self.cv >= 2, "Stacker")
        check_param("keep_models", self.keep_models, "a bool", isinstance(self.keep_models, (bool, np.bool_)),
                    "Stacker")
        extra = {} if self.lgb_params is None else self.lgb_params
        check_param("lgb_params", self.lgb_params, "a dict of LightGBM parameters or None", isinstance(extra, dict),
                    "Stacker")
        for key in extra:
            owner = next((name for name, keys in _OWNED_LGB_PARAMS.items() if key in keys), None)
            if owner is not None:
                raise ParameterError(f"The 'lgb_params' parameter of Stacker may not set {key!r}: use Stacker's "
                                     f"'{owner}' parameter instead. Got {extra!r} instead.")
            if key in _FIXED_LGB_PARAMS:
                raise ParameterError(f"The 'lgb_params' parameter of Stacker may not set {key!r}: the stacker fits "
                                     f"one binary model per class. Got {extra!r} instead.")
        return {**default_params(self.seed, self.n_jobs, self.learning_rate, self.num_leaves), **extra}

    def _folds(self, folds, n: int) -> np.ndarray:
        if folds is not None:
            return _check_folds(folds, n)
        if n < self.cv:
            raise ParameterError(f"The 'cv' parameter of Stacker must be at most the number of OOF rows when fit is "
                                 f"given no folds ({n} samples). Got {self.cv} instead.")
        from sklearn.model_selection import KFold

        drawn = np.empty(n, dtype=np.int64)
        for k, (_, rows) in enumerate(KFold(self.cv, shuffle=True, random_state=self.seed).split(np.empty((n, 1)))):
            drawn[rows] = k
        return drawn

    def fit(self, X, y, folds=None, X_test=None, progress: Callable[[], None] | None = None) -> "Stacker":
        """Fit the fold models on OOF prediction sets.

        Parameters
        ----------
        X : list of (n_train, K) arrays or Id-indexed DataFrames, or array of shape (n_train, n_sets * K)
            One set per base model; DataFrames are aligned by Id (to ``y``'s index when ``y`` is a
            DataFrame, else to the first set's). The 2-d form holds the sets side by side, K columns
            each (K from ``y``).
        y : array-like or DataFrame of shape (n_train, K), 0/1
        folds : array-like of shape (n_train,), int, optional
            Fold of each OOF row (the shared ``folds.csv``); default: ``cv`` seeded folds.
        X_test : sets like ``X`` (same sets, same order), optional
            Predicted in the same pass, into ``result_.test``: what ``keep_models=False`` needs.
        progress : callable, optional
            Called with no argument after each (fold, class).

        Returns
        -------
        self
        """
        params = self.lightgbm_params()
        if y is None:
            raise ParameterError("The 'y' parameter of Stacker.fit must be the (n_train, K) 0/1 labels: Stacker "
                                 "requires y to be passed, but the target y is None.")
        oof_arrays, _ = self._fit_sets(X, y)
        Y = check_indicator(np.asarray(y), "y", self.n_classes_).astype(np.float64)
        folds = self._folds(folds, len(Y))
        features, _ = stack_features(oof_arrays, self.features)
        blend_oof = mean_blend(oof_arrays)
        test_inputs = None
        if X_test is not None:
            test_arrays, _ = self._predict_sets(X_test, "X_test")
            test_inputs = (stack_features(test_arrays, self.features)[0], mean_blend(test_arrays))
        oof, test, method, n_trees, inner_gain, models = _stack_core(
            features, Y, folds, blend_oof, test_inputs, params=params, n_rounds=self.n_rounds,
            early_stopping_rounds=self.early_stopping_rounds, inner_fraction=self.inner_fraction,
            min_positives=self.min_positives, rare=self.rare, dynamic=self.dynamic, seed=self.seed,
            keep_models=bool(self.keep_models), progress=progress)
        oof = np.clip(oof, 0.0, 1.0)
        test = None if test is None else np.clip(test, 0.0, 1.0)
        macro = {"stack": exact_macro_f1(Y, oof), "mean blend": exact_macro_f1(Y, blend_oof)}
        fallback = None
        if self.dynamic and macro["stack"] <= macro["mean blend"]:
            # The set-level rule: the stack did not beat "mean blend + exact thresholds" on OOF rows.
            fallback, oof = "blend", blend_oof
            test = None if test_inputs is None else test_inputs[1]
        self.models_ = models
        self.result_ = StackResult(oof, test, method, n_trees, inner_gain, params, fallback, macro)
        self.oof_ = self.result_.oof
        return self

    def predict(self, X) -> np.ndarray:
        """Mean of the fold models' predictions on the sets ``X`` (as many as at ``fit``), shape (n, K)."""
        check_is_fitted(self, "result_")
        arrays, _ = self._predict_sets(X)
        blend = mean_blend(arrays)
        if self.result_.fallback == "blend":
            return blend
        if self.models_ is None:
            raise NotFittedError("This Stacker was fitted with keep_models=False: it kept no fold models to predict "
                                 "with. Refit with keep_models=True, or give the test sets to fit (X_test=...) and "
                                 "read result_.test.")
        X = stack_features(arrays, self.features)[0]
        out = np.zeros(blend.shape)
        for fold_models in self.models_:
            for c, model in enumerate(fold_models):
                out[:, c] += model.predict(X, blend[:, c]) / len(self.models_)
        return np.clip(out, 0.0, 1.0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
