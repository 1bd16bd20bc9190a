"""Folds (hpa_ens.folds) and duplicate groups (hpa_ens.groups)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hpa_ens import folds as F
from hpa_ens.commands import folds as folds_command
from hpa_ens.commands._cli import run
from hpa_ens.contract import read_folds
from hpa_ens.groups import duplicate_groups, group_codes, group_members, merge_pairs, read_groups, read_pairs
from hpa_ens.labels import read_labels, write_labels
from hpa_ens.validation import ContractError


def _random_labels(n: int, n_classes: int = 28, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Skewed class frequencies like HPA: a few common classes, a long rare tail.
    p = 0.4 * np.exp(-np.arange(n_classes) / 4.0) + 0.002
    Y = (rng.random((n, n_classes)) < p).astype(np.uint8)
    Y[Y.sum(axis=1) == 0, 0] = 1
    return Y


def _brute_force_groups(pairs, ids):
    """Repeatedly merge overlapping sets until nothing changes."""
    sets = [{i} for i in ids] + [set(p) for p in pairs]
    changed = True
    while changed:
        changed = False
        for a in range(len(sets)):
            for b in range(a + 1, len(sets)):
                if sets[a] & sets[b]:
                    sets[a] |= sets.pop(b)
                    changed = True
                    break
            if changed:
                break
    return sets


# ------------------------------------------------------------------------------------- groups
def test_read_pairs_accepts_every_layout(tmp_path):
    (tmp_path / "groups.csv").write_text("ID,Group Id\na,1\nb,1\nc,2\nd,2\ne,2\nf,3\n")
    (tmp_path / "pairs.csv").write_text("Id1,Id2\na,b\nc,d\n")
    (tmp_path / "synth.csv").write_text("Id_a,Id_b,kind,transform\na,t1,train-test,flip\nt1,t2,test-test,\n")
    (tmp_path / "dedup.csv").write_text("Id_a,Id_b,distance,kind\nx,y,3,test-test\n")
    (tmp_path / "leak.csv").write_text("Extra,Test,SimR,SimG,SimB,Target,Target_noisey\nq,r,0,0,0,20,\n")
    assert read_pairs(tmp_path / "groups.csv") == [("a", "b"), ("c", "d"), ("c", "e")]
    assert read_pairs(tmp_path / "pairs.csv") == [("a", "b"), ("c", "d")]
    assert read_pairs(tmp_path / "synth.csv") == [("a", "t1"), ("t1", "t2")]
    assert read_pairs(tmp_path / "synth.csv", kinds={"test-test"}) == [("t1", "t2")]
    assert read_pairs(tmp_path / "dedup.csv") == [("x", "y")]
    assert read_pairs(tmp_path / "leak.csv") == [("q", "r")]


def test_read_pairs_refuses_unknown_layout_and_bad_rows(tmp_path):
    (tmp_path / "bad.csv").write_text("Id,Target\na,0 1\n")
    with pytest.raises(ContractError, match="unknown duplicate-file layout"):
        read_pairs(tmp_path / "bad.csv")
    (tmp_path / "empty_group.csv").write_text("ID,Group Id\na,\n")
    with pytest.raises(ContractError, match="row 1"):
        read_pairs(tmp_path / "empty_group.csv")
    with pytest.raises(ContractError, match="no kind column"):
        (tmp_path / "p.csv").write_text("Id1,Id2\na,b\n")
        read_pairs(tmp_path / "p.csv", kinds={"test-test"})
    with pytest.raises(ContractError, match="not found"):
        read_pairs(tmp_path / "missing.csv")


def test_merge_pairs_matches_brute_force():
    rng = np.random.default_rng(3)
    ids = [f"id{i}" for i in range(60)]
    pairs = [(ids[a], ids[b]) for a, b in rng.integers(0, 60, size=(35, 2))]
    groups = merge_pairs(pairs, ids=ids)
    assert list(groups) == ids
    oracle = _brute_force_groups(pairs, ids)
    for members in oracle:
        assert len({groups[m] for m in members}) == 1
    assert len(set(groups.values())) == len(oracle)
    # numbered by first appearance in ids
    seen = list(dict.fromkeys(groups[i] for i in ids))
    assert seen == list(range(len(seen)))


def test_read_groups_merges_across_files_and_through_outside_ids(tmp_path):
    (tmp_path / "a.csv").write_text("ID,Group Id\ntr1,7\ntr2,7\n")
    # tr3 and tr4 are joined only through the test image te1, which is not a train Id.
    (tmp_path / "b.csv").write_text("Id_a,Id_b,kind\ntr2,tr3,train-train\ntr4,te1,train-test\ntr5,te1,train-test\n")
    train = ["tr0", "tr1", "tr2", "tr3", "tr4", "tr5"]
    groups = read_groups([tmp_path / "a.csv", tmp_path / "b.csv"], ids=train)
    assert set(groups) == set(train)
    assert groups["tr1"] == groups["tr2"] == groups["tr3"]
    assert groups["tr4"] == groups["tr5"] != groups["tr1"]
    assert groups["tr0"] not in {groups["tr1"], groups["tr4"]}
    assert sorted(map(sorted, group_members(groups))) == [["tr1", "tr2", "tr3"], ["tr4", "tr5"]]
    all_ids = read_groups(tmp_path / "b.csv")
    assert set(all_ids) == {"tr2", "tr3", "tr4", "tr5", "te1"}
    codes = group_codes({"a": 0, "b": 0}, ["a", "c", "b", "d"])
    assert codes[0] == codes[2] and len(set(codes.tolist())) == 3


# -------------------------------------------------------------------------------------- folds
def test_group_label_union_is_the_or_of_members():
    Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.uint8)
    group_Y, inverse = F.group_label_union(Y, np.array([5, 2, 5, 9]))
    np.testing.assert_array_equal(group_Y[inverse[0]], [1, 0, 1])
    np.testing.assert_array_equal(group_Y[inverse[1]], [0, 1, 0])
    assert inverse[0] == inverse[2] and len(group_Y) == 3


def test_rarest_label_picks_the_least_frequent_class():
    Y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 1, 1], [0, 0, 0]])
    # counts: 4, 2, 2 -> tie between 1 and 2 goes to 1
    np.testing.assert_array_equal(F.rarest_label(Y), [1, 0, 2, 1, -1])


@pytest.mark.parametrize("strategy", F.STRATEGIES)
def test_make_folds_valid_deterministic_and_group_aware(strategy):
    Y = _random_labels(900, seed=1)
    rng = np.random.default_rng(0)
    codes = np.arange(len(Y))
    # 100 duplicate groups of 2-4 rows
    for g in range(100):
        members = rng.choice(len(Y), size=rng.integers(2, 5), replace=False)
        codes[members] = codes[members[0]]
    folds = F.make_folds(Y, 5, 0, codes, strategy)
    assert folds.shape == (len(Y),) and set(folds.tolist()) == set(range(5))
    assert pd.Series(folds).groupby(codes).nunique().max() == 1
    np.testing.assert_array_equal(folds, F.make_folds(Y, 5, 0, codes, strategy))
    assert not np.array_equal(folds, F.make_folds(Y, 5, 1, codes, strategy))
    quality = F.split_quality(Y, folds, 5, codes)
    assert quality["groups_split"] == 0
    assert quality["LD"] < F.split_quality(Y, F.kfold_assign(len(Y), 5, 0))["LD"]


def test_make_folds_refuses_bad_parameters():
    Y = _random_labels(20)
    with pytest.raises(ValueError, match="'strategy'"):
        F.make_folds(Y, 5, 0, strategy="random")
    with pytest.raises(ValueError, match="'n_folds'"):
        F.make_folds(Y, 1, 0)
    with pytest.raises(ValueError, match="number of groups"):
        F.make_folds(Y, 5, 0, codes=np.arange(20) % 3)


def test_split_quality_matches_the_paper_formulas():
    Y = _random_labels(300, n_classes=6, seed=4)
    folds = np.random.default_rng(1).integers(0, 4, size=len(Y))
    q = F.split_quality(Y, folds, 4)
    n, K = len(Y), 4

    def distance(column):
        total = column.sum()
        values = []
        for j in range(K):
            in_fold = column[folds == j]
            values.append(abs(in_fold.sum() / (len(in_fold) - in_fold.sum()) - total / (n - total)))
        return np.mean(values)

    ld = np.mean([distance(Y[:, i]) for i in range(6)])
    pairs = [Y[:, i] * Y[:, j] for i in range(6) for j in range(i + 1, 6) if (Y[:, i] * Y[:, j]).any()]
    lpd = np.mean([distance(p) for p in pairs])
    assert q["LD"] == pytest.approx(ld, rel=1e-12)
    assert q["LPD"] == pytest.approx(lpd, rel=1e-12)
    assert q["fold_sizes"] == np.bincount(folds, minlength=K).tolist()
    assert q["ED"] == pytest.approx(np.mean(np.abs(np.bincount(folds) - n / K)))
    for k in range(6):
        per_fold = [Y[folds == j, k].sum() for j in range(K)]
        assert q["pos_min"][k] == min(per_fold) and q["pos_max"][k] == max(per_fold)


def test_cli_writes_folds_report_and_is_byte_deterministic(tmp_path):
    Y = _random_labels(400, seed=2)
    ids = [f"img{i:04d}" for i in range(len(Y))]
    write_labels(tmp_path / "train.csv", ids, Y)
    (tmp_path / "dupes.csv").write_text("Id1,Id2\nimg0001,img0002\nimg0002,img0300\nimg0010,img0011\n")
    args = ["--labels", str(tmp_path / "train.csv"), "--n-folds", "4", "--seed", "3",
            "--groups", str(tmp_path / "dupes.csv"), "--no-plot"]
    assert run(folds_command.main, args + ["--out", str(tmp_path / "a" / "folds.csv")]) == 0
    assert run(folds_command.main, args + ["--out", str(tmp_path / "b" / "folds.csv")]) == 0
    first = (tmp_path / "a" / "folds.csv").read_bytes()
    assert first == (tmp_path / "b" / "folds.csv").read_bytes()
    folds = read_folds(tmp_path / "a" / "folds.csv", ids=ids)
    assert folds["img0001"] == folds["img0002"] == folds["img0300"]
    assert folds["img0010"] == folds["img0011"]
    report = json.loads((tmp_path / "a" / "folds.report.json").read_text())
    assert report["n_duplicate_groups"] == 2 and report["n_duplicate_ids"] == 5
    assert report["split"]["groups_split"] == 0
    assert report["split"]["fold_sizes"] == np.bincount(folds.to_numpy()).tolist()
    assert "kfold" in report and report["strategy"] == "iterative"


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    Y = _random_labels(30)
    write_labels(tmp_path / "train.csv", [f"i{k}" for k in range(30)], Y)
    (tmp_path / "bad.csv").write_text("foo,bar\n1,2\n")
    code = run(folds_command.main, ["--labels", str(tmp_path / "train.csv"), "--out", str(tmp_path / "f.csv"),
                        "--groups", str(tmp_path / "bad.csv")])
    assert code == 2
    assert "unknown duplicate-file layout" in capsys.readouterr().err
    assert not (tmp_path / "f.csv").exists()


# ----------------------------------------------------------------------------------- real data
def test_real_labels_with_pedrodiamel_groups(shared_hpa, tmp_path):
    out = tmp_path / "folds.csv"
    dupes = shared_hpa / "leak" / "pedrodiamel_dupes.csv"
    assert run(folds_command.main, ["--labels", str(shared_hpa / "train.csv"), "--out", str(out),
                        "--groups", str(dupes), "--no-plot"]) == 0
    labels = read_labels(shared_hpa / "train.csv")
    folds = read_folds(out, ids=labels.index)
    groups = pd.read_csv(dupes)
    assert groups["ID"].isin(labels.index).all()
    # A group never spans two folds.
    assert groups.assign(fold=folds.loc[groups["ID"]].to_numpy()).groupby("Group Id")["fold"].nunique().max() == 1
    report = json.loads(out.with_name("folds.report.json").read_text())
    split, kfold = report["split"], report["kfold"]
    assert split["n_samples"] == len(labels) and split["groups_split"] == 0
    assert kfold["groups_split"] > 0  # the baseline does split duplicates
    total = labels.sum(axis=0).to_numpy()
    expected = total / 5
    # Every class lands close to its ideal per-fold count (groups cost a few rows on common classes)
    # and spreads no wider than under shuffled KFold.
    positives = np.asarray(split["positives"])
    assert (np.abs(positives - expected) <= 1 + 0.005 * expected).all()
    split_spread = np.asarray(split["pos_max"]) - np.asarray(split["pos_min"])
    kfold_spread = np.asarray(kfold["pos_max"]) - np.asarray(kfold["pos_min"])
    assert (split_spread <= kfold_spread).all()
    assert split["LD"] < kfold["LD"]
    assert split["FZ"] == 0


# ------------------------------------------------------------------ one grouping rule, any K
def test_duplicate_groups_is_the_one_rule_for_folds_and_submit():
    from hpa_ens import submit
    from hpa_ens.thresholds import apply_thresholds

    rng = np.random.default_rng(7)
    ids = [f"t{i}" for i in range(40)]
    outside = [f"x{i}" for i in range(5)]
    pairs = [(rng.choice(ids + outside), rng.choice(ids + outside)) for _ in range(30)]
    pairs = [(a, b) for a, b in pairs if a != b]
    inside = [(a, b) for a, b in pairs if a in ids and b in ids]
    codes = duplicate_groups(ids, pairs, through_outside=False)
    # submit averages exactly these groups (only test Ids join a group there), and has no rule of its own.
    assert not hasattr(submit, "duplicate_groups")
    probs = rng.random((len(ids), 28))
    test_pairs = pd.DataFrame({"Id_a": [a for a, _ in pairs], "Id_b": [b for _, b in pairs], "kind": "test-test"})
    y_pred, _, steps = submit.build_submission(ids, probs, 0.5, 0, None, test_pairs=test_pairs)
    np.testing.assert_array_equal(y_pred, apply_thresholds(submit.average_groups(probs, codes), 0.5, 0, None))
    assert steps["1. test-test images in groups"] == int((np.bincount(codes)[codes] > 1).sum())
    for members in _brute_force_groups(inside, ids):
        assert len({codes[ids.index(m)] for m in members}) == 1
    assert len(set(codes.tolist())) == len(_brute_force_groups(inside, ids))
    # Through outside Ids (folds): components of the whole graph, restricted to ids.
    chained = duplicate_groups(ids, pairs)
    for members in _brute_force_groups(pairs, ids + outside):
        inner = [m for m in members if m in ids]
        assert len({chained[ids.index(m)] for m in inner}) <= 1
    np.testing.assert_array_equal(chained, group_codes(merge_pairs(pairs, ids=ids), ids))


def test_cli_on_a_k_class_task(tmp_path):
    (tmp_path / "task.csv").write_text("id,name\n" + "".join(f"{k},c{k}\n" for k in range(5)))
    Y = _random_labels(60, n_classes=5, seed=8)
    ids = [f"i{k}" for k in range(60)]
    pd.DataFrame({"Id": ids, "Target": [" ".join(map(str, np.flatnonzero(r))) for r in Y]}).to_csv(
        tmp_path / "l.csv", index=False)
    out = tmp_path / "folds.csv"
    assert run(folds_command.main, ["--labels", str(tmp_path / "l.csv"), "--task", str(tmp_path / "task.csv"), "--n-folds", "3",
                        "--out", str(out), "--no-plot"]) == 0
    folds = read_folds(out, ids=ids)
    np.testing.assert_array_equal(folds.to_numpy(), F.make_folds(Y, 3, 0))
    report = json.loads(out.with_name("folds.report.json").read_text())
    assert len(report["split"]["class_total"]) == 5 and report["task"] == "task"
    # The default task refuses class ids outside 0..27 as before; a 5-class task refuses 5.
    (tmp_path / "bad.csv").write_text("Id,Target\na,5\nb,1\nc,2\n")
    with pytest.raises(ContractError, match=r"bad.csv, row 1: unknown class id '5'"):
        folds_command.main(["--labels", str(tmp_path / "bad.csv"), "--task", str(tmp_path / "task.csv"), "--out", str(out)])


@pytest.mark.parametrize("content, message", [
    ("Id,fold\ne1,-2\n", "row 1: fold must be"),
    ("Id,fold\ne1,x\n", "row 1: fold must be"),
    ("Id,fold\ne1,3\n", r"row 1: fold must be -1..2"),
    ("Id,fold\ne1,1\ne1,0\n", "duplicated"),
    ("Id,folds\ne1,1\n", "expected columns Id,fold"),
])
def test_extra_folds_file_is_validated(tmp_path, content, message):
    from hpa_ens.contract.extra_folds import read_extra_folds

    path = tmp_path / "folds.extra.csv"
    path.write_text(content)
    with pytest.raises(ContractError, match=message):
        read_extra_folds(path, n_folds=3)


def test_extra_folds_follow_asked_ids_and_refuse_missing(tmp_path):
    from hpa_ens.contract.extra_folds import read_extra_folds, write_extra_folds

    path = tmp_path / "folds.extra.csv"
    write_extra_folds(path, pd.Series([-1, 2, 0], index=pd.Index(["a", "b", "c"], name="Id")))
    assert read_extra_folds(path, ids=["c", "a"]).tolist() == [0, -1]
    with pytest.raises(ContractError, match="missing"):
        read_extra_folds(path, ids=["a", "zz"])
