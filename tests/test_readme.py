"""The README a newcomer reads, and the pages it links: short, every link resolves, no internal work-item names.

The walk-through block is run by tests/test_walkthrough.py and the figure tables are checked by
tests/test_figures.py; this file checks what those do not: the README's length and first commands, that every
relative link (file and ``#anchor``) of README.md, CHANGELOG.md and docs/*.md lands somewhere, and that the
published pages speak in plain words rather than in the project's internal issue numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A markdown link or image: [text](target) / ![alt](target); the text may hold one level of brackets.
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.S)
CODE = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    """The text without fenced blocks and inline code (a link-like string there is not a link)."""
    return CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (word characters, '-' and ' ' kept),
    spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (a repeated heading gets -1, -2, … as on GitHub)."""
    found, seen = set(), {}
    for match in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", FENCE.sub("", path.read_text(encoding="utf-8")), re.M):
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` whose file or anchor does not exist."""
    bad = []
    for match in LINK.finditer(_prose(page.read_text(encoding="utf-8"))):
        target = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            bad.append(f"{target} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            bad.append(f"{target} (no such heading in {resolved.name})")
    return bad


def test_slug_matches_github_on_punctuated_headings():
    assert _slug('Does stacking beat "mean blend + exact thresholds"? (`benchmarks/stacking_report.py`)') == \
        "does-stacking-beat-mean-blend--exact-thresholds-benchmarksstacking_reportpy"
    assert _slug("Your own prediction files, in five minutes") == "your-own-prediction-files-in-five-minutes"


def test_broken_links_are_found(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n## Real heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](a.md#real-heading) [gone](b.md) [no anchor](a.md#nope) `[code](c.md)` "
                    "[web](https://example.org/x)\n```\n[fenced](d.md)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["b.md (no such file)", "a.md#nope (no such heading in a.md)"]


def test_readme_is_at_most_200_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 200, f"README.md has {n} lines; move detail into docs/"


def test_readme_says_what_to_run_first():
    text = README.read_text(encoding="utf-8")
    for command in ("make demo", "make test", "pip install .", "pip install '.[train]'"):
        assert command in text, f"README.md does not show {command!r}"
    assert "<!-- walkthrough:begin -->" in text, "README.md lost its walk-through block"


@pytest.mark.parametrize("page", [p for p in PAGES if p.exists()], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    bad = broken_links(page)
    assert not bad, f"{page.relative_to(ROOT)}: broken links: {bad}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.exists()], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pages_name_no_internal_work_items(page):
    """"issue 26", "(issue 18.4)", "the issue's protocol": say what changed and when it matters instead."""
    internal = re.compile(r"\bissues?[ -]\d+|\bthe issue's\b|\bthe issue asked\b|\bthe integrator\b", re.I)
    hits = [line.strip() for line in page.read_text(encoding="utf-8").splitlines() if internal.search(line)]
    assert not hits, f"{page.relative_to(ROOT)} names internal work items: {hits[:5]}"
