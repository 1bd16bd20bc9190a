"""Plots of a threshold choice: OOF F1 against the threshold per class, and predicted test shares vs the target."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._cuts import NEVER, CutCurves

__all__ = ["f1_curves_figure", "shares_figure", "save_threshold_plots"]


def f1_curves_figure(curves: CutCurves, thresholds, names, title: str):
    """OOF F1 vs threshold for each class, the chosen cut in red (a matplotlib Figure, no pyplot state)."""
    from matplotlib.figure import Figure

    K = len(names)
    cols = min(7, K)
    rows = -(-K // cols)
    fig = Figure(figsize=(3 * cols, 2.75 * rows))
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False)
    f1_at = curves.f1_at(thresholds)
    for k, ax in enumerate(axes.ravel()):
        if k >= K:
            ax.axis("off")
            continue
        ok = np.flatnonzero(curves.f1[k] >= 0)
        ok = ok[curves.thresholds[k, ok] < NEVER]
        if len(ok) > 2000:
            # 31k cuts add nothing visible: keep cuts evenly spread in rank and in threshold.
            by_rank = ok[np.linspace(0, len(ok) - 1, 1000).astype(int)]
            by_value = ok[np.minimum(np.searchsorted(-curves.thresholds[k, ok], -np.linspace(1, 0, 1000)), len(ok) - 1)]
            ok = np.union1d(by_rank, by_value)
        ax.plot(curves.thresholds[k, ok], curves.f1[k, ok], lw=1)
        ax.axvline(min(float(thresholds[k]), 1.0), color="red", lw=1, ls="--")
        ax.set_title(f"{k} {names[k][:18]} (n={int(curves.n_pos[k])})\nF1 {f1_at[k]:.3f} at {thresholds[k]:.3f}",
                     fontsize=8)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"OOF F1 vs threshold per class ({title}); red: chosen cut")
    fig.tight_layout()
    return fig


def shares_figure(test_share, target_share, names, title: str):
    """Predicted test share vs the target per class, log scale (a matplotlib Figure, no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6, 0.5 * len(names)), 5))
    ax = fig.subplots()
    x = np.arange(len(names))
    if target_share is not None:
        ax.bar(x - 0.2, target_share, width=0.4, label="target share")
    ax.bar(x + 0.2, test_share, width=0.4, label="predicted test share")
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{k} {names[k][:14]}" for k in x], rotation=70, fontsize=7)
    ax.set_ylabel("share of rows (log)")
    ax.set_title(f"Predicted test share vs target per class ({title})")
    ax.legend()
    fig.tight_layout()
    return fig


def save_threshold_plots(folder, curves: CutCurves | None, thresholds, test_share, target_share, names,
                         title: str) -> list[str]:
    """Write ``f1_curves.png`` (when ``curves``, i.e. with OOF rows) and ``shares.png`` into ``folder``.

    Returns
    -------
    list of str, the paths written
    """
    from ..report import save_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    if curves is not None:
        figures.append(("f1_curves.png", f1_curves_figure(curves, np.asarray(thresholds), names, title)))
    figures.append(("shares.png", shares_figure(test_share, target_share, names, title)))
    return [str(save_figure(fig, folder / name, dpi=80)) for name, fig in figures]
