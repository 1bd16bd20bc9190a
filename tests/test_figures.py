"""One source of truth for benchmark figures: benchmarks/results.json -> README.md and docs/*.md.

Provenance that cannot lie: a figure carries the fingerprint of the code its run loaded, the run's own
commit, dirty flag, date and machine; ``update_figures --check`` fails on a figure that is not current.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
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
    # results.json is committed: a missing one is a regression to fail on, never a reason to skip
    assert path.is_file(), "benchmarks/results.json is missing: restore it from git (it is committed)"
    return json.loads(path.read_text(encoding="utf-8"))


def test_readme_figure_table_matches_results_json():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert figures.blocks(text), "README.md lost its <!-- figures:begin --> / <!-- figures:end --> block"
    assert figures.rewrite(text, _results()) == text, \
        "README's figure tables differ from benchmarks/results.json: run python scripts/update_figures.py"


@pytest.mark.parametrize("path", [p for p in figures.default_files()
                                  if p.name != "README.md" and figures.blocks(p.read_text(encoding="utf-8"))],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_docs_figure_tables_match_results_json(path):
    """Every marked block (list and pivot) in docs/*.md and benchmarks/*.md is what the JSON renders."""
    text = path.read_text(encoding="utf-8")
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


def _code(root: Path, files: dict[str, str]) -> Path:
    """A fake checkout under ``root``: ``{relative path: text}`` written as the project's source files."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _hashes(root: Path, rels) -> dict:
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in rels}


def _stamp(res: dict, script: str, mode: str, code_files: dict, dirty: bool = False) -> dict:
    """Give ``script``'s ``mode`` figures a run record with ``code_files`` (what run_all records from @@code)."""
    fingerprint = results_mod.combined_hash(code_files)
    res.setdefault("runs", {})[f"{script} ({mode})"] = {"fingerprint": fingerprint, "code_files": dict(code_files),
                                                          "dirty": dirty}
    for fig in res["figures"]:
        if fig["script"] == script and fig["mode"] == mode:
            fig.update(fingerprint=fingerprint, dirty=dirty)
    return res


def _check(doc, res, root, tmp_path, rewrite=False) -> int:
    (tmp_path / "r.json").write_text(json.dumps(res))
    argv = [str(doc), "--results", str(tmp_path / "r.json"), "--root", str(root)]
    return figures.main(argv if rewrite else argv + ["--check"])


def test_check_mode_reports_stale_files(tmp_path, capsys):
    root = _code(tmp_path / "repo", {"benchmarks/bench_a.py": "x = 1\n"})
    res = _stamp({"figures": [_fig("bench_a", "t", 2.0)]}, "bench_a", "quick", _hashes(root, ["benchmarks/bench_a.py"]))
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- figures:begin -->\nstale\n<!-- figures:end -->\n")
    assert _check(doc, res, root, tmp_path) == 1
    assert "stale" in doc.read_text()
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0
    assert _check(doc, res, root, tmp_path) == 0


def test_a_hand_edited_number_in_a_marked_block_fails_check_and_the_rewrite_test(tmp_path, capsys):
    """A number typed by hand into a marked block (list or pivot) is caught: --check fails naming the file, the
    real-docs test's comparison (rewrite(text) == text) sees it, and a rewrite puts the recorded figure back."""
    root = _code(tmp_path / "repo", {"benchmarks/bench_a.py": "a\n", "benchmarks/bench_t.py": "t\n"})
    res = {"figures": [_fig("bench_a", "t", 2.0, baseline=8.0, baseline_name="plain", ratio=4.0, differs="method"),
                       _cell_fig("exact", "hpa", 0.6265), _cell_fig("match", "hpa", 0.6356)]}
    _stamp(res, "bench_a", "quick", _hashes(root, ["benchmarks/bench_a.py"]))
    _stamp(res, "bench_t", "quick", _hashes(root, ["benchmarks/bench_t.py"]))
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- figures:begin bench_a -->\n<!-- figures:end -->\nmid\n"
                   "<!-- figures:pivot t rowlabel=rule -->\n<!-- figures:end -->\ntail\n")
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0 and _check(doc, res, root, tmp_path) == 0
    rendered = doc.read_text()
    for old, planted in (("| 2 s |", "| 1.9 s |"), ("| 4.00× |", "| 4.20× |"), ("| 0.6356 |", "| 0.6400 |")):
        assert rendered.count(old) == 1
        edited = rendered.replace(old, planted)
        doc.write_text(edited)
        capsys.readouterr()
        assert _check(doc, res, root, tmp_path) == 1, f"--check missed the hand-typed {planted!r}"
        assert f"stale: {doc}" in capsys.readouterr().out
        assert doc.read_text() == edited  # --check writes nothing
        assert figures.rewrite(edited, res, figures.assess(res, root)) != edited  # what the real-docs tests compare
        assert _check(doc, res, root, tmp_path, rewrite=True) == 0 and doc.read_text() == rendered
    # the same number outside the markers is the text's own business: neither --check nor a rewrite touches it
    doc.write_text(rendered.replace("mid\n", "mid 1.9 s by hand\n"))
    assert _check(doc, res, root, tmp_path) == 0


def test_a_changed_source_file_makes_its_figure_stale_and_fails_check(tmp_path, capsys):
    """The fingerprint covers the files the run loaded: editing one of them makes the figure stale."""
    rels = ["hpa_ens/__init__.py", "hpa_ens/stack.py", "benchmarks/bench_a.py"]
    root = _code(tmp_path / "repo", {rel: f"# {rel}\n" for rel in rels} | {"hpa_ens/unrelated.py": "u = 1\n"})
    res = _stamp({"figures": [_fig("bench_a", "t", 2.0, baseline=8.0, baseline_name="plain", ratio=4.0,
                                   differs="implementation only: same work"),
                              _cell_fig("exact", "hpa", 0.6265, script="bench_a")]},
                 "bench_a", "quick", _hashes(root, rels))
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- figures:begin bench_a -->\n<!-- figures:end -->\n<!-- figures:pivot t -->\n<!-- figures:end -->\n")
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0
    assert _check(doc, res, root, tmp_path) == 0
    text = doc.read_text()
    assert "[stale]" not in text and "stale:" not in text
    # the ratio row says what differs between its two sides
    assert "| 4.00× | quick, 2026-12-01, `abc`, machine 1 | implementation only: same work |" in text
    # a file outside the run's code changes nothing
    (root / "hpa_ens" / "unrelated.py").write_text("u = 2\n")
    assert _check(doc, res, root, tmp_path) == 0
    # a file the run loaded changes: both tables go stale, --check names the figures
    capsys.readouterr()
    (root / "hpa_ens" / "stack.py").write_text("# changed\n")
    assert _check(doc, res, root, tmp_path) == 1
    out = capsys.readouterr().out
    assert "bench_a (quick): 't'" in out and "'t: exact, hpa'" in out and "hpa_ens/stack.py" in out
    assert doc.read_text() == text  # --check writes nothing
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0
    text = doc.read_text()
    assert "| `bench_a`: t | 2 s [stale] |" in text and "`abc`, stale: not made by the current code, machine 1" in text
    assert "| exact | 0.6265 [stale] |" in text
    assert "commit `abc`, stale: not made by the current code, cpu A" in text
    assert _check(doc, res, root, tmp_path) == 1  # rendering the mark does not make it current
    # a deleted file is a change too
    (root / "hpa_ens" / "stack.py").write_text("# hpa_ens/stack.py\n")
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0 and _check(doc, res, root, tmp_path) == 0
    (root / "hpa_ens" / "stack.py").unlink()
    assert _check(doc, res, root, tmp_path) == 1


def test_a_dirty_figure_is_marked_in_every_table_and_fails_check(tmp_path, capsys):
    root = _code(tmp_path / "repo", {"benchmarks/bench_a.py": "x = 1\n"})
    code = _hashes(root, ["benchmarks/bench_a.py"])
    res = _stamp({"figures": [_fig("bench_a", "t", 2.0), _cell_fig("exact", "hpa", 0.6265, script="bench_a")]},
                 "bench_a", "quick", code, dirty=True)
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- figures:begin -->\n<!-- figures:end -->\n<!-- figures:pivot t -->\n<!-- figures:end -->\n")
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0
    text = doc.read_text()
    assert "| `bench_a`: t | 2 s [dirty] |" in text and "`abc`, dirty tree, machine 1" in text
    assert "| exact | 0.6265 [dirty] |" in text and "commit `abc`, dirty tree, cpu A" in text
    assert "[stale]" not in text  # its code is current: dirty, not stale
    capsys.readouterr()
    assert _check(doc, res, root, tmp_path) == 1
    assert "recorded from a dirty tree" in capsys.readouterr().out
    _stamp(res, "bench_a", "quick", code, dirty=False)
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0 and _check(doc, res, root, tmp_path) == 0
    assert "dirty" not in doc.read_text()


def test_a_newer_quick_run_with_other_code_makes_the_old_full_figure_stale(tmp_path, capsys):
    root = _code(tmp_path / "repo", {"hpa_ens/stack.py": "now\n", "benchmarks/bench_a.py": "x\n"})
    now = _hashes(root, ["hpa_ens/stack.py", "benchmarks/bench_a.py"])
    other = {**now, "hpa_ens/stack.py": hashlib.sha256(b"before\n").hexdigest()}
    full = _fig("bench_a", "t", 3.0, mode="full", date="2026-12-01T08:00:00+00:00")
    quick = _fig("bench_a", "t", 2.0, date="2026-12-02T08:00:00+00:00")
    res = _stamp(_stamp({"figures": [full, quick]}, "bench_a", "full", now), "bench_a", "quick", other)
    status = figures.assess(res, root)
    # the full run's files still hash the same, but a newer run of the same figure was made by other code
    assert status[id(full)].state == "stale" and "newer quick record" in status[id(full)].reasons[0]
    assert status[id(quick)].state == "stale"
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- figures:begin -->\n<!-- figures:end -->\n")
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0
    assert "| `bench_a`: t | 3 s [stale] |" in doc.read_text()  # nothing current: the full one, marked
    capsys.readouterr()
    assert _check(doc, res, root, tmp_path) == 1
    assert "bench_a (full): 't'" in capsys.readouterr().out
    # the newer quick run made by the current code wins over a full run made by older code
    res = _stamp(_stamp({"figures": [full, quick]}, "bench_a", "full", other), "bench_a", "quick", now)
    assert [f["mode"] for f in figures.select(res["figures"], status=figures.assess(res, root))] == ["quick"]
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0 and _check(doc, res, root, tmp_path) == 0
    assert "| `bench_a`: t | 2 s | " in doc.read_text()
    # both current and made by the same code: the full run wins, as before
    res = _stamp(_stamp({"figures": [full, quick]}, "bench_a", "full", now), "bench_a", "quick", now)
    assert [f["mode"] for f in figures.select(res["figures"], status=figures.assess(res, root))] == ["full"]
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0 and _check(doc, res, root, tmp_path) == 0
    # a quick run that loaded fewer files than the full one does not make it stale (shared files agree)
    res = _stamp(_stamp({"figures": [full, quick]}, "bench_a", "full", now), "bench_a", "quick",
                 {"benchmarks/bench_a.py": now["benchmarks/bench_a.py"]})
    assert figures.assess(res, root)[id(full)].state == "current"
    # a newer dirty record fails --check even where the shown full one is current
    res = _stamp(_stamp({"figures": [full, quick]}, "bench_a", "full", now), "bench_a", "quick", now, dirty=True)
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0
    assert _check(doc, res, root, tmp_path) == 1


def test_unverified_records_render_as_before_but_fail_check(tmp_path, capsys):
    """Records of schema 1 (no fingerprint) keep their tables until re-recorded; --check names them."""
    res = {"figures": [_fig("bench_a", "t", 2.0), _fig("bench_a", "t", 3.0, mode="full")]}
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- figures:begin -->\n<!-- figures:end -->\n")
    assert _check(doc, res, tmp_path, tmp_path, rewrite=True) == 0
    assert "| `bench_a`: t | 3 s |  |  | full, 2026-12-01, `abc`, machine 1 |  |" in doc.read_text()
    capsys.readouterr()
    assert _check(doc, res, tmp_path, tmp_path) == 1
    assert "no code fingerprint" in capsys.readouterr().out


def test_every_published_figure_is_current_and_clean():
    """The real check: every figure README.md and docs/ show has a current, clean record.

    Every benchmark was re-recorded (``make bench`` and the full runs): from now on a code change that touches a
    benchmarked module fails here until its figures are re-recorded.
    """
    results = _results()
    status = figures.assess(results)
    texts = {str(p): p.read_text(encoding="utf-8") for p in figures.default_files() if p.exists()}
    bad = figures.check_figures(texts, results, status)
    assert not bad, f"{len(bad)} published figure(s) without a current record:\n" + "\n".join(bad[:20])


def test_emit_parse_and_merge_keep_other_scripts_and_modes(capsys):
    record = results_mod.emit("stack", 2.0, "s", baseline=9.0, baseline_name="plain loop",
                              differs="implementation only: same parameters")
    assert record["ratio"] == 4.5 and record["differs"] == "implementation only: same parameters"
    parsed = results_mod.parse("noise\n" + capsys.readouterr().out + "more\n")
    assert parsed == [record]
    run = {"machine": "m", "date": "d", "commit": "c", "command": "python benchmarks/bench_stack.py --quick"}
    res = run_all.merge({"figures": [_fig("bench_stack", "old", 1.0), _fig("bench_stack", "old", 1.0, mode="full"),
                                     _fig("bench_x", "y", 1.0)]}, "bench_stack", "quick", parsed, run)
    names = [(f["script"], f["mode"], f["name"]) for f in res["figures"]]
    assert names == [("bench_stack", "full", "old"), ("bench_stack", "quick", "stack"), ("bench_x", "quick", "y")]
    assert res["figures"][1]["commit"] == "c" and res["runs"]["bench_stack (quick)"] == run
    # the run's fingerprint and dirty flag are stamped on each of its figures
    res = run_all.merge(res, "bench_stack", "quick", parsed, {**run, "fingerprint": "f" * 64, "dirty": True})
    assert (res["figures"][1]["fingerprint"], res["figures"][1]["dirty"]) == ("f" * 64, True)


def test_emit_refuses_a_baseline_without_what_differs(capsys):
    with pytest.raises(ValueError, match="differs="):
        results_mod.emit("stack", 2.0, "s", baseline=9.0, baseline_name="plain loop")
    with pytest.raises(ValueError, match="differs="):
        results_mod.emit("stack", 2.0, "s", baseline=9.0, baseline_name="plain loop", differs=" ")
    assert capsys.readouterr().out == ""  # nothing printed for a refused figure
    assert "differs" not in results_mod.emit("recall", 0.9, "recall")  # no baseline, nothing to say


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
    root = _code(tmp_path / "repo", {"benchmarks/bench_a.py": "a\n", "benchmarks/bench_t.py": "t\n"})
    res = {"figures": [_cell_fig("exact", "hpa", 0.6265), _cell_fig("match", "hpa", 0.6356),
                       _fig("bench_a", "t", 2.0, baseline=8.0, baseline_name="plain", ratio=4.0)]}
    _stamp(res, "bench_a", "quick", _hashes(root, ["benchmarks/bench_a.py"]))
    _stamp(res, "bench_t", "quick", _hashes(root, ["benchmarks/bench_t.py"]))
    text = ("intro\n<!-- figures:pivot t rowlabel=threshold_rule -->\n| old | table |\n<!-- figures:end -->\nmid\n"
            "<!-- figures:begin -->\nold list\n<!-- figures:end -->\ntail\n")
    new = figures.rewrite(text, res, figures.assess(res, root))
    assert new.startswith("intro\n<!-- figures:pivot t rowlabel=threshold_rule -->\n| threshold rule | hpa |\n")
    assert "| old | table |" not in new and "old list" not in new and new.endswith("\nmid\n" + new.split("\nmid\n")[1])
    assert figures.rewrite(new, res, figures.assess(res, root)) == new
    # the list block leaves the pivot's cells out
    listed = figures.marked_block(new)
    assert "`bench_a`: t" in listed and "exact" not in listed
    assert [marker for marker, _ in figures.blocks(new)] == ["<!-- figures:pivot t rowlabel=threshold_rule -->",
                                                              "<!-- figures:begin -->"]
    # a changed figure makes the file stale; --check says so without touching it, a rewrite fixes it
    doc = tmp_path / "doc.md"
    doc.write_text(new)
    assert _check(doc, res, root, tmp_path) == 0
    res["figures"][1]["figure"] = 0.7
    assert _check(doc, res, root, tmp_path) == 1
    assert doc.read_text() == new
    assert _check(doc, res, root, tmp_path, rewrite=True) == 0
    assert "| match | 0.7000 |" in doc.read_text()
    assert _check(doc, res, root, tmp_path) == 0


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


def _log(tmp_path, script="bench_metrics", argv_tail=("--quick",), dirty=False, run=True, code=True, pid=42,
         exit_state=("feedface1234", False), error=None) -> Path:
    """A log of a run done by hand: its own @@run line, figures, and the @@code line printed at its exit."""
    started = {"commit": "feedface1234", "dirty": dirty, "date": "2025-01-02T03:04:05+00:00", "pid": pid,
               "machine": "cpu Z; 8 usable CPUs of 8", "load": 3.0,
               "argv": [f"/somewhere/benchmarks/{script}.py", *argv_tail]}
    files = {"benchmarks/bench_metrics.py": "1" * 64, "hpa_ens/metrics.py": "2" * 64}
    lines = ["some output"]
    lines += [results_mod.RUN_TAG + json.dumps(started)] if run else []
    lines += [results_mod.TAG + json.dumps({"name": "macro F1", "figure": 0.5, "unit": "s", "baseline": None,
                                            "baseline_name": None, "ratio": None, "note": ""}), "more output"]
    lines += [results_mod.CODE_TAG + json.dumps({"pid": pid, "sha256": results_mod.combined_hash(files),
                                                 "files": files, "commit": exit_state[0], "dirty": exit_state[1],
                                                 **({"error": error} if error else {})})] if code else []
    log = tmp_path / "run.log"
    log.write_text("\n".join(lines) + "\n")
    return log


def test_import_log_takes_the_logs_own_provenance(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert run_all.main(["--import-log", str(_log(tmp_path)), "--results", str(path), "bench_metrics"]) == 0
    res = run_all.load_results(path)
    (fig,) = res["figures"]
    # commit, date and machine of the run itself, not of the moment of import
    assert (fig["commit"], fig["date"], fig["machine"], fig["load"], fig["dirty"]) == \
        ("feedface1234", "2025-01-02T03:04:05+00:00", "cpu Z; 8 usable CPUs of 8", 3.0, False)
    # the tables say so: the run's load at its start beside its machine
    text = figures.rewrite("<!-- figures:begin -->\n<!-- figures:end -->\n", res)
    assert "| quick, 2025-01-02, `feedface1234`, stale: not made by the current code, machine 1, load 3.0 |" in text
    assert "Machine 1: cpu Z; 8 usable CPUs of 8." in text
    assert fig["mode"] == "quick" and fig["command"] == "python benchmarks/bench_metrics.py --quick"
    run = res["runs"]["bench_metrics (quick)"]
    assert run["fingerprint"] == fig["fingerprint"] == results_mod.combined_hash(run["code_files"])
    assert sorted(run["code_files"]) == ["benchmarks/bench_metrics.py", "hpa_ens/metrics.py"]
    assert res["schema"] == run_all.SCHEMA == 2


@pytest.mark.parametrize("case, argv, needle", [
    ("no @@run", {"run": False}, "no @@run line"),
    ("no @@code", {"code": False}, "no @@code line"),
    ("dirty", {"dirty": True}, "dirty tree"),
    ("edited during the run", {"exit_state": ("feedface1234", True)}, "the tree changed during the run"),
    ("committed during the run", {"exit_state": ("0123456789ab", False)}, "the tree changed during the run"),
    ("crashed", {"error": "MemoryError: "}, "uncaught exception (MemoryError"),
    ("another script", {"script": "bench_cache"}, "of bench_cache, not bench_metrics"),
    ("a full run as quick", {"argv_tail": ()}, "pass --full"),
])
def test_import_log_refuses_a_log_that_cannot_say_where_its_figures_come_from(tmp_path, capsys, case, argv, needle):
    path = tmp_path / "r.json"
    assert run_all.main(["--import-log", str(_log(tmp_path, **argv)), "--results", str(path), "bench_metrics"]) == 2
    assert needle in capsys.readouterr().out and not path.exists()


def test_import_log_records_a_dirty_run_only_when_allowed_and_marks_it(tmp_path, capsys):
    path = tmp_path / "r.json"
    log = _log(tmp_path, dirty=True, argv_tail=())
    assert run_all.main(["--import-log", str(log), "--results", str(path), "--full", "bench_metrics"]) == 2
    assert run_all.main(["--import-log", str(log), "--results", str(path), "--full", "--allow-dirty",
                         "bench_metrics"]) == 0
    (fig,) = run_all.load_results(path)["figures"]
    assert fig["dirty"] is True and fig["mode"] == "full"


def test_run_all_refuses_a_dirty_tree_unless_allowed(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run_all, "git_state", lambda: ("abc123", True))
    ran = []
    monkeypatch.setattr(run_all, "run_script", lambda *a, **k: ran.append(a) or (0, 0.1, ""))
    path = tmp_path / "r.json"
    assert run_all.main(["--results", str(path), "bench_metrics"]) == 2
    assert "tracked files differ from HEAD abc123" in capsys.readouterr().out and not ran and not path.exists()
    # allowed: it runs; a run that printed no provenance is not recorded (exit 1, no figures)
    assert run_all.main(["--results", str(path), "--allow-dirty", "bench_metrics"]) == 1
    assert ran and run_all.load_results(path)["figures"] == []
    assert "no @@run line" in run_all.load_results(path)["failed"]["bench_metrics (quick)"]["error"]


def test_a_failed_run_keeps_the_figures_recorded_before(tmp_path, capsys, monkeypatch):
    """A killed or crashed run measured nothing: the earlier run's figures and record stay; the failure is noted."""
    monkeypatch.setattr(run_all, "git_state", lambda: ("abc123", False))
    monkeypatch.setattr(run_all, "run_script", lambda *a, **k: (124, 0.1, "working\nkilled: over the 600 s timeout\n"))
    path = tmp_path / "r.json"
    before = {"schema": 2, "runs": {"bench_metrics (quick)": {"commit": "old", "fingerprint": "f" * 64}},
              "figures": [_fig("bench_metrics", "x", 1.0)]}
    run_all.save_results(before, path)
    assert run_all.main(["--results", str(path), "bench_metrics"]) == 1
    after = run_all.load_results(path)
    assert after["figures"] == before["figures"] and after["runs"] == before["runs"]
    assert after["failed"]["bench_metrics (quick)"]["error"] == "killed: over the 600 s timeout"
    assert "not recorded; the figures recorded before are kept" in capsys.readouterr().out
    # a later successful run replaces the figures and clears the failure note
    fresh = run_all.merge(after, "bench_metrics", "quick", [], {"machine": "m", "date": "d", "commit": "new",
                                                                  "command": "c"})
    assert "failed" not in fresh and fresh["runs"]["bench_metrics (quick)"]["commit"] == "new"


def test_run_all_skips_the_mulan_scripts_where_the_sets_are_absent(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run_all, "git_state", lambda: ("abc123", False))
    monkeypatch.setattr(run_all, "MULAN_DIR", tmp_path / "no-shared" / "multilabel")
    ran = []
    monkeypatch.setattr(run_all, "run_script", lambda script, *a, **k: ran.append(script.stem) or (0, 0.1, ""))
    path = tmp_path / "r.json"
    assert run_all.main(["--results", str(path), "multilabel", "shift"]) == 0
    out = capsys.readouterr().out
    assert ran == [] and not path.exists()
    assert out.count("which is not here; the figures recorded before are kept") == 2
    # where the sets are, they run
    monkeypatch.setattr(run_all, "MULAN_DIR", tmp_path)
    assert run_all.main(["--results", str(path), "multilabel"]) == 1  # the stub printed no provenance
    assert ran == ["multilabel"]
    # which scripts read the sets is derived from their imports, not listed by hand
    scripts = [*(ROOT / "benchmarks").glob("bench_*.py"),
               *(ROOT / "benchmarks" / f"{name}.py" for name in (*run_all.ALSO, *run_all.REPORTS))]
    assert {s.stem for s in scripts if run_all.reads_mulan(s)} == \
        {"multilabel", "shift", "shift_gates", "shift_candidate", "stacking_report"}


def test_a_benchmark_prints_its_provenance_at_start_and_its_code_at_exit(tmp_path):
    """What a benchmark process prints: @@run before anything else, @@code (its loaded project files) last.

    The process poses as bench_cells.py (its argv[0]) without running it: the script file counts, with its
    imports, as Python drops ``__main__.__file__`` before the exit handler runs.
    """
    script = ROOT / "benchmarks" / "bench_cells.py"
    code = (f"import sys; sys.argv[0] = {str(script)!r}; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            "import results; print('working'); import hpa_ens.metrics; "
            "results.emit('t', 1.0, 's', baseline=2.0, baseline_name='b', differs='implementation only: x')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith(results_mod.RUN_TAG) and lines[1] == "working"
    assert lines[-1].startswith(results_mod.CODE_TAG)
    started, ended = results_mod.parse_run(out), results_mod.parse_code(out)
    assert started["argv"][0] == str(script) and started["date"].endswith("+00:00") and "usable CPUs" in started["machine"]
    assert isinstance(started["load"], float) and started["commit"] == results_mod.git_state()[0]
    assert (ended["commit"], ended["dirty"]) == (started["commit"], started["dirty"])
    assert ended["pid"] == started["pid"] and ended["sha256"] == results_mod.combined_hash(ended["files"])
    assert {"hpa_ens/metrics.py", "hpa_ens/__init__.py", "benchmarks/results.py"} <= set(ended["files"])
    # the script and what it imports (a torch-free base_models module, the synthetic generator)
    assert {"benchmarks/bench_cells.py", "base_models/segment.py", "hpa_ens/synth/draw.py"} <= set(ended["files"])
    assert all(f.split("/")[0] in ("hpa_ens", "base_models", "benchmarks") for f in ended["files"])
    assert ended["files"]["hpa_ens/metrics.py"] == hashlib.sha256((ROOT / "hpa_ens/metrics.py").read_bytes()).hexdigest()
    record, refused = run_all.run_record(out, "bench_cells", allow_dirty=True)
    assert refused is None and record["fingerprint"] == ended["sha256"] and record["date"] == started["date"]
    # a run that dies of an uncaught exception says so at exit, and is not recorded
    crash = subprocess.run([sys.executable, "-c", code + "; raise RuntimeError('boom')"], capture_output=True,
                           text=True, env=env).stdout
    assert results_mod.parse_code(crash)["error"] == "RuntimeError: boom"
    assert "uncaught exception" in run_all.run_record(crash, "bench_cells", allow_dirty=True)[1]
    # in tests, run_all and workers nothing is printed on import
    quiet = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
                            "import results"], capture_output=True, text=True, env=env, check=True).stdout
    assert quiet == ""


def test_import_closure_follows_function_imports_and_skips_main_guards(tmp_path):
    root = _code(tmp_path, {
        "hpa_ens/__init__.py": "from .classes import X\n",
        "hpa_ens/classes.py": "X = 1\n",
        "hpa_ens/a.py": "import numpy\n\ndef f():\n    from . import b\n\nif __name__ == '__main__':\n"
                        "    from hpa_ens.commands import launch\n    import hpa_ens.c\n    launch('cmd', 'x')\n",
        "hpa_ens/b.py": "from .sub.d import y\n",
        "hpa_ens/c.py": "",
        "hpa_ens/sub/__init__.py": "",
        "hpa_ens/sub/d.py": "from ..classes import X\ny = X\n",
        "hpa_ens/commands/__init__.py": "COMMANDS = {'cmd': ('hpa_ens.commands.cmd', 'a command')}\n",
        "hpa_ens/commands/cmd.py": "",
        "hpa_ens/unused.py": "",
        "benchmarks/helper.py": "from results import emit\n",
        "benchmarks/results.py": "",
    })
    library = ["hpa_ens/__init__.py", "hpa_ens/a.py", "hpa_ens/b.py", "hpa_ens/classes.py", "hpa_ens/sub/__init__.py",
               "hpa_ens/sub/d.py"]
    assert list(results_mod.import_closure(["hpa_ens.a"], root=root)) == library
    # run as a program (python -m hpa_ens.a): its main guard counts, and launch('cmd') runs the registry's module
    assert list(results_mod.import_closure([], as_main=["hpa_ens.a"], root=root)) == sorted(
        library + ["hpa_ens/c.py", "hpa_ens/commands/__init__.py", "hpa_ens/commands/cmd.py"])
    assert list(results_mod.import_closure(["helper"], root=root)) == ["benchmarks/helper.py", "benchmarks/results.py"]
    # a cache key changes with the code in the closure, not with other files
    key = results_mod.code_fingerprint(["hpa_ens.a"], root=root)
    (root / "hpa_ens" / "unused.py").write_text("changed = True\n")
    assert results_mod.code_fingerprint(["hpa_ens.a"], root=root) == key
    (root / "hpa_ens" / "sub" / "d.py").write_text("from ..classes import X\ny = X + 1\n")
    assert results_mod.code_fingerprint(["hpa_ens.a"], root=root) != key
    assert results_mod.code_fingerprint(["hpa_ens.a"], ["def f(): pass"], root=root) != \
        results_mod.code_fingerprint(["hpa_ens.a"], ["def f(): return 1"], root=root)


def test_time_same_way_warms_up_and_times_every_side_alike():
    calls = {"a": [], "b": []}
    timing = results_mod.time_same_way({"a": lambda: calls["a"].append(1) or "A",
                                        "b": lambda: calls["b"].append(1) or "B"}, repeats=3, warmup=2)
    assert len(calls["a"]) == len(calls["b"]) == 5
    assert timing["a"]["result"] == "A" and timing["b"]["repeats"] == 3 and timing["b"]["warmup"] == 2
    assert all(timing[k]["best"] <= timing[k]["wall"] for k in "ab")
    with pytest.raises(ValueError):
        results_mod.time_same_way({"a": lambda: None}, repeats=0)


def test_every_emit_with_a_baseline_says_what_differs():
    """emit refuses a baseline without differs= at run time; this finds a missing one without running a benchmark."""
    import ast

    missing = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "emit":
                keywords = {k.arg for k in node.keywords}
                if "baseline" in keywords and "differs" not in keywords:
                    missing.append(f"{path.name}:{node.lineno}")
    assert not missing, f"emit(..., baseline=...) without differs=: {missing}"


def test_git_state_dirty_means_tracked_changes_other_than_the_results_file(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    _code(tmp_path, {"hpa_ens/x.py": "x = 1\n", "benchmarks/results.json": "{}\n"})
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    commit, dirty = results_mod.git_state(tmp_path)
    assert len(commit) == 12 and not dirty
    (tmp_path / "benchmarks" / "results.json").write_text('{"figures": []}\n')  # run_all writes it between scripts
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert results_mod.git_state(tmp_path) == (commit, False)
    (tmp_path / "hpa_ens" / "x.py").write_text("x = 2\n")
    assert results_mod.git_state(tmp_path) == (commit, True)


def test_without_shared_the_benchmarks_name_their_random_labels(monkeypatch, capsys, tmp_path):
    """No silent fallback: figures measured on random labels never take the real labels' names."""
    import bench_stack
    import bench_thresholds

    assert bench_stack.data_suffix() == ("" if bench_stack.SHARED.exists() else " (random labels)")
    monkeypatch.setattr(bench_stack, "SHARED", tmp_path / "absent.csv")
    monkeypatch.setattr(bench_thresholds, "SHARED", tmp_path / "absent.csv")
    assert bench_stack.data_suffix() == " (random labels)"
    assert bench_stack.load_labels(0).shape == (31072, 28)
    capsys.readouterr()
    assert bench_thresholds.main(["--trials", "2", "--repeats", "1"]) == 0
    names = [f["name"] for f in results_mod.parse(capsys.readouterr().out)]
    assert len(names) == 2 and all(name.endswith(" (random labels)") for name in names)
