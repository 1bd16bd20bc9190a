"""What the stack reports: per-class and macro OOF F1 at exact thresholds (plain dicts), and its plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..thresholds import exact_macro_f1, exact_thresholds
from ._blend import mean_blend
from ._stacker import StackResult

__all__ = ["stack_report", "stack_summary", "plot_stack_report", "class_uses"]


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


def _number(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def class_uses(methods) -> str:
    """What a class's rows were scored with over the folds: "stack", "blend", the rare fallback, or a mix.

    ``methods`` holds one :class:`StackResult` method per fold ("lgbm", "mean", "blend", "logistic").
    """
    methods = list(methods)
    stacked = sum(m == "lgbm" for m in methods)
    if stacked == len(methods):
        return "stack"
    if stacked:
        return f"stack in {stacked} of {len(methods)} folds"
    if all(m in ("mean", "blend") for m in methods):
        return "blend"
    return "+".join(sorted(set(methods)))


def _why(methods, gains) -> str:
    """The reasons of a class's choices, from its per-fold methods and inner-split gains."""
    reasons = []
    if any(m in ("mean", "logistic") and g is None for m, g in zip(methods, gains)):
        reasons.append("rare: too few positives in a fold's training rows")
    if any(m == "mean" and g is not None for m, g in zip(methods, gains)):
        reasons.append("the stack did not beat the blend on the inner split")
    if any(m == "blend" for m in methods):
        reasons.append("the fold's set-level rule kept the blend")
    if any(m == "lgbm" for m in methods):
        reasons.append("the stack beat the blend on the inner split" if any(
            m == "lgbm" and g is not None and g > 0 for m, g in zip(methods, gains)) else "stacked")
    return "; ".join(reasons)


def stack_summary(Y, result: StackResult, oof_list, names) -> dict:
    """The ``stack_report.json`` record: best single, mean blend and stack at exact thresholds, verdict, choices.

    Besides the per-class and macro OOF F1 (:func:`stack_report`), it records what every class and fold
    used and why: ``classes`` (per class: ``uses``, the per-fold ``methods`` and ``inner_gain``, their
    mean and the reason), ``folds`` (per fold: the set-level gain on its inner split and what it kept),
    ``set_fallback`` ("blend" when every fold kept the blend), ``class_methods``, ``fallback_classes``,
    ``n_trees`` and ``inner_gain`` (fold x class).
    """
    scores = {n: exact_macro_f1(Y, o) for n, o in zip(names, oof_list)}
    best_single = max(scores, key=scores.get)
    report = stack_report(Y, {f"best single ({best_single})": oof_list[names.index(best_single)],
                              "mean blend": mean_blend(oof_list), "stack": result.oof})
    gain = report["macro"]["stack"] - report["macro"]["mean blend"]
    n_folds, n_classes = result.method.shape
    fold_ids = list(range(n_folds)) if result.folds is None else [int(f) if isinstance(f, (int, np.integer)) else
                                                                  str(f) for f in result.folds]
    fold_gain = np.full(n_folds, np.nan) if result.fold_gain is None else np.asarray(result.fold_gain, dtype=float)
    kept_blend = [k for k in range(n_folds) if (result.method[k] == "blend").all()]
    before = result.oof_macro.get("stack")
    if result.fallback == "blend":
        verdict = ("blend kept: the stack beat the mean blend in no fold's inner split (each fold decided on rows of "
                   "the other folds), so every fold scores with the calibrated mean blend")
        if before is not None:
            verdict += (f"; on OOF the stack would have scored {before:.4f} vs the blend's "
                        f"{result.oof_macro['mean blend']:.4f}")
    else:
        verdict = f"stack beats blend by {gain:.4f} on OOF" if gain > 0 else f"blend beats stack by {-gain:.4f} on OOF"
        if kept_blend:
            verdict += (f" (the blend kept in fold{'s' if len(kept_blend) > 1 else ''} "
                        f"{', '.join(str(fold_ids[k]) for k in kept_blend)} of {n_folds} by the set-level rule)")
    methods = ["+".join(sorted(set(result.method[:, c]))) for c in range(n_classes)]
    gains = [[_number(v) for v in row] for row in result.inner_gain]
    classes = []
    for c in range(n_classes):
        per_fold = [str(m) for m in result.method[:, c]]
        class_gains = [gains[k][c] for k in range(n_folds)]
        measured = [g for g in class_gains if g is not None]
        classes.append({"class": c, "uses": class_uses(per_fold), "methods": per_fold, "inner_gain": class_gains,
                        "mean_inner_gain": float(np.mean(measured)) if measured else None,
                        "why": _why(per_fold, class_gains)})
    folds = [{"fold": fold_ids[k], "set_gain": _number(fold_gain[k]),
              "kept": "blend" if k in kept_blend else ("stack" if np.isfinite(fold_gain[k]) else "no LightGBM model"),
              "classes_stacked": int((result.method[k] == "lgbm").sum())} for k in range(n_folds)]
    return {**report, "single_models": scores, "verdict": verdict, "stack_minus_blend": gain,
            "set_fallback": result.fallback, "stack_oof_before_fallback": before,
            "class_methods": methods,
            "fallback_classes": {str(c): m for c, m in enumerate(methods) if m != "lgbm"},
            "classes": classes, "folds": folds,
            "n_trees": result.n_trees.tolist(),
            "inner_gain": gains,
            "support": np.asarray(Y).sum(axis=0).astype(int).tolist()}


def plot_stack_report(report: dict, path) -> Path:
    """Bars of each candidate's per-class OOF F1 (a :func:`stack_report`), written as a PNG at ``path``.

    Drawn on a standalone matplotlib ``Figure`` (no pyplot backend is chosen or changed); written
    atomically, with no version metadata, so the same report gives the same bytes.
    """
    from matplotlib.figure import Figure

    from ..report import save_figure

    names = list(report["macro"])
    n_classes = len(report["per_class"][names[0]])
    fig = Figure(figsize=(max(6, n_classes * 0.5), 4.5))
    ax = fig.subplots()
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(np.arange(n_classes) + i * width, report["per_class"][name], width,
               label=f"{name} (macro {report['macro'][name]:.4f})")
    marks = {"stack": "S", "blend": "B"}
    uses = [marks.get(r["uses"], "S/B" if r["uses"].startswith("stack in") else "R")
            for r in report.get("classes", [])]
    ticks = [f"{c}\n{uses[c]}" if uses else str(c) for c in range(n_classes)]
    ax.set_xticks(np.arange(n_classes) + 0.4 - width / 2, ticks)
    ax.set_xlabel("class (S: stack, B: blend, S/B: stack in some folds, R: logistic rare-class fallback)" if uses
                  else "class")
    ax.set_ylabel("OOF F1 at exact threshold")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
