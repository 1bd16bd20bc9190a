"""The per-class LightGBM stacker over prediction sets, as a scikit-learn estimator.

For each class, a binary LightGBM model sees **all sets' K probabilities** (so label correlations and
look-alike confusions are learnable) plus cheap per-image features (each set's max probability, label
count at 0.5 and mean binary entropy). Honest OOF: for fold k the stacker is fitted on the other folds'
OOF rows and predicts fold k; test = mean of the fold models.

Speed: the features are binned once per fold (``lgb.Dataset`` over the fold's fit rows, its inner split
binned with the same bin edges) and every class of the fold trains on a copy of those bins
(``Dataset.subset``: a copy of the binned rows, no re-binning) with its own label, early-stopped on the
inner split. The (fold, class) models are independent: ``n_jobs`` of them run side by side, each
LightGBM model on one thread (LightGBM releases the GIL). One thread per model makes every model, and
so every output byte, the same whatever ``n_jobs`` and whatever the machine's core count; and K x folds
small models keep 2 workers busy where one model's OpenMP threads mostly wait on each other.

Rare classes (fewer than ``min_positives`` positives in a fold's training rows) fall back to a
regularised logistic regression or to the calibrated mean blend. With ``dynamic`` (the default), the
stack is kept only where it beats the mean blend, and every choice is **nested**: it reads rows of the
other folds only, never the rows it is then used to score (so the OOF rows stay honest for the
thresholds and reports downstream):

- **per (fold, class)**: the calibrated mean blend replaces the class's model in fold k when the
  stack's F1 does not beat the blend's on fold k's inner split (rows of the other folds; F1 at each
  one's exact threshold on those rows);
- **per fold, for the whole set**: fold k keeps its stack only when the per-class choice beats the
  mean blend's macro F1 on fold k's inner split *as an honest estimate* (:func:`choice_gain`): the
  inner split is cut in five seeded parts, and each part is scored with the per-class choice made on
  the other four. (Scored on the rows that made it, the choice cannot lose: per class it takes the
  larger of two F1s, so the chosen macro F1 is never below the blend's there.) A fold that loses
  scores its rows with the calibrated blend in every class. When every fold loses
  (``StackResult.fallback == "blend"``) the output is the calibrated mean blend everywhere: within each
  fold and on the test rows, rank for rank the mean blend.

Why per fold and not one choice for the whole set: a single choice would read every fold's rows, so
fold k's output would depend on fold k's labels (through the other folds' choices), and the OOF rows
would no longer be honest for the thresholds tuned on them. Deciding fold by fold on each fold's own
inner split keeps every fold's output a function of the other folds' rows only (tested: scrambling
fold k's labels leaves fold k's OOF predictions unchanged). One bias remains, small and on the stack's
side: its trees were early-stopped on the same inner rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ..thresholds import exact_macro_f1, exact_thresholds
from ..utils import logit, parallel_map, resolve_n_jobs
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
           "default_params", "rare_fallback", "inner_split", "inner_parts", "choice_gain", "INNER_PARTS"]


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


def default_params(seed: int = 0, num_threads: int | None = 1, learning_rate: float = 0.1,
                   num_leaves: int = 15) -> dict:
    """LightGBM parameters of the stacker.

    ``num_threads`` is LightGBM's threads per model: 1, as the stacker runs them (``n_jobs`` models side
    by side instead); None (or 0/-1) means every available CPU (affinity and cgroup aware). Results are
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

    ``method[k, c]`` says what scored fold k's rows of class c: "lgbm" (the stack), "logistic" or
    "mean" (the rare-class fallback, or with ``dynamic`` the calibrated blend where the stack lost on
    the inner split), or "blend" (with ``dynamic``: fold k's set-level rule kept the blend in every
    class). ``n_trees[k, c]`` is the early-stopped tree count (0 when no LightGBM model was fitted);
    ``inner_gain[k, c]`` the stack's F1 minus the blend's on fold k's inner split (NaN when no LightGBM
    model was fitted). ``fold_gain[k]`` is fold k's set-level gain: the per-class choice's macro F1
    minus the blend's on its inner split, cross-fitted (:func:`choice_gain`; NaN when no class was
    boosted); ``folds`` the fold ids in row order of these arrays. ``fallback`` is "blend" when every
    fold kept the blend (the output is then the calibrated mean blend), else None. ``oof_macro`` holds,
    for information, the OOF macro F1 at exact thresholds of the per-class choices before the set-level
    rule ("stack") and of the mean blend; no choice reads it.
    """

    oof: np.ndarray
    test: np.ndarray | None
    method: np.ndarray
    n_trees: np.ndarray
    inner_gain: np.ndarray
    params: dict = field(default_factory=dict)
    fallback: str | None = None
    oof_macro: dict = field(default_factory=dict)
    fold_gain: np.ndarray | None = None
    folds: np.ndarray | None = None


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


#: Parts of a fold's inner split for the set-level rule: the per-class choice is made on 4/5 of the inner
#: rows (close to the real choice, made on all of them) and scored on the other 1/5, five times.
INNER_PARTS = 5


def inner_parts(n_inner: int, fold, seed: int, n_parts: int = INNER_PARTS) -> list[np.ndarray]:
    """``n_parts`` seeded, near-equal parts (positions ``0 .. n_inner - 1``) of a fold's inner split."""
    order = np.random.default_rng([seed, int(fold), 1]).permutation(n_inner)
    return [np.sort(part) for part in np.array_split(order, min(n_parts, n_inner))]


def choice_gain(y, stack, blend, parts, n_classes: int | None = None) -> float:
    """Honest macro-F1 gain over the blend of the per-class choice "the stack where it beats the blend".

    Cross-fitted: for each part, the choice is made on the other parts (per class, the stack where its
    F1 at its exact threshold beats the blend's) and scored on this part; the gains are averaged. Scored
    on the rows that made it, the choice could not lose (it takes the larger F1 of each class), so a
    set-level rule must score it on rows the choice did not see.

    Parameters
    ----------
    y : ndarray of shape (n_inner, n_boosted), 0/1
        The labels of the inner rows, for the classes with a LightGBM model.
    stack, blend : ndarray of shape (n_inner, n_boosted)
        The stack's and the blend's probabilities on those rows.
    parts : list of int arrays
        A partition of the row positions (:func:`inner_parts`).
    n_classes : int, optional
        Every class of the task (default ``n_boosted``): the classes without a LightGBM model count as
        the blend on both sides, so they dilute the macro gain.

    Returns
    -------
    gain : float
        Chosen macro F1 minus the blend's, averaged over the parts (NaN with fewer than 2 parts).
    """
    y, stack, blend = (np.asarray(a, dtype=np.float64) for a in (y, stack, blend))
    n_classes = y.shape[1] if n_classes is None else n_classes
    parts = [np.asarray(part) for part in parts if len(part)]
    if len(parts) < 2 or n_classes == 0:
        return float("nan")
    gains = []
    for i, scored in enumerate(parts):
        made = np.sort(np.concatenate([part for j, part in enumerate(parts) if j != i]))
        pick = exact_thresholds(y[made], stack[made])[1] > exact_thresholds(y[made], blend[made])[1]
        f1_stack = exact_thresholds(y[scored], stack[scored])[1]
        f1_blend = exact_thresholds(y[scored], blend[scored])[1]
        gains.append(float((np.where(pick, f1_stack, f1_blend) - f1_blend).sum()) / n_classes)
    return float(np.mean(gains))


@dataclass
class _FoldPlan:
    """A fold's rows: fit (other folds, less the inner split), inner split (early stopping, choices), scored."""

    fold: int
    train_rows: np.ndarray
    score_rows: np.ndarray
    es_rows: np.ndarray
    fit_rows: np.ndarray


@dataclass
class _Unit:
    """What one (fold, class) model gave: the model, its predictions and how it was chosen."""

    method: str
    n_trees: int
    inner_gain: float
    inner_pred: np.ndarray | None
    oof: np.ndarray
    test: np.ndarray | None
    model: object


def _one_blas_thread():
    """One BLAS thread for the logistic fits and predictions: one summation order whatever the machine and
    ``n_jobs`` (OpenBLAS splits a product's sum per thread), and no BLAS pool contending with the workers."""
    import scipy.optimize  # noqa: F401 - loads scipy's own OpenBLAS first, so the limit reaches it too
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _fold_bins(X, plan: _FoldPlan, params: dict):
    """The fold's binned features: fit rows (their own bin edges) and inner rows (the same edges).

    Raw rows are freed once binned; each class trains on ``subset`` copies of these bins.
    """
    import lightgbm as lgb

    fit_bins = lgb.Dataset(X[plan.fit_rows], label=np.zeros(len(plan.fit_rows)), params=params).construct()
    es_bins = lgb.Dataset(X[plan.es_rows], label=np.zeros(len(plan.es_rows)), params=params,
                          reference=fit_bins).construct()
    return fit_bins, es_bins


def _bins_with_label(bins, y: np.ndarray, params: dict):
    """A class's own copy of a fold's bins (``subset`` of every row: the binned rows copied, not re-binned)."""
    dataset = bins.subset(np.arange(len(y)), params=params).construct()
    dataset.set_label(y)
    return dataset


def _stack_core(X, Y, folds, blend_oof, test_inputs, *, params, n_rounds, early_stopping_rounds, inner_fraction,
                min_positives, rare, dynamic, seed, keep_models, n_jobs, progress):
    """Fit every (fold, class) model, ``n_jobs`` side by side; predict fold k's rows and the test inputs.

    ``test_inputs`` is None or (X_test, blend_test). Returns (result, stack_oof, models): the StackResult
    (``params`` and ``oof_macro`` left to the caller), the OOF of the per-class choices before the
    set-level rule, and ``models[fold_index][class]`` (None without ``keep_models``). Every unit is a pure
    function of its inputs and the results are gathered in (fold, class) order, so the output does not
    depend on ``n_jobs``.
    """
    import lightgbm as lgb

    n_classes = Y.shape[1]
    fold_ids = np.unique(folds)
    plans = []
    for k in fold_ids:
        train_rows, score_rows = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        es_rows, fit_rows = inner_split(train_rows, k, inner_fraction, seed)
        plans.append(_FoldPlan(k, train_rows, score_rows, es_rows, fit_rows))
    bins = parallel_map(lambda plan: _fold_bins(X, plan, params), plans, n_jobs)

    def fit_unit(unit):
        fi, c = unit
        plan, test = plans[fi], test_inputs
        y_train = Y[plan.train_rows, c]
        trees, gain, inner_pred = 0, float("nan"), None
        if y_train.sum() < min_positives:
            model = rare_fallback(rare, X[plan.train_rows], y_train, blend_oof[plan.train_rows, c], seed)
            method = rare
        else:
            y_es = Y[plan.es_rows, c]
            fit_set = _bins_with_label(bins[fi][0], Y[plan.fit_rows, c], params)
            es_set = _bins_with_label(bins[fi][1], y_es, params)
            booster = lgb.train(params, fit_set, num_boost_round=n_rounds, valid_sets=[es_set],
                                callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)])
            del fit_set, es_set
            model = _Booster(booster, booster.best_iteration or n_rounds)
            method, trees = "lgbm", model.best
            # The inner split: rows of other folds only; fold k stays unseen by every choice.
            inner_pred = model.predict(X[plan.es_rows], None)
            f1 = exact_thresholds(np.column_stack([y_es, y_es]),
                                  np.column_stack([inner_pred, blend_oof[plan.es_rows, c]]))[1]
            gain = float(f1[0] - f1[1])
            if dynamic and gain <= 0:
                # Calibrated on the fit rows so the fold columns share one probability scale.
                model, method = _fit_platt(blend_oof[plan.fit_rows, c], Y[plan.fit_rows, c]), "mean"
        oof = model.predict(X[plan.score_rows], blend_oof[plan.score_rows, c])
        test = None if test is None else model.predict(test[0], test[1][:, c])
        return _Unit(method, trees, gain, inner_pred, oof, test, model if keep_models else None)

    with _one_blas_thread():
        units = parallel_map(fit_unit, [(fi, c) for fi in range(len(plans)) for c in range(n_classes)], n_jobs,
                             progress=progress)
    del bins
    grid = [units[fi * n_classes:(fi + 1) * n_classes] for fi in range(len(plans))]
    method = np.array([[u.method for u in row] for row in grid], dtype=object)
    n_trees = np.array([[u.n_trees for u in row] for row in grid], dtype=np.int64)
    inner_gain = np.array([[u.inner_gain for u in row] for row in grid], dtype=np.float64)

    # The set-level rule, per fold, on the fold's inner split (nested: the fold's own rows are not read).
    fold_gain = np.full(len(plans), np.nan)
    for fi, plan in enumerate(plans):
        boosted = [c for c, u in enumerate(grid[fi]) if u.inner_pred is not None]
        if boosted:
            y_es = Y[np.ix_(plan.es_rows, boosted)]
            stack_es = np.column_stack([grid[fi][c].inner_pred for c in boosted])
            fold_gain[fi] = choice_gain(y_es, stack_es, blend_oof[np.ix_(plan.es_rows, boosted)],
                                        inner_parts(len(plan.es_rows), plan.fold, seed), n_classes)
    stack_oof = np.zeros((len(X), n_classes))
    for plan, row in zip(plans, grid):
        for c, u in enumerate(row):
            stack_oof[plan.score_rows, c] = u.oof
    lost = [fi for fi in range(len(plans)) if dynamic and fold_gain[fi] <= 0]

    def blend_unit(unit):
        fi, c = unit
        plan = plans[fi]
        model = _fit_platt(blend_oof[plan.fit_rows, c], Y[plan.fit_rows, c])
        test = None if test_inputs is None else model.predict(test_inputs[0], test_inputs[1][:, c])
        return _Unit("blend", grid[fi][c].n_trees, grid[fi][c].inner_gain, None,
                     model.predict(X[plan.score_rows], blend_oof[plan.score_rows, c]), test,
                     model if keep_models else None)

    if lost:
        # A fold that lost scores every class with the calibrated blend (the "mean" ones already do).
        redo = [(fi, c) for fi in lost for c in range(n_classes) if grid[fi][c].method != "mean"]
        with _one_blas_thread():
            for (fi, c), unit in zip(redo, parallel_map(blend_unit, redo, n_jobs)):
                grid[fi][c] = unit
    for fi in lost:
        method[fi, :] = "blend"
    oof = np.zeros((len(X), n_classes))
    test = None if test_inputs is None else np.zeros((len(test_inputs[0]), n_classes))
    for plan, row in zip(plans, grid):
        for c, u in enumerate(row):
            oof[plan.score_rows, c] = u.oof
            if test is not None:
                test[:, c] += u.test / len(plans)
    models = [[u.model for u in row] for row in grid] if keep_models else None
    fallback = "blend" if lost and len(lost) == len(plans) else None
    result = StackResult(oof, test, method, n_trees, inner_gain, fallback=fallback, fold_gain=fold_gain,
                         folds=fold_ids)
    return result, stack_oof, models


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
    dynamic : bool, default True
        Keep the stack only where it beats the mean blend, every choice nested (read on the fold's inner
        split, never on the rows it scores): per (fold, class) the calibrated blend where the stack's F1
        does not beat the blend's; per fold, the calibrated blend in every class where the per-class
        choice does not beat the blend's macro F1 (cross-fitted on parts of the inner split,
        :func:`choice_gain`). ``False``: every class with enough positives is stacked, whatever the
        inner split says (the old default).
    rare : {"mean", "logistic"}, default "mean"
        Fallback of a class with fewer than ``min_positives`` positives in a fold's training rows: the
        mean blend Platt-scaled on those rows, or an L2 logistic regression on the standardised features.
    min_positives : int >= 1, default 20
    n_rounds : int >= 1, default 400
        Boosting rounds at most (early stopping decides).
    early_stopping_rounds : int >= 1, default :data:`EARLY_STOPPING_ROUNDS`
        Patience on the inner split.
    inner_fraction : float in (0, 0.5], default 0.2
        Share of a fold's training rows held out for early stopping (and the dynamic choices).
    learning_rate : float > 0, default 0.1
    num_leaves : int >= 2, default 15
    n_jobs : int or None, default None
        The (fold, class) models fitted side by side, each LightGBM model on one thread; joblib's
        convention (None, 0 or -1: every available CPU; -2 all but one, …). The results are the same
        bytes whatever ``n_jobs``.
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
    >>> stacker = Stacker().fit(oof_sets, Y, folds)               # doctest: +SKIP
    >>> test = stacker.predict(test_sets)                          # doctest: +SKIP
    >>> result = Stacker(keep_models=False).fit(oof_sets, Y, folds, X_test=test_sets).result_  # doctest: +SKIP
    """

    def __init__(self, *, features: str = "probs", dynamic: bool = True, rare: str = "mean",
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
        resolve_n_jobs(self.n_jobs)  # refused here, before any work, when it is not a worker count
        return {**default_params(self.seed, 1, self.learning_rate, self.num_leaves), **extra}

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
            Called with no argument after each (fold, class), in the calling thread.

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
        result, stack_oof, models = _stack_core(
            features, Y, folds, blend_oof, test_inputs, params=params, n_rounds=self.n_rounds,
            early_stopping_rounds=self.early_stopping_rounds, inner_fraction=self.inner_fraction,
            min_positives=self.min_positives, rare=self.rare, dynamic=bool(self.dynamic), seed=self.seed,
            keep_models=bool(self.keep_models), n_jobs=self.n_jobs, progress=progress)
        result.params = params
        # For the report only: no choice reads the OOF rows it scores.
        result.oof_macro = {"stack": exact_macro_f1(Y, np.clip(stack_oof, 0.0, 1.0)),
                            "mean blend": exact_macro_f1(Y, blend_oof)}
        result.oof = np.clip(result.oof, 0.0, 1.0)
        result.test = None if result.test is None else np.clip(result.test, 0.0, 1.0)
        self.models_ = models
        self.result_ = result
        self.oof_ = self.result_.oof
        return self

    def predict(self, X) -> np.ndarray:
        """Mean of the fold models' predictions on the sets ``X`` (as many as at ``fit``), shape (n, K)."""
        check_is_fitted(self, "result_")
        arrays, _ = self._predict_sets(X)
        blend = mean_blend(arrays)
        if self.models_ is None:
            raise NotFittedError("This Stacker was fitted with keep_models=False: it kept no fold models to predict "
                                 "with. Refit with keep_models=True, or give the test sets to fit (X_test=...) and "
                                 "read result_.test.")
        X = stack_features(arrays, self.features)[0]
        out = np.zeros(blend.shape)
        with _one_blas_thread():  # as at fit: the same bytes as the test rows fit predicts
            for fold_models in self.models_:
                for c, model in enumerate(fold_models):
                    out[:, c] += model.predict(X, blend[:, c]) / len(self.models_)
        return np.clip(out, 0.0, 1.0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags
