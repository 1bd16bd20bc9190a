import numpy as np
import pytest

from hpa_ens import CLASS_NAMES, N_CLASSES
from hpa_ens.contract import ContractError, read_target_distribution
from hpa_ens.labels import (
    matrix_to_targets,
    parse_target,
    read_labels,
    read_sample_submission,
    read_submission,
    targets_to_matrix,
    write_labels,
)


def test_class_names_in_one_place():
    assert N_CLASSES == 28 and len(CLASS_NAMES) == 28
    assert CLASS_NAMES[0] == "Nucleoplasm" and CLASS_NAMES[27] == "Rods & rings"


def test_parse_unsorted_target_and_back_sorted():
    Y = targets_to_matrix(["16 0", "7 1 2 0", "27"])
    assert Y.shape == (3, 28) and Y.dtype == np.uint8
    assert Y[0].nonzero()[0].tolist() == [0, 16]
    assert matrix_to_targets(Y) == ["0 16", "0 1 2 7", "27"]


@pytest.mark.parametrize(
    "text, fragment",
    [("3 28", "unknown class id '28'"), ("3 -1", "unknown class id '-1'"), ("a", "unknown class id 'a'"),
     ("4 4", "class id 4 is repeated"), ("", "the Target is empty")],
)
def test_bad_target_refused_with_row_and_text(text, fragment):
    with pytest.raises(ContractError) as err:
        targets_to_matrix(["0", text], source="train.csv")
    message = str(err.value)
    assert fragment in message and "train.csv, row 2" in message and "\n" not in message


def test_empty_target_allowed_where_labels_optional():
    assert parse_target("", allow_empty=True) == []


def test_real_train_csv(shared_hpa):
    labels = read_labels(shared_hpa / "train.csv")
    counts = labels.sum(axis=1)
    assert len(labels) == 31072
    assert int((counts == 1).sum()) == 15126
    assert int(counts.max()) == 5 and int(counts.min()) == 1
    assert int(labels[27].sum()) == 11 and int(labels[0].sum()) == 12885
    assert abs(counts.mean() - 1.634) < 1e-3


def test_real_sample_submission_and_external(shared_hpa):
    ids = read_sample_submission(shared_hpa / "sample_submission.csv")
    assert len(ids) == 11702 and ids.is_unique
    ext = read_labels(shared_hpa / "ext" / "HPAv18RBGY_wodpl.csv")
    assert len(ext) == 74606 and ext.index[0] == "10580_1610_C1_1"


def test_real_submissions_parse(shared_hpa):
    sub = read_submission(shared_hpa / "submissions" / "ntu_mira_team16_LB637.csv")
    assert len(sub) == 11702 and sub.to_numpy().sum() > 11702 * 0.9


def test_duplicate_id_refused(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("Id,Target\na,0\nb,1\na,2\n")
    with pytest.raises(ContractError, match=r"train.csv: 1 duplicated Ids .*'a'"):
        read_labels(path)


def test_write_labels_roundtrip(tmp_path):
    Y = targets_to_matrix(["16 0", "5"])
    write_labels(tmp_path / "x.csv", ["a", "b"], Y)
    assert (tmp_path / "x.csv").read_text() == "Id,Target\na,0 16\nb,5\n"
    assert (read_labels(tmp_path / "x.csv").to_numpy() == Y).all()


def test_target_distribution(shared_hpa):
    lb = read_target_distribution(shared_hpa / "lb_label_distribution.csv")
    assert lb.shape == (28,) and abs(lb[0] - 0.36239782) < 1e-9
    train = read_target_distribution(shared_hpa / "lb_label_distribution.csv", column="train")
    labels = read_labels(shared_hpa / "train.csv")
    np.testing.assert_allclose(train, read_target_distribution("train", labels=labels), atol=1e-9)


def test_builtin_target_names(shared_hpa, tmp_path):
    """``hpa2018-lb`` is the leaderboard-probed shares shipped with the package (the published file's lb column)."""
    from pathlib import Path

    from hpa_ens.contract import BUILTIN_TARGETS, read_target_shares, target_shares_path
    from hpa_ens.task import load_task

    assert "hpa2018-lb" in BUILTIN_TARGETS and "train" not in BUILTIN_TARGETS
    published = read_target_distribution(shared_hpa / "lb_label_distribution.csv")
    for name in ("hpa2018-lb", Path("hpa2018-lb")):  # as typed, or through argparse's type=Path (synth)
        np.testing.assert_array_equal(read_target_distribution(name), published)
    np.testing.assert_array_equal(read_target_shares("hpa2018-lb", load_task("hpa2018"), "train"),
                                  read_target_distribution(shared_hpa / "lb_label_distribution.csv", column="train"))
    assert target_shares_path("hpa2018-lb").read_bytes() == (shared_hpa / "lb_label_distribution.csv").read_bytes()
    assert target_shares_path("mine.csv") == Path("mine.csv")
    (tmp_path / "task.csv").write_text("id,name\n0,a\n1,b\n2,c\n")
    with pytest.raises(ContractError, match="hpa2018-lb: the built-in shares of the task 'hpa2018'") as err:
        read_target_shares("hpa2018-lb", load_task(tmp_path / "task.csv"))
    assert "\n" not in str(err.value)


def test_commands_list_the_builtin_target_names():
    from hpa_ens.commands import eda, submit, synth, thresholds

    for command in (eda, submit, synth, thresholds):
        assert "hpa2018-lb" in command.build_parser().format_help()


def test_empty_targets_kept_and_counted_in_a_warning(tmp_path):
    from hpa_ens.labels import EmptyTargetWarning

    path = tmp_path / "train.csv"
    path.write_text("Id,Target\na,0 2\nb,\nc,1\nd,\n")
    with pytest.warns(EmptyTargetWarning, match=r"2 of 4 rows have no label \(first: Id 'b'\)"):
        labels = read_labels(path, task="hpa2018")
    assert labels.loc["b"].sum() == 0 and labels.loc["a", 2] == 1
    with pytest.raises(ContractError, match="row 2: the Target is empty"):
        read_labels(path, allow_empty=False)


def test_labels_of_any_k(tmp_path):
    task = tmp_path / "t.csv"
    task.write_text("id,name\n0,x\n1,y\n2,z\n")
    path = tmp_path / "l.csv"
    path.write_text("Id,Target\na,2\nb,0 1\n")
    labels = read_labels(path, task=task)
    assert labels.shape == (2, 3) and labels.to_numpy().tolist() == [[0, 0, 1], [1, 1, 0]]
    path.write_text("Id,Target\na,3\n")
    with pytest.raises(ContractError, match=r"unknown class id '3' .*expected integers 0..2"):
        read_labels(path, task=task)


def test_target_distribution_class_column(tmp_path):
    from hpa_ens.contract import read_target_distribution

    task = tmp_path / "t.csv"
    task.write_text("id,name\n0,x\n1,y\n2,z\n")
    (tmp_path / "d.csv").write_text("class,share\n2,0.3\n0,0.1\n1,0.2\n")
    np.testing.assert_allclose(read_target_distribution(tmp_path / "d.csv", task=task), [0.1, 0.2, 0.3])
    (tmp_path / "m.csv").write_text("class,share\n2,0.3\n0,0.1\n")
    with pytest.raises(ContractError, match=r"no row for class 1 \(y\)"):
        read_target_distribution(tmp_path / "m.csv", task=task)
    (tmp_path / "r.csv").write_text("share\n0.1\n0.2\n")
    with pytest.raises(ContractError, match=r"2 share rows for a task of 3 classes .*row k is class k.*Got 2 rows"):
        read_target_distribution(tmp_path / "r.csv", task=task)
