"""Per-class LightGBM stacking over prediction sets: ``python -m hpa_ens.stack``.

::

    python -m hpa_ens.stack --labels train.csv --folds folds.csv --models oof/a oof/b oof/c --out oof/stack

For each class, a binary LightGBM model sees **all models' 28 probabilities** (so label correlations
and look-alike confusions are learnable) plus cheap per-image features (each model's max probability,
label count at 0.5 and mean binary entropy). Honest OOF: for fold k of the shared ``folds.csv`` the
stacker is fitted on the other folds' OOF rows and predicts fold k; test = mean of the fold models.

Speed: one binned ``lgb.Dataset`` per fold is built once and shared by the 28 classes (only the label
changes, via ``set_label``), with early stopping on an inner split of the fold's training rows.
Memory is flat in the number of classes: no booster outlives its class.

Rare classes (fewer than ``min_positives`` positives in a fold's training rows) fall back to a
regularised logistic regression or to the calibrated mean blend. With ``dynamic``, a class keeps the
(calibrated) mean blend in a fold when the stack does not beat it on that fold's inner split: the
choice is made on rows of the other folds only, never on the rows being scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .thresholds import exact_thresholds
from ._validation import check_param
from .blend import load_sets, mean_blend
from .classes import CLASS_NAMES, N_CLASSES

FEATURES = ("probs", "logits", "both")
RARE_FALLBACKS = ("logistic", "mean")
_EPS = 1e-6

__all__ = ["FEATURES", "StackResult", "stack_features", "default_params", "fit_predict_stack", "stack_report", "main"]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def stack_features(probs_list, features: str = "probs", names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """The stacker's input matrix.

    Parameters
    ----------
    probs_list : sequence of ndarray of shape (n_samples, 28)
        One array per model, rows aligned by Id.
    features : {"probs", "logits", "both"}
        Per model, the 28 probabilities, their logits, or both.
    names : sequence of str, optional
        Model names, used in the feature names.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32
        Per model: the 28 class columns (once or twice), then max probability, label count at 0.5
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


def default_params(seed: int = 0, num_threads: int = 1, learning_rate: float = 0.1, num_leaves: int = 15) -> dict:
    """LightGBM parameters of the stacker (deterministic per seed and thread count)."""
    return {
        "objective": "binary",
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.5,  # halves histogram work; the 28*M inputs are highly redundant
        "lambda_l2": 1.0,
        "max_bin": 63,
        "verbose": -1,
        "num_threads": num_threads,
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
    blend's on fold k's inner split (NaN when not measured).
    """

    oof: np.ndarray
    test: np.ndarray
    method: np.ndarray
    n_trees: np.ndarray
    inner_gain: np.ndarray
    params: dict = field(default_factory=dict)


def _calibrated_blend(blend_fit, y_fit, blend_apply_list, C: float = 1.0):
    """Platt-scale the blend's column on the fit rows so its scale matches the stack's probabilities."""
    from sklearn.linear_model import LogisticRegression

    if y_fit.min() == y_fit.max():  # no positives (or only positives): nothing to learn
        rate = float(y_fit.mean())
        return [np.full(len(b), rate) for b in blend_apply_list]
    model = LogisticRegression(C=C).fit(_logit(blend_fit)[:, None], y_fit)
    return [model.predict_proba(_logit(b)[:, None])[:, 1] for b in blend_apply_list]


def _logistic(X_fit, y_fit, X_apply_list, C: float = 0.05, seed: int = 0):
    """Regularised logistic regression on standardised features (the rare-class fallback)."""
    from sklearn.linear_model import LogisticRegression

    if y_fit.min() == y_fit.max():
        rate = float(y_fit.mean())
        return [np.full(len(X), rate) for X in X_apply_list]
    mean, std = X_fit.mean(axis=0), X_fit.std(axis=0) + 1e-6
    model = LogisticRegression(C=C, max_iter=500, class_weight="balanced", random_state=seed)
    model.fit((X_fit - mean) / std, y_fit)
    # class_weight="balanced" shifts the intercept; F1 thresholds are tuned afterwards, so only the
    # ranking matters, but keep outputs in (0, 1) probabilities all the same.
    return [model.predict_proba((X - mean) / std)[:, 1] for X in X_apply_list]


def fit_predict_stack(
    X,
    Y,
    folds,
    X_test,
    blend_oof,
    blend_test,
    *,
    params: dict | None = None,
    n_rounds: int = 400,
    early_stopping_rounds: int = 30,
    inner_fraction: float = 0.2,
    min_positives: int = 20,
    rare: str = "mean",
    dynamic: bool = False,
    seed: int = 0,
    progress=None,
) -> StackResult:
    """Fit the per-class stackers fold by fold and predict OOF and test.

    Parameters
    ----------
    X : ndarray of shape (n_train, n_features)
        Stack features of the train rows (``stack_features`` of the models' OOF probabilities).
    Y : ndarray of shape (n_train, n_classes), 0/1
    folds : ndarray of shape (n_train,), int
        Fold of each train row (the shared ``folds.csv``).
    X_test : ndarray of shape (n_test, n_features)
    blend_oof, blend_test : ndarrays of shape (n_train, n_classes) and (n_test, n_classes)
        The mean blend, used by the rare-class fallback ``"mean"`` and by ``dynamic``.
    params : dict, optional
        LightGBM parameters (default ``default_params(seed)``).
    n_rounds, early_stopping_rounds : int
        Boosting rounds at most, and patience on the inner split's log-loss.
    inner_fraction : float in (0, 0.5]
        Share of a fold's training rows held out for early stopping (and the dynamic choice).
    min_positives : int
        A class with fewer positives in a fold's training rows uses the ``rare`` fallback there.
    rare : {"mean", "logistic"}
    dynamic : bool
        Keep the calibrated blend for a (fold, class) where the stack does not beat it on the inner split.
    seed : int
    progress : callable, optional
        Called with no argument after each (fold, class).

    Returns
    -------
    StackResult
    """
    import lightgbm as lgb

    check_param("rare", rare, f"one of {RARE_FALLBACKS}", rare in RARE_FALLBACKS, "fit_predict_stack")
    check_param("inner_fraction", inner_fraction, "a float in (0, 0.5]", 0.0 < inner_fraction <= 0.5, "fit_predict_stack")
    X = np.asarray(X, dtype=np.float32)
    X_test = np.asarray(X_test, dtype=np.float32)
    Y = np.asarray(Y).astype(np.float64)
    folds = np.asarray(folds)
    n_classes = Y.shape[1]
    params = dict(params or default_params(seed))
    fold_ids = np.unique(folds)
    oof = np.zeros((len(X), n_classes))
    test = np.zeros((len(X_test), n_classes))
    method = np.full((len(fold_ids), n_classes), "", dtype=object)
    n_trees = np.zeros((len(fold_ids), n_classes), dtype=np.int64)
    inner_gain = np.full((len(fold_ids), n_classes), np.nan)

    for fi, k in enumerate(fold_ids):
        train_rows = np.flatnonzero(folds != k)
        score_rows = np.flatnonzero(folds == k)
        rng = np.random.default_rng([seed, int(k)])
        shuffled = rng.permutation(train_rows)
        n_inner = max(1, int(round(inner_fraction * len(train_rows))))
        es_rows, fit_rows = np.sort(shuffled[:n_inner]), np.sort(shuffled[n_inner:])
        # One binned Dataset per fold, shared by all classes; only the label changes (set_label).
        fit_set = lgb.Dataset(X[fit_rows], label=Y[fit_rows, 0], params=params, free_raw_data=False).construct()
        es_set = lgb.Dataset(X[es_rows], label=Y[es_rows, 0], params=params, reference=fit_set,
                             free_raw_data=False).construct()
        for c in range(n_classes):
            y_train = Y[train_rows, c]
            if y_train.sum() < min_positives:
                if rare == "logistic":
                    pred_score, pred_test = _logistic(X[train_rows], y_train, [X[score_rows], X_test], seed=seed)
                else:
                    pred_score, pred_test = _calibrated_blend(blend_oof[train_rows, c], y_train,
                                                              [blend_oof[score_rows, c], blend_test[:, c]])
                method[fi, c] = rare
            else:
                fit_set.set_label(Y[fit_rows, c])
                es_set.set_label(Y[es_rows, c])
                booster = lgb.train(params, fit_set, num_boost_round=n_rounds, valid_sets=[es_set],
                                    callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)])
                best = booster.best_iteration or n_rounds
                pred_score = booster.predict(X[score_rows], num_iteration=best)
                pred_test = booster.predict(X_test, num_iteration=best)
                method[fi, c] = "lgbm"
                n_trees[fi, c] = best
                if dynamic:
                    # Decide on the inner split (rows of other folds) only; fold k stays unseen.
                    pred_es = booster.predict(X[es_rows], num_iteration=best)
                    y_es = Y[es_rows, c]
                    pair = np.column_stack([pred_es, blend_oof[es_rows, c]])
                    f1 = exact_thresholds(np.column_stack([y_es, y_es]), pair)[1]
                    inner_gain[fi, c] = f1[0] - f1[1]
                    if f1[0] <= f1[1]:
                        # Calibrate the blend on the fit rows so fold columns share one probability scale.
                        pred_score, pred_test = _calibrated_blend(blend_oof[fit_rows, c], Y[fit_rows, c],
                                                                  [blend_oof[score_rows, c], blend_test[:, c]])
                        method[fi, c] = "mean"
                del booster
            oof[score_rows, c] = pred_score
            test[:, c] += pred_test / len(fold_ids)
            if progress is not None:
                progress()
        del fit_set, es_set
    return StackResult(np.clip(oof, 0.0, 1.0), np.clip(test, 0.0, 1.0), method, n_trees, inner_gain, params)


def stack_report(Y, candidates: dict) -> dict:
    """Per-class and macro OOF F1 at each candidate's own exact per-class thresholds.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_classes), 0/1
    candidates : dict name -> ndarray of shape (n_samples, n_classes)

    Returns
    -------
    report : dict with ``per_class`` {name: [28 floats]}, ``macro`` {name: float}, ``thresholds``
    """
    per_class, macro, thresholds = {}, {}, {}
    for name, probs in candidates.items():
        thr, f1 = exact_thresholds(Y, probs)
        per_class[name] = [float(v) for v in f1]
        macro[name] = float(f1.mean())
        thresholds[name] = [float(v) for v in thr]
    return {"per_class": per_class, "macro": macro, "thresholds": thresholds}


def _report_table(report: dict, support, methods):
    from rich.table import Table

    names = list(report["macro"])
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
        table.add_row(str(c), CLASS_NAMES[c] if c < len(CLASS_NAMES) else str(c), str(int(support[c])), *cells,
                      methods[c])
    return table


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["macro"])
    n_classes = len(report["per_class"][names[0]])
    fig, ax = plt.subplots(figsize=(14, 4.5))
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
    from .report import save_figure

    save_figure(fig, path, dpi=90)


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import console, parser, progress
    from .io import atomic_write_json
    from .contract import build_meta, probs_frame, read_folds, write_prediction_set

    p = parser("python -m hpa_ens.stack", "Per-class LightGBM stacking over prediction sets.")
    p.add_argument("--labels", required=True, help="train labels Id,Target")
    p.add_argument("--folds", required=True, help="the shared folds.csv (Id,fold) the base models used")
    p.add_argument("--models", nargs="+", required=True, help="prediction-set folders (oof.csv, test.csv, meta.json)")
    p.add_argument("--out", required=True, help="output prediction-set folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", choices=FEATURES, default="probs")
    p.add_argument("--dynamic", action="store_true",
                   help="keep the mean blend for (fold, class) pairs where the stack loses on the inner split")
    p.add_argument("--rare", choices=RARE_FALLBACKS, default="mean", help="fallback for classes with few positives")
    p.add_argument("--min-positives", type=int, default=20,
                   help="positives a class needs in a fold's training rows to get a LightGBM model")
    p.add_argument("--n-rounds", type=int, default=400, help="boosting rounds at most (early stopping decides)")
    p.add_argument("--early-stopping", type=int, default=30, help="patience in rounds on the inner split")
    p.add_argument("--inner-fraction", type=float, default=0.2, help="share of training rows for early stopping")
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--num-leaves", type=int, default=15)
    p.add_argument("--threads", type=int, default=1,
                   help="LightGBM threads (1 measured fastest on a shared 2-core box; raise on an idle machine)")
    p.add_argument("--name", default=None, help="name recorded in meta.json (default: the --out folder's name)")
    args = p.parse_args(argv)
    argv_list = list(argv) if argv is not None else None

    train_ids, Y, test_ids, sets, names = load_sets(args.labels, args.models)
    folds = read_folds(args.folds, train_ids).to_numpy()
    oof_list = [ps.oof.to_numpy() for ps in sets]
    test_list = [ps.test.to_numpy() for ps in sets]
    X, feature_names = stack_features(oof_list, args.features, names)
    X_test, _ = stack_features(test_list, args.features, names)
    blend_oof, blend_test = mean_blend(oof_list), mean_blend(test_list)
    params = default_params(args.seed, args.threads, args.learning_rate, args.num_leaves)
    n_folds = len(np.unique(folds))
    with progress() as bar:
        task = bar.add_task("stacking (fold x class)", total=n_folds * N_CLASSES)
        result = fit_predict_stack(
            X, Y, folds, X_test, blend_oof, blend_test, params=params, n_rounds=args.n_rounds,
            early_stopping_rounds=args.early_stopping, inner_fraction=args.inner_fraction,
            min_positives=args.min_positives, rare=args.rare, dynamic=args.dynamic, seed=args.seed,
            progress=lambda: bar.advance(task),
        )

    scores = {n: stack_report(Y, {n: o})["macro"][n] for n, o in zip(names, oof_list)}
    best_single = max(scores, key=scores.get)
    report = stack_report(Y, {f"best single ({best_single})": oof_list[names.index(best_single)],
                              "mean blend": blend_oof, "stack": result.oof})
    macro = report["macro"]
    gain = macro["stack"] - macro["mean blend"]
    verdict = (f"stack beats blend by {gain:.4f} on OOF" if gain > 0
               else f"blend beats stack by {-gain:.4f} on OOF")
    methods_per_class = []
    for c in range(N_CLASSES):
        used = sorted(set(result.method[:, c]))
        methods_per_class.append("+".join(used))
    fallback = {str(c): methods_per_class[c] for c in range(N_CLASSES) if methods_per_class[c] != "lgbm"}
    stack_params = {
        "features": args.features, "n_features": len(feature_names), "dynamic": args.dynamic, "rare": args.rare,
        "min_positives": args.min_positives, "n_rounds": args.n_rounds, "early_stopping": args.early_stopping,
        "inner_fraction": args.inner_fraction, "seed": args.seed, "lightgbm": params,
    }
    meta = build_meta("hpa_ens.stack", dict(zip(names, args.models)), folds=args.folds, params=stack_params,
                      argv=argv_list, name=args.name or Path(args.out).name,
                      oof_macro_f1_exact_thresholds=macro, verdict=verdict, fallback_classes=fallback,
                      mean_trees=float(result.n_trees[result.n_trees > 0].mean()) if (result.n_trees > 0).any() else 0.0)
    out = Path(args.out)
    write_prediction_set(out, probs_frame(train_ids, result.oof), probs_frame(test_ids, result.test), meta)
    full_report = {
        **report,
        "single_models": scores,
        "verdict": verdict,
        "stack_minus_blend": gain,
        "class_methods": methods_per_class,
        "fallback_classes": fallback,
        "n_trees": result.n_trees.tolist(),
        "inner_gain": [[None if np.isnan(v) else float(v) for v in row] for row in result.inner_gain],
        "support": Y.sum(axis=0).astype(int).tolist(),
    }
    atomic_write_json(out / "stack_report.json", full_report)
    _plot(report, out / "stack_report.png")
    console.print(_report_table(report, Y.sum(axis=0), methods_per_class))
    if fallback:
        console.print(f"fallback used for classes {', '.join(f'{c} ({m})' for c, m in fallback.items())}")
    console.print(f"[bold]{verdict}[/bold]  (report: {out / 'stack_report.json'})")
    return 0


if __name__ == "__main__":
    from .cli import entry

    entry(main)
