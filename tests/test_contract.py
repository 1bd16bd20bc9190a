import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hpa_ens import CLASS_COLUMNS
from hpa_ens.contract import (
    ContractError,
    build_meta,
    probs_frame,
    read_folds,
    read_prediction_set,
    read_probs,
    write_folds,
    write_prediction_set,
    write_probs,
)
from hpa_ens.labels import read_sample_submission

IDS = [f"id{i:03d}" for i in range(12)]


def _frame(ids=IDS, seed=0):
    rng = np.random.default_rng(seed)
    return probs_frame(ids, rng.random((len(ids), 28)))


def _write_csv(path, frame, columns=None):
    out = frame.copy()
    out.columns = columns or list(CLASS_COLUMNS)
    out.to_csv(path, index_label="Id")
    return path


def _one_line(err):
    message = str(err.value)
    assert "\n" not in message
    return message


def test_no_torch_on_import():
    code = "import hpa_ens, hpa_ens.contract, hpa_ens.metrics, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_roundtrip_full_precision_and_by_id(tmp_path):
    frame = _frame()
    frame.iloc[0, 0] = 1 / 3
    frame.iloc[1, 1] = 1e-300
    write_probs(tmp_path / "p.csv", frame)
    shuffled = list(reversed(IDS))
    back = read_probs(tmp_path / "p.csv", shuffled)
    assert back.index.tolist() == shuffled
    np.testing.assert_array_equal(back.loc[IDS].to_numpy(), frame.to_numpy())  # bit-identical


def test_parquet_read(tmp_path):
    frame = _frame()
    write_probs(tmp_path / "p.parquet", frame)
    np.testing.assert_array_equal(read_probs(tmp_path / "p.parquet", IDS).to_numpy(), frame.to_numpy())


def test_refuses_missing_ids(tmp_path):
    path = _write_csv(tmp_path / "oof.csv", _frame(IDS[:-2]))
    with pytest.raises(ContractError) as err:
        read_probs(path, IDS, "train.csv")
    msg = _one_line(err)
    assert "oof.csv: 2 Ids of train.csv are missing (expected 12 Ids, got 10)" in msg and "'id010'" in msg


def test_refuses_extra_ids(tmp_path):
    path = _write_csv(tmp_path / "oof.csv", _frame(IDS + ["stray"]))
    with pytest.raises(ContractError) as err:
        read_probs(path, IDS)
    assert "oof.csv: 1 Ids are not in the expected Ids (expected 12 Ids, got 13); first: 'stray'" in _one_line(err)


def test_refuses_duplicated_ids(tmp_path):
    path = _write_csv(tmp_path / "oof.csv", _frame(IDS + ["id003"]))
    with pytest.raises(ContractError) as err:
        read_probs(path)
    assert "oof.csv: 1 duplicated Ids" in _one_line(err) and "'id003'" in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_refuses_nan_inf(tmp_path, bad):
    frame = _frame()
    frame.iloc[4, 7] = bad
    path = _write_csv(tmp_path / "test.csv", frame)
    with pytest.raises(ContractError) as err:
        read_probs(path)
    assert "NaN or infinite; first at Id 'id004', column '7'" in _one_line(err)


def test_refuses_logits(tmp_path):
    frame = _frame()
    frame.iloc[2, 3] = -2.5
    frame.iloc[5, 3] = 4.0
    path = _write_csv(tmp_path / "test.csv", frame)
    with pytest.raises(ContractError) as err:
        read_probs(path)
    msg = _one_line(err)
    assert "outside [0, 1]" in msg and "these look like logits" in msg and "Id 'id002'" in msg


def test_refuses_missing_class_column(tmp_path):
    path = _write_csv(tmp_path / "test.csv", _frame().iloc[:, :27], list(CLASS_COLUMNS[:27]))
    with pytest.raises(ContractError) as err:
        read_probs(path)
    assert "missing class columns '27'" in _one_line(err)


def test_refuses_extra_column(tmp_path):
    frame = _frame()
    frame[28] = 0.5
    path = _write_csv(tmp_path / "test.csv", frame, list(CLASS_COLUMNS) + ["28"])
    with pytest.raises(ContractError) as err:
        read_probs(path)
    assert "unexpected columns '28'" in _one_line(err)


def test_refuses_misnamed_columns(tmp_path):
    path = _write_csv(tmp_path / "test.csv", _frame(), [f"class_{k}" for k in range(28)])
    with pytest.raises(ContractError) as err:
        read_probs(path)
    msg = _one_line(err)
    assert "missing class columns '0'" in msg and "unexpected columns 'class_0'" in msg


def test_refuses_empty_file(tmp_path):
    (tmp_path / "oof.csv").write_text("")
    with pytest.raises(ContractError) as err:
        read_probs(tmp_path / "oof.csv")
    assert "oof.csv: the file is empty" in _one_line(err)
    (tmp_path / "h.csv").write_text("Id," + ",".join(CLASS_COLUMNS) + "\n")
    with pytest.raises(ContractError, match="header but no rows"):
        read_probs(tmp_path / "h.csv")


@pytest.mark.parametrize("bad_id", ["../etc/passwd", "a\\b"])
def test_refuses_path_separator_in_id(tmp_path, bad_id):
    path = _write_csv(tmp_path / "oof.csv", _frame(IDS[:-1] + [bad_id]))
    with pytest.raises(ContractError) as err:
        read_probs(path)
    assert "contains a path separator" in _one_line(err) and "row 12" in str(err.value)


def test_real_zhu_probs_load_as_test_set(shared_hpa):
    ids = read_sample_submission(shared_hpa / "sample_submission.csv")
    probs = read_probs(shared_hpa / "submissions" / "conv_team10_zhu_614_test_probs.csv", ids)
    assert probs.shape == (11702, 28) and probs.index.tolist() == ids.tolist()
    assert 0 <= probs.to_numpy().min() and probs.to_numpy().max() <= 1


def test_prediction_set_roundtrip_and_meta(tmp_path):
    labels = tmp_path / "train.csv"
    labels.write_text("Id,Target\n" + "".join(f"{i},0\n" for i in IDS))
    oof, test = _frame(IDS), _frame(["t1", "t2"], seed=1)
    meta = build_meta("tests", inputs={"labels": labels}, params={"a": 1}, argv=["x"], name="m1")
    write_prediction_set(tmp_path / "set", oof, test, meta)
    saved = json.loads((tmp_path / "set" / "meta.json").read_text())
    for key in ("schema_version", "produced_by", "command", "inputs", "folds_sha256", "created_at", "outputs"):
        assert key in saved
    pset = read_prediction_set(tmp_path / "set", train_ids=list(reversed(IDS)), test_ids=["t2", "t1"])
    assert pset.oof.index[0] == IDS[-1] and pset.name == "m1"
    np.testing.assert_array_equal(pset.test.loc["t1"].to_numpy(), test.loc["t1"].to_numpy())


def test_half_written_set_refused(tmp_path):
    write_prediction_set(tmp_path / "set", _frame(), _frame(["t"]), build_meta("tests", argv=[]))
    # Simulate a crash that replaced oof.csv but never wrote the matching meta.json.
    write_probs(tmp_path / "set" / "oof.csv", _frame(seed=5))
    with pytest.raises(ContractError, match="sha256 differs"):
        read_prediction_set(tmp_path / "set")


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "oof.csv"
    write_probs(path, _frame())
    before = path.read_bytes()
    bad = _frame()
    bad.iloc[0, 0] = 2.0
    with pytest.raises(ContractError):
        write_probs(path, bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["oof.csv"]  # no temp file left behind


def test_rewrite_same_bytes(tmp_path):
    write_probs(tmp_path / "a.csv", _frame())
    write_probs(tmp_path / "b.csv", _frame())
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_folds_roundtrip_and_refusals(tmp_path):
    folds = pd.Series([i % 3 for i in range(len(IDS))], index=IDS)
    write_folds(tmp_path / "folds.csv", folds)
    back = read_folds(tmp_path / "folds.csv", list(reversed(IDS)))
    assert back.index[0] == IDS[-1] and back.loc["id004"] == 1
    with pytest.raises(ContractError, match="Ids of the train labels are missing"):
        read_folds(tmp_path / "folds.csv", IDS + ["new"])
    (tmp_path / "bad.csv").write_text("Id,fold\na,0\nb,x\n")
    with pytest.raises(ContractError, match=r"bad.csv, row 2: fold must be a non-negative integer. Got 'x'"):
        read_folds(tmp_path / "bad.csv")
    (tmp_path / "gap.csv").write_text("Id,fold\na,0\nb,2\n")
    with pytest.raises(ContractError, match=r"folds must be 0..K-1"):
        read_folds(tmp_path / "gap.csv")


def test_no_hpa_ens_module_imports_torch():
    code = (
        "import importlib, pkgutil, sys, hpa_ens\n"
        "for m in pkgutil.iter_modules(hpa_ens.__path__):\n"
        "    importlib.import_module('hpa_ens.' + m.name)\n"
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
