"""Per-class LightGBM stacking over prediction sets: ``python -m hpa_ens.stack``.

::

    python -m hpa_ens.stack --labels train.csv --folds folds.csv --pred oof/a oof/b oof/c --out oof/stack

In a notebook::

    from hpa_ens import Stacker
    stacker = Stacker(dynamic=True).fit(oof_sets, Y, folds)   # oof_sets: list of (n, K) arrays or frames
    test = stacker.predict(test_sets)                            # (n_test, K)
    oof = stacker.oof_                                           # honest out-of-fold stack, (n, K)

For each class, a binary LightGBM model sees **all models' K probabilities** (so label correlations
and look-alike confusions are learnable) plus cheap per-image features (each model's max probability,
label count at 0.5 and mean binary entropy). Honest OOF: for fold k of the shared ``folds.csv`` the
stacker is fitted on the other folds' OOF rows and predicts fold k; test = mean of the fold models.

Speed: one binned ``lgb.Dataset`` per fold is built once and shared by the K classes (only the label
changes, via ``set_label``), with early stopping on an inner split of the fold's training rows.
LightGBM uses every available CPU unless ``n_jobs`` says otherwise, with OpenMP's passive wait policy
(``OMP_WAIT_POLICY=PASSIVE`` unless already set) so that a busy machine does not make its threads
spin against each other.

Rare classes (fewer than ``min_positives`` positives in a fold's training rows) fall back to a
regularised logistic regression or to the calibrated mean blend. With ``dynamic``:

- per (fold, class), the calibrated mean blend is kept when the stack does not beat it on that fold's
  inner split (rows of the other folds only, never the rows being scored);
- for the whole set, when the resulting stack's OOF macro F1 at exact per-class thresholds does not
  beat the mean blend's (the "mean blend + exact thresholds" baseline), the output *is* the mean blend.
  The choice reads OOF rows only, never test rows; it is recorded in ``StackResult.fallback``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .validation import ContractError, ParameterError, check_param
from .blend import as_arrays, mean_blend
from .thresholds import exact_macro_f1, exact_thresholds

# LightGBM's OpenMP workers spin while they wait. On a shared machine (more runnable threads than cores)
# that collapses: measured on a 2-core box under load 18, a small stack took 174 s with 2 threads vs 26 s
# with 1; with passive waiting, 8 s with 2 threads vs 16 s with 1. libgomp reads this once, when
# LightGBM loads it, so it is set before any import of lightgbm; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FEATURES = ("probs", "logits", "both")
RARE_FALLBACKS = ("logistic", "mean")
_EPS = 1e-6

__all__ = ["FEATURES", "Stacker", "StackResult", "stack_features", "default_params", "fit_predict_stack",
           "stack_report", "main"]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


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
            blocks.append(_logit(probs))
            cols += [f"{name}:logit{k}" for k in range(probs.shape[1])]
        clipped = np.clip(probs, _EPS, 1 - _EPS)
        entropy = -(clipped * np.log(clipped) + (1 - clipped) * np.log1p(-clipped)).mean(axis=1)
        blocks.append(np.column_stack([probs.max(axis=1), (probs > 0.5).sum(axis=1), entropy]))
        cols += [f"{name}:max", f"{name}:n_at_0.5", f"{name}:entropy"]
    return np.hstack(blocks).astype(np.float32), cols


#: Early-stopping patience on the inner split. The best round averages about 65 trees on the HPA-shaped
#: stack, so a patience of 30 grew 46 % more trees than it kept; 20 gives the same OOF F1 (0.7184 vs 0.7180
#: on 10,000 rows x 10 models) with fewer wasted rounds (docs/stack_blend.md).
EARLY_STOPPING_ROUNDS = 20


def default_params(seed: int = 0, num_threads: int | None = None, learning_rate: float = 0.1,
                   num_leaves: int = 15) -> dict:
    """LightGBM parameters of the stacker.

    ``num_threads`` None (or 0/-1) means every available CPU (affinity and cgroup aware). Results are
    deterministic per seed and thread count.
    """
    from .cli import resolve_n_jobs

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
        return self.model.predict_proba(_logit(blend_col)[:, None])[:, 1]


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
    return _Platt(LogisticRegression(C=C).fit(_logit(blend_fit)[:, None], y_fit))


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


def _check_inputs(oof_arrays, Y, folds):
    if not oof_arrays:
        raise ParameterError("The 'oof_sets' parameter must hold one or more prediction sets. Got none instead.")
    Y = np.asarray(Y)
    folds = np.asarray(folds)
    n, K = oof_arrays[0].shape
    if Y.shape != (n, K):
        raise ContractError(f"The labels have shape {Y.shape}, but the OOF sets have shape ({n}, {K}); they must "
                            f"match (rows aligned by Id, one column per class).")
    if folds.shape != (n,):
        raise ContractError(f"The folds have shape {folds.shape}; expected ({n},), one fold per OOF row.")
    if len(np.unique(folds)) < 2:
        raise ContractError(f"The folds must hold at least 2 folds. Got {np.unique(folds).tolist()} instead.")
    return Y.astype(np.float64), folds


class Stacker:
    """Per-class LightGBM stacking in scikit-learn's shape.

    Parameters
    ----------
    features : {"probs", "logits", "both"}
    dynamic : bool
        Per (fold, class) keep the calibrated blend where the stack loses on the inner split, and for
        the whole set fall back to the mean blend when the stack does not beat it on OOF (exact
        per-class thresholds on both sides).
    rare : {"mean", "logistic"}
        Fallback of a class with fewer than ``min_positives`` positives in a fold's training rows.
    min_positives, n_rounds, early_stopping_rounds : int
    inner_fraction : float in (0, 0.5]
        Share of a fold's training rows held out for early stopping (and the dynamic choice).
    learning_rate : float
    num_leaves : int
    n_jobs : int or None
        LightGBM threads; None, 0 or -1: every available CPU.
    seed : int
    params : dict, optional
        LightGBM parameters replacing :func:`default_params` entirely.

    Attributes
    ----------
    oof_ : ndarray of shape (n_train, n_classes)
        Honest out-of-fold stack predictions (each row from the fold models that did not see it).
    result_ : StackResult
        What was done per fold and class (``test`` is None unless ``fit_predict`` was used).
    """

    def __init__(self, *, features: str = "probs", dynamic: bool = False, rare: str = "mean",
                 min_positives: int = 20, n_rounds: int = 400,
                 early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
                 inner_fraction: float = 0.2, learning_rate: float = 0.1, num_leaves: int = 15,
                 n_jobs: int | None = None, seed: int = 0, params: dict | None = None):
        self.features, self.dynamic, self.rare = features, dynamic, rare
        self.min_positives, self.n_rounds, self.early_stopping_rounds = min_positives, n_rounds, early_stopping_rounds
        self.inner_fraction, self.learning_rate, self.num_leaves = inner_fraction, learning_rate, num_leaves
        self.n_jobs, self.seed, self.params = n_jobs, seed, params

    def _lgb_params(self) -> dict:
        check_param("features", self.features, f"one of {FEATURES}", self.features in FEATURES, "Stacker")
        check_param("rare", self.rare, f"one of {RARE_FALLBACKS}", self.rare in RARE_FALLBACKS, "Stacker")
        check_param("inner_fraction", self.inner_fraction, "a float in (0, 0.5]", 0.0 < self.inner_fraction <= 0.5,
                    "Stacker")
        check_param("min_positives", self.min_positives, "an int >= 1",
                    isinstance(self.min_positives, (int, np.integer)) and self.min_positives >= 1, "Stacker")
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
        if self.params is not None:
            return dict(self.params)
        return default_params(self.seed, self.n_jobs, self.learning_rate, self.num_leaves)

    def _run(self, oof_sets, Y, folds, test_sets, keep_models, progress=None) -> StackResult:
        oof_arrays, ids = as_arrays(oof_sets, getattr(Y, "index", None), "oof_sets")
        Y, folds = _check_inputs(oof_arrays, Y, folds)
        params = self._lgb_params()
        X, _ = stack_features(oof_arrays, self.features)
        blend_oof = mean_blend(oof_arrays)
        test_inputs = None
        if test_sets is not None:
            test_arrays, _ = as_arrays(test_sets, None, "test_sets", n_classes=Y.shape[1], n_sets=len(oof_arrays))
            test_inputs = (stack_features(test_arrays, self.features)[0], mean_blend(test_arrays))
        oof, test, method, n_trees, inner_gain, models = _stack_core(
            X, Y, folds, blend_oof, test_inputs, params=params, n_rounds=self.n_rounds,
            early_stopping_rounds=self.early_stopping_rounds, inner_fraction=self.inner_fraction,
            min_positives=self.min_positives, rare=self.rare, dynamic=self.dynamic, seed=self.seed,
            keep_models=keep_models, progress=progress)
        oof = np.clip(oof, 0.0, 1.0)
        test = None if test is None else np.clip(test, 0.0, 1.0)
        macro = {"stack": exact_macro_f1(Y, oof), "mean blend": exact_macro_f1(Y, blend_oof)}
        fallback = None
        if self.dynamic and macro["stack"] <= macro["mean blend"]:
            # The set-level rule: the stack did not beat "mean blend + exact thresholds" on OOF rows.
            fallback, oof = "blend", blend_oof
            test = None if test_inputs is None else test_inputs[1]
        self._models = models
        return StackResult(oof, test, method, n_trees, inner_gain, params, fallback, macro)

    def fit(self, oof_sets, y, folds) -> "Stacker":
        """Fit the fold models on OOF prediction sets.

        Parameters
        ----------
        oof_sets : list of (n_train, n_classes) arrays or Id-indexed DataFrames
            One per model; DataFrames are aligned by Id (to ``y``'s index when ``y`` is a DataFrame,
            else to the first set's).
        y : array-like or DataFrame of shape (n_train, n_classes), 0/1
        folds : array-like of shape (n_train,), int

        Returns
        -------
        self
        """
        self.result_ = self._run(oof_sets, y, folds, None, keep_models=True)
        self.oof_ = self.result_.oof
        self.n_sets_, self.n_classes_ = len(oof_sets), self.oof_.shape[1]
        return self

    def predict(self, test_sets) -> np.ndarray:
        """Mean of the fold models' predictions on the test sets, shape (n_test, n_classes)."""
        if not hasattr(self, "result_"):
            raise ParameterError("This Stacker is not fitted yet. Call 'fit' with OOF prediction sets first.")
        arrays, _ = as_arrays(test_sets, None, "test_sets", n_classes=self.n_classes_, n_sets=self.n_sets_)
        blend = mean_blend(arrays)
        if self.result_.fallback == "blend":
            return blend
        X = stack_features(arrays, self.features)[0]
        out = np.zeros(blend.shape)
        for fold_models in self._models:
            for c, model in enumerate(fold_models):
                out[:, c] += model.predict(X, blend[:, c]) / len(self._models)
        return np.clip(out, 0.0, 1.0)

    def fit_predict(self, oof_sets, y, folds, test_sets, progress=None) -> StackResult:
        """Fit and predict in one pass without keeping the boosters (memory flat in the number of classes)."""
        self.result_ = self._run(oof_sets, y, folds, test_sets, keep_models=False, progress=progress)
        self.oof_ = self.result_.oof
        return self.result_


def fit_predict_stack(oof_sets, Y, folds, test_sets, *, features: str = "probs", params: dict | None = None,
                      n_rounds: int = 400, early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
                      inner_fraction: float = 0.2,
                      min_positives: int = 20, rare: str = "mean", dynamic: bool = False, n_jobs: int | None = None,
                      seed: int = 0, progress=None) -> StackResult:
    """Fit the per-class stackers fold by fold and predict OOF and test.

    Parameters
    ----------
    oof_sets : list of (n_train, n_classes) arrays or Id-indexed DataFrames
        The models' OOF probabilities (the mean blend and the features are computed here).
    Y : array-like of shape (n_train, n_classes), 0/1
    folds : array-like of shape (n_train,), int
        Fold of each train row (the shared ``folds.csv``).
    test_sets : list of (n_test, n_classes) arrays or DataFrames, same models in the same order
    features, params, n_rounds, early_stopping_rounds, inner_fraction, min_positives, rare, dynamic, n_jobs, seed
        As in :class:`Stacker`.
    progress : callable, optional
        Called with no argument after each (fold, class).

    Returns
    -------
    StackResult
    """
    stacker = Stacker(features=features, dynamic=dynamic, rare=rare, min_positives=min_positives, n_rounds=n_rounds,
                      early_stopping_rounds=early_stopping_rounds, inner_fraction=inner_fraction, n_jobs=n_jobs,
                      seed=seed, params=params)
    return stacker.fit_predict(oof_sets, Y, folds, test_sets, progress=progress)


def stack_report(Y, candidates: dict) -> dict:
    """Per-class and macro OOF F1 at each candidate's own exact per-class thresholds.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes), 0/1
    candidates : dict name -> ndarray of shape (n_samples, n_classes)

    Returns
    -------
    report : dict with ``per_class`` {name: [K floats]}, ``macro`` {name: float}, ``thresholds``
    """
    per_class, macro, thresholds = {}, {}, {}
    for name, probs in candidates.items():
        thr, f1 = exact_thresholds(Y, probs)
        per_class[name] = [float(v) for v in f1]
        macro[name] = float(f1.mean())
        thresholds[name] = [float(v) for v in thr]
    return {"per_class": per_class, "macro": macro, "thresholds": thresholds}


def full_report(Y, result: StackResult, oof_list, names) -> dict:
    """The ``stack_report.json`` record: best single, mean blend and stack at exact thresholds, verdict, fallbacks."""
    scores = {n: exact_macro_f1(Y, o) for n, o in zip(names, oof_list)}
    best_single = max(scores, key=scores.get)
    report = stack_report(Y, {f"best single ({best_single})": oof_list[names.index(best_single)],
                              "mean blend": mean_blend(oof_list), "stack": result.oof})
    gain = report["macro"]["stack"] - report["macro"]["mean blend"]
    if result.fallback == "blend":
        verdict = (f"blend kept: the stack did not beat the mean blend on OOF ({result.oof_macro['stack']:.4f} vs "
                   f"{result.oof_macro['mean blend']:.4f}), so the output is the mean blend")
    else:
        verdict = f"stack beats blend by {gain:.4f} on OOF" if gain > 0 else f"blend beats stack by {-gain:.4f} on OOF"
    methods = ["+".join(sorted(set(result.method[:, c]))) for c in range(Y.shape[1])]
    return {**report, "single_models": scores, "verdict": verdict, "stack_minus_blend": gain,
            "set_fallback": result.fallback, "stack_oof_before_fallback": result.oof_macro.get("stack"),
            "class_methods": methods,
            "fallback_classes": {str(c): m for c, m in enumerate(methods) if m != "lgbm"},
            "n_trees": result.n_trees.tolist(),
            "inner_gain": [[None if np.isnan(v) else float(v) for v in row] for row in result.inner_gain],
            "support": np.asarray(Y).sum(axis=0).astype(int).tolist()}


def _report_table(report: dict, class_names):
    from rich.table import Table

    names = list(report["macro"])
    support = report["support"]
    table = Table(title="OOF F1 at each one's exact per-class thresholds", show_footer=True)
    table.add_column("id", justify="right", footer="")
    table.add_column("class", footer="macro")
    table.add_column("support", justify="right", footer=str(int(np.sum(support))))
    for name in names:
        table.add_column(name, justify="right", footer=f"{report['macro'][name]:.4f}")
    table.add_column("stack used", footer="")
    for c in range(len(support)):
        row = [report["per_class"][n][c] for n in names]
        best = int(np.argmax(row))
        cells = [f"[bold]{v:.4f}[/bold]" if i == best else f"{v:.4f}" for i, v in enumerate(row)]
        table.add_row(str(c), class_names[c] if c < len(class_names) else str(c), str(int(support[c])), *cells,
                      report["class_methods"][c])
    return table


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import save_figure

    names = list(report["macro"])
    n_classes = len(report["per_class"][names[0]])
    fig, ax = plt.subplots(figsize=(max(6, n_classes * 0.5), 4.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(np.arange(n_classes) + i * width, report["per_class"][name], width,
               label=f"{name} (macro {report['macro'][name]:.4f})")
    ax.set_xticks(np.arange(n_classes) + 0.4 - width / 2, [str(c) for c in range(n_classes)])
    ax.set_xlabel("class")
    ax.set_ylabel("OOF F1 at exact threshold")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


# ------------------------------------------------------------------------------------- command line
def build_parser():
    """The ``python -m hpa_ens.stack`` argument parser."""
    import argparse

    from .cli import add_n_jobs_argument, add_task_argument, parser

    p = parser("python -m hpa_ens.stack", "Per-class LightGBM stacking over prediction sets.")
    p.add_argument("--labels", required=True, help="train labels Id,Target")
    p.add_argument("--folds", required=True, help="the shared folds.csv (Id,fold) the base models used")
    p.add_argument("--pred", nargs="+", help="prediction-set folders (oof.csv, test.csv, meta.json), each with "
                   "OOF rows (required)")
    p.add_argument("--models", dest="pred", nargs="+", help=argparse.SUPPRESS)  # the old name of --pred
    p.add_argument("--out", required=True, help="output prediction-set folder")
    add_task_argument(p)
    add_n_jobs_argument(p)
    p.add_argument("--threads", dest="n_jobs", type=int, help=argparse.SUPPRESS)  # old name of --n-jobs
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", choices=FEATURES, default="probs")
    p.add_argument("--dynamic", action="store_true",
                   help="keep the mean blend per (fold, class) where the stack loses on the inner split, and for the "
                        "whole set where the stack does not beat the mean blend on OOF")
    p.add_argument("--rare", choices=RARE_FALLBACKS, default="mean", help="fallback for classes with few positives")
    p.add_argument("--min-positives", type=int, default=20,
                   help="positives a class needs in a fold's training rows to get a LightGBM model")
    p.add_argument("--n-rounds", type=int, default=400, help="boosting rounds at most (early stopping decides)")
    p.add_argument("--early-stopping", type=int, default=EARLY_STOPPING_ROUNDS,
                   help="patience in rounds on the inner split")
    p.add_argument("--inner-fraction", type=float, default=0.2, help="share of training rows for early stopping")
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--num-leaves", type=int, default=15)
    p.add_argument("--name", default=None, help="name recorded in meta.json (default: the --out folder's name)")
    return p


def _stacker_from_args(args) -> Stacker:
    return Stacker(features=args.features, dynamic=args.dynamic, rare=args.rare, min_positives=args.min_positives,
                   n_rounds=args.n_rounds, early_stopping_rounds=args.early_stopping,
                   inner_fraction=args.inner_fraction, learning_rate=args.learning_rate, num_leaves=args.num_leaves,
                   n_jobs=args.n_jobs, seed=args.seed)


def _meta(args, argv, inputs, result: StackResult, report: dict) -> dict:
    from .contract import build_meta

    params = {"features": args.features, "dynamic": args.dynamic, "rare": args.rare,
              "min_positives": args.min_positives, "n_rounds": args.n_rounds, "early_stopping": args.early_stopping,
              "inner_fraction": args.inner_fraction, "seed": args.seed, "lightgbm": result.params}
    trees = result.n_trees[result.n_trees > 0]
    from .blend import meta_inputs

    return build_meta("hpa_ens.stack", meta_inputs(inputs), folds=args.folds, params=params,
                      argv=argv, name=args.name or Path(args.out).name, task=inputs.task.to_meta(),
                      oof_macro_f1_exact_thresholds=report["macro"], verdict=report["verdict"],
                      set_fallback=result.fallback, fallback_classes=report["fallback_classes"],
                      mean_trees=float(trees.mean()) if len(trees) else 0.0)


def main(argv: Sequence[str] | None = None) -> int:
    from .blend import check_output_folder, load_inputs, write_set
    from .cli import console, progress
    from .io import atomic_write_json

    args = build_parser().parse_args(argv)
    if not args.pred:
        raise ParameterError("The '--pred' parameter is required: one or more prediction-set folders. Got none instead.")
    stacker = _stacker_from_args(args)
    stacker._lgb_params()  # parameter errors before any file is read or written
    check_output_folder(args.out)
    inputs = load_inputs(args.pred, args.labels, args.folds, args.task, needs_oof="the stack")
    with progress() as bar:
        job = bar.add_task("stacking (fold x class)", total=len(np.unique(inputs.folds)) * inputs.task.n_classes)
        result = stacker.fit_predict(inputs.oof_list, inputs.Y, inputs.folds, inputs.test_list,
                                     progress=lambda: bar.advance(job))
    report = full_report(inputs.Y, result, inputs.oof_list, inputs.names)
    meta = _meta(args, list(argv) if argv is not None else None, inputs, result, report)
    out = write_set(args.out, inputs, result.oof, result.test, meta)
    atomic_write_json(out / "stack_report.json", report)
    _plot(report, out / "stack_report.png")
    console.print(_report_table(report, inputs.task.class_names))
    if report["fallback_classes"]:
        console.print("fallback used for classes " + ", ".join(f"{c} ({m})" for c, m in report["fallback_classes"].items()))
    console.print(f"[bold]{report['verdict']}[/bold]  (report: {out / 'stack_report.json'})")
    return 0


if __name__ == "__main__":
    from .cli import entry

    entry(main)
