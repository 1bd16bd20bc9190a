"""Rewrite every benchmark figure table in README.md and docs/*.md from ``benchmarks/results.json``.

A table lives between two markers; only what is between them is rewritten::

    <!-- figures:begin -->                      every figure in results.json
    <!-- figures:begin bench_stack bench_scale -->   only these scripts' figures
    <!-- figures:end -->

Per (script, figure name) the full run's figure is shown when one exists, else the quick one; each row
says which, with its date and git commit, and the machines are listed under the table.

    python scripts/update_figures.py            # rewrite README.md and docs/*.md in place
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


def fmt(value, unit: str = "") -> str:
    """A figure as the docs show it: seconds and rates to 3 significant digits, scores to 4 decimals."""
    if value is None:
        return ""
    if unit in ("macro F1", "F1", "precision", "recall"):
        return f"{value:.4f}"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def fmt_ratio(ratio) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.1f}×"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(results: dict, scripts=None) -> str:
    """The markdown table (and machine list) for ``scripts`` (None: every script)."""
    rows = select(results.get("figures", []), scripts)
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


def rewrite(text: str, results: dict) -> str:
    """``text`` with every marked block replaced by its table (everything else untouched)."""
    def block(match: re.Match) -> str:
        scripts = match.group("scripts").split() or None
        return match.group(1) + render(results, scripts) + match.group(4)

    return BLOCK.sub(block, text)


def marked_block(text: str, scripts=None) -> str | None:
    """The body of the first block for ``scripts`` (None: the unfiltered block), or None when absent."""
    for match in BLOCK.finditer(text):
        if (match.group("scripts").split() or None) == (list(scripts) if scripts else None):
            return match.group("body")
    return None


def default_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md and docs/*.md)")
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
