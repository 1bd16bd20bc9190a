"""Distillation: tempered soft targets, the soft-target loss, the self-training rows, the CLI end to end."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("timm", reason="needs the [train] extra")

from scipy.special import expit, logit  # noqa: E402

from base_models import distill  # noqa: E402
from base_models.commands import distill as distill_cmd  # noqa: E402
from base_models.config import load_config  # noqa: E402
from base_models.losses import build_loss  # noqa: E402
from hpa_ens.classes import N_CLASSES  # noqa: E402
from hpa_ens.contract import (ContractError, build_meta, probs_frame, read_prediction_set,  # noqa: E402
                              write_prediction_set)
from tiny_images import make_dataset  # noqa: E402


def write_teacher(folder, train_ids, test_ids, Y, seed=0, shuffle=True):
    rng = np.random.default_rng(seed)
    oof = np.clip(Y * 0.7 + rng.uniform(0, 0.3, Y.shape), 0, 1)
    test = rng.uniform(0, 1, (len(test_ids), N_CLASSES))
    oof_frame, test_frame = probs_frame(train_ids, oof), probs_frame(test_ids, test)
    if shuffle:  # rows in another order than train.csv: the student must align by Id
        oof_frame = oof_frame.iloc[::-1]
    write_prediction_set(folder, oof_frame, test_frame, build_meta("test", name="teacher"))
    return oof, test


# ------------------------------------------------------------------------------------ pure core
def test_soften_is_sigmoid_of_scaled_logit():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, (50, N_CLASSES))
    for t in (0.5, 1.0, 2.0, 4.0):
        assert np.allclose(distill.soften(p, t), expit(logit(p) / t), atol=1e-6)
    hot = distill.soften(p, 3.0)
    # A temperature above 1 pulls every probability toward 0.5 without reordering them.
    assert np.all(np.abs(hot - 0.5) <= np.abs(p - 0.5) + 1e-6)
    assert np.array_equal(np.argsort(hot[:, 0]), np.argsort(p[:, 0]))
    edges = distill.soften(np.array([[0.0, 1.0] * 14]))
    assert np.all(np.isfinite(edges)) and edges.min() > 0 and edges.max() < 1
    with pytest.raises(ValueError, match="'temperature' parameter must be > 0"):
        distill.soften(p, 0.0)


def test_soft_bce_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, N_CLASSES, generator=g, dtype=torch.float64)
    soft = torch.rand(12, N_CLASSES, generator=g, dtype=torch.float64)
    for t in (1.0, 2.5):
        q = expit(logits.numpy() / t)
        s = soft.numpy()
        expected = -(s * np.log(q) + (1 - s) * np.log(1 - q)).mean() * t ** 2
        assert float(distill.soft_bce(logits, soft, t)) == pytest.approx(expected, rel=1e-9)


def test_distill_loss_mixes_hard_and_soft_terms_and_skips_unlabelled_rows():
    g = torch.Generator().manual_seed(1)
    n_rows = 10
    soft = distill.soften(np.random.default_rng(1).uniform(0, 1, (n_rows, N_CLASSES)), 2.0)
    labelled = np.arange(n_rows) < 7  # rows 7..9 are test images (no labels)
    rows = np.array([8, 1, 3, 9, 0])
    logits = torch.randn(len(rows), N_CLASSES, generator=g)
    y = (torch.rand(len(rows), N_CLASSES, generator=g) > 0.7).float()
    loss_fn = build_loss({"bce": 1.0, "soft_f1": 0.5})
    soft_term = float(distill.soft_bce(logits, torch.as_tensor(soft[rows]), 2.0))
    keep = torch.as_tensor([1, 2, 4])
    hard_term = float(loss_fn(logits[keep], y[keep]))
    for alpha in (0.0, 0.3, 1.0):
        loss = distill.make_distill_loss(soft, labelled, alpha, 2.0)(loss_fn)(logits, rows, y)
        assert float(loss) == pytest.approx((1 - alpha) * hard_term + alpha * soft_term, rel=1e-6)
    with pytest.raises(ValueError, match="'alpha' parameter must be in"):
        distill.make_distill_loss(soft, labelled, 1.5, 1.0)


def test_row_concat_reads_like_concatenation():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (5, 4, 3, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (3, 4, 3, 3), dtype=np.uint8)
    both = distill.RowConcat(a, b)
    full = np.concatenate([a, b])
    rows = np.array([7, 0, 5, 2, 6, 6])
    assert len(both) == 8 and both.shape == full.shape
    assert np.array_equal(both[rows], full[rows])
    assert np.array_equal(both[6], full[6])


# ------------------------------------------------------------------------------------ end to end
def test_distill_cli_writes_a_valid_prediction_set_with_provenance(tmp_path):
    data, train_ids, test_ids, Y = make_dataset(tmp_path / "data")
    write_teacher(tmp_path / "teacher", train_ids, test_ids, Y)
    argv = ["--teacher", str(tmp_path / "teacher"), "--student", "base_models/configs/mobilenetv3_small_100.yaml",
            "--data", str(data), "--folds", str(data / "folds.csv"), "--out", str(tmp_path / "oof"),
            "--alpha", "0.5", "--temperature", "2", "--self-train",
            "--backbone", "mobilenetv3_small_050", "--image-size", "32", "--batch-size", "8", "--epochs", "1",
            "--threads", "1", "--tta", "none", "--cache-dir", str(tmp_path / "cache")]
    assert distill_cmd.main(argv) == 0
    folder = tmp_path / "oof" / "mobilenetv3_small_100_student"
    student = read_prediction_set(folder, train_ids=train_ids, test_ids=test_ids)
    assert student.oof.shape == (len(train_ids), N_CLASSES) and student.test.shape == (len(test_ids), N_CLASSES)
    assert student.meta["distill"] == {"teacher": str((tmp_path / "teacher").resolve()), "alpha": 0.5,
                                       "temperature": 2.0, "self_train": True}
    assert set(student.meta["inputs"]["teacher"]) == {"oof.csv", "test.csv"}
    fold0 = json.loads((folder / "fold0" / "metrics.json").read_text())
    assert fold0["distill"]["distill_self_train"] is True
    # Self-training: the test images joined the training rows (12 train rows of the other fold + 8 test).
    assert fold0["n_fit"] == 12 + len(test_ids)
    # A second --fold all run keeps the finished folds (same teacher, same settings) and only collects.
    mtime = (folder / "fold0" / "metrics.json").stat().st_mtime_ns
    assert distill_cmd.main(argv) == 0
    assert (folder / "fold0" / "metrics.json").stat().st_mtime_ns == mtime
    # Another alpha is another fingerprint: the fold is retrained, not reused.
    assert distill_cmd.main(argv[:-2] + ["--fold", "0", "--alpha", "0.9"] + argv[-2:]) == 0
    fold0b = json.loads((folder / "fold0" / "metrics.json").read_text())
    assert fold0b["distill"]["distill_alpha"] == 0.9


def test_teacher_missing_an_id_is_refused(tmp_path):
    data, train_ids, test_ids, Y = make_dataset(tmp_path / "data", n_train=10, n_test=4)
    write_teacher(tmp_path / "teacher", train_ids[:-1], test_ids, Y[:-1])
    config = load_config(None, {"backbone": "mobilenetv3_small_050"})
    with pytest.raises(ContractError, match=train_ids[-1]):
        distill.teacher_targets(tmp_path / "teacher", data, config, 1.0, False)


def test_teacher_whose_epochs_were_chosen_on_held_out_rows_is_refused(tmp_path):
    data, train_ids, test_ids, Y = make_dataset(tmp_path / "data", n_train=10, n_test=4)
    oof, test = np.clip(Y * 0.7, 0, 1), np.full((len(test_ids), N_CLASSES), 0.5)
    old = build_meta("base_models.collect", name="old")  # written before honest OOF: no epoch_selection
    write_prediction_set(tmp_path / "old", probs_frame(train_ids, oof), probs_frame(test_ids, test), old)
    config = load_config(None, {"backbone": "mobilenetv3_small_050"})
    with pytest.raises(ContractError, match="chose their epoch on the held-out rows"):
        distill.teacher_targets(tmp_path / "old", data, config, 1.0, False)
    honest = dict(old, epoch_selection=["last_epoch"])
    write_prediction_set(tmp_path / "new", probs_frame(train_ids, oof), probs_frame(test_ids, test), honest)
    assert distill.teacher_targets(tmp_path / "new", data, config, 1.0, False)[0].shape[0] == len(train_ids)
