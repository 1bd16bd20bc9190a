"""hpa_ens.import_preds: the layouts teams saved, refusals in one line with nothing written, provenance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hpa_ens import import_preds
from hpa_ens.commands import import_preds as import_command
from hpa_ens.commands._cli import run
from hpa_ens.contract import read_prediction_set
from hpa_ens.io import sha256_file
from hpa_ens.task import HPA2018, load_task

K = HPA2018.n_classes


def read_back(folder, name="test.csv") -> pd.DataFrame:
    """Read the written set back through the contract (seal, task and values checked)."""
    pset = read_prediction_set(folder)
    return pset.test if name == "test.csv" else pset.oof


@pytest.fixture
def team(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"t{k:03d}" for k in range(40)]
    probs = rng.random((40, K)) ** 3  # full-precision floats: the import must keep every bit
    sample = tmp_path / "sample_submission.csv"
    pd.DataFrame({"Id": ids, "Predicted": "0"}).to_csv(sample, index=False)
    return tmp_path, ids, probs, sample


def _csv(path, ids, probs, columns, order=None):
    order = np.arange(len(ids)) if order is None else order
    df = pd.DataFrame(probs[order], columns=columns)
    df.insert(0, "Id", [ids[i] for i in order])
    df.to_csv(path, index=False)
    return path


def _ok(argv, out):
    assert run(import_command.main, [*argv, "--out", str(out)]) == 0
    return read_back(out)


def _refused(argv, out, capsys, *needles):
    capsys.readouterr()  # drop what earlier calls printed
    assert run(import_command.main, [*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    assert not out.exists() or not any(out.iterdir()), "nothing may be written on an error"
    return err


@pytest.mark.parametrize("layout", ["0..K-1", "P00", "names", "class_k shuffled"])
def test_csv_layouts_give_the_same_set(team, layout):
    tmp, ids, probs, _ = team
    perm = np.random.default_rng(1).permutation(K)
    columns = {"0..K-1": [str(k) for k in range(K)], "P00": [f"P{k:02d}" for k in range(K)],
               "names": list(HPA2018.class_names), "class_k shuffled": [f"class_{k}" for k in range(K)]}[layout]
    block = probs
    if layout == "class_k shuffled":  # columns in another order: matched by name, not position
        columns, block = [columns[k] for k in perm], probs[:, perm]
    rows = np.random.default_rng(2).permutation(len(ids))
    src = _csv(tmp / "team.csv", ids, block, columns, order=rows)
    got = _ok(["--test", str(src)], tmp / "set")
    expected = pd.DataFrame(probs, index=pd.Index(ids, name="Id"), columns=range(K))
    pd.testing.assert_frame_equal(got.loc[ids], expected, check_exact=True, check_names=False)
    meta = json.loads((tmp / "set" / "meta.json").read_text())
    assert meta["inputs"]["test"] == sha256_file(src) == meta["sources"]["test"]["sha256"]
    assert meta["task"]["class_names"] == list(HPA2018.class_names) and meta["test_only"] is True
    assert meta["outputs"]["test.csv"] == sha256_file(tmp / "set" / "test.csv")
    assert not (tmp / "set" / "oof.csv").exists()


def test_npy_with_id_list_and_npz_with_embedded_ids(team, capsys):
    tmp, ids, probs, sample = team
    np.save(tmp / "test.npy", probs)
    got = _ok(["--test", str(tmp / "test.npy"), "--ids", str(sample)], tmp / "a")
    np.testing.assert_array_equal(got.loc[ids].to_numpy(), probs)
    np.savez(tmp / "emb.npz", probs=probs, Id=np.array(ids))
    got = _ok(["--test", str(tmp / "emb.npz")], tmp / "b")
    np.testing.assert_array_equal(got.loc[ids].to_numpy(), probs)
    np.savez(tmp / "two.npz", a=probs, b=probs[:, ::-1])
    _refused(["--test", str(tmp / "two.npz"), "--ids", str(sample)], tmp / "c", capsys, "two.npz", "--key")
    got = _ok(["--test", str(tmp / "two.npz"), "--ids", str(sample), "--key", "b"], tmp / "c")
    np.testing.assert_array_equal(got.loc[ids].to_numpy(), probs[:, ::-1])
    np.save(tmp / "ids.npy", np.array(ids))
    got = _ok(["--test", str(tmp / "test.npy"), "--ids", str(tmp / "ids.npy")], tmp / "d")
    np.testing.assert_array_equal(got.loc[ids].to_numpy(), probs)


def test_parquet_with_id_index(team):
    pytest.importorskip("pyarrow", reason="needs the [parquet] extra")
    tmp, ids, probs, _ = team
    frame = pd.DataFrame(probs, index=pd.Index(ids, name="Id"), columns=[f"P{k:02d}" for k in range(K)])
    frame.to_parquet(tmp / "t.parquet")
    got = _ok(["--test", str(tmp / "t.parquet")], tmp / "set")
    np.testing.assert_array_equal(got.loc[ids].to_numpy(), probs)


def test_oof_and_test_make_a_full_set(team, capsys):
    tmp, ids, probs, _ = team
    train = [f"tr{k}" for k in range(30)]
    oof = np.random.default_rng(5).random((30, K))
    _csv(tmp / "oof.csv", train, oof, [str(k) for k in range(K)])
    _csv(tmp / "test.csv", ids, probs, [str(k) for k in range(K)])
    out = tmp / "set"
    _ok(["--test", str(tmp / "test.csv"), "--oof", str(tmp / "oof.csv")], out)
    np.testing.assert_array_equal(read_back(out, "oof.csv").loc[train].to_numpy(), oof)
    # a test-only import replacing that set removes its oof.csv: never a mix of two sets
    _ok(["--test", str(tmp / "test.csv")], out)
    assert not (out / "oof.csv").exists()
    _csv(tmp / "overlap.csv", ids[:3], oof[:3], [str(k) for k in range(K)])
    _refused(["--test", str(tmp / "test.csv"), "--oof", str(tmp / "overlap.csv")], tmp / "x", capsys,
             "overlap.csv", "both")


def test_logits_and_percentages_refused_or_converted_explicitly(team, capsys):
    tmp, ids, probs, _ = team
    logits = np.log(probs + 1e-9) - np.log1p(-probs + 1e-9)
    cols = [str(k) for k in range(K)]
    _csv(tmp / "logits.csv", ids, logits, cols)
    _refused(["--test", str(tmp / "logits.csv")], tmp / "a", capsys, "logits.csv", "logits", "--from-logits")
    got = _ok(["--test", str(tmp / "logits.csv"), "--from-logits"], tmp / "a")
    np.testing.assert_allclose(got.loc[ids].to_numpy(), probs, atol=1e-8)
    assert json.loads((tmp / "a" / "meta.json").read_text())["sources"]["test"]["transform"] == "sigmoid"
    _csv(tmp / "pct.csv", ids, probs * 100, cols)
    _refused(["--test", str(tmp / "pct.csv")], tmp / "b", capsys, "pct.csv", "percentages", "--from-percent")
    got = _ok(["--test", str(tmp / "pct.csv"), "--from-percent"], tmp / "b")
    np.testing.assert_allclose(got.loc[ids].to_numpy(), probs, rtol=1e-12)
    # an explicit flag on values that are already probabilities is refused too
    _csv(tmp / "p.csv", ids, probs, cols)
    _refused(["--test", str(tmp / "p.csv"), "--from-logits"], tmp / "c", capsys, "p.csv", "probabilities already")


BAD = {
    "npy rows differ from the Id list": (lambda t, ids, p, s: (np.save(t / "x.npy", p[:-1]), ["--test", str(t / "x.npy"), "--ids", str(s)])[1],
                                         ["x.npy", "39 rows", "40 Ids"]),
    "npy without Ids": (lambda t, ids, p, s: (np.save(t / "x.npy", p), ["--test", str(t / "x.npy")])[1], ["--ids", "x.npy"]),
    "column map names a missing column": (lambda t, ids, p, s: ["--test", str(_csv(t / "x.csv", ids, p, [str(k) for k in range(K)])),
                                                              "--columns", "prob_nucleus=0"], ["x.csv", "prob_nucleus"]),
    "K disagrees with the task": (lambda t, ids, p, s: ["--test", str(_csv(t / "x.csv", ids, p[:, :-1], [str(k) for k in range(K - 1)]))],
                                  ["x.csv", "27 class columns", "28 classes"]),
    "npy K disagrees with the task": (lambda t, ids, p, s: (np.save(t / "x.npy", p[:, :6]), ["--test", str(t / "x.npy"), "--ids", str(s)])[1],
                                      ["x.npy", "6 columns", "28 classes"]),
    "unknown columns": (lambda t, ids, p, s: ["--test", str(_csv(t / "x.csv", ids, p, [f"c{k}" for k in range(K - 1)] + ["junk"]))],
                        ["x.csv", "junk", "--columns"]),
    "NaN": (lambda t, ids, p, s: ["--test", str(_csv(t / "x.csv", ids, np.where(np.eye(40, K) > 0, np.nan, p), [str(k) for k in range(K)]))],
            ["x.csv", "NaN", "t000"]),
    "repeated Id": (lambda t, ids, p, s: ["--test", str(_csv(t / "x.csv", ids[:-1] + ids[:1], p, [str(k) for k in range(K)]))],
                    ["x.csv", "duplicated"]),
    "pickled npy": (lambda t, ids, p, s: (np.save(t / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
                                          ["--test", str(t / "x.npy"), "--ids", str(s)])[1], ["x.npy", "unpickling"]),
    "text in a class column": (lambda t, ids, p, s: ["--test", str(_csv(t / "x.csv", ids, np.where(np.eye(40, K) > 0, "high", p.astype(str)),
                                                                        [str(k) for k in range(K)]))], ["x.csv", "'0'", "non-numeric"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_the_file_and_writes_nothing(team, capsys, case):
    tmp, ids, probs, sample = team
    make, needles = BAD[case]
    _refused(make(tmp, ids, probs, sample), tmp / "out", capsys, *needles)


def test_out_that_is_not_a_prediction_set_is_refused(team, capsys):
    tmp, ids, probs, _ = team
    src = _csv(tmp / "team.csv", ids, probs, [str(k) for k in range(K)])
    data = tmp / "data"
    data.mkdir()
    (data / "train.csv").write_text("Id,Target\na,0\n")
    assert run(import_command.main, ["--test", str(src), "--out", str(data)]) == 2
    assert "not a prediction set" in capsys.readouterr().err
    assert sorted(p.name for p in data.iterdir()) == ["train.csv"]


def test_column_map_and_another_task(tmp_path):
    names = ["Methanol", "Ethanol", "Water", "Salt", "Sugar", "Oil"]
    task_csv = tmp_path / "task.csv"
    pd.DataFrame({"id": range(6), "name": names}).to_csv(task_csv, index=False)
    task = load_task(task_csv)
    rng = np.random.default_rng(3)
    probs = rng.random((10, 6))
    ids = [f"s{k}" for k in range(10)]
    frame = pd.DataFrame(probs, columns=["m", "e", "w", "s", "su", "o"])
    frame.insert(0, "sample", ids)
    frame["fold"] = 0
    frame.to_csv(tmp_path / "t.csv", index=False)
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"sample": "Id", "fold": "-", "m": 0, "e": "Ethanol", "w": 2, "s": "Salt",
                                   "su": 4, "o": "Oil"}))
    out = tmp_path / "set"
    assert run(import_command.main, ["--test", str(tmp_path / "t.csv"), "--columns", str(mapping), "--task",
                                   str(task_csv), "--out", str(out)]) == 0
    got = read_back(out)
    np.testing.assert_array_equal(got.loc[ids].to_numpy(), probs)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["task"]["class_names"] == names and meta["sources"]["test"]["ignored_columns"] == ["fold"]
    assert meta["inputs"]["columns"] == sha256_file(mapping)
    # the same file without the map: 'sample' is no Id column it can trust, the columns no classes
    assert run(import_command.main, ["--test", str(tmp_path / "t.csv"), "--task", str(task_csv),
                                   "--out", str(tmp_path / "x")]) == 2
    assert task.n_classes == 6


def test_inline_column_map_partial(team):
    tmp, ids, probs, _ = team
    df = pd.DataFrame(probs, columns=[str(k) for k in range(K)])
    df.insert(0, "image", ids)
    df.to_csv(tmp / "t.csv", index=False)
    got = _ok(["--test", str(tmp / "t.csv"), "--columns", "image=Id"], tmp / "set")
    np.testing.assert_array_equal(got.loc[ids].to_numpy(), probs)
