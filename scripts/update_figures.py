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
came from: script, mode, date, git commit, machine and its load at the run's start.

A list block leaves out figures that carry a ``table`` field: they are cells of a pivot table, named
by their row and column, and a results file with a few dozen of them (the MULAN and shift tables)
would bury the list's headline figures. Show them with a pivot block. A list row with a baseline
starts its note with the figure's ``differs`` (what differs between the two sides of the ratio).

**Which record is shown.** Every figure recorded by ``benchmarks/run_all.py`` carries the fingerprint
of the code its run loaded, and its run record the sha256 of each of those files. A record is
*current* when every one of those files still hashes the same (in this checkout) and no newer record of
the same (script, figure name) was made by other code (a file they share hashing differently).
Per (script, figure name) the table shows the full run's figure when current, else the quick run's
when current. When neither is, the table still shows the record (the full one first), **marked**
"[stale]" in its cell and "stale: not made by the current code" in its run: a stale figure is rendered with
a mark rather than left out, so a table never silently loses a row. A figure recorded from a dirty
tree (``run_all --allow-dirty``) is marked "[dirty]" in its cell and "dirty tree" in its run.
Records of schema 1 (made before fingerprints; no ``fingerprint`` field) cannot be checked: they
render unmarked as before (the full run over the quick one), so that a results file not yet
re-recorded keeps its tables.

``--check`` changes nothing and exits 1 when a marked block's text differs from what the JSON renders,
or when a figure shown in a marked block has no current record (stale, or schema 1 with no fingerprint),
is dirty, or has a newer record that is dirty or made by other code; it names every such figure.

    python scripts/update_figures.py            # rewrite README.md, docs/*.md, benchmarks/*.md in place
    python scripts/update_figures.py --check    # exit 1 (naming files and figures) if anything is stale
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
BLOCK = re.compile(r"(<!-- figures:begin(?P<scripts>(?: [\w.-]+)*) -->\n)(?P<body>.*?)(<!-- figures:end -->)", re.S)
PIVOT = re.compile(r"(<!-- figures:pivot (?P<table>[\w.-]+)(?P<options>(?: [\w-]+=[^\s=>]+)*) -->\n)(?P<body>.*?)"
                   r"(<!-- figures:end -->)", re.S)
#: Units shown as scores (4 decimals, no unit after the number).
SCORES = ("macro F1", "F1", "precision", "recall")
MISSING = "–"
#: Marks of a figure that is not current, or was recorded from a dirty tree.
STALE_MARK, DIRTY_MARK = "[stale]", "[dirty]"
STALE_RUN, DIRTY_RUN = "stale: not made by the current code", "dirty tree"


@dataclass
class Status:
    """Whether one record still describes the code: ``state`` is "current", "stale" or "unverified"
    (schema 1: no fingerprint); ``reasons`` say why it is not current."""

    state: str
    reasons: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _date(fig: dict) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(fig.get("date")))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def assess(results: dict, root: Path = ROOT) -> dict[int, Status]:
    """The :class:`Status` of every figure of ``results``, keyed by ``id(figure)`` (see the module doc).

    The files a run's fingerprint covers are rehashed under ``root``; a record whose run record is
    missing, or has another fingerprint, cannot be checked and is stale.
    """
    runs = results.get("runs", {})
    hashes: dict[str, str | None] = {}

    def now(rel: str) -> str | None:
        if rel not in hashes:
            path = root / rel
            hashes[rel] = _sha256(path) if path.is_file() else None
        return hashes[rel]

    def code(fig: dict) -> dict | None:
        run = runs.get(f"{fig['script']} ({fig['mode']})") or {}
        return run.get("code_files") if run.get("fingerprint") == fig["fingerprint"] else None

    out: dict[int, Status] = {}
    for fig in results.get("figures", []):
        if not fig.get("fingerprint"):
            out[id(fig)] = Status("unverified", ["no code fingerprint (recorded before results.json schema 2)"])
            continue
        files = code(fig)
        if files is None:
            out[id(fig)] = Status("stale", ["its run record with the per-file hashes is missing"])
            continue
        changed = sorted(rel for rel, sha in files.items() if now(rel) != sha)
        out[id(fig)] = Status("stale", [f"code changed since: {', '.join(changed[:5])}"
                                        + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")]) \
            if changed else Status("current")
    # A newer record of the same figure made by other code (or from a dirty tree) supersedes an older one.
    groups: dict[tuple, list[dict]] = {}
    for fig in results.get("figures", []):
        groups.setdefault((fig["script"], fig["name"]), []).append(fig)
    for group in groups.values():
        for fig in group:
            for newer in group:
                if newer is fig or _date(newer) <= _date(fig) or not fig.get("fingerprint"):
                    continue
                status = out[id(fig)]
                if newer.get("dirty"):
                    status.reasons.append(f"a newer {newer['mode']} record ({newer['date'][:10]}) is dirty")
                mine, theirs = code(fig) or {}, (code(newer) if newer.get("fingerprint") else None) or {}
                if any(theirs[rel] != sha for rel, sha in mine.items() if rel in theirs):
                    status.reasons.append(f"a newer {newer['mode']} record ({newer['date'][:10]}) was made by "
                                          "other code")
                    status.state = "stale"
    return out


def select(figures: list[dict], scripts=None, status: dict[int, Status] | None = None) -> list[dict]:
    """One record per (script, name), in input order: the current full run's, else the current quick run's,
    else (nothing current) a fingerprinted record before an unverified one, the full run's first.

    Without ``status`` every record reads as unverified: the full run's when there is one, else the quick run's.
    """
    def rank(fig: dict) -> tuple:
        state = status[id(fig)].state if status else "unverified"
        return state == "current", state != "unverified", fig["mode"] == "full"

    chosen: dict[tuple, dict] = {}
    for fig in figures:
        if scripts and fig["script"] not in scripts:
            continue
        key = (fig["script"], fig["name"])
        if key not in chosen or rank(fig) > rank(chosen[key]):
            chosen[key] = fig
    return list(chosen.values())


def problems(fig: dict, status: dict[int, Status]) -> list[str]:
    """Why a shown figure fails ``--check`` (empty when it is current, clean and not superseded)."""
    out = list(status[id(fig)].reasons)  # a record not current always has a reason
    if fig.get("dirty"):
        out.append("recorded from a dirty tree")
    return out


def _marks(fig: dict, status: dict[int, Status] | None) -> tuple[str, str]:
    """(cell suffix, run-line suffix) marking a stale or dirty record; empty for a current or unverified one."""
    cell, run = [], []
    if status and status[id(fig)].state == "stale":
        cell.append(STALE_MARK)
        run.append(STALE_RUN)
    if fig.get("dirty"):
        cell.append(DIRTY_MARK)
        run.append(DIRTY_RUN)
    return "".join(f" {m}" for m in cell), "".join(f", {m}" for m in run)


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


def render(results: dict, scripts=None, status: dict[int, Status] | None = None) -> str:
    """The list table (and machine list) for ``scripts`` (None: every script); pivot-table cells left out.

    ``status`` (from :func:`assess`; default: assessed against this checkout) picks and marks the records.
    """
    status = assess(results) if status is None else status
    rows = [f for f in select(results.get("figures", []), scripts, status) if f.get("table") is None]
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
        cell_mark, run_mark = _marks(fig, status)
        run = (f"{fig['mode']}, {fig['date'][:10]}, `{fig['commit']}`{run_mark}, "
               f"machine {machines.index(fig['machine']) + 1}{_load(fig, ', load {:.1f}')}")
        note = "; ".join(x for x in (fig.get("differs"), fig.get("note", "")) if x)
        lines.append("| " + " | ".join(_cell(c) for c in (
            f"`{fig['script']}`: {fig['name']}", fmt(fig["figure"], fig.get("unit", "")) + cell_mark, baseline,
            fmt_ratio(fig.get("ratio")), run, note)) + " |")
    lines.append("")
    lines += [f"Machine {i}: {m}." for i, m in enumerate(machines, start=1)]
    return "\n".join(lines) + "\n"


def pivot_options(text: str) -> dict:
    """``" rowlabel=rule"`` -> ``{"rowlabel": "rule"}`` ("_" in a value reads as a space)."""
    return {k: v.replace("_", " ") for k, v in (item.split("=", 1) for item in text.split())}


def _load(fig: dict, template: str) -> str:
    """The run's load at its start, in ``template``; empty for a record whose machine string holds it (schema 1)."""
    return template.format(fig["load"]) if fig.get("load") is not None else ""


def _run_line(fig: dict, status: dict[int, Status] | None = None) -> str:
    machine = str(fig.get("machine", "")).replace("; ", ", ") + _load(fig, ", load {:.1f} at start")
    run_mark = _marks(fig, status)[1]
    return f"`{fig['script']}` ({fig['mode']}, {fig['date'][:10]}, commit `{fig['commit']}`{run_mark}, {machine})"


def render_pivot(results: dict, table: str, rowlabel: str | None = None, status: dict[int, Status] | None = None) -> str:
    """Pivot table ``table``: rows x columns of the figures emitted with ``table=table`` (see the module doc)."""
    status = assess(results) if status is None else status
    figs = [f for f in select(results.get("figures", []), status=status) if f.get("table") == table]
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
        run = _run_line(fig, status)
        runs += [run] if run not in runs else []

    def cell(fig: dict | None) -> str:
        if fig is None or fig.get("figure") is None:
            return MISSING
        text = fmt(fig["figure"], fig.get("unit", ""), fig.get("spread"))
        return (f"**{text}**" if fig.get("bold") else text) + _marks(fig, status)[0]

    lines = ["| " + " | ".join(_cell(c) for c in [rowlabel or table, *cols]) + " |",
             "|---|" + "---:|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c) for c in [row, *(cell(cells.get((row, col))) for col in cols)]) + " |")
    lines += ["", "Figures from " + "; ".join(runs) + "."]
    return "\n".join(lines) + "\n"


def rewrite(text: str, results: dict, status: dict[int, Status] | None = None) -> str:
    """``text`` with every marked block (list or pivot) replaced by its table (everything else untouched)."""
    status = assess(results) if status is None else status

    def block(match: re.Match) -> str:
        scripts = match.group("scripts").split() or None
        return match.group(1) + render(results, scripts, status) + match.group(4)

    def pivot(match: re.Match) -> str:
        options = pivot_options(match.group("options"))
        return (match.group(1) + render_pivot(results, match.group("table"), options.get("rowlabel"), status)
                + match.group(5))

    return PIVOT.sub(pivot, BLOCK.sub(block, text))


def shown(text: str, results: dict, status: dict[int, Status]) -> list[dict]:
    """The records the marked blocks of ``text`` show (each once)."""
    figures = results.get("figures", [])
    out: dict[int, dict] = {}
    for match in BLOCK.finditer(text):
        for fig in select(figures, match.group("scripts").split() or None, status):
            if fig.get("table") is None:
                out[id(fig)] = fig
    for match in PIVOT.finditer(text):
        for fig in select(figures, status=status):
            if fig.get("table") == match.group("table"):
                out[id(fig)] = fig
    return list(out.values())


def check_figures(texts: dict[str, str], results: dict, status: dict[int, Status]) -> list[str]:
    """One line per figure shown in a marked block of ``texts`` (name -> markdown) that fails ``--check``."""
    lines: dict[tuple, list[str]] = {}
    where: dict[tuple, list[str]] = {}
    for name, text in texts.items():
        for fig in shown(text, results, status):
            key = (fig["script"], fig["name"], fig["mode"])
            found = problems(fig, status)
            if found:
                lines[key] = found
                where.setdefault(key, []).append(name)
    return [f"{script} ({mode}): {name!r} in {', '.join(where[(script, name, mode)])}: {'; '.join(why)}"
            for (script, name, mode), why in lines.items()]


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
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 if a table differs from the JSON or shows a figure that is not "
                         "current (stale, unverified or dirty)")
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="the checkout whose files the recorded code fingerprints are checked against (default: this)")
    args = ap.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    status = assess(results, args.root)
    stale, texts = [], {}
    for path in args.files or default_files():
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, results, status)
        texts[str(path)] = new
        if new != text:
            stale.append(str(path))
            if not args.check:
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_text(new, encoding="utf-8")
                tmp.replace(path)
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "every figure table matches the JSON")
    if not args.check:
        return 0
    bad = check_figures(texts, results, status)
    if bad:
        print(f"{len(bad)} figure(s) shown without a current, clean record (re-record them with "
              "benchmarks/run_all.py):")
        print("\n".join(f"  {line}" for line in bad))
    return 1 if (stale or bad) else 0


if __name__ == "__main__":
    sys.exit(main())
