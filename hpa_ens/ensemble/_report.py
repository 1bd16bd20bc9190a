"""What the stack reports: per-class and macro OOF F1 at exact thresholds (plain dicts), and its plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..thresholds import exact_macro_f1, exact_thresholds
from ._blend import mean_blend
from ._stacker import StackResult

__all__ = ["stack_report", "stack_summary", "plot_stack_report"]


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


def stack_summary(Y, result: StackResult, oof_list, names) -> dict:
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
    ax.set_xticks(np.arange(n_classes) + 0.4 - width / 2, [str(c) for c in range(n_classes)])
    ax.set_xlabel("class")
    ax.set_ylabel("OOF F1 at exact threshold")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
