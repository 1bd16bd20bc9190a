"""Killed runs (issue 17.8): ``kill -9`` of the demo during base models and again during the stack, then a
rerun, gives the same submission bytes as an uninterrupted run with the same seed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs the [train] extra")

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--data", "data", "--work", "work", "--reports", "reports", "--oof", "oof", "--n-train", "72", "--n-test",
        "24", "--size", "32", "--n-folds", "2", "--models", "features,regnetx_002", "--epochs", "1",
        "--image-size", "32", "--seed", "3"]
SUBMISSIONS = ("submit_thresholds.csv", "submit_duplicates.csv", "submit_leak.csv")


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO), HPA_ENS_NO_PROGRESS="1", HF_HUB_OFFLINE="1", MPLBACKEND="Agg")


def _start(cwd: Path) -> subprocess.Popen:
    # Its own session, so that the kill reaches every stage subprocess and fold worker, as a machine
    # that dies would.
    return subprocess.Popen([sys.executable, "-m", "hpa_ens.demo", *ARGS], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the demo ended before the kill point:\n{proc.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _finish(cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "hpa_ens.demo", *ARGS], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


@pytest.mark.xdist_group("killed_runs")
def test_killed_during_base_models_and_stack_then_rerun_gives_the_same_submission(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir()
    killed.mkdir()
    _finish(reference)

    # 1. Killed while the CNN folds train (a fold folder exists, its stage has no stamp yet).
    proc = _start(killed)
    _kill_when(proc, lambda: (killed / "oof" / "regnetx_002" / "fold0").is_dir())
    assert not (killed / "work" / "stamps" / "base_models.json").exists()
    # 2. Killed during the stack (its stage started; everything before it is stamped).
    proc = _start(killed)
    _kill_when(proc, lambda: (killed / "work" / "logs" / "stack.log").exists())
    assert (killed / "work" / "stamps" / "base_models.json").exists()
    assert not (killed / "work" / "stamps" / "stack.json").exists()
    log = _finish(killed)
    assert "synth … fresh, skipped" in log and "base_models … fresh, skipped" in log

    for name in SUBMISSIONS:
        assert (killed / "work" / name).read_bytes() == (reference / "work" / name).read_bytes(), name
