"""A picture of a user's own prediction sets: leaderboard, correlation, per-class F1, blend and stack, cuts.

``hpa-ens report`` (:mod:`hpa_ens.commands.report`) reads the sets through the contract and calls
:func:`build_set_report` (the numbers) then :func:`write_set_report` (``index.html``, its PNGs and
``report.json``); the demo's report (:mod:`hpa_ens.demo_report`) puts :func:`report_sections` under
its own stage table.

What is measured, and why
-------------------------
- **OOF macro F1 at cross-fitted exact cuts** (:func:`hpa_ens.thresholds.cross_fitted_predictions`):
  the rows of each fold are predicted at the per-class cuts tuned on the other folds, then all rows are
  scored together. A cut tuned on the rows it is scored on flatters every set, rare classes most; this
  score does not. The interval is a percentile bootstrap over rows with the cuts held fixed, the same
  resamples for every set (the seed and the row count are shared), so it covers the rows' sampling
  noise, not the noise of tuning the cuts.
- **Test macro F1** (with a test truth): the cuts tuned on all OOF rows, applied to the test rows; the
  interval is a bootstrap over test rows.
- Neither applies a min/max-labels rule: the leaderboard compares probabilities. What a submission
  scores under its own rule is ``hpa-ens thresholds`` + ``submit`` + ``score``.
- **Correlation** between two sets: Pearson's r per class, averaged over the classes where both columns
  vary, on the probabilities and on the errors ``prob - label`` (sets that err together add little to
  a blend).

Library code: nothing is printed; long work reports through ``progress(n_done, n_total, description)``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .io import atomic_write_json
from .metrics import bootstrap_macro_f1, per_class_f1
from .report import html_image, html_table, plot_per_class_f1, save_figure, write_html
from .thresholds import cross_fitted_predictions, exact_thresholds, f1_curves, save_threshold_plots
from .validation import ParameterError

__all__ = ["SetScore", "SetReport", "provenance", "score_set", "correlation_matrix", "build_set_report",
           "report_sections", "write_set_report", "MEAN_BLEND", "LEADERBOARD_HEADER"]

#: The name of the computed mean blend's row.
MEAN_BLEND = "mean blend"
#: Where each set came from: the keys of its ``meta.json`` the report shows.
PROVENANCE_KEYS = ("produced_by", "name", "created_at", "params")


@dataclass
class SetScore:
    """One row of the leaderboard.

    Attributes
    ----------
    name : str
    kind : str, ``"set"`` (an input), ``"mean blend"`` (computed) or ``"stack"``
    n_oof, n_test : int, rows scored (OOF) and test rows
    oof_macro_f1 : float, at cross-fitted exact cuts
    oof_ci : (low, high), the 95 % bootstrap interval
    oof_per_class : ndarray of shape (n_classes,)
    thresholds : ndarray of shape (n_classes,), the exact cuts on all OOF rows (applied to the test rows)
    test_macro_f1, test_ci, test_per_class : the same on the test truth, or None without one
    provenance : dict, see :func:`provenance`
    """

    name: str
    kind: str
    n_oof: int
    n_test: int
    oof_macro_f1: float
    oof_ci: tuple[float, float]
    oof_per_class: np.ndarray
    thresholds: np.ndarray
    test_macro_f1: float | None = None
    test_ci: tuple[float, float] | None = None
    test_per_class: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        def floats(a):
            return None if a is None else [float(v) for v in a]

        return {"name": self.name, "kind": self.kind, "n_oof": self.n_oof, "n_test": self.n_test,
                "oof_macro_f1": self.oof_macro_f1, "oof_ci": floats(self.oof_ci),
                "oof_per_class_f1": floats(self.oof_per_class), "thresholds": floats(self.thresholds),
                "test_macro_f1": self.test_macro_f1, "test_ci": floats(self.test_ci),
                "test_per_class_f1": floats(self.test_per_class), "provenance": self.provenance}


@dataclass
class SetReport:
    """Everything :func:`write_set_report` draws (see :func:`build_set_report`).

    Attributes
    ----------
    class_names : list of str
    set_names : list of str, the input sets (the correlation matrices' order)
    scores : list of SetScore, the leaderboard, best OOF score first
    correlation, error_correlation : ndarray of shape (n_sets, n_sets)
    support : ndarray of shape (n_classes,), OOF positives per class
    n_folds : int
    best_set : str, the input set with the best OOF score
    curves_name : str or None, the row whose threshold curves are drawn
    curves : CutCurves or None; curves_test_share, train_share : ndarray (n_classes,) or None
    has_truth : bool, whether the rows have test scores
    warnings : list of str, for the caller to print
    """

    class_names: list
    set_names: list
    scores: list
    correlation: np.ndarray
    error_correlation: np.ndarray
    support: np.ndarray
    n_folds: int
    best_set: str
    curves_name: str | None = None
    curves: object = None
    curves_test_share: np.ndarray | None = None
    train_share: np.ndarray | None = None
    has_truth: bool = False
    warnings: list = field(default_factory=list)

    def score(self, name: str) -> SetScore:
        return next(s for s in self.scores if s.name == name)

    def to_json(self) -> dict:
        return {"class_names": list(self.class_names), "sets": list(self.set_names), "n_folds": self.n_folds,
                "best_set": self.best_set, "support": [int(v) for v in self.support],
                "leaderboard": [s.to_json() for s in self.scores],
                "correlation": _matrix_json(self.correlation), "error_correlation": _matrix_json(self.error_correlation),
                "curves": self.curves_name, "warnings": list(self.warnings)}


def _matrix_json(matrix: np.ndarray) -> list:
    """A matrix as nested lists, NaN (no correlation) as null: strict JSON."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in matrix]


def provenance(meta: dict, folds_sha256: str | None = None) -> dict:
    """Where a set came from: its ``meta.json``'s produced_by, name, created_at and params, and its folds.

    ``folds`` is ``"same"`` when the set records the folds file whose sha256 is ``folds_sha256``,
    ``"other"`` when it records another one, ``"not recorded"`` otherwise.
    """
    out = {key: meta.get(key) for key in PROVENANCE_KEYS}
    recorded = meta.get("folds_sha256")
    out["folds"] = ("not recorded" if not recorded or folds_sha256 is None
                    else "same" if recorded == folds_sha256 else "other")
    return out


def score_set(name: str, oof, y, folds, test=None, truth=None, *, kind: str = "set", n_boot: int = 1000,
              seed: int = 0, meta: dict | None = None, folds_sha256: str | None = None) -> SetScore:
    """Score one prediction set: cross-fitted OOF macro F1 with its interval, and on the test truth if given.

    Parameters
    ----------
    oof : ndarray of shape (n_train, K); y : ndarray of shape (n_train, K), 0/1
    folds : ndarray of shape (n_train,), int, at least two folds
    test : ndarray of shape (n_test, K), optional; truth : ndarray of shape (n_test, K), 0/1, optional
    kind : str, what the row is (``"set"``, ``"mean blend"``, ``"stack"``)
    n_boot, seed : the bootstrap of the intervals
    meta, folds_sha256 : for :func:`provenance`

    Returns
    -------
    SetScore
    """
    y = np.asarray(y).astype(bool)
    predicted = cross_fitted_predictions("exact", oof, y, folds, min_labels=0)
    score, low, high = bootstrap_macro_f1(y, predicted, n_boot=n_boot, seed=seed)
    thresholds, _ = exact_thresholds(y, oof)
    row = SetScore(name, kind, int(len(y)), 0 if test is None else int(len(test)), score, (low, high),
                   per_class_f1(y, predicted), thresholds, provenance=provenance(meta or {}, folds_sha256))
    if test is not None and truth is not None:
        truth = np.asarray(truth).astype(bool)
        test_pred = np.asarray(test, dtype=np.float64) > thresholds[None, :]
        row.test_macro_f1, *ci = bootstrap_macro_f1(truth, test_pred, n_boot=n_boot, seed=seed)
        row.test_ci = tuple(ci)
        row.test_per_class = per_class_f1(truth, test_pred)
    return row


def correlation_matrix(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Pearson's r between every pair of ``(n, K)`` arrays, per class, averaged over the classes.

    A class where either array's column is constant has no correlation and is left out of that pair's
    mean (NaN when no class is left).

    Returns
    -------
    ndarray of shape (n_arrays, n_arrays), 1 on the diagonal (where a column varies)
    """
    z = []
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        centred = a - a.mean(axis=0)
        norm = np.sqrt((centred ** 2).sum(axis=0))
        z.append(np.divide(centred, norm, out=np.full_like(centred, np.nan), where=norm > 0))
    n = len(z)
    out = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            per_class = (z[i] * z[j]).sum(axis=0)
            ok = np.isfinite(per_class)
            out[i, j] = out[j, i] = float(np.clip(per_class[ok].mean(), -1, 1)) if ok.any() else np.nan
    return out


def _check_name(value, valid: Sequence[str], what: str) -> None:
    if value not in valid:
        raise ParameterError(f"The '{what}' parameter must name a row of the leaderboard "
                             f"({', '.join(map(repr, valid))}). Got {value!r} instead.")


def build_set_report(names: Sequence[str], oof_list: Sequence[np.ndarray], y, folds, *,
                     test_list: Sequence[np.ndarray] | None = None, truth=None, stack=None,
                     metas: Sequence[dict] | None = None, folds_sha256: str | None = None,
                     class_names: Sequence[str] | None = None, curves: str | None = None, with_curves: bool = True,
                     n_boot: int = 1000, seed: int = 0,
                     progress: Callable[[int, int, str], None] | None = None) -> SetReport:
    """Score every set (and their mean blend, and a stack) and compute the pictures' numbers.

    Parameters
    ----------
    names : list of str, one unique name per set
    oof_list : list of ndarray of shape (n_train, K), each set's OOF probabilities, rows aligned
    y : ndarray of shape (n_train, K), 0/1
    folds : ndarray of shape (n_train,), int, at least two folds
    test_list : list of ndarray of shape (n_test, K), optional (the test share of the curves; test scores)
    truth : ndarray of shape (n_test, K), 0/1, optional: adds the test column
    stack : (name, oof, test, meta) of a stack set to rank and show beside the blend, optional
    metas : list of dict, each set's ``meta.json`` (provenance), optional
    folds_sha256 : str, the sha256 of the folds file (checked against each set's record), optional
    class_names : list of str (default ``"0".."K-1"``)
    curves : str, the row whose threshold curves are drawn (default the best input set)
    with_curves : bool, False to draw no threshold curves (none are drawn without ``test_list`` either: the
        curves come with the predicted test shares at the chosen cuts)
    n_boot, seed : the bootstrap of every interval
    progress : callable ``(n_done, n_total, description)``, optional

    Returns
    -------
    SetReport
    """
    names = list(names)
    if not names or len(names) != len(oof_list):
        raise ParameterError(f"The 'names' parameter of build_set_report must name each of the {len(oof_list)} "
                             f"sets once. Got {len(names)} names instead.")
    if len(set(names)) != len(names):
        raise ParameterError(f"The 'names' parameter of build_set_report must hold unique names. Got {names} instead.")
    y = np.asarray(y).astype(bool)
    K = y.shape[1]
    class_names = [str(k) for k in range(K)] if class_names is None else list(class_names)
    metas = list(metas) if metas is not None else [{} for _ in names]
    if truth is not None and test_list is None:
        raise ParameterError("The 'truth' parameter of build_set_report needs 'test_list' (the test probabilities). "
                             "Got truth without test_list instead.")
    tests = list(test_list) if test_list is not None else [None] * len(names)
    rows: list[tuple] = [(n, "set", o, t, m) for n, o, t, m in zip(names, oof_list, tests, metas)]
    if len(names) > 1:
        from .ensemble import mean_blend

        rows.append((MEAN_BLEND, "mean blend", mean_blend(oof_list), None if test_list is None else mean_blend(test_list),
                     {"produced_by": "computed (mean of the input sets)", "params": {"method": "mean", "sets": names}}))
    if stack is not None:
        stack_name, stack_oof, stack_test, stack_meta = stack
        if stack_name in [r[0] for r in rows]:
            raise ParameterError(f"The 'stack' parameter of build_set_report must have a name of its own. "
                                 f"Got {stack_name!r}, a set's name, instead.")
        rows.append((stack_name, "stack", stack_oof, stack_test, stack_meta or {}))
    row_names = [r[0] for r in rows]
    if with_curves and curves is not None:
        _check_name(curves, row_names, "curves")

    scores, warnings = [], []
    for i, (name, kind, oof, test, meta) in enumerate(rows):
        if progress is not None:
            progress(i, len(rows), "scoring sets")
        row = score_set(name, oof, y, folds, test, truth, kind=kind, n_boot=n_boot, seed=seed, meta=meta,
                        folds_sha256=folds_sha256)
        if kind == "mean blend":
            row.provenance["folds"] = "its sets'"
        elif row.provenance["folds"] == "other":
            warnings.append(f"{name}: its meta.json records other folds than the ones given; its OOF rows were not "
                            f"made on these folds (a stack over it would see leaked rows).")
        scores.append(row)
    if progress is not None:
        progress(len(rows), len(rows), "scoring sets")
    by_name = {s.name: s for s in scores}
    best_set = max(names, key=lambda n: by_name[n].oof_macro_f1)  # first of equals: the earlier set
    report = SetReport(class_names, names, sorted(scores, key=lambda s: -s.oof_macro_f1),
                       correlation_matrix(oof_list), correlation_matrix([np.asarray(o) - y for o in oof_list]),
                       y.sum(axis=0).astype(int), int(len(np.unique(folds))), best_set,
                       has_truth=truth is not None, warnings=warnings)
    if with_curves and test_list is not None:
        report.curves_name = curves or best_set
        index = row_names.index(report.curves_name)
        oof, test = rows[index][2], rows[index][3]
        report.curves = f1_curves(oof, y)
        report.train_share = y.mean(axis=0)
        report.curves_test_share = (np.asarray(test) > by_name[report.curves_name].thresholds[None, :]).mean(axis=0)
    return report


# ------------------------------------------------------------------------------------------- pictures
def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _fmt_ci(ci) -> str:
    return "" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def plot_leaderboard(report: SetReport, path) -> Path:
    """OOF macro F1 of every row with its interval (and the test score, with a truth), best first."""
    from matplotlib.figure import Figure

    scores = report.scores
    fig = Figure(figsize=(8, 0.45 * len(scores) + 1.6))
    ax = fig.subplots()
    y = np.arange(len(scores))
    colours = {"set": "tab:blue", "mean blend": "tab:orange", "stack": "tab:green"}
    oof = np.array([s.oof_macro_f1 for s in scores])
    err = np.abs(np.array([s.oof_ci for s in scores]).T - oof)
    ax.barh(y, oof, xerr=err, color=[colours.get(s.kind, "tab:gray") for s in scores], capsize=3)
    for kind in dict.fromkeys(s.kind for s in scores):  # one legend entry per kind of row, in rank order
        ax.barh([0], [0], color=colours.get(kind, "tab:gray"), label=f"OOF: {'input set' if kind == 'set' else kind}")
    if report.has_truth:
        test = np.array([s.test_macro_f1 for s in scores])
        test_err = np.abs(np.array([s.test_ci for s in scores]).T - test)
        ax.errorbar(test, y, xerr=test_err, fmt="D", color="black", ms=5, capsize=3, label="test")
    ax.set_yticks(y, [s.name if s.kind in ("set", s.name) else f"{s.name} ({s.kind})" for s in scores], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("macro F1 (95% bootstrap interval)")
    ax.set_title(f"Leaderboard: OOF macro F1 at cuts tuned on the other folds ({report.n_folds} folds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def plot_correlation(report: SetReport, path) -> Path:
    """The two heatmaps side by side: correlation of the sets' probabilities and of their errors."""
    from matplotlib.figure import Figure

    n = len(report.set_names)
    side = max(3.5, 0.55 * n + 2)
    fig = Figure(figsize=(2 * side + 1, side))
    axes = fig.subplots(1, 2)
    for ax, matrix, title in ((axes[0], report.correlation, "probabilities"),
                              (axes[1], report.error_correlation, "errors (prob - label)")):
        image = ax.imshow(matrix, vmin=min(0.0, float(np.nanmin(matrix))), vmax=1.0, cmap="viridis")
        ax.set_xticks(range(n), report.set_names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), report.set_names, fontsize=8)
        for i in range(n):
            for j in range(n):
                value = matrix[i, j]
                ax.text(j, i, "" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if value > 0.6 else "white")
        ax.set_title(f"Correlation of {title}\n(Pearson r per class, mean over classes)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def _leaderboard_html(report: SetReport) -> str:
    header = ["rank", "set", "kind", "OOF macro F1", "OOF 95% CI"]
    if report.has_truth:
        header += ["test macro F1", "test 95% CI"]
    header += ["OOF rows", "test rows", "produced by"]
    rows = []
    for rank, s in enumerate(report.scores, 1):
        row = [rank, s.name, s.kind, _fmt(s.oof_macro_f1), _fmt_ci(s.oof_ci)]
        if report.has_truth:
            row += [_fmt(s.test_macro_f1), _fmt_ci(s.test_ci)]
        row += [s.n_oof, s.n_test, s.provenance.get("produced_by") or ""]
        rows.append(row)
    caption = (f"Leaderboard: OOF macro F1 at exact per-class cuts tuned on the other folds ({report.n_folds} folds), "
               f"all rows scored together; 95% bootstrap intervals over rows, cuts fixed"
               + ("; test: cuts tuned on all OOF rows" if report.has_truth else ""))
    return html_table(header, rows, caption=caption)


def _provenance_html(report: SetReport) -> str:
    rows = []
    for s in report.scores:
        p = s.provenance
        params = json.dumps(p.get("params"), sort_keys=True, default=str) if p.get("params") is not None else ""
        rows.append([s.name, p.get("produced_by") or "", p.get("name") or "", p.get("created_at") or "",
                     p.get("folds", ""), params if len(params) <= 240 else params[:239] + "…"])
    return html_table(["set", "produced_by", "name", "created_at", "folds", "params"], rows,
                      caption="Where each set came from (meta.json); folds: same/other than the report's folds file")


def _matrix_html(report: SetReport, matrix: np.ndarray, caption: str) -> str:
    rows = [[a] + ["" if np.isnan(v) else f"{v:.3f}" for v in matrix[i]] for i, a in enumerate(report.set_names)]
    return html_table(["set", *report.set_names], rows, caption=caption)


def _per_class_html(report: SetReport, scores: Sequence[SetScore], caption: str) -> str:
    header = ["id", "class", "support", *[s.name for s in scores]]
    rows = [[k, report.class_names[k], int(report.support[k]), *[f"{s.oof_per_class[k]:.4f}" for s in scores]]
            for k in range(len(report.class_names))]
    rows.append(["", "macro", int(report.support.sum()), *[_fmt(s.oof_macro_f1) for s in scores]])
    return html_table(header, rows, caption=caption)


def report_sections(report: SetReport, folder, prefix: str = "") -> list[tuple[str, str]]:
    """Draw the report's pictures into ``folder`` and return its sections as (heading, inner HTML) pairs.

    Pictures (``prefix`` is put before every file name, e.g. ``"sets_"``): ``leaderboard.png``,
    ``correlation.png``, ``per_class_f1.png``, ``blend_stack.png`` and, with curves,
    ``thresholds/f1_curves.png`` and ``thresholds/shares.png``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sections = []
    plot_leaderboard(report, folder / f"{prefix}leaderboard.png")
    sections.append(("Leaderboard", _leaderboard_html(report)
                     + html_image(f"{prefix}leaderboard.png", "OOF macro F1 of every set at cross-fitted cuts, "
                                  "95% interval" + (" (diamonds: test)" if report.has_truth else ""))
                     + _provenance_html(report)))

    plot_correlation(report, folder / f"{prefix}correlation.png")
    sections.append(("Correlation between sets", html_image(
        f"{prefix}correlation.png", "Correlation of the sets' OOF probabilities and of their errors (prob - label): "
        "sets whose errors correlate less add more to a blend")
        + _matrix_html(report, report.correlation, "Correlation of OOF probabilities")
        + _matrix_html(report, report.error_correlation, "Correlation of OOF errors (prob - label)")))

    sets = [report.score(n) for n in report.set_names]
    plot_per_class_f1({s.name: s.oof_per_class for s in sets}, folder / f"{prefix}per_class_f1.png",
                      title="Per-class OOF F1 at cross-fitted cuts", names=report.class_names)
    sections.append(("Per-class F1 per set", _per_class_html(report, sets, "Per-class OOF F1 at cross-fitted cuts")
                     + html_image(f"{prefix}per_class_f1.png", "Per-class OOF F1 of every set at cross-fitted cuts")))

    beside = [report.score(report.best_set)] + [s for s in report.scores if s.kind != "set"]
    if len(beside) > 1:
        stacked = any(s.kind == "stack" for s in beside)
        heading = "Stack vs blend" if stacked else "Mean blend vs the best set"
        scores = {f"best set ({s.name})" if s.kind == "set" else s.name: s.oof_per_class for s in beside}
        plot_per_class_f1(scores, folder / f"{prefix}blend_stack.png", names=report.class_names,
                          title="Per-class OOF F1 at cross-fitted cuts: best set, mean blend" + (", stack" if stacked else ""))
        header = ["", "OOF macro F1", "OOF 95% CI"] + (["test macro F1", "test 95% CI"] if report.has_truth else [])
        rows = [[name, _fmt(s.oof_macro_f1), _fmt_ci(s.oof_ci)]
                + ([_fmt(s.test_macro_f1), _fmt_ci(s.test_ci)] if report.has_truth else [])
                for name, s in zip(scores, beside)]
        sections.append((heading, html_table(header, rows, caption=f"{heading}, same cuts rule")
                         + html_image(f"{prefix}blend_stack.png", "Per-class OOF F1 at cross-fitted cuts")))

    if report.curves is not None:
        chosen = report.score(report.curves_name)
        paths = save_threshold_plots(folder / f"{prefix}thresholds", report.curves, chosen.thresholds,
                                     report.curves_test_share, report.train_share, report.class_names,
                                     report.curves_name)
        captions = {"f1_curves.png": f"{report.curves_name}: OOF F1 vs threshold per class; red: the exact cut on "
                                     f"all OOF rows (applied to the test rows)",
                    "shares.png": f"{report.curves_name}: predicted test share at those cuts vs the train labels' "
                                  f"share ('target share')"}
        inner = "".join(html_image(f"{prefix}thresholds/{Path(p).name}", captions[Path(p).name], 960 if i == 0 else 640)
                        for i, p in enumerate(paths))
        sections.append((f"Threshold curves: {report.curves_name}", inner))
    return sections


def write_set_report(folder, report: SetReport, title: str = "hpa-ens report: prediction sets") -> Path:
    """Write ``index.html``, its pictures and ``report.json`` (the numbers) into ``folder``; returns the page."""
    folder = Path(folder)
    sections = report_sections(report, folder)
    intro = (f"<p>{len(report.set_names)} prediction sets, {report.scores[0].n_oof} OOF rows in {report.n_folds} folds"
             + (f", {report.scores[0].n_test} test rows with a truth" if report.has_truth else "")
             + f". Best set: <b>{html.escape(report.best_set)}</b>.</p>")
    if report.warnings:
        intro += "".join(f"<p><b>warning:</b> {html.escape(w)}</p>" for w in report.warnings)
    atomic_write_json(folder / "report.json", report.to_json())
    return write_html(folder / "index.html", title, sections, intro=intro)
