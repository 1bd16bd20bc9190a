"""Blending prediction sets, and voting submission files.

Two commands in one module::

    python -m hpa_ens.blend --labels train.csv --models DIR [DIR ...] --method mean|rank|weighted|caruana --out DIR
    python -m hpa_ens.blend --submissions a.csv b.csv ... [--weights 2 1 1] --out submission.csv

The first writes an ordinary prediction set (so thresholds, submit or a stack can take it) whose
``meta.json`` holds the weights; the second votes per label across submission files (the 4th place's
way) and writes a validated ``Id,Predicted`` file.

Core functions work on numpy arrays: ``probs_list`` is a sequence of ``(n_samples, 28)`` arrays, one
per model, rows aligned by Id beforehand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .thresholds import exact_macro_f1
from ._validation import check_param
from ._validation import ContractError, ParameterError

METHODS = ("mean", "rank", "weighted", "caruana")
OBJECTIVES = ("logloss", "f1")
_EPS = 1e-7

__all__ = [
    "METHODS",
    "mean_blend",
    "rank_blend",
    "weighted_blend",
    "fit_weights",
    "caruana_weights",
    "blend",
    "vote",
    "main",
]


def _stack(probs_list) -> np.ndarray:
    arr = np.stack([np.asarray(p, dtype=np.float64) for p in probs_list])
    if arr.ndim != 3 or len(arr) == 0:
        raise ParameterError(f"The 'probs_list' parameter must hold one or more (n_samples, n_classes) arrays. "
                         f"Got shape {arr.shape} instead.")
    return arr


def _check_weights(weights, n_models: int) -> np.ndarray:
    if weights is None:
        return np.full(n_models, 1.0 / n_models)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_models,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ParameterError(f"The 'weights' parameter must be {n_models} non-negative numbers with a positive sum. "
                         f"Got {weights!r} instead.")
    return w / w.sum()


def weighted_blend(probs_list, weights=None) -> np.ndarray:
    """Weighted mean of the models' probabilities.

    Parameters
    ----------
    probs_list : sequence of ndarray of shape (n_samples, n_classes)
    weights : array-like of shape (n_models,), optional (equal weights)

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes)
    """
    arr = _stack(probs_list)
    w = _check_weights(weights, len(arr))
    return np.clip(np.tensordot(w, arr, axes=1), 0.0, 1.0)


def mean_blend(probs_list) -> np.ndarray:
    """Plain mean of the models' probabilities, shape (n_samples, n_classes)."""
    return weighted_blend(probs_list)


def rank_blend(probs_list, weights=None) -> np.ndarray:
    """Per-class rank average, rescaled to [0, 1].

    Each model's column is replaced by its average rank (ties share a rank) divided by n - 1, then
    the (weighted) mean is taken. Ranks are taken within the rows given, so OOF and test are ranked
    separately: a threshold tuned on OOF ranks acts as a quantile on test.

    Returns
    -------
    probs : ndarray of shape (n_samples, n_classes), in [0, 1]
    """
    from scipy.stats import rankdata

    arr = _stack(probs_list)
    n = arr.shape[1]
    ranks = (rankdata(arr, axis=1, method="average") - 1.0) / max(n - 1, 1)
    return weighted_blend(ranks, weights)


def _logloss(Y: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(probs, _EPS, 1 - _EPS)
    return float(-np.mean(Y * np.log(p) + (1 - Y) * np.log1p(-p)))


def _score(Y: np.ndarray, probs: np.ndarray, objective: str) -> float:
    """Lower is better."""
    return _logloss(Y, probs) if objective == "logloss" else -exact_macro_f1(Y, probs)


def fit_weights(Y, oof_list, objective: str = "logloss") -> np.ndarray:
    """Non-negative weights summing to 1 that minimise log-loss or maximise macro F1 on OOF.

    Log-loss is smooth: SLSQP on the simplex. Macro F1 at exact per-class thresholds is piecewise
    constant: Nelder-Mead on unconstrained parameters mapped to the simplex by ``|z| / sum |z|``
    (the F1 at exact thresholds is scale-invariant), started from equal weights.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_classes), 0/1
    oof_list : sequence of ndarray of shape (n_samples, n_classes)
    objective : {"logloss", "f1"}

    Returns
    -------
    weights : ndarray of shape (n_models,)
    """
    from scipy.optimize import minimize

    check_param("objective", objective, f"one of {OBJECTIVES}", objective in OBJECTIVES, "fit_weights")
    arr = _stack(oof_list)
    Y = np.asarray(Y, dtype=np.float64)
    n_models = len(arr)
    if n_models == 1:
        return np.ones(1)
    start = np.full(n_models, 1.0 / n_models)
    if objective == "logloss":
        result = minimize(lambda w: _logloss(Y, np.tensordot(w, arr, axes=1)), start, method="SLSQP",
                          bounds=[(0.0, 1.0)] * n_models,
                          constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},),
                          options={"maxiter": 200, "ftol": 1e-10})
        w = np.clip(result.x, 0.0, None)
    else:
        def loss(z):
            w = np.abs(z)
            return 0.0 if w.sum() == 0 else _score(Y, np.tensordot(w / w.sum(), arr, axes=1), "f1")

        result = minimize(loss, start, method="Nelder-Mead",
                          options={"maxfev": 60 * n_models, "xatol": 1e-3, "fatol": 1e-6})
        w = np.abs(result.x)
        if loss(w) > loss(start):  # never return worse than the equal-weight start
            w = start
    return w / w.sum()


def caruana_weights(Y, oof_list, n_iter: int = 25, objective: str = "f1") -> np.ndarray:
    """Greedy ensemble selection with replacement (Caruana et al., 2004).

    Starts from the best single model, then repeatedly adds (with replacement) the model whose
    inclusion in the running mean scores best; ties go to the lowest model index. The weights are
    the selection counts over the total.

    Parameters
    ----------
    Y : array-like of shape (n_samples, n_classes), 0/1
    oof_list : sequence of ndarray of shape (n_samples, n_classes)
    n_iter : int, default 25
        Models added after the first.
    objective : {"f1", "logloss"}
        Macro F1 at exact per-class thresholds, or mean binary log-loss.

    Returns
    -------
    weights : ndarray of shape (n_models,)
    """
    check_param("objective", objective, f"one of {OBJECTIVES}", objective in OBJECTIVES, "caruana_weights")
    check_param("n_iter", n_iter, "an int >= 0", isinstance(n_iter, (int, np.integer)) and n_iter >= 0, "caruana_weights")
    arr = _stack(oof_list)
    Y = np.asarray(Y, dtype=np.float64)
    counts = np.zeros(len(arr), dtype=np.int64)
    singles = [_score(Y, p, objective) for p in arr]
    first = int(np.argmin(singles))
    counts[first] = 1
    running = arr[first].copy()
    for _ in range(n_iter):
        size = counts.sum()
        trial = [_score(Y, (running * size + p) / (size + 1), objective) for p in arr]
        pick = int(np.argmin(trial))
        counts[pick] += 1
        running = (running * size + arr[pick]) / (size + 1)
    return counts / counts.sum()


def blend(oof_list, test_list, method: str = "mean", Y=None, objective: str | None = None,
          n_iter: int = 25, folds=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Blend OOF and test probabilities with one method.

    ``weighted`` and ``caruana`` fit their weights on all OOF rows for the test blend; with ``folds``
    the OOF blend is cross-fitted (fold k blended with weights fitted on the other folds), so the
    OOF score of the blend is not flattered by its own fitting.

    Returns
    -------
    oof, test : ndarrays of shape (n_train, 28) and (n_test, 28)
    weights : ndarray of shape (n_models,) or None (rank)
    """
    check_param("method", method, f"one of {METHODS}", method in METHODS, "blend")
    if method == "mean":
        return mean_blend(oof_list), mean_blend(test_list), _check_weights(None, len(oof_list))
    if method == "rank":
        return rank_blend(oof_list), rank_blend(test_list), None
    if Y is None:
        raise ParameterError(f"The 'Y' parameter of blend must be given for method {method!r}. Got None instead.")
    objective = objective or ("logloss" if method == "weighted" else "f1")

    def fit(rows):
        sub = [np.asarray(p)[rows] for p in oof_list]
        if method == "weighted":
            return fit_weights(np.asarray(Y)[rows], sub, objective)
        return caruana_weights(np.asarray(Y)[rows], sub, n_iter, objective)

    weights = fit(slice(None))
    oof = weighted_blend(oof_list, weights)
    if folds is not None:
        folds = np.asarray(folds)
        oof = np.empty_like(oof)
        for k in np.unique(folds):
            rows = folds == k
            oof[rows] = weighted_blend([np.asarray(p)[rows] for p in oof_list], fit(~rows))
    return oof, weighted_blend(test_list, weights), weights


def vote(matrices, weights=None, threshold: float = 0.5, min_labels: int = 1) -> np.ndarray:
    """Weighted per-label vote across submissions.

    Label k is predicted for an image when the weight share of the submissions predicting it is
    strictly above ``threshold`` (0.5: a strict majority). An image left with fewer than
    ``min_labels`` labels gets its labels with the largest (non-zero) vote shares, class id breaking ties.

    Parameters
    ----------
    matrices : sequence of ndarray of shape (n_samples, n_classes), 0/1, aligned by Id
    weights : array-like of shape (n_submissions,), optional
    threshold : float in [0, 1)
    min_labels : int >= 0

    Returns
    -------
    y_pred : ndarray of shape (n_samples, n_classes), bool
    """
    arr = np.stack([np.asarray(m, dtype=np.float64) for m in matrices])
    w = _check_weights(weights, len(arr))
    check_param("threshold", threshold, "a float in [0, 1)", 0.0 <= threshold < 1.0, "vote")
    share = np.tensordot(w, arr, axes=1)
    y_pred = share > threshold + 1e-12
    short = y_pred.sum(axis=1) < min_labels
    if short.any() and min_labels > 0:
        order = np.argsort(-share[short], axis=1, kind="stable")[:, :min_labels]
        top = np.zeros_like(y_pred[short])
        np.put_along_axis(top, order, True, axis=1)
        y_pred[short] |= top & (share[short] > 0)
    return y_pred


# ----------------------------------------------------------------------------------------------- I/O
def load_sets(labels_path, model_dirs: Sequence) -> tuple[list[str], np.ndarray, list[str], list, list[str]]:
    """Read labels and prediction sets, every set aligned by Id to the labels and the first set's test Ids.

    Returns
    -------
    train_ids, Y (n_train, 28) uint8, test_ids, sets (list of PredictionSet), names (unique)
    """
    from .contract import read_prediction_set
    from .labels import read_labels

    labels = read_labels(labels_path)
    train_ids = labels.index.tolist()
    sets, test_ids = [], None
    for folder in model_dirs:
        ps = read_prediction_set(folder, train_ids, test_ids)
        test_ids = ps.test.index.tolist() if test_ids is None else test_ids
        sets.append(ps)
    names: list[str] = []
    for folder in model_dirs:
        base = Path(folder).name or str(folder)
        name, i = base, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.append(name)
    return train_ids, labels.to_numpy(), test_ids, sets, names


def _vote_main(args, argv) -> int:
    from rich.table import Table

    from .cli import console
    from ._validation import check_same_ids
    from .labels import read_sample_submission, read_submission, write_labels

    frames = [read_submission(p) for p in args.submissions]
    if args.sample_submission:
        ids = read_sample_submission(args.sample_submission).tolist()
        against = str(args.sample_submission)
    else:
        ids = frames[0].index.tolist()
        against = str(args.submissions[0])
    for path, frame in zip(args.submissions, frames):
        check_same_ids(frame.index.tolist(), ids, str(path), against)
    if args.weights is not None and len(args.weights) != len(frames):
        raise ParameterError(f"The '--weights' parameter must give one weight per submission ({len(frames)}). "
                         f"Got {len(args.weights)} instead.")
    matrices = [frame.loc[ids].to_numpy() for frame in frames]
    y_pred = vote(matrices, args.weights, args.vote_threshold, args.min_labels)
    write_labels(args.out, ids, y_pred.astype(np.uint8), column="Predicted")
    table = Table(title="Submission vote")
    for col in ("submission", "weight", "labels/image", "agreement with vote"):
        table.add_column(col, justify="right" if col != "submission" else "left")
    w = _check_weights(args.weights, len(frames))
    for path, m, wi in zip(args.submissions, matrices, w):
        agree = float((m.astype(bool) == y_pred).all(axis=1).mean())
        table.add_row(Path(path).name, f"{wi:.3f}", f"{m.sum(1).mean():.3f}", f"{agree:.3f}")
    table.add_row("[bold]vote[/bold]", "", f"{y_pred.sum(1).mean():.3f}", "")
    console.print(table)
    console.print(f"wrote {args.out} ({len(ids)} Ids)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import console, parser
    from .contract import build_meta, probs_frame, read_folds, write_prediction_set

    p = parser("python -m hpa_ens.blend", "Blend prediction sets (or vote submission files).")
    p.add_argument("--labels", help="train labels Id,Target (blending prediction sets)")
    p.add_argument("--models", nargs="+", help="prediction-set folders to blend")
    p.add_argument("--method", choices=METHODS, default="mean")
    p.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help="what weighted/caruana optimise on OOF (default: logloss for weighted, f1 for caruana)")
    p.add_argument("--n-iter", type=int, default=25, help="caruana: models added after the first")
    p.add_argument("--folds", help="folds.csv: cross-fit weighted/caruana weights so the OOF blend is honest")
    p.add_argument("--name", default=None, help="name recorded in meta.json (default: the --out folder's name)")
    p.add_argument("--submissions", nargs="+", help="submission files Id,Predicted to vote across")
    p.add_argument("--weights", nargs="+", type=float, default=None, help="one vote weight per submission")
    p.add_argument("--vote-threshold", type=float, default=0.5,
                   help="predict a label when the weight share voting for it is above this")
    p.add_argument("--min-labels", type=int, default=1, help="top up images with fewer labels by vote share")
    p.add_argument("--sample-submission", help="Id order of the voted submission (default: the first file's)")
    p.add_argument("--out", required=True, help="prediction-set folder, or the submission CSV when voting")
    args = p.parse_args(argv)
    argv_list = list(argv) if argv is not None else None

    if args.submissions:
        if args.models:
            raise ContractError("Give either --models (blend prediction sets) or --submissions (vote). Got both instead.")
        return _vote_main(args, argv_list)
    if not args.models or not args.labels:
        raise ParameterError("The '--labels' and '--models' parameters are required unless voting --submissions. "
                         "Got none instead.")
    train_ids, Y, test_ids, sets, names = load_sets(args.labels, args.models)
    folds = read_folds(args.folds, train_ids).to_numpy() if args.folds else None
    oof_list = [ps.oof.to_numpy() for ps in sets]
    test_list = [ps.test.to_numpy() for ps in sets]
    oof, test, weights = blend(oof_list, test_list, args.method, Y, args.objective, args.n_iter, folds)
    weight_map = None if weights is None else {n: float(w) for n, w in zip(names, weights)}
    scores = {n: exact_macro_f1(Y, o) for n, o in zip(names, oof_list)}
    blended_score = exact_macro_f1(Y, oof)
    params = {"method": args.method, "objective": args.objective, "n_iter": args.n_iter,
              "cross_fitted": folds is not None}
    meta = build_meta("hpa_ens.blend", dict(zip(names, args.models)), folds=args.folds, params=params,
                      argv=argv_list, name=args.name or Path(args.out).name, weights=weight_map,
                      oof_macro_f1_exact_thresholds={**scores, "blend": blended_score})
    write_prediction_set(args.out, probs_frame(train_ids, oof), probs_frame(test_ids, test), meta)
    for n in names:
        w = "" if weight_map is None else f"  weight {weight_map[n]:.3f}"
        console.print(f"{n}: OOF macro F1 at exact thresholds {scores[n]:.4f}{w}")
    console.print(f"[bold]{args.method} blend[/bold]: OOF macro F1 at exact thresholds {blended_score:.4f} -> {args.out}")
    return 0


if __name__ == "__main__":
    from .cli import entry

    entry(main)
