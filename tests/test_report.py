"""`hpa-ens report`: the page about a user's own prediction sets, and the cross-fitted cuts it ranks them by.

The leaderboard's numbers are checked against an oracle written here from the documented rule alone:
per fold, per class, every cut between neighbouring distinct scores of the other folds is tried
(scikit-learn's ``f1_score``), the best one (fewest rows among equals) predicts the fold, and the pooled
predictions are scored with ``f1_score(average="macro")``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from hpa_ens.commands import main as hpa_ens
from hpa_ens.ensemble import mean_blend
from hpa_ens.contract import build_meta, probs_frame, read_folds, read_prediction_set, write_prediction_set
from hpa_ens.labels import read_labels
from hpa_ens.set_report import build_set_report, correlation_matrix
from hpa_ens.testing.simulate import write_simulated_sets
from hpa_ens.thresholds import (NEVER, cross_fitted_exact_f1, cross_fitted_macro_f1, cross_fitted_predictions,
                                cross_fitted_thresholds, exact_thresholds)
from hpa_ens.validation import ParameterError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ oracle
def _candidate_cuts(scores: np.ndarray) -> np.ndarray:
    """Every cut of one column, highest first: never, midway between neighbouring distinct scores, all rows."""
    values = np.unique(scores)[::-1]
    lowest = values[-1] / 2 if values[-1] > 0 else -1e-12
    return np.concatenate([[NEVER], (values[:-1] + values[1:]) / 2, [lowest]])


def _brute_force_cut(y: np.ndarray, scores: np.ndarray) -> float:
    """The F1-best cut of one column by trying them all with scikit-learn (one column per candidate)."""
    cuts = _candidate_cuts(scores)
    predicted = scores[:, None] > cuts[None, :]
    f1 = f1_score(np.repeat(y[:, None], len(cuts), axis=1), predicted, average=None, zero_division=0)
    return float(cuts[np.argmax(f1)])  # the first best: the highest cut, fewest rows


def oracle_cross_fitted(y: np.ndarray, probs: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Every fold predicted at the brute-force cuts of the other folds."""
    out = np.zeros(probs.shape, dtype=bool)
    for f in np.unique(folds):
        train, held = folds != f, folds == f
        for k in range(probs.shape[1]):
            out[held, k] = probs[held, k] > _brute_force_cut(y[train, k], probs[train, k])
    return out


def oracle_macro_f1(y, probs, folds) -> float:
    return float(f1_score(y, oracle_cross_fitted(y, probs, folds), average="macro", zero_division=0))


# -------------------------------------------------------------------------------------- the library
def _small_case(seed=0, n=60, K=3):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, K)) < [0.4, 0.15, 0.05][:K]).astype(np.uint8)
    y[:2, 2] = 1  # a rare class with positives in few folds
    # Rounded scores: ties, so some cuts are not realisable.
    probs = np.round(np.clip(0.35 * y + rng.random((n, K)) * 0.7, 0, 1), 2)
    folds = np.arange(n) % 4
    return y, probs, folds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_fitted_predictions_equal_the_brute_force_oracle(seed):
    y, probs, folds = _small_case(seed)
    predicted = cross_fitted_predictions("exact", probs, y, folds, min_labels=0)
    np.testing.assert_array_equal(predicted, oracle_cross_fitted(y, probs, folds))
    np.testing.assert_allclose(cross_fitted_exact_f1(y, probs, folds),
                               f1_score(y, predicted, average=None, zero_division=0), rtol=0, atol=1e-15)
    assert cross_fitted_macro_f1(y, probs, folds) == pytest.approx(oracle_macro_f1(y, probs, folds), abs=1e-15)


def test_cross_fitted_cuts_never_see_the_rows_they_score():
    y, probs, folds = _small_case(3)
    thresholds = cross_fitted_thresholds(y, probs, folds)
    assert thresholds.shape == (4, 3)
    for i, f in enumerate(np.unique(folds)):
        np.testing.assert_array_equal(thresholds[i], exact_thresholds(y[folds != f], probs[folds != f])[0])
    # Changing the rows of fold 0 changes no cut that fold 0 is scored with.
    moved = probs.copy()
    moved[folds == 0] = 1 - moved[folds == 0]
    np.testing.assert_array_equal(cross_fitted_thresholds(y, moved, folds)[0], thresholds[0])
    # And the in-sample score flatters: it is never below the cross-fitted one here.
    assert exact_thresholds(y, probs)[1].mean() >= cross_fitted_macro_f1(y, probs, folds)


def test_cross_fitted_refuses_one_fold_and_bad_shapes():
    y, probs, folds = _small_case()
    with pytest.raises(ParameterError, match="at least two folds"):
        cross_fitted_macro_f1(y, probs, np.zeros(len(y), dtype=int))
    with pytest.raises(ParameterError, match="one fold id per OOF row"):
        cross_fitted_macro_f1(y, probs, folds[:-1])
    with pytest.raises(ParameterError, match="The 'folds' parameter"):
        cross_fitted_macro_f1(y, probs, folds + 0.5)
    with pytest.raises(ParameterError, match="one fold id per row"):
        cross_fitted_thresholds(y, probs, 4)


def test_correlation_is_the_mean_of_per_class_pearson():
    rng = np.random.default_rng(0)
    a, b = rng.random((50, 4)), rng.random((50, 4))
    b[:, 1] = a[:, 1] * 2 + 0.1 * b[:, 1]
    b[:, 3] = 0.5  # constant: no correlation, left out
    expected = np.mean([np.corrcoef(a[:, k], b[:, k])[0, 1] for k in range(3)])
    matrix = correlation_matrix([a, b])
    assert matrix[0, 1] == matrix[1, 0] == pytest.approx(expected, abs=1e-12)
    assert matrix[0, 0] == pytest.approx(1.0)


def test_build_set_report_checks_its_names_before_any_work():
    y, probs, folds = _small_case()
    with pytest.raises(ParameterError, match="'curves' parameter must name a row"):
        build_set_report(["a", "b"], [probs, probs], y, folds, test_list=[probs, probs], curves="c")
    with pytest.raises(ParameterError, match="unique names"):
        build_set_report(["a", "a"], [probs, probs], y, folds)
    with pytest.raises(ParameterError, match="name of its own"):
        build_set_report(["a", "b"], [probs, probs], y, folds, stack=("mean blend", probs, None, {}))


# -------------------------------------------------------------------------------------- the command
class _Page(HTMLParser):
    """Tables (caption, header, rows of cell text), image sources and the whole text of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[str] = []
        self.headings: list[str] = []
        self._cell = self._where = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th", "caption", "h2"):
            self._cell, self._where = "", tag
        elif tag == "img":
            self.images.extend(v for k, v in attrs if k == "src")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag != self._where:
            return
        text, self._cell, self._where = self._cell.strip(), None, None
        if tag == "h2":
            self.headings.append(text)
        elif tag == "caption":
            self.tables[-1]["caption"] = text
        else:  # a header or body cell of the current row
            self.tables[-1]["rows"][-1].append(text)

    def table(self, caption_start: str) -> tuple[list[str], list[list[str]]]:
        """The header and body rows of the table whose caption starts so."""
        table = next(t for t in self.tables if t["caption"].startswith(caption_start))
        return table["rows"][0], table["rows"][1:]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Three small simulated sets on the 28 HPA classes (100 rows, 3 folds), and the report with --truth."""
    root = tmp_path_factory.mktemp("sets")
    rng = np.random.default_rng(7)
    Y = (rng.random((133, 28)) < np.linspace(0.35, 0.03, 28)).astype(np.uint8)
    Y[Y.sum(axis=1) == 0, 0] = 1
    paths = write_simulated_sets(root, Y, n_models=3, seed=3, n_folds=3)
    out = root / "report"
    args = ["report", "--pred", *map(str, paths["models"]), "--labels", str(paths["labels"]), "--folds",
            str(paths["folds"]), "--truth", str(paths["test_labels"]), "--out", str(out), "--n-boot", "200"]
    assert hpa_ens(args) == 0
    return {**paths, "root": root, "out": out, "args": args}


def _read(paths):
    labels = read_labels(paths["labels"])
    folds = read_folds(paths["folds"], labels.index.tolist()).to_numpy()
    sets = {p.name: read_prediction_set(p, labels.index.tolist()) for p in paths["models"]}
    return labels.to_numpy(), folds, sets


def test_report_page_names_every_set_with_its_tables_and_pictures(sim):
    page = _Page((sim["out"] / "index.html").read_text(encoding="utf-8"))
    names = [p.name for p in sim["models"]]
    header, rows = page.table("Leaderboard")
    assert header[:5] == ["rank", "set", "kind", "OOF macro F1", "OOF 95% CI"]
    assert "test macro F1" in header and "produced by" in header
    assert sorted(r[1] for r in rows) == sorted(names + ["mean blend"])
    assert [r[0] for r in rows] == [str(i) for i in range(1, len(rows) + 1)]
    oof = [float(r[3]) for r in rows]
    assert oof == sorted(oof, reverse=True)  # ranked
    # Every set is named in the leaderboard, the per-class table and both correlation tables.
    for caption in ("Per-class OOF F1", "Correlation of OOF probabilities", "Correlation of OOF errors"):
        assert set(names) <= set(page.table(caption)[0]), caption
    # Every picture exists beside the page and is a PNG; the leaderboard and the heatmap among them.
    assert {"leaderboard.png", "correlation.png", "per_class_f1.png"} <= set(page.images)
    assert any(src.startswith("thresholds/") for src in page.images)
    for src in page.images:
        path = sim["out"] / src
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000, src
    assert {"Leaderboard", "Correlation between sets", "Per-class F1 per set", "Mean blend vs the best set"} <= set(page.headings)
    # Per-class table: one row per class plus the macro row, one column per set.
    header, rows = page.table("Per-class OOF F1")
    assert header == ["id", "class", "support", *names] and len(rows) == 28 + 1
    # Provenance: meta.json's produced_by and name, and the folds agree with --folds.
    _, prov = page.table("Where each set came from")
    for row in prov:
        if row[0] in names:
            assert row[1] == "hpa_ens.testing.simulate" and row[2] == row[0] and row[4] == "same"


def test_leaderboard_equals_the_cross_fitted_oracle_and_its_interval_holds_it(sim):
    Y, folds, sets = _read(sim)
    report = json.loads((sim["out"] / "report.json").read_text())
    page = _Page((sim["out"] / "index.html").read_text(encoding="utf-8"))
    header, rows = page.table("Leaderboard")
    by_name = {r[1]: dict(zip(header, r)) for r in rows}
    truth = read_labels(sim["test_labels"])
    for entry in report["leaderboard"]:
        if entry["kind"] == "set":
            probs, test = sets[entry["name"]].oof.to_numpy(), sets[entry["name"]].test
        else:  # the mean blend of the sets
            probs = mean_blend([s.oof.to_numpy() for s in sets.values()])
            test = probs_frame(sets["model_0"].test.index, mean_blend([s.test.to_numpy() for s in sets.values()]))
        expected = oracle_macro_f1(Y, probs, folds)
        assert entry["oof_macro_f1"] == pytest.approx(expected, abs=1e-12), entry["name"]
        assert by_name[entry["name"]]["OOF macro F1"] == f"{expected:.4f}"
        low, high = entry["oof_ci"]
        assert low <= entry["oof_macro_f1"] <= high
        assert by_name[entry["name"]]["OOF 95% CI"] == f"[{low:.4f}, {high:.4f}]"
        assert entry["n_oof"] == len(Y) and by_name[entry["name"]]["OOF rows"] == str(len(Y))
        # The test column: cuts tuned (brute force) on all OOF rows, applied to the test rows.
        cuts = np.array([_brute_force_cut(Y[:, k], probs[:, k]) for k in range(Y.shape[1])])
        test_pred = test.to_numpy() > cuts
        y_test = truth.loc[test.index].to_numpy()
        expected_test = f1_score(y_test, test_pred, average="macro", zero_division=0)
        assert entry["test_macro_f1"] == pytest.approx(expected_test, abs=1e-12), entry["name"]
        assert entry["test_ci"][0] <= entry["test_macro_f1"] <= entry["test_ci"][1]
        assert by_name[entry["name"]]["test macro F1"] == f"{expected_test:.4f}"


def test_report_is_deterministic_and_without_truth_has_no_test_column(sim, tmp_path):
    again = tmp_path / "again"
    args = [a if a != str(sim["out"]) else str(again) for a in sim["args"]]
    assert hpa_ens(args) == 0
    written = sorted(p.relative_to(sim["out"]) for p in sim["out"].rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in written:
        assert (again / rel).read_bytes() == (sim["out"] / rel).read_bytes(), rel
    plain = tmp_path / "plain"
    i = args.index("--truth")
    assert hpa_ens(args[:i] + args[i + 2:] + ["--out", str(plain)]) == 0
    page = _Page((plain / "index.html").read_text(encoding="utf-8"))
    header, _ = page.table("Leaderboard")
    assert "test macro F1" not in header and "OOF macro F1" in header


def _write_set(folder: Path, oof, test, name: str, produced_by: str, folds=None):
    meta = build_meta(produced_by, [], folds=folds, params={"kind": name}, argv=[], name=name)
    meta["created_at"] = None
    write_prediction_set(folder, oof, test, meta)
    return folder


def test_stack_is_ranked_and_shown_beside_the_blend_with_curves_of_a_chosen_row(sim, tmp_path):
    _, _, sets = _read(sim)
    a, b = sets["model_0"], sets["model_1"]
    stack = _write_set(tmp_path / "my_stack", probs_frame(a.oof.index, (a.oof.to_numpy() * b.oof.to_numpy()) ** 0.5),
                       probs_frame(a.test.index, (a.test.to_numpy() * b.test.to_numpy()) ** 0.5), "my_stack",
                       "hpa_ens.stack", sim["folds"])
    out = tmp_path / "with_stack"
    args = [a if a != str(sim["out"]) else str(out) for a in sim["args"]]
    assert hpa_ens(args + ["--stack", str(stack), "--curves", "model_2"]) == 0
    report = json.loads((out / "report.json").read_text())
    kinds = {e["name"]: e["kind"] for e in report["leaderboard"]}
    assert kinds["my_stack"] == "stack" and kinds["mean blend"] == "mean blend"
    assert report["curves"] == "model_2" and report["sets"] == ["model_0", "model_1", "model_2"]
    page = _Page((out / "index.html").read_text(encoding="utf-8"))
    assert "Stack vs blend" in page.headings and "Threshold curves: model_2" in page.headings
    _, rows = page.table("Stack vs blend")
    assert [r[0] for r in rows] == [f"best set ({report['best_set']})", "mean blend", "my_stack"]
    assert "blend_stack.png" in page.images


# ----------------------------------------------------------------------------------------- bad input
def _one_line_error(capsys, argv) -> str:
    assert hpa_ens(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _base(sim, out):
    return ["report", "--pred", *map(str, sim["models"]), "--labels", str(sim["labels"]), "--folds", str(sim["folds"]),
            "--out", str(out)]


def test_a_test_only_set_is_refused_in_one_line_naming_it(sim, tmp_path, capsys):
    _, _, sets = _read(sim)
    lonely = _write_set(tmp_path / "test_only", None, sets["model_0"].test, "test_only", "hpa_ens.import_preds")
    err = _one_line_error(capsys, _base(sim, tmp_path / "r") + ["--pred", *map(str, sim["models"]), str(lonely)])
    assert "test_only" in err and "test-only" in err and "hpa-ens report" in err
    assert not (tmp_path / "r").exists()


def test_bad_flags_and_files_are_one_line_errors(sim, tmp_path, capsys):
    out = tmp_path / "r"
    err = _one_line_error(capsys, _base(sim, out) + ["--curves", "nope"])
    assert "--curves" in err and "hpa-ens report" in err and "model_0" in err and "'nope'" in err
    err = _one_line_error(capsys, _base(sim, out) + ["--stack", str(sim["models"][0])])
    assert "--stack" in err
    err = _one_line_error(capsys, _base(sim, out) + ["--truth", str(sim["labels"])])  # train Ids, not test
    assert str(sim["labels"]) in err and "Ids" in err
    err = _one_line_error(capsys, _base(sim, out) + ["--n-boot", "0"])
    assert "--n-boot" in err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "index.html").write_text("my page")
    err = _one_line_error(capsys, _base(sim, foreign))
    assert "index.html" in err and (foreign / "index.html").read_text() == "my page"
    one_fold = tmp_path / "folds.csv"
    one_fold.write_text("Id,fold\n" + "".join(f"{i},0\n" for i in read_labels(sim["labels"]).index))
    err = _one_line_error(capsys, ["report", "--pred", str(sim["models"][0]), "--labels", str(sim["labels"]),
                                   "--folds", str(one_fold), "--out", str(out)])
    assert "folds.csv" in err and "K >= 2" in err
    assert not out.exists()


def test_python_dash_m_form_and_no_pyplot(tmp_path):
    """`python -m hpa_ens.report` is the command; the library draws on standalone Figures (no pyplot)."""
    proc = subprocess.run([sys.executable, "-m", "hpa_ens.report", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m hpa_ens.report "), proc.stderr
    code = ("import sys, numpy as np\n"
            "from hpa_ens.set_report import build_set_report, write_set_report\n"
            "rng = np.random.default_rng(0); y = (rng.random((40, 3)) < 0.3).astype(int); y[:3] = 1\n"
            "p = [np.clip(0.4 * y + 0.6 * rng.random((40, 3)), 0, 1) for _ in range(2)]\n"
            "r = build_set_report(['a', 'b'], p, y, np.arange(40) % 2, test_list=p, n_boot=20)\n"
            f"write_set_report({str(tmp_path / 'lib')!r}, r)\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "lib" / "index.html").exists()
