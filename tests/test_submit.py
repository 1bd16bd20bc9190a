"""Submission steps in order, the change log, the CLI, and --check on real and broken files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hpa_ens import submit
from hpa_ens.commands import submit as submit_command
from hpa_ens.commands._cli import run
from hpa_ens.contract import probs_frame, write_probs
from hpa_ens.thresholds import apply_thresholds
from hpa_ens.groups import duplicate_groups
from hpa_ens.io import sha256_file
from hpa_ens.labels import read_submission
from hpa_ens.task import HPA2018, Task, load_task


def thresholds_doc(values, task, pred, **extra) -> dict:
    """A thresholds.json as hpa_ens.tune_thresholds writes it, bound to the prediction set ``pred``."""
    target = pred / "test.csv" if pred.is_dir() else pred
    return {"thresholds": list(values), "method": "fixed", "task": task.to_meta(),
            "prediction_set": {"path": str(pred), "test.csv": sha256_file(target)}, **extra}


def test_duplicate_groups_match_scipy_components():
    rng = np.random.default_rng(0)
    ids = [f"t{k}" for k in range(30)]
    pairs = [(ids[a], ids[b]) for a, b in rng.integers(0, 30, size=(15, 2)) if a != b] + [("t1", "unknown")]
    groups = duplicate_groups(ids, pairs, through_outside=False)
    idx = {i: k for k, i in enumerate(ids)}
    edges = np.array([(idx[a], idx[b]) for a, b in pairs if b in idx])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(30, 30))
    _, want = connected_components(graph, directed=False)
    # same partition: equal labels exactly where scipy's are equal
    np.testing.assert_array_equal(groups[:, None] == groups[None, :], want[:, None] == want[None, :])


def test_average_groups_is_group_mean():
    probs = np.random.default_rng(1).random((6, 28))
    groups = np.array([0, 1, 0, 2, 1, 0])
    got = submit.average_groups(probs, groups)
    for g in range(3):
        np.testing.assert_allclose(got[groups == g], np.broadcast_to(probs[groups == g].mean(0), got[groups == g].shape))


def _probs(n=5, seed=2):
    return np.random.default_rng(seed).random((n, 28)) * 0.4


def test_steps_apply_in_order_and_are_logged():
    ids = ["a", "b", "c", "d", "e"]
    probs = _probs()
    probs[0, 3], probs[1, 3] = 0.9, 0.2  # averaged: 0.55 > 0.5 for both
    thr = np.full(28, 0.5)
    test_pairs = pd.DataFrame({"Id_a": ["a"], "Id_b": ["b"], "kind": ["test-test"]})
    train_pairs = pd.DataFrame({"Id_a": ["tr1", "tr2", "tr3"], "Id_b": ["c", "c", "d"], "distance": [2, 5, 0]})
    train_labels = pd.DataFrame(np.zeros((3, 28), np.uint8), index=["tr1", "tr2", "tr3"], columns=range(28))
    train_labels.loc["tr1", 7] = 1
    train_labels.loc["tr2", 8] = 1
    train_labels.loc["tr3", 9] = 1
    leak_y = pd.DataFrame(np.zeros((1, 28), np.uint8), index=pd.Index(["d"], name="Id"), columns=range(28))
    leak_y.loc["d", 11] = 1
    leak_src = pd.Series(["leak.csv:1"], index=pd.Index(["d"], name="Id"))
    y, changes, steps = submit.build_submission(ids, probs, thr, 1, None, test_pairs, train_pairs, train_labels,
                                                (leak_y, leak_src))
    base = apply_thresholds(probs, thr, 1)
    assert y[1, 3] and not base[1, 3]  # b gained class 3 from averaging before thresholding
    assert np.flatnonzero(y[2]).tolist() == [7]  # nearest train twin only (distance 2 beats 5)
    assert np.flatnonzero(y[3]).tolist() == [11]  # the leak comes last and wins over the train twin
    np.testing.assert_array_equal(y[4], base[4])
    assert steps["3. train-test labels"] == 2 and steps["4. leak labels"] == 1
    d_rows = changes.loc[changes["Id"] == "d"]
    assert d_rows["source"].str.split(":").str[0].tolist() == ["train-test", "leak"]
    assert d_rows["after"].tolist() == ["9", "11"]
    assert d_rows["before"].iloc[1] == d_rows["after"].iloc[0]  # each step's before is the previous after


def test_train_pairs_without_labels_are_refused():
    pairs = pd.DataFrame({"Id_a": ["tr"], "Id_b": ["a"], "distance": [0]})
    with pytest.raises(ValueError, match="train_labels"):
        submit.build_submission(["a"], _probs(1), 0.5, train_pairs=pairs)


@pytest.fixture
def setup(tmp_path):
    ids = [f"id{k:02d}" for k in range(12)]
    rng = np.random.default_rng(3)
    probs = rng.random((12, 28)) * 0.3
    probs[:, 0] = np.linspace(0, 1, 12)
    pred = tmp_path / "pred.csv"
    write_probs(pred, probs_frame(ids[::-1], probs[::-1]))  # reversed on disk: must be aligned by Id
    sample = tmp_path / "sample_submission.csv"
    pd.DataFrame({"Id": ids, "Predicted": "0"}).to_csv(sample, index=False)
    thr = tmp_path / "thr.json"
    thr.write_text(json.dumps(thresholds_doc([0.5] * 28, HPA2018, pred, min_labels=1, max_labels=2)))
    return tmp_path, ids, probs, pred, sample, thr


def test_cli_writes_submission_log_and_summary(setup):
    tmp, ids, probs, pred, sample, thr = setup
    train = tmp / "train.csv"
    pd.DataFrame({"Id": ["tr1"], "Target": ["27 4"]}).to_csv(train, index=False)
    dupes = tmp / "dupes.csv"
    pd.DataFrame({"Id_a": ["tr1", "id00"], "Id_b": ["id01", "id11"], "distance": [1, 0],
                  "kind": ["train-test", "test-test"]}).to_csv(dupes, index=False)
    leak = tmp / "leak.csv"
    pd.DataFrame({"Id": ["id02", "someone_else"], "Target": ["5", "6"]}).to_csv(leak, index=False)
    out = tmp / "sub" / "submission.csv"
    argv = ["--pred", str(pred), "--thresholds", str(thr), "--sample-submission", str(sample), "--out", str(out),
            "--duplicates", str(dupes), "--labels", str(train), "--leak", str(leak), "--target-dist", "train"]
    assert run(submit_command.main, argv) == 0
    text = out.read_text()
    assert text.splitlines()[0] == "Id,Predicted"
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert sub["Id"].tolist() == ids
    y = read_submission(out).to_numpy().astype(bool)
    want = apply_thresholds(submit.average_groups(probs, duplicate_groups(ids, [("id00", "id11")], through_outside=False)), 0.5, 1, 2)
    want[1] = False
    want[1, [4, 27]] = True
    want[2] = False
    want[2, 5] = True
    np.testing.assert_array_equal(y, want)
    assert sub.loc[1, "Predicted"] == "4 27"
    changes = pd.read_csv(tmp / "sub" / "submission.changes.csv", dtype=str, keep_default_na=False)
    assert list(changes.columns) == ["Id", "before", "after", "source"]
    assert {"id01", "id02"} <= set(changes["Id"])
    summary = json.loads((tmp / "sub" / "submission.summary.json").read_text())
    assert summary["leak"]["skipped_not_test"][str(leak)] == 1
    assert summary["max_labels"] == 2 and summary["n_empty"] == 0
    assert len(summary["shares"]["target"]) == 28
    assert run(submit_command.main, ["--check", str(out), "--sample-submission", str(sample), "--strict"]) == 0
    # same inputs, same bytes
    first = out.read_bytes()
    assert run(submit_command.main, argv) == 0
    assert out.read_bytes() == first


def test_min_labels_flag_overrides_file_and_allows_empty(setup):
    tmp, ids, probs, pred, sample, thr = setup
    out = tmp / "s.csv"
    base = ["--pred", str(pred), "--thresholds", str(thr), "--sample-submission", str(sample), "--out", str(out)]
    assert run(submit_command.main, base) == 0
    assert (read_submission(out).sum(axis=1) >= 1).all()
    assert run(submit_command.main, base + ["--min-labels", "0"]) == 0
    y = read_submission(out).to_numpy().astype(bool)
    np.testing.assert_array_equal(y, apply_thresholds(probs, 0.5, 0, 2))
    assert (~y.any(axis=1)).any()


def test_prediction_set_folder_with_edited_test_is_refused(setup, capsys):
    from hpa_ens.contract import build_meta, write_prediction_set

    tmp, ids, probs, pred, sample, thr = setup
    folder = tmp / "oof" / "m"
    frame = probs_frame(ids, probs)
    write_prediction_set(folder, frame, frame, build_meta("test", argv=[]))
    base = ["--pred", str(folder), "--thresholds", str(thr), "--sample-submission", str(sample), "--out",
            str(tmp / "s.csv"), "--allow-other-pred"]
    assert run(submit_command.main, base) == 0
    (folder / "test.csv").write_text((folder / "test.csv").read_text().replace("id00,", "id00,0", 1))
    assert run(submit_command.main, base) == 2
    assert "sha256" in capsys.readouterr().err


def test_check_accepts_real_submissions(shared_hpa):
    sample = shared_hpa / "sample_submission.csv"
    for name in ("ntu_mira_team16_LB637.csv", "vpp_team5_final_submission_multhr.csv",
                 "vpp_team5_summary_final_multhr_lk.csv"):
        report = submit.check_submission(shared_hpa / "submissions" / name, sample)
        assert report["n_rows"] == 11702 and report["n_empty"] == 0
    # the leak-applied vpp file has unsorted rows: accepted (Kaggle does) but counted, refused by --strict
    lk = shared_hpa / "submissions" / "vpp_team5_summary_final_multhr_lk.csv"
    raw = pd.read_csv(lk, dtype=str)
    unsorted = sum(t.split() != sorted(t.split(), key=int) for t in raw["Predicted"])
    assert submit.check_submission(lk, sample)["n_unsorted"] == unsorted > 0
    assert run(submit_command.main, ["--check", str(lk), "--sample-submission", str(sample), "--strict"]) == 2


def test_submit_on_real_probs_and_leaks(shared_hpa, tmp_path):
    out = tmp_path / "submission.csv"
    argv = ["--pred", str(shared_hpa / "submissions" / "conv_team10_zhu_614_test_probs.csv"), "--threshold", "0.3",
            "--sample-submission", str(shared_hpa / "sample_submission.csv"), "--out", str(out),
            "--leak", str(shared_hpa / "leak" / "pudae_leak.csv"), str(shared_hpa / "leak" / "test_matches_omlos.csv"),
            "--leak-conflict", "first", "--target-dist", str(shared_hpa / "lb_label_distribution.csv")]
    assert run(submit_command.main, argv) == 0
    report = submit.check_submission(out, shared_hpa / "sample_submission.csv")
    assert report["n_unsorted"] == 0 and report["n_empty"] == 0
    sub = pd.read_csv(out, dtype=str).set_index("Id")["Predicted"]
    leak = pd.read_csv(shared_hpa / "leak" / "pudae_leak.csv", dtype=str).drop_duplicates("Id")
    want = leak["Target"].map(lambda t: " ".join(sorted(t.split(), key=int)))
    assert (sub.loc[leak["Id"]].to_numpy() == want.to_numpy()).all()  # 'first' row of pudae wins (file order)


BROKEN = {
    "missing row": lambda df: df.iloc[1:],
    "repeated Id": lambda df: pd.concat([df, df.iloc[:1]]),
    "reordered": lambda df: df.iloc[[1, 0, *range(2, len(df))]],
    "extra Id": lambda df: pd.concat([df, pd.DataFrame({"Id": ["zzz"], "Predicted": ["1"]})]),
    "bad class": lambda df: df.assign(Predicted=["28"] + df["Predicted"].tolist()[1:]),
    "repeated class": lambda df: df.assign(Predicted=["3 3"] + df["Predicted"].tolist()[1:]),
    "word": lambda df: df.assign(Predicted=["Nucleoplasm"] + df["Predicted"].tolist()[1:]),
    "header": lambda df: df.rename(columns={"Predicted": "Target"}),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_check_refuses_broken_submissions_in_one_line(setup, name, capsys):
    tmp, ids, probs, pred, sample, thr = setup
    good = pd.DataFrame({"Id": ids, "Predicted": ["0 5"] * len(ids)})
    path = tmp / "broken.csv"
    BROKEN[name](good).to_csv(path, index=False)
    assert run(submit_command.main, ["--check", str(path), "--sample-submission", str(sample)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err


def test_check_refuses_empty_file(setup, capsys):
    tmp, ids, probs, pred, sample, thr = setup
    path = tmp / "empty.csv"
    path.write_text("")
    assert run(submit_command.main, ["--check", str(path), "--sample-submission", str(sample)]) == 2
    assert "empty" in capsys.readouterr().err


@pytest.mark.parametrize("content", ['{"thresholds": [0.5]}', '{"thr": 1}', "not json",
                                    '{"thresholds": [0.5], "min_labels": -1}'])
def test_bad_thresholds_file_is_refused(setup, content):
    tmp, ids, probs, pred, sample, thr = setup
    thr.write_text(content)
    assert run(submit_command.main, ["--pred", str(pred), "--thresholds", str(thr), "--sample-submission", str(sample),
                             "--out", str(tmp / "s.csv")]) == 2
    assert not (tmp / "s.csv").exists()


# ---------------------------------------------------------------------- the label rule's precedence
SIX = Task("six", tuple(f"c{k}" for k in range(6)), min_labels=1, max_labels=3)


@pytest.mark.parametrize("task, record, flags, want", [
    (SIX, None, (None, None), (1, 3, "task", "task")),
    (Task("free", ("a", "b", "c")), None, (None, None), (0, None, "task", "task")),  # no rule in the task
    (SIX, {"min_labels": 2}, (None, None), (2, 3, "thresholds", "task")),
    (SIX, {"min_labels": 0, "max_labels": None}, (None, None), (0, None, "thresholds", "thresholds")),  # null = no cap
    (SIX, {"min_labels": 2, "max_labels": 2}, (0, None), (0, 2, "flag", "thresholds")),
    (SIX, {"min_labels": 2, "max_labels": 2}, (None, 0), (2, None, "thresholds", "flag")),  # --max-labels 0 = no cap
    (SIX, {"max_labels": 4}, (1, 5), (1, 5, "flag", "flag")),
])
def test_label_bounds_task_then_thresholds_then_flags(task, record, flags, want):
    lo, hi, sources = submit_command.resolve_label_bounds(task, record, *flags)
    assert (lo, hi, sources["min_labels"], sources["max_labels"]) == want


def test_label_bounds_out_of_range_are_refused():
    with pytest.raises(ValueError, match="min_labels.*Got 7 instead"):
        submit_command.resolve_label_bounds(SIX, None, 7, None)
    with pytest.raises(ValueError, match="max_labels.*Got 1 instead"):
        submit_command.resolve_label_bounds(SIX, {"min_labels": 2, "max_labels": 1})


# ------------------------------------------------------------------------- thresholds provenance
def test_thresholds_tuned_on_another_set_are_refused_unless_allowed(setup, capsys):
    tmp, ids, probs, pred, sample, thr = setup
    other = tmp / "other.csv"
    write_probs(other, probs_frame(ids, np.clip(probs + 0.01, 0, 1)))
    out = tmp / "s.csv"
    argv = ["--pred", str(other), "--thresholds", str(thr), "--sample-submission", str(sample), "--out", str(out)]
    assert run(submit_command.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "were tuned on" in err and "--allow-other-pred" in err
    assert not out.exists()
    assert run(submit_command.main, argv + ["--allow-other-pred"]) == 0
    summary = json.loads((tmp / "s.summary.json").read_text())
    record = summary["provenance"]["thresholds"]
    assert record["allow_other_pred"] is True and record["matches_pred"] is False
    assert "were tuned on" in record["problem"]
    # thresholds that record no set at all are not trusted either
    bare = tmp / "bare.json"
    bare.write_text(json.dumps({"thresholds": [0.5] * 28, "method": "fixed", "task": HPA2018.to_meta()}))
    assert run(submit_command.main, ["--pred", str(pred), "--thresholds", str(bare), "--sample-submission", str(sample),
                             "--out", str(out)]) == 2
    assert "records no prediction set" in capsys.readouterr().err


def test_test_only_set_and_another_task(tmp_path):
    """A K=6 task end to end: an imported test-only set, thresholds matched on it, a checked submission."""
    from hpa_ens.commands.import_preds import main as import_main

    task_csv = tmp_path / "task.csv"
    pd.DataFrame({"id": range(6), "name": [f"label {k}" for k in range(6)]}).to_csv(task_csv, index=False)
    rng = np.random.default_rng(4)
    ids = [f"x{k}" for k in range(50)]
    probs = rng.random((50, 6))
    np.save(tmp_path / "test.npy", probs)
    pd.DataFrame({"Id": ids, "Predicted": ""}).to_csv(tmp_path / "sample.csv", index=False)
    folder = tmp_path / "set"
    assert run(import_main, ["--test", str(tmp_path / "test.npy"), "--ids", str(tmp_path / "sample.csv"),
                             "--task", str(task_csv), "--out", str(folder)]) == 0
    thr = tmp_path / "thr.json"
    thresholds = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    thr.write_text(json.dumps(thresholds_doc(thresholds, load_task(task_csv), folder, min_labels=0, max_labels=None)))
    out = tmp_path / "sub.csv"
    assert run(submit_command.main, ["--pred", str(folder), "--thresholds", str(thr), "--sample-submission",
                             str(tmp_path / "sample.csv"), "--task", str(task_csv), "--out", str(out)]) == 0
    sub = pd.read_csv(out, dtype=str, keep_default_na=False)
    want = apply_thresholds(probs, thresholds, 0, None)
    assert sub["Predicted"].tolist() == [" ".join(map(str, np.flatnonzero(r))) for r in want]
    assert submit.check_submission(out, tmp_path / "sample.csv", load_task(task_csv))["n_rows"] == 50
    # the same set under the default 28-class task is refused in one line: the classes differ
    assert run(submit_command.main, ["--pred", str(folder), "--threshold", "0.5", "--sample-submission",
                             str(tmp_path / "sample.csv"), "--out", str(tmp_path / "x.csv")]) == 2
    assert not (tmp_path / "x.csv").exists()


def test_constant_threshold_needs_no_file(setup):
    tmp, ids, probs, pred, sample, thr = setup
    out = tmp / "c.csv"
    assert run(submit_command.main, ["--pred", str(pred), "--threshold", "0.5", "--sample-submission", str(sample),
                             "--out", str(out)]) == 0
    # HPA 2018's default rule applies: at least 1, at most 5 labels per image
    y = read_submission(out).to_numpy().astype(bool)
    np.testing.assert_array_equal(y, apply_thresholds(probs, 0.5, HPA2018.min_labels, HPA2018.max_labels))
    assert run(submit_command.main, ["--pred", str(pred), "--threshold", "0.5", "--thresholds", str(thr),
                             "--sample-submission", str(sample), "--out", str(out)]) == 2


def test_duplicates_go_through_their_contract(setup, capsys):
    from hpa_ens.contract import write_duplicates

    tmp, ids, probs, pred, sample, thr = setup
    dupes = tmp / "dupes.csv"
    write_duplicates(dupes, pd.DataFrame({"Id_a": ["id00"], "Id_b": ["id11"], "distance": [3], "kind": ["test-test"]}),
                     {"folders": {"test": {"path": "test", "listing_sha256": "abc", "n_files": 48}}})
    out = tmp / "s.csv"
    base = ["--pred", str(pred), "--thresholds", str(thr), "--sample-submission", str(sample), "--out", str(out),
            "--duplicates", str(dupes)]
    assert run(submit_command.main, base) == 0
    record = json.loads((tmp / "s.summary.json").read_text())["provenance"]["duplicates"]
    assert record["sha256"] == sha256_file(dupes) and record["sidecar"]["folders"]["test"]["n_files"] == 48
    assert run(submit_command.main, base + ["--max-distance", "2"]) == 0  # the only pair is farther: nothing averaged
    assert json.loads((tmp / "s.summary.json").read_text())["steps"]["1. test-test average"] == 0
    # edited after dedup wrote it: refused, nothing written
    out.unlink()
    dupes.write_text(dupes.read_text().replace(",3,", ",0,"))
    assert run(submit_command.main, base) == 2
    assert "changed after" in capsys.readouterr().err and not out.exists()
    # an unparseable distance is refused, not read as 0 (an exact twin)
    bad = tmp / "bad.csv"
    bad.write_text("Id_a,Id_b,distance,kind\nid00,id11,near,test-test\n")
    assert run(submit_command.main, [*base[:-1], str(bad)]) == 2
    assert "bad.csv, row 1" in capsys.readouterr().err


def test_rank_rule_of_the_thresholds_file_is_applied(setup):
    tmp, ids, probs, pred, sample, thr = setup
    doc = json.loads(thr.read_text())
    cuts = np.linspace(0.2, 0.8, 28)
    doc.update(thresholds=cuts.tolist(), rank_by="prob", min_labels=2, max_labels=2)
    thr.write_text(json.dumps(doc))
    out = tmp / "r.csv"
    assert run(submit_command.main, ["--pred", str(pred), "--thresholds", str(thr), "--sample-submission", str(sample),
                             "--out", str(out)]) == 0
    y = read_submission(out).to_numpy().astype(bool)
    want = apply_thresholds(probs, cuts, 2, 2, rank_by="prob")
    np.testing.assert_array_equal(y, want)
    assert not np.array_equal(want, apply_thresholds(probs, cuts, 2, 2, rank_by="ratio"))  # the rule matters here
    assert json.loads((tmp / "r.summary.json").read_text())["provenance"]["thresholds"]["rank_by"] == "prob"


def test_posterior_fill_of_the_thresholds_file_is_applied(setup, capsys):
    from hpa_ens.thresholds import Posterior

    tmp, ids, probs, pred, sample, thr = setup
    rng = np.random.default_rng(5)
    y_oof = (rng.random((300, 28)) < 0.2).astype(int)
    oof = 0.3 * y_oof + 0.7 * rng.random((300, 28))
    target = np.linspace(0.01, 0.5, 28)
    post = Posterior.fit(oof, y_oof, target)
    doc = json.loads(thr.read_text())
    cuts = np.full(28, 0.97)  # most rows are empty: the fill decides
    doc.update(thresholds=cuts.tolist(), rank_by="posterior", posterior=post.to_json(), min_labels=1, max_labels=None)
    thr.write_text(json.dumps(doc))
    out = tmp / "p.csv"
    args = ["--pred", str(pred), "--thresholds", str(thr), "--sample-submission", str(sample), "--out", str(out)]
    assert run(submit_command.main, args) == 0
    want = apply_thresholds(probs, cuts, 1, None, rank_by="posterior", posterior=post)
    np.testing.assert_array_equal(read_submission(out).to_numpy().astype(bool), want)
    assert not np.array_equal(want, apply_thresholds(probs, cuts, 1, None, rank_by="ratio"))
    # the rule without its calibration is refused in one line, nothing written
    out.unlink()
    del doc["posterior"]
    thr.write_text(json.dumps(doc))
    assert run(submit_command.main, args) == 2
    assert "needs the 'posterior' calibration" in capsys.readouterr().err and not out.exists()


def test_labels_is_the_flag_and_train_labels_a_hidden_alias(setup, capsys):
    tmp, ids, probs, pred, sample, thr = setup
    assert "--labels" in submit_command.build_parser().format_help()
    assert "--train-labels" not in submit_command.build_parser().format_help()
    train = tmp / "train.csv"
    pd.DataFrame({"Id": ["tr1", "tr2"], "Target": ["27 4", "3"]}).to_csv(train, index=False)
    base = ["--pred", str(pred), "--thresholds", str(thr), "--sample-submission", str(sample), "--target-dist", "train"]
    assert run(submit_command.main, base + ["--out", str(tmp / "a.csv"), "--labels", str(train)]) == 0
    assert run(submit_command.main, base + ["--out", str(tmp / "b.csv"), "--train-labels", str(train)]) == 0
    assert (tmp / "a.csv").read_bytes() == (tmp / "b.csv").read_bytes()
    capsys.readouterr()
    assert run(submit_command.main, base + ["--out", str(tmp / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert "'--labels'" in err and "train-labels" not in err and not (tmp / "c.csv").exists()


# ------------------------------------------------------------ the published leak files, as they are (docs/leaks.md)
def _submit_with_leak(shared_hpa, tmp_path, leak: str, *extra: str):
    out = tmp_path / f"{Path(leak).stem}.csv"
    argv = ["--pred", str(shared_hpa / "submissions" / "conv_team10_zhu_614_test_probs.csv"), "--threshold", "0.3",
            "--sample-submission", str(shared_hpa / "sample_submission.csv"), "--out", str(out),
            "--leak", str(shared_hpa / "leak" / leak), *extra]
    code = run(submit_command.main, argv)
    if code:
        return code, None, None
    sub = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("Id")["Predicted"]
    return code, sub, json.loads(out.with_suffix(".summary.json").read_text())


def _labels_of(text: str) -> frozenset:
    return frozenset(int(t) for t in text.split())


def _union_by(raw: pd.DataFrame, id_column: str) -> dict:
    return {i: frozenset().union(*map(_labels_of, g["Target"])) for i, g in raw.groupby(id_column)}


def test_leak_pudae_id_target_with_repeated_ids(shared_hpa, tmp_path, capsys):
    """pudae_leak.csv (3rd place): Id,Target, 385 rows for 258 test Ids; an Id may repeat with other labels."""
    raw = pd.read_csv(shared_hpa / "leak" / "pudae_leak.csv", dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["Id", "Target"]
    code, sub, summary = _submit_with_leak(shared_hpa, tmp_path, "pudae_leak.csv")
    assert code == 0
    union = _union_by(raw, "Id")
    assert len(union) == 258 and summary["leak"]["ids"] == 258 and summary["leak"]["skipped_not_test"] == {
        str(shared_hpa / "leak" / "pudae_leak.csv"): 0}
    assert all(_labels_of(sub[i]) == labels for i, labels in union.items())  # --leak-conflict union (the default)
    conflicts = sum(len(set(map(_labels_of, g["Target"]))) > 1 for _, g in raw.groupby("Id"))
    assert summary["leak"]["conflicts"] == conflicts > 0
    capsys.readouterr()
    code, _, _ = _submit_with_leak(shared_hpa, tmp_path / "e", "pudae_leak.csv", "--leak-conflict", "error")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "conflicting labels" in err and len(err.splitlines()) == 1


def test_leak_omlos_test_matched_to_hpa_v18_images(shared_hpa, tmp_path):
    """test_matches_omlos.csv: Extra (an HPA v18 image),Test,SimR,SimG,SimB,Target (the v18 image's labels),
    Target_noisey (filled on 2 rows, equal to Target there: not used)."""
    raw = pd.read_csv(shared_hpa / "leak" / "test_matches_omlos.csv", dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["Extra", "Test", "SimR", "SimG", "SimB", "Target", "Target_noisey"]
    noisy = raw["Target_noisey"] != ""
    assert noisy.sum() == 2 and (raw.loc[noisy, "Target_noisey"] == raw.loc[noisy, "Target"]).all()
    code, sub, summary = _submit_with_leak(shared_hpa, tmp_path, "test_matches_omlos.csv")
    assert code == 0
    union = _union_by(raw, "Test")
    assert len(raw) == 259 and summary["leak"]["rows"] == {str(shared_hpa / "leak" / "test_matches_omlos.csv"): 259}
    assert summary["leak"]["ids"] == len(union) == 257
    assert all(_labels_of(sub[i]) == labels for i, labels in union.items())
    assert not set(raw["Extra"]) & set(sub.index)  # the matched image is never taken for a test Id


def test_leak_vpp_test_matched_to_external_and_train_images(shared_hpa, tmp_path):
    """vpp_leak_test_matches_new.csv (5th place): the omlos layout; Extra is an external (hpa_…) or a *train*
    image, Target its labels (for the 200 train matches, exactly that train image's labels)."""
    raw = pd.read_csv(shared_hpa / "leak" / "vpp_leak_test_matches_new.csv", dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["Extra", "Test", "SimR", "SimG", "SimB", "Target", "Target_noisey"]
    train = pd.read_csv(shared_hpa / "train.csv", dtype=str).set_index("Id")["Target"]
    from_train = raw[raw["Extra"].isin(train.index)]
    assert len(from_train) == 200
    assert all(_labels_of(t) == _labels_of(train[e]) for e, t in zip(from_train["Extra"], from_train["Target"]))
    code, sub, summary = _submit_with_leak(shared_hpa, tmp_path, "vpp_leak_test_matches_new.csv")
    assert code == 0
    union = _union_by(raw, "Test")
    assert summary["leak"]["ids"] == len(union) and summary["leak"]["skipped_not_test"] == {
        str(shared_hpa / "leak" / "vpp_leak_test_matches_new.csv"): 0}
    assert all(_labels_of(sub[i]) == labels for i, labels in union.items())


def test_pedrodiamel_dupes_is_not_a_leak_file(shared_hpa, tmp_path, capsys):
    """pedrodiamel_dupes.csv: ID,Group Id, train images that are near-copies of each other: for folds --groups."""
    raw = pd.read_csv(shared_hpa / "leak" / "pedrodiamel_dupes.csv", dtype=str)
    assert list(raw.columns) == ["ID", "Group Id"] and raw.groupby("Group Id").size().eq(2).all()
    code, _, _ = _submit_with_leak(shared_hpa, tmp_path, "pedrodiamel_dupes.csv")
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "pedrodiamel_dupes.csv" in err and "not a leak file" in err and "folds --groups" in err
    assert not (tmp_path / "pedrodiamel_dupes.csv").exists()


def test_builtin_target_name_in_submit(setup):
    from hpa_ens.contract import read_target_distribution

    tmp, ids, probs, pred, sample, thr = setup
    out = tmp / "s.csv"
    assert run(submit_command.main, ["--pred", str(pred), "--thresholds", str(thr), "--sample-submission",
                                     str(sample), "--target-dist", "hpa2018-lb", "--out", str(out)]) == 0
    summary = json.loads((tmp / "s.summary.json").read_text())
    np.testing.assert_allclose(summary["shares"]["target"], read_target_distribution("hpa2018-lb"))
