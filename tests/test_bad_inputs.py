"""The bad-input table: each command line on each kind of bad input.

Every row asserts what a user sees: a non-zero exit (2), no traceback, one line that names the
file (and the row or column where there is one), and no output left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hpa_ens.contract import build_meta, probs_frame, write_folds, write_prediction_set
from hpa_ens.labels import write_labels

pytestmark = pytest.mark.xdist_group("bad_inputs")

N_TRAIN, N_TEST, K = 60, 20, 28


def _run(module: str, *args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HPA_ENS_NO_PROGRESS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small valid world: labels, folds, two prediction sets, thresholds tuned on the first."""
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    train_ids = [f"tr{i:03d}" for i in range(N_TRAIN)]
    test_ids = [f"te{i:03d}" for i in range(N_TEST)]
    Y = (rng.random((N_TRAIN, K)) < 0.15).astype(np.uint8)
    Y[np.arange(N_TRAIN), rng.integers(0, K, N_TRAIN)] = 1
    write_labels(root / "train.csv", train_ids, Y)
    write_labels(root / "sample_submission.csv", test_ids, np.zeros((N_TEST, K)), column="Predicted")
    (root / "sample_submission.csv").write_text("Id,Predicted\n" + "".join(f"{i},0\n" for i in test_ids))
    import pandas as pd

    write_folds(root / "folds.csv", pd.Series(np.arange(N_TRAIN) % 3, index=train_ids))
    for name, seed in (("m1", 1), ("m2", 2)):
        r = np.random.default_rng(seed)
        oof = np.clip(0.6 * Y + 0.4 * r.random((N_TRAIN, K)), 0, 1)
        write_prediction_set(root / name, probs_frame(train_ids, oof), probs_frame(test_ids, r.random((N_TEST, K))),
                             build_meta("tests", argv=[], name=name))
    proc = _run("hpa_ens.tune_thresholds", "--labels", root / "train.csv", "--pred", root / "m1",
                "--out", root / "thresholds.json", "--method", "exact")
    assert proc.returncode == 0, proc.stderr
    return root


def _reseal(folder: Path) -> None:
    """Record the current files' hashes in meta.json: a set a buggy tool wrote and sealed."""
    meta = json.loads((folder / "meta.json").read_text())
    meta["outputs"] = {f: hashlib.sha256((folder / f).read_bytes()).hexdigest()
                       for f in ("oof.csv", "test.csv") if (folder / f).exists()}
    (folder / "meta.json").write_text(json.dumps(meta))


def _broken_set(world: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(world / "m1", folder)
    lines = (folder / "oof.csv").read_text().splitlines()
    (folder / "oof.csv").write_text("\n".join(edit(lines)) + "\n")
    _reseal(folder)
    return folder


def _cell(line: str, col: int, value: str) -> str:
    cells = line.split(",")
    cells[col] = value
    return ",".join(cells)


# (case id, edit of oof.csv lines, what the one line must contain)
PRED_CASES = [
    ("missing_id", lambda L: L[:1] + L[2:], r"Ids of the train labels are missing"),
    ("extra_id", lambda L: L + [_cell(L[1], 0, "zz999")], r"Ids are not in the train labels"),
    ("duplicated_id", lambda L: L + [L[1]], r"duplicated Ids"),
    ("nan", lambda L: L[:1] + [_cell(L[1], 3, "nan")] + L[2:], r"NaN or infinite; first at Id 'tr000', column '2'"),
    ("inf", lambda L: L[:1] + [_cell(L[1], 5, "inf")] + L[2:], r"NaN or infinite; first at Id 'tr000', column '4'"),
    ("logits", lambda L: L[:1] + [_cell(L[1], 1, "3.7")] + L[2:], r"look like logits"),
    ("missing_column", lambda L: [",".join(x.split(",")[:-1]) for x in L], r"missing class columns '27'"),
    ("misnamed_column", lambda L: [L[0].replace(",5,", ",P05,")] + L[1:], r"unexpected columns 'P05'"),
    ("empty_file", lambda L: [""], r"the file is empty"),
    ("path_separator_id", lambda L: L[:1] + [_cell(L[1], 0, "../etc")] + L[2:], r"contains a path separator"),
]


def _assert_refused(proc: subprocess.CompletedProcess, *needles: str, absent: Path | None = None) -> str:
    import re

    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for needle in needles:
        assert re.search(needle, lines[0]), (needle, lines[0])
    if absent is not None:
        assert not absent.exists(), f"{absent} was left behind"
    return lines[0]


@pytest.mark.parametrize("case,edit,pattern", PRED_CASES, ids=[c[0] for c in PRED_CASES])
def test_prediction_set_refusals_in_thresholds_and_stack(world, tmp_path, case, edit, pattern):
    folder = _broken_set(world, tmp_path, edit)
    out = tmp_path / "thr.json"
    proc = _run("hpa_ens.tune_thresholds", "--labels", world / "train.csv", "--pred", folder, "--out", out)
    _assert_refused(proc, r"broken/oof\.csv", pattern, absent=out)
    out_dir = tmp_path / "stack"
    proc = _run("hpa_ens.stack", "--labels", world / "train.csv", "--folds", world / "folds.csv",
                "--pred", world / "m2", folder, "--out", out_dir)
    _assert_refused(proc, r"broken/oof\.csv", pattern, absent=out_dir)


def test_set_without_meta_json(world, tmp_path):
    folder = tmp_path / "nometa"
    shutil.copytree(world / "m1", folder)
    (folder / "meta.json").unlink()
    out = tmp_path / "thr.json"
    proc = _run("hpa_ens.tune_thresholds", "--labels", world / "train.csv", "--pred", folder, "--out", out)
    _assert_refused(proc, r"nometa: no meta\.json", absent=out)


def test_edited_set_is_refused(world, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(world / "m1", folder)
    text = (folder / "test.csv").read_text()
    (folder / "test.csv").write_text(text.replace("te000,0.", "te000,0.0", 1))
    out = tmp_path / "sub.csv"
    proc = _run("hpa_ens.submit", "--pred", folder, "--thresholds", world / "thresholds.json",
                "--sample-submission", world / "sample_submission.csv", "--out", out, "--allow-other-pred")
    _assert_refused(proc, r"edited/test\.csv: sha256 differs", absent=out)


@pytest.mark.parametrize("target,pattern", [("0 28", r"row 2: unknown class id '28'"),
                                            ("3 3", r"row 2: class id 3 is repeated")])
def test_label_file_refusals(world, tmp_path, target, pattern):
    lines = (world / "train.csv").read_text().splitlines()
    lines[2] = lines[2].split(",")[0] + "," + target
    bad = tmp_path / "labels.csv"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "thr.json"
    proc = _run("hpa_ens.tune_thresholds", "--labels", bad, "--pred", world / "m1", "--out", out)
    _assert_refused(proc, r"labels\.csv", pattern, absent=out)
    out_folds = tmp_path / "folds.csv"
    proc = _run("hpa_ens.folds", "--labels", bad, "--out", out_folds, "--n-folds", "3")
    _assert_refused(proc, r"labels\.csv", pattern, absent=out_folds)


def test_thresholds_for_another_set(world, tmp_path):
    out = tmp_path / "sub.csv"
    proc = _run("hpa_ens.submit", "--pred", world / "m2", "--thresholds", world / "thresholds.json",
                "--sample-submission", world / "sample_submission.csv", "--out", out)
    _assert_refused(proc, r"thresholds\.json", r"m2", absent=out)


def test_npy_given_as_prediction_file(world, tmp_path):
    folder = tmp_path / "npy"
    shutil.copytree(world / "m1", folder)
    np.save(folder / "raw.npy", np.zeros((3, 3)))
    (folder / "oof.csv").write_bytes((folder / "raw.npy").read_bytes())
    _reseal(folder)
    out = tmp_path / "thr.json"
    proc = _run("hpa_ens.tune_thresholds", "--labels", world / "train.csv", "--pred", folder, "--out", out)
    _assert_refused(proc, r"npy/oof\.csv", absent=out)


def _write_png(path: Path, value: int = 40, size: int = 32) -> None:
    from PIL import Image

    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(path)


@pytest.mark.parametrize("problem", ["missing", "corrupt"])
def test_missing_or_corrupt_png_channel_in_eda(world, tmp_path, problem):
    images = tmp_path / "images"
    images.mkdir()
    for image_id in ("tr000", "tr001"):
        for channel in ("red", "green", "blue", "yellow"):
            _write_png(images / f"{image_id}_{channel}.png")
    target = images / "tr001_green.png"
    if problem == "missing":
        target.unlink()
    else:
        target.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    out = tmp_path / "eda"
    proc = _run("hpa_ens.eda", "--labels", world / "train.csv", "--images", images, "--out", out)
    _assert_refused(proc, r"tr001_green", absent=out)


def test_user_data_folder_without_train_csv_is_never_generated_into(tmp_path):
    pytest.importorskip("torch", reason="needs the [train] extra")
    data = tmp_path / "hpa"
    (data / "train").mkdir(parents=True)
    (data / "train.csv.zip").write_bytes(b"PK\x03\x04 zipped")
    before = sorted(p.name for p in data.rglob("*"))
    proc = _run("base_models.run_all", "--data", data)
    _assert_refused(proc, r"hpa")
    assert sorted(p.name for p in data.rglob("*")) == before


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # the point: a foreign pickle
def test_pickled_checkpoint_is_refused_without_running_it(tmp_path):
    pytest.importorskip("torch", reason="needs the [train] extra")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    ckpt = tmp_path / "model.pt"
    with open(ckpt, "wb") as handle:
        pickle.dump({"state": Evil()}, handle)
    from base_models import checkpoint

    from hpa_ens.validation import HpaEnsError

    with pytest.raises(HpaEnsError) as err:
        checkpoint.load(ckpt)
    message = str(err.value)
    assert not marker.exists() and "\n" not in message and "weights_only=False" not in message
    assert "model.pt" in message and len(message) < 300


@pytest.mark.parametrize("flag,value,name", [("--learning-rate", "-1", "learning_rate"), ("--num-leaves", "1", "num_leaves"),
                                             ("--n-rounds", "0", "n_rounds")])
def test_stack_parameters_refused_before_any_work(world, tmp_path, flag, value, name):
    out = tmp_path / "stack"
    proc = _run("hpa_ens.stack", "--labels", world / "train.csv", "--folds", world / "folds.csv",
                "--pred", world / "m1", world / "m2", "--out", out, flag, value)
    _assert_refused(proc, rf"The '{name}' parameter", rf"Got {value}(\.0)? instead", absent=out)
