"""One source of truth for benchmark figures: benchmarks/results.json -> README.md and docs/*.md."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(ROOT / "benchmarks"))
figures = _load("update_figures", ROOT / "scripts" / "update_figures.py")
run_all = _load("run_all", ROOT / "benchmarks" / "run_all.py")
results_mod = _load("results", ROOT / "benchmarks" / "results.py")


def _results():
    path = ROOT / "benchmarks" / "results.json"
    if not path.exists():
        pytest.skip("benchmarks/results.json not written yet (make bench)")
    return json.loads(path.read_text(encoding="utf-8"))


def test_readme_figure_table_matches_results_json():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = list(figures.BLOCK.finditer(text))
    assert blocks, "README.md lost its <!-- figures:begin --> / <!-- figures:end --> block"
    for match in blocks:
        scripts = match.group("scripts").split() or None
        assert match.group("body") == figures.render(_results(), scripts), \
            "README's figure table differs from benchmarks/results.json: run python scripts/update_figures.py"


def test_docs_figure_tables_match_results_json():
    checked = 0
    for path in sorted((ROOT / "docs").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in figures.BLOCK.finditer(text):
            scripts = match.group("scripts").split() or None
            assert match.group("body") == figures.render(_results(), scripts), f"{path.name}: stale figure table"
            checked += 1
    if not checked:
        pytest.skip("no marked figure table in docs/")


def _fig(script, name, value, mode="quick", **kw):
    return {"script": script, "name": name, "figure": value, "unit": kw.pop("unit", "s"), "baseline": kw.pop("baseline", None),
            "baseline_name": kw.pop("baseline_name", None), "ratio": kw.pop("ratio", None), "note": "", "mode": mode,
            "machine": kw.pop("machine", "cpu A; 2 usable CPUs"), "date": "2026-12-01T08:00:00+00:00",
            "commit": "abc", "command": "x"}


def test_rewrite_replaces_only_the_marked_blocks_and_is_idempotent():
    res = {"figures": [_fig("bench_a", "t", 2.0, baseline=8.0, baseline_name="plain", ratio=4.0),
                       _fig("bench_b", "rate", 1234.5, unit="images/s", machine="cpu B")]}
    text = ("# Title\nkeep 8.4× here\n<!-- figures:begin -->\nstale 56×\n<!-- figures:end -->\nmiddle\n"
            "<!-- figures:begin bench_b -->\nold\n<!-- figures:end -->\ntail\n")
    new = figures.rewrite(text, res)
    assert new.startswith("# Title\nkeep 8.4× here\n<!-- figures:begin -->\n") and new.endswith("tail\n")
    assert "stale" not in new and "old" not in new and "\nmiddle\n" in new
    whole = figures.marked_block(new)
    assert "`bench_a`: t | 2 s | plain: 8 s | 4.00×" in whole and "1,234 images/s" in whole
    assert "Machine 1: cpu A; 2 usable CPUs." in whole and "Machine 2: cpu B." in whole
    only_b = figures.marked_block(new, ["bench_b"])
    assert "bench_a" not in only_b and "bench_b" in only_b
    assert figures.rewrite(new, res) == new


def test_full_run_figure_wins_over_quick():
    res = {"figures": [_fig("bench_a", "t", 2.0), _fig("bench_a", "t", 3.0, mode="full"), _fig("bench_a", "u", 1.0)]}
    chosen = figures.select(res["figures"])
    assert [(f["name"], f["mode"]) for f in chosen] == [("t", "full"), ("u", "quick")]


def test_check_mode_reports_stale_files(tmp_path, capsys):
    res = {"figures": [_fig("bench_a", "t", 2.0)]}
    (tmp_path / "r.json").write_text(json.dumps(res))
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- figures:begin -->\nstale\n<!-- figures:end -->\n")
    assert figures.main([str(doc), "--results", str(tmp_path / "r.json"), "--check"]) == 1
    assert "stale" in doc.read_text()
    assert figures.main([str(doc), "--results", str(tmp_path / "r.json")]) == 0
    assert figures.main([str(doc), "--results", str(tmp_path / "r.json"), "--check"]) == 0


def test_emit_parse_and_merge_keep_other_scripts_and_modes(capsys):
    record = results_mod.emit("stack", 2.0, "s", baseline=9.0, baseline_name="plain loop")
    assert record["ratio"] == 4.5
    parsed = results_mod.parse("noise\n" + capsys.readouterr().out + "more\n")
    assert parsed == [record]
    run = {"machine": "m", "date": "d", "commit": "c", "command": "python benchmarks/bench_stack.py --quick"}
    res = run_all.merge({"figures": [_fig("bench_stack", "old", 1.0), _fig("bench_stack", "old", 1.0, mode="full"),
                                     _fig("bench_x", "y", 1.0)]}, "bench_stack", "quick", parsed, run)
    names = [(f["script"], f["mode"], f["name"]) for f in res["figures"]]
    assert names == [("bench_stack", "full", "old"), ("bench_stack", "quick", "stack"), ("bench_x", "quick", "y")]
    assert res["figures"][1]["commit"] == "c" and res["runs"]["bench_stack (quick)"] == run
