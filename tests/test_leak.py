"""Leak files in both real formats, Ids outside the test set, and the conflict policies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hpa_ens.labels import parse_target, read_sample_submission
from hpa_ens.leak import leak_labels, read_leak, resolve_conflicts
from hpa_ens.validation import ContractError


def _norm(text):
    return tuple(parse_target(text))


def test_real_pudae_conflicts_match_pandas_count(shared_hpa):
    path = shared_hpa / "leak" / "pudae_leak.csv"
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    n_conflicts = int((raw.assign(t=raw["Target"].map(_norm)).groupby("Id")["t"].nunique() > 1).sum())
    ids = read_sample_submission(shared_hpa / "sample_submission.csv")
    labels, sources, info = leak_labels([path], ids, "union")
    assert info["conflicts"] == n_conflicts > 0
    assert len(labels) == raw["Id"].nunique()
    # union = every row's labels and nothing else
    for image_id, group in raw.groupby("Id"):
        want = set().union(*[set(_norm(t)) for t in group["Target"]])
        assert set(np.flatnonzero(labels.loc[image_id].to_numpy())) == want
    first, _, _ = leak_labels([path], ids, "first")
    for image_id, group in raw.groupby("Id", sort=False):
        assert tuple(np.flatnonzero(first.loc[image_id].to_numpy())) == _norm(group["Target"].iloc[0])
    with pytest.raises(ContractError, match="conflicting labels"):
        leak_labels([path], ids, "error")


def test_real_match_files_use_test_column_not_extra(shared_hpa):
    ids = read_sample_submission(shared_hpa / "sample_submission.csv")
    train_ids = set(pd.read_csv(shared_hpa / "train.csv")["Id"])
    for name in ("test_matches_omlos.csv", "vpp_leak_test_matches_new.csv"):
        path = shared_hpa / "leak" / name
        frame = read_leak(path)
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert frame["Id"].tolist() == raw["Test"].tolist()
        assert frame["match"].tolist() == raw["Extra"].tolist()
        labels, _, info = leak_labels([path], ids, "union")
        assert info["skipped_not_test"][str(path)] == 0
        assert not set(labels.index) & train_ids
        assert set(labels.index) == set(raw["Test"])


def test_ids_outside_test_are_skipped_and_counted(tmp_path):
    path = tmp_path / "leak.csv"
    pd.DataFrame({"Id": ["t1", "train9", "t2", "ext_1"], "Target": ["3 1", "0", "27", "5"]}).to_csv(path, index=False)
    labels, sources, info = leak_labels([path], ["t1", "t2", "t3"], "union")
    assert info["skipped_not_test"][str(path)] == 2
    assert labels.index.tolist() == ["t1", "t2"]
    assert np.flatnonzero(labels.loc["t1"].to_numpy()).tolist() == [1, 3]
    assert sources.loc["t2"] == "leak.csv:3"


def test_conflicts_across_files_follow_file_order(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame({"Id": ["t1"], "Target": ["2"]}).to_csv(a, index=False)
    pd.DataFrame({"Extra": ["ext"], "Test": ["t1"], "SimR": [0], "SimG": [0], "SimB": [0], "Target": ["4 2"],
                  "Target_noisey": [""]}).to_csv(b, index=False)
    union, _, info = leak_labels([a, b], ["t1"], "union")
    assert np.flatnonzero(union.loc["t1"].to_numpy()).tolist() == [2, 4] and info["conflicts"] == 1
    first_ab, _, _ = leak_labels([a, b], ["t1"], "first")
    first_ba, _, _ = leak_labels([b, a], ["t1"], "first")
    assert np.flatnonzero(first_ab.loc["t1"].to_numpy()).tolist() == [2]
    assert np.flatnonzero(first_ba.loc["t1"].to_numpy()).tolist() == [2, 4]


@pytest.mark.parametrize("content, message", [
    ("Id,Labels\nt1,3\n", "no 'Target' column"),
    ("Foo,Target\nt1,3\n", "which column holds the test Ids"),
    ("Id,Target\nt1,3\nt2,31\n", "row 2"),
    ("Id,Target\n", "no rows"),
    ("", "empty"),
])
def test_broken_leak_files_are_refused(tmp_path, content, message):
    path = tmp_path / "leak.csv"
    path.write_text(content)
    with pytest.raises(ContractError, match=message):
        read_leak(path)


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match="leak_conflict"):
        resolve_conflicts(pd.DataFrame(), "last")


def test_leak_files_for_a_k_class_task(tmp_path):
    (tmp_path / "task.csv").write_text("id,name\n0,a\n1,b\n2,c\n")
    path = tmp_path / "leak.csv"
    path.write_text("Id,Target\nt1,2\nt1,0\nt2,1\n")
    labels, _, info = leak_labels([path], ["t1", "t2"], "union", task=tmp_path / "task.csv")
    assert labels.shape == (2, 3) and labels.loc["t1"].tolist() == [1, 0, 1] and info["conflicts"] == 1
    path.write_text("Id,Target\nt1,3\n")
    with pytest.raises(ContractError, match=r"row 1: unknown class id '3'.*0\.\.2"):
        read_leak(path, task=tmp_path / "task.csv")
