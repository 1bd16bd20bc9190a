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
    pytest.importorskip("pyarrow", reason="needs the [parquet] extra")
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


# ------------------------------------------------------------------- tasks, test-only sets, the seal
def _task_csv(path, names):
    path.write_text("id,name\n" + "".join(f"{k},{n}\n" for k, n in enumerate(names)))
    return path


def test_any_k_roundtrip_and_task_recorded(tmp_path):
    from hpa_ens.task import load_task

    task = load_task(_task_csv(tmp_path / "six.csv", ["a", "b", "c", "d", "e", "f"]))
    rng = np.random.default_rng(3)
    oof, test = probs_frame(IDS, rng.random((12, 6))), probs_frame(["t1", "t2"], rng.random((2, 6)))
    write_prediction_set(tmp_path / "set", oof, test, build_meta("tests", argv=[]), task=task)
    meta = json.loads((tmp_path / "set" / "meta.json").read_text())
    assert meta["task"]["class_names"] == list("abcdef")
    pset = read_prediction_set(tmp_path / "set")  # the recorded task is used
    assert pset.oof.shape == (12, 6) and pset.task.n_classes == 6
    np.testing.assert_array_equal(pset.oof.to_numpy(), oof.to_numpy())
    # The default task (28 HPA classes) differs: refused in one line naming both.
    with pytest.raises(ContractError, match=r"set: made for task .six. \(6 classes: a, b…\), but the task given is .hpa2018. \(28 classes") as err:
        read_prediction_set(tmp_path / "set", task="hpa2018")
    _one_line(err)
    # A 6-class file read as 28 classes names the missing columns.
    with pytest.raises(ContractError, match=r"missing class columns '6'"):
        read_probs(tmp_path / "set" / "test.csv")


def test_sets_of_different_tasks_refused_together(tmp_path):
    from hpa_ens.contract import read_prediction_sets
    from hpa_ens.task import load_task

    rng = np.random.default_rng(0)
    a = load_task(_task_csv(tmp_path / "a.csv", ["x", "y", "z"]))
    b = load_task(_task_csv(tmp_path / "b.csv", ["x", "y", "w"]))
    for name, task in (("sa", a), ("sb", b)):
        write_prediction_set(tmp_path / name, probs_frame(IDS, rng.random((12, 3))),
                             probs_frame(["t"], rng.random((1, 3))), build_meta("tests", argv=[]), task=task)
    with pytest.raises(ContractError, match=r"sb and .*sa were made for different class lists"):
        read_prediction_sets([tmp_path / "sa", tmp_path / "sb"], task=None)


def test_test_only_set(tmp_path):
    write_prediction_set(tmp_path / "set", None, _frame(["t1", "t2"]), build_meta("tests", argv=[]))
    assert not (tmp_path / "set" / "oof.csv").exists()
    pset = read_prediction_set(tmp_path / "set", test_ids=["t2", "t1"])
    assert pset.oof is None and not pset.has_oof and pset.test.index.tolist() == ["t2", "t1"]
    with pytest.raises(ContractError, match=r"test-only prediction set \(no oof.csv\); stack needs out-of-fold") as err:
        read_prediction_set(tmp_path / "set", require_oof="stack")
    _one_line(err)
    # An oof.csv slipped in afterwards is not under the seal.
    write_probs(tmp_path / "set" / "oof.csv", _frame())
    with pytest.raises(ContractError, match="not in the seal"):
        read_prediction_set(tmp_path / "set")


def test_set_without_seal_refused_unless_unverified(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    write_probs(folder / "oof.csv", _frame())
    write_probs(folder / "test.csv", _frame(["t"]))
    with pytest.raises(ContractError, match=r"no meta.json, so the set cannot be checked against its seal") as err:
        read_prediction_set(folder)
    _one_line(err)
    assert read_prediction_set(folder, verify=False).oof.shape == (12, 28)


def test_rewrite_keeps_old_seal_until_new_files_are_in_place(tmp_path, monkeypatch):
    from hpa_ens.contract import predictions

    write_prediction_set(tmp_path / "set", _frame(), _frame(["t"]), build_meta("tests", argv=[]))
    old_meta = (tmp_path / "set" / "meta.json").read_bytes()
    real_write = predictions.write_probs

    def crash_on_test(path, frame):
        if path.name == "test.csv":
            raise OSError("disk full")
        return real_write(path, frame)

    monkeypatch.setattr(predictions, "write_probs", crash_on_test)
    with pytest.raises(OSError):
        write_prediction_set(tmp_path / "set", _frame(seed=9), _frame(["t"], seed=9), build_meta("tests", argv=[]))
    # Nothing moved: the old sealed set is intact and still reads; no staging folder is left.
    assert (tmp_path / "set" / "meta.json").read_bytes() == old_meta
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["meta.json", "oof.csv", "test.csv"]
    read_prediction_set(tmp_path / "set")


def test_output_folder_that_is_not_a_set_is_refused(tmp_path):
    from hpa_ens.contract import check_output_folder

    user = tmp_path / "mydata"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(ContractError, match="not a prediction set this project wrote; refusing to replace it"):
        check_output_folder(user)
    check_output_folder(tmp_path / "new")  # absent: fine
    write_prediction_set(tmp_path / "set", _frame(), _frame(["t"]), build_meta("tests", argv=[]))
    check_output_folder(tmp_path / "set")  # a set: may be replaced


def test_task_files_refused_in_one_line(tmp_path):
    from hpa_ens.task import load_task

    (tmp_path / "dup.csv").write_text("id,name\n0,a\n1,b\n1,c\n")
    (tmp_path / "gap.csv").write_text("id,name\n0,a\n2,b\n")
    (tmp_path / "cols.csv").write_text("k,label\n0,a\n")
    for path, pattern in ((tmp_path / "dup.csv", r"dup.csv, row 3: class id 1 is repeated"),
                          (tmp_path / "gap.csv", r"gap.csv: class ids must be 0..1 with no gap; id 1 is missing"),
                          (tmp_path / "cols.csv", r"cols.csv: expected columns id,name"),
                          (tmp_path / "nope.csv", r"nope.csv: task file not found")):
        with pytest.raises(ContractError, match=pattern) as err:
            load_task(path)
        _one_line(err)
    (tmp_path / "t.yaml").write_text("name: mine\nclasses: [a, b, c]\nmin_labels: 1\nmax_labels: 2\n")
    task = load_task(tmp_path / "t.yaml")
    assert (task.name, task.n_classes, task.min_labels, task.max_labels) == ("mine", 3, 1, 2)
    assert load_task("hpa2021").n_classes == 19 and load_task(None).n_classes == 28


# ------------------------------------------------------------------------- writers that do not collide
_REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _python(code: str, *args: str) -> subprocess.Popen:
    import os

    env = dict(os.environ, PYTHONPATH=str(_REPO))
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=_REPO)


_HOLD = """
import sys, time
from hpa_ens.contract import prediction_set_lock
with prediction_set_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""

_WRITE = """
import sys
import numpy as np
from hpa_ens.contract import build_meta, probs_frame, write_prediction_set
ids = [f"id{i:03d}" for i in range(12)]
frame = probs_frame(ids, np.full((12, 28), float(sys.argv[2])))
print("ready", flush=True)
write_prediction_set(sys.argv[1], frame, frame, build_meta("test", argv=[], name="writer"))
"""


def test_a_second_writer_waits_for_the_first_then_writes_a_whole_set(tmp_path):
    from hpa_ens.contract import prediction_set_lock

    out = tmp_path / "set"
    first = _frame(seed=1)
    with prediction_set_lock(out):
        write_prediction_set(out, first, first, build_meta("test", argv=[], name="first"))  # re-entrant
        writer = _python(_WRITE, str(out), "0.25")
        assert writer.stdout.readline().strip() == "ready"
        try:
            writer.wait(timeout=1.5)
        except subprocess.TimeoutExpired:
            pass
        assert writer.poll() is None  # still waiting for the lock
        assert read_prediction_set(out).meta["name"] == "first"
    _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    ps = read_prediction_set(out)  # verifies the seal
    assert ps.meta["name"] == "writer" and (ps.oof.to_numpy() == 0.25).all() and (ps.test.to_numpy() == 0.25).all()
    assert not (out / ".lock").exists()  # released and removed
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "oof.csv", "test.csv"]


def test_a_killed_holder_never_blocks_and_a_live_one_is_named_on_timeout(tmp_path):
    import os
    import signal

    from hpa_ens.contract import check_output_folder, prediction_set_lock

    out = tmp_path / "set"
    holder = _python(_HOLD, str(out), "120")
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(ContractError, match=rf"another process \(pid {holder.pid}\)") as err:
        with prediction_set_lock(out, timeout=0.3):
            pass
    _one_line(err)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert (out / ".lock").exists()  # left behind by the killed holder ...
    check_output_folder(out)  # ... which is no reason to refuse the folder
    frame = _frame(seed=2)
    with prediction_set_lock(out, timeout=10):  # ... nor to wait: the kernel dropped its lock
        write_prediction_set(out, frame, frame, build_meta("test", argv=[], name="after"))
    assert read_prediction_set(out).meta["name"] == "after" and not (out / ".lock").exists()
