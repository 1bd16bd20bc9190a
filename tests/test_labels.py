import numpy as np
import pytest

from hpa_ens import CLASS_NAMES, N_CLASSES
from hpa_ens.contract import ContractError
from hpa_ens.labels import (
    matrix_to_targets,
    parse_target,
    read_labels,
    read_sample_submission,
    read_submission,
    read_target_distribution,
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
