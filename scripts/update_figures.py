"""Rewrite every benchmark figure table in README.md, docs/*.md and benchmarks/*.md from ``benchmarks/results.json``.

A table lives between two markers; only what is between them is rewritten. Two layouts:

**List** (one row per figure: figure, baseline, ratio, run, note)::

    <!-- figures:begin -->                      every figure in results.json (but see below)
    <!-- figures:begin bench_stack bench_scale -->   only these scripts' figures
    <!-- figures:end -->

**Pivot** (a result table, rows x columns)::

    <!-- figures:pivot mulan -->
    <!-- figures:pivot shift rowlabel=rule -->   the first header cell ("_" reads as a space)
    <!-- figures:end -->

A benchmark puts a figure into pivot table ``T`` with ``emit(name, figure, unit, table="T", row="R",
col="C")`` (optional ``spread=0.0123`` shows as "figure ± spread", ``bold=True`` makes the cell bold).
The pivot has one row per distinct ``row`` and one column per distinct ``col``, both in emission order;
a cell is the figure as :func:`fmt` writes it, "–" where no figure was emitted; the first header cell
is ``rowlabel`` (default: the table's name). Under the table one line names the run(s) the figures
came from: script, mode, date, git commit and machine.

Per (script, figure name) the full run's figure is shown when one exists, else the quick one (both
layouts). A list block leaves out figures that carry a ``table`` field: they are cells of a pivot
table, named by their row and column, and a results file with a few dozen of them (the MULAN and
shift tables) would bury the list's headline figures. Show them with a pivot block.

    python scripts/update_figures.py            # rewrite README.md, docs/*.md, benchmarks/*.md in place
    python scripts/update_figures.py --check    # exit 1 (and name the files) if any table is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
BLOCK = re.compile(r"(<!-- figures:begin(?P<scripts>(?: [\w.-]+)*) -->\n)(?P<body>.*?)(<!-- figures:end -->)", re.S)
PIVOT = re.compile(r"(<!-- figures:pivot (?P<table>[\w.-]+)(?P<options>(?: [\w-]+=[^\s=>]+)*) -->\n)(?P<body>.*?)"
                   r"(<!-- figures:end -->)", re.S)
#: Units shown as scores (4 decimals, no unit after the number).
SCORES = ("macro F1", "F1", "precision", "recall")
MISSING = "–"


def select(figures: list[dict], scripts=None) -> list[dict]:
    """One record per (script, name): the full run's when there is one, else the quick run's; input order kept."""
    chosen: dict[tuple, dict] = {}
    for fig in figures:
        if scripts and fig["script"] not in scripts:
            continue
        key = (fig["script"], fig["name"])
        if key not in chosen or (fig["mode"] == "full" and chosen[key]["mode"] != "full"):
            chosen[key] = fig
    return list(chosen.values())


def _number(value, unit: str = "") -> str:
    if unit in SCORES:
        return f"{value:.4f}"
    if unit == "×":
        return fmt_ratio(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def fmt(value, unit: str = "", spread=None) -> str:
    """A figure as the docs show it: seconds and rates to 3 significant digits, scores to 4 decimals.

    ``spread`` (same unit) gives "figure ± spread unit".
    """
    if value is None:
        return ""
    text = _number(value, unit)
    if spread is not None:
        text += f" ± {_number(spread, unit)}"
    if unit in SCORES or unit == "×":
        return text
    return f"{text} {unit}".strip()


def fmt_ratio(ratio) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.1f}×"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(results: dict, scripts=None) -> str:
    """The list table (and machine list) for ``scripts`` (None: every script); pivot-table cells left out."""
    rows = [f for f in select(results.get("figures", []), scripts) if f.get("table") is None]
    if not rows:
        return "_No figures recorded yet: run `make bench` (or `python benchmarks/run_all.py`)._\n"
    machines: list[str] = []
    lines = ["| benchmark | figure | baseline (same run) | ratio | run | note |", "|---|---:|---|---:|---|---|"]
    for fig in rows:
        if fig["machine"] not in machines:
            machines.append(fig["machine"])
        baseline = ""
        if fig.get("baseline") is not None:
            baseline = f"{fig.get('baseline_name') or 'baseline'}: {fmt(fig['baseline'], fig.get('unit', ''))}"
        run = f"{fig['mode']}, {fig['date'][:10]}, `{fig['commit']}`, machine {machines.index(fig['machine']) + 1}"
        lines.append("| " + " | ".join(_cell(c) for c in (
            f"`{fig['script']}`: {fig['name']}", fmt(fig["figure"], fig.get("unit", "")), baseline,
            fmt_ratio(fig.get("ratio")), run, fig.get("note", ""))) + " |")
    lines.append("")
    lines += [f"Machine {i}: {m}." for i, m in enumerate(machines, start=1)]
    return "\n".join(lines) + "\n"


def pivot_options(text: str) -> dict:
    """``" rowlabel=rule"`` -> ``{"rowlabel": "rule"}`` ("_" in a value reads as a space)."""
    return {k: v.replace("_", " ") for k, v in (item.split("=", 1) for item in text.split())}


def _run_line(fig: dict) -> str:
    machine = str(fig.get("machine", "")).replace("; ", ", ")
    return f"`{fig['script']}` ({fig['mode']}, {fig['date'][:10]}, commit `{fig['commit']}`, {machine})"


def render_pivot(results: dict, table: str, rowlabel: str | None = None) -> str:
    """Pivot table ``table``: rows x columns of the figures emitted with ``table=table`` (see the module doc)."""
    figs = [f for f in select(results.get("figures", [])) if f.get("table") == table]
    if not figs:
        return (f"_No figures recorded yet for table `{table}`: run `make bench` "
                "(or `python benchmarks/run_all.py NAME`)._\n")
    rows: list[str] = []
    cols: list[str] = []
    cells: dict[tuple[str, str], dict] = {}
    runs: list[str] = []
    for fig in figs:
        row, col = str(fig.get("row") or fig["name"]), str(fig.get("col") or "")
        rows += [row] if row not in rows else []
        cols += [col] if col not in cols else []
        cells.setdefault((row, col), fig)  # the first emitted wins; names are unique within a script anyway
        run = _run_line(fig)
        runs += [run] if run not in runs else []

    def cell(fig: dict | None) -> str:
        if fig is None or fig.get("figure") is None:
            return MISSING
        text = fmt(fig["figure"], fig.get("unit", ""), fig.get("spread"))
        return f"**{text}**" if fig.get("bold") else text

    lines = ["| " + " | ".join(_cell(c) for c in [rowlabel or table, *cols]) + " |",
             "|---|" + "---:|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c) for c in [row, *(cell(cells.get((row, col))) for col in cols)]) + " |")
    lines += ["", "Figures from " + "; ".join(runs) + "."]
    return "\n".join(lines) + "\n"


def rewrite(text: str, results: dict) -> str:
    """``text`` with every marked block (list or pivot) replaced by its table (everything else untouched)."""
    def block(match: re.Match) -> str:
        scripts = match.group("scripts").split() or None
        return match.group(1) + render(results, scripts) + match.group(4)

    def pivot(match: re.Match) -> str:
        options = pivot_options(match.group("options"))
        return match.group(1) + render_pivot(results, match.group("table"), options.get("rowlabel")) + match.group(5)

    return PIVOT.sub(pivot, BLOCK.sub(block, text))


def blocks(text: str) -> list[tuple[str, str]]:
    """Every marked block of ``text`` as (its opening marker, its body)."""
    found = [(m.start(), m.group(1).strip(), m.group("body")) for m in BLOCK.finditer(text)]
    found += [(m.start(), m.group(1).strip(), m.group("body")) for m in PIVOT.finditer(text)]
    return [(marker, body) for _, marker, body in sorted(found)]


def marked_block(text: str, scripts=None) -> str | None:
    """The body of the first block for ``scripts`` (None: the unfiltered block), or None when absent."""
    for match in BLOCK.finditer(text):
        if (match.group("scripts").split() or None) == (list(scripts) if scripts else None):
            return match.group("body")
    return None


def default_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").glob("*.md"))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md, docs/*.md, benchmarks/*.md)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from the JSON")
    args = ap.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    stale = []
    for path in args.files or default_files():
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, results)
        if new != text:
            stale.append(str(path))
            if not args.check:
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_text(new, encoding="utf-8")
                tmp.replace(path)
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "every figure table matches the JSON")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
