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
    assert figures.blocks(text), "README.md lost its <!-- figures:begin --> / <!-- figures:end --> block"
    assert figures.rewrite(text, _results()) == text, \
        "README's figure tables differ from benchmarks/results.json: run python scripts/update_figures.py"


@pytest.mark.parametrize("path", [p for p in figures.default_files() if p.name != "README.md"],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_docs_figure_tables_match_results_json(path):
    """Every marked block (list and pivot) in docs/*.md and benchmarks/*.md is what the JSON renders."""
    text = path.read_text(encoding="utf-8")
    if not figures.blocks(text):
        pytest.skip(f"no marked figure table in {path.name}")
    new = figures.rewrite(text, _results())
    stale = [marker for (marker, body), (_, fresh) in zip(figures.blocks(text), figures.blocks(new)) if body != fresh]
    assert not stale, f"{path.name}: stale figure table(s) {stale}: run python scripts/update_figures.py"


def test_every_marked_block_has_figures():
    """A block whose script never emitted (renamed table, failed run) would silently show 'no figures'."""
    empty = [f"{path.name}: {marker}" for path in figures.default_files() if path.exists()
             for marker, body in figures.blocks(path.read_text(encoding="utf-8"))
             if body.startswith("_No figures recorded yet")]
    assert not empty, f"marked blocks with no figure in results.json: {empty}"


def _fig(script, name, value, mode="quick", **kw):
    return {"script": script, "name": name, "figure": value, "unit": kw.pop("unit", "s"), "baseline": kw.pop("baseline", None),
            "baseline_name": kw.pop("baseline_name", None), "ratio": kw.pop("ratio", None), "note": "", "mode": mode,
            "machine": kw.pop("machine", "cpu A; 2 usable CPUs"), "date": kw.pop("date", "2026-12-01T08:00:00+00:00"),
            "commit": kw.pop("commit", "abc"), "command": "x", **kw}


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


def _cell_fig(row, col, value, mode="quick", **kw):
    return _fig(kw.pop("script", "bench_t"), f"t: {row}, {col}", value, mode, unit=kw.pop("unit", "macro F1"),
                table=kw.pop("table", "t"), row=row, col=col, **kw)


def test_pivot_renders_rows_and_columns_in_emission_order():
    res = {"figures": [
        _cell_fig("exact", "hpa", 0.62651, spread=0.02841),
        _cell_fig("exact", "yeast", 0.4961),
        _cell_fig("match", "hpa", 0.6356, bold=True),
        _cell_fig("match", "scene", 0.7836),  # a column first seen on the second row: last
        _cell_fig("boot", "hpa", 1.5, unit="s", spread=0.25),
        _fig("bench_t", "headline", 3.0),  # no table: not in the pivot
        _cell_fig("exact", "hpa", 0.9, table="other"),  # another table
    ]}
    body = figures.render_pivot(res, "t", rowlabel="rule")
    lines = body.splitlines()
    assert lines[0] == "| rule | hpa | yeast | scene |"
    assert lines[1] == "|---|---:|---:|---:|"
    assert lines[2] == "| exact | 0.6265 ± 0.0284 | 0.4961 | – |"
    assert lines[3] == "| match | **0.6356** | – | 0.7836 |"
    assert lines[4] == "| boot | 1.5 ± 0.25 s | – | – |"
    assert lines[5] == ""
    assert lines[6] == "Figures from `bench_t` (quick, 2026-12-01, commit `abc`, cpu A, 2 usable CPUs)."
    assert len(lines) == 7 and "headline" not in body and "0.9" not in body
    # the default first header cell is the table's name; a table nobody emitted says so
    assert figures.render_pivot(res, "t").startswith("| t | hpa |")
    assert figures.render_pivot(res, "nothing").startswith("_No figures recorded yet for table `nothing`")


def test_pivot_prefers_full_runs_and_names_every_run():
    res = {"figures": [
        _cell_fig("a", "x", 0.1, commit="c1"), _cell_fig("a", "x", 0.2, mode="full", commit="c2"),
        _cell_fig("b", "x", 0.3, commit="c1", script="bench_u", table="t"),
    ]}
    body = figures.render_pivot(res, "t")
    assert "| a | 0.2000 |" in body and "| b | 0.3000 |" in body and "0.1000" not in body
    assert body.splitlines()[-1] == ("Figures from `bench_t` (full, 2026-12-01, commit `c2`, cpu A, 2 usable CPUs); "
                                     "`bench_u` (quick, 2026-12-01, commit `c1`, cpu A, 2 usable CPUs).")


def test_pivot_block_rewrite_is_idempotent_and_stale_is_detected(tmp_path):
    res = {"figures": [_cell_fig("exact", "hpa", 0.6265), _cell_fig("match", "hpa", 0.6356),
                       _fig("bench_a", "t", 2.0, baseline=8.0, baseline_name="plain", ratio=4.0)]}
    text = ("intro\n<!-- figures:pivot t rowlabel=threshold_rule -->\n| old | table |\n<!-- figures:end -->\nmid\n"
            "<!-- figures:begin -->\nold list\n<!-- figures:end -->\ntail\n")
    new = figures.rewrite(text, res)
    assert new.startswith("intro\n<!-- figures:pivot t rowlabel=threshold_rule -->\n| threshold rule | hpa |\n")
    assert "| old | table |" not in new and "old list" not in new and new.endswith("\nmid\n" + new.split("\nmid\n")[1])
    assert figures.rewrite(new, res) == new
    # the list block leaves the pivot's cells out
    listed = figures.marked_block(new)
    assert "`bench_a`: t" in listed and "exact" not in listed
    assert [marker for marker, _ in figures.blocks(new)] == ["<!-- figures:pivot t rowlabel=threshold_rule -->",
                                                              "<!-- figures:begin -->"]
    # a changed figure makes the file stale; --check says so without touching it, a rewrite fixes it
    (tmp_path / "r.json").write_text(json.dumps(res))
    doc = tmp_path / "doc.md"
    doc.write_text(new)
    assert figures.main([str(doc), "--results", str(tmp_path / "r.json"), "--check"]) == 0
    res["figures"][1]["figure"] = 0.7
    (tmp_path / "r.json").write_text(json.dumps(res))
    assert figures.main([str(doc), "--results", str(tmp_path / "r.json"), "--check"]) == 1
    assert doc.read_text() == new
    assert figures.main([str(doc), "--results", str(tmp_path / "r.json")]) == 0
    assert "| match | 0.7000 |" in doc.read_text()


def test_emit_passes_pivot_fields_through(capsys):
    record = results_mod.emit("shift: exact, hpa", 0.62651234, "macro F1", table="shift", row="exact", col="hpa",
                              spread=0.0284123, bold=True)
    parsed = results_mod.parse(capsys.readouterr().out)
    assert parsed == [record]
    assert (record["table"], record["row"], record["col"], record["spread"], record["bold"]) == \
        ("shift", "exact", "hpa", 0.0284123, True)


def test_forget_drops_one_script_and_mode_only(tmp_path):
    res = {"runs": {"a (full)": {}, "a (quick)": {}, "b (full)": {}},
           "figures": [_fig("a", "x", 1.0, mode="full"), _fig("a", "x", 2.0), _fig("b", "x", 3.0, mode="full")]}
    path = tmp_path / "r.json"
    run_all.save_results(res, path)
    assert run_all.main(["--full", "--forget", "--results", str(path), "shift"]) == 0
    left = run_all.load_results(path)
    assert left == run_all.forget(res, "shift", "full") and len(left["figures"]) == 3  # nothing recorded: kept
    kept = run_all.forget(res, "a", "full")
    assert [(f["script"], f["mode"]) for f in kept["figures"]] == [("a", "quick"), ("b", "full")]
    assert sorted(kept["runs"]) == ["a (quick)", "b (full)"]
