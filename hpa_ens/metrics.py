"""Macro F1 (the competition metric), per-class tables and bootstrap intervals.

All functions take ``(n_samples, n_classes)`` 0/1 indicator arrays. ``macro_f1`` equals
``sklearn.metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)`` and is computed from
column counts, which is what makes it >10x faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import CLASS_NAMES
from ._validation import ContractError


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class true positives, false positives and false negatives.

    Returns
    -------
    tp, fp, fn : ndarray of shape (n_classes,), int64
    """
    y_true = np.asarray(y_true).astype(bool, copy=False)
    y_pred = np.asarray(y_pred).astype(bool, copy=False)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ContractError(
            f"The 'y_true' and 'y_pred' parameters must be 2-D arrays of one shape. "
            f"Got {y_true.shape} and {y_pred.shape} instead."
        )
    n_true = np.count_nonzero(y_true, axis=0)
    n_pred = np.count_nonzero(y_pred, axis=0)
    tp = np.count_nonzero(y_true & y_pred, axis=0)
    return tp.astype(np.int64), (n_pred - tp).astype(np.int64), (n_true - tp).astype(np.int64)


def f1_from_counts(tp, fp, fn) -> np.ndarray:
    """F1 = 2tp / (2tp + fp + fn), 0 where the denominator is 0 (sklearn's zero_division=0)."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    denom = 2.0 * tp + fp + fn
    return np.divide(2.0 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """F1 of each column, shape (n_classes,)."""
    return f1_from_counts(*confusion_counts(y_true, y_pred))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 scores (the Kaggle metric).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples, n_classes), 0/1 or bool
    """
    return float(per_class_f1(y_true, y_pred).mean())


@dataclass
class ClassReport:
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    n_pred: np.ndarray

    @property
    def macro_f1(self) -> float:
        return float(self.f1.mean())


def class_report(y_true: np.ndarray, y_pred: np.ndarray) -> ClassReport:
    """Per-class precision, recall, F1, support and number predicted."""
    tp, fp, fn = confusion_counts(y_true, y_pred)
    tpf = tp.astype(np.float64)
    precision = np.divide(tpf, tp + fp, out=np.zeros_like(tpf), where=(tp + fp) > 0)
    recall = np.divide(tpf, tp + fn, out=np.zeros_like(tpf), where=(tp + fn) > 0)
    return ClassReport(precision, recall, f1_from_counts(tp, fp, fn), tp + fn, tp + fp)


def bootstrap_macro_f1(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    chunk: int = 100,
) -> tuple[float, float, float]:
    """Macro F1 with a percentile bootstrap interval over rows.

    Resamples are drawn as multinomial row weights, so each replicate costs one matrix product on the
    per-row (tp, pred, true) indicators rather than a copy of the data.

    Returns
    -------
    (score, low, high) : the point estimate and the ``1 - alpha`` interval
    """
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    n = len(y_true)
    score = macro_f1(y_true, y_pred)
    if n == 0 or n_boot <= 0:
        return score, score, score
    rng = np.random.default_rng(seed)
    tp_rows = (y_true & y_pred).astype(np.float32)
    fp_rows = (~y_true & y_pred).astype(np.float32)
    fn_rows = (y_true & ~y_pred).astype(np.float32)
    scores = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float32)
        f1 = f1_from_counts(weights @ tp_rows, weights @ fp_rows, weights @ fn_rows)
        scores[start : start + size] = f1.mean(axis=1)
    low, high = np.quantile(scores, [alpha / 2, 1 - alpha / 2])
    return score, float(low), float(high)


def report_table(report: ClassReport, title: str = "Per-class scores", names=CLASS_NAMES):
    """A rich Table of a ClassReport (classes as rows, macro F1 as the footer)."""
    from rich.table import Table

    table = Table(title=title, show_footer=True)
    table.add_column("id", justify="right", footer="")
    table.add_column("class", footer="macro")
    table.add_column("support", justify="right", footer=str(int(report.support.sum())))
    table.add_column("predicted", justify="right", footer=str(int(report.n_pred.sum())))
    table.add_column("precision", justify="right", footer=f"{report.precision.mean():.4f}")
    table.add_column("recall", justify="right", footer=f"{report.recall.mean():.4f}")
    table.add_column("F1", justify="right", footer=f"{report.macro_f1:.4f}")
    for k in range(len(report.f1)):
        table.add_row(
            str(k),
            names[k] if k < len(names) else str(k),
            str(int(report.support[k])),
            str(int(report.n_pred[k])),
            f"{report.precision[k]:.4f}",
            f"{report.recall[k]:.4f}",
            f"{report.f1[k]:.4f}",
        )
    return table
