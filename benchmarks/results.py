"""One source of truth for benchmark figures: scripts *emit* figures, ``run_all.py`` collects them
into ``benchmarks/results.json`` and ``scripts/update_figures.py`` writes them into the docs.

A benchmark script calls :func:`emit` once per figure; it prints one line starting with
:data:`TAG` followed by JSON, which ``run_all.py`` parses from the script's output (a script run by
hand just prints it). Every figure names its baseline measured in the same process, so the ratio is
never between two runs.
"""

from __future__ import annotations

import json
import math

TAG = "@@figure "


def _clean(value):
    if isinstance(value, float):
        return None if not math.isfinite(value) else float(f"{value:.6g}")
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def emit(name: str, figure: float, unit: str = "", baseline: float | None = None, baseline_name: str | None = None,
         ratio: float | None = None, note: str = "", **extra) -> dict:
    """Print one figure for ``run_all.py`` to collect.

    Parameters
    ----------
    name : str
        Unique within the script, e.g. ``"stack vs plain LGBMClassifier loop (same parameters)"``.
    figure : float
        The measured value (seconds, images/s, macro F1, …) in ``unit``.
    baseline : float, optional
        The same quantity for the baseline, measured in the same process on the same work.
    baseline_name : str, optional
        What the baseline is.
    ratio : float, optional
        ``baseline / figure`` for times (a speed-up), ``figure / baseline`` for rates; default: the
        speed-up when ``unit == "s"``, else ``figure / baseline``.
    """
    if ratio is None and baseline is not None and figure:
        ratio = baseline / figure if unit == "s" else figure / baseline if baseline else None
    record = {"name": name, "figure": _clean(figure), "unit": unit, "baseline": _clean(baseline),
              "baseline_name": baseline_name, "ratio": _clean(ratio), "note": note}
    record.update({k: _clean(v) for k, v in extra.items()})
    print(TAG + json.dumps(record, sort_keys=True), flush=True)
    return record


def parse(text: str) -> list[dict]:
    """The figures emitted in a script's output."""
    out = []
    for line in text.splitlines():
        if line.startswith(TAG):
            out.append(json.loads(line[len(TAG):]))
    return out
