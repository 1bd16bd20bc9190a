"""Run pipeline stages as subprocesses and skip those whose inputs have not changed.

A stage is fresh when its stamp records the same fingerprint (command line, environment overrides and
the sha256 of every input file) and all its outputs exist: the project's one freshness rule,
:func:`hpa_ens.contract.is_current`. This is what makes a second ``make demo`` take seconds, and a run
killed in the middle of a stage resume at that stage (its stamp is written only after its outputs).

A stage's output goes to its log file; lines that report a finished fold (``… fold K: …``) are also
printed, so a log of ``make demo`` shows progress even when its output is not a terminal.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..contract import fingerprint_of, is_current, write_stamp
from ..io import sha256_file

#: A line a stage prints when one fold of a base model is finished (echoed to the console).
FOLD_LINE = re.compile(r"\bfold \d+: .*(F1|already complete)")


@dataclass
class Stage:
    name: str
    command: list[str]
    inputs: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _input_digest(path: Path) -> str:
    if path.is_dir():
        # A folder input (configs, code): hash its files' names and contents.
        digest = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                digest.update(str(p.relative_to(path)).encode())
                digest.update(sha256_file(p).encode())
        return digest.hexdigest()
    return sha256_file(path) if path.exists() else "missing"


def fingerprint(stage: Stage) -> str:
    """What the stage's result depends on: its command, its environment overrides, its inputs' contents."""
    return fingerprint_of({"command": [str(c) for c in stage.command], "env": dict(sorted(stage.env.items())),
                           "inputs": [[str(p), _input_digest(p)] for p in stage.inputs]})


def _stamp(stage: Stage, stamp_dir: Path) -> Path:
    return stamp_dir / f"{stage.name}.json"


def is_fresh(stage: Stage, stamp_dir: Path) -> bool:
    return is_current(_stamp(stage, stamp_dir), fingerprint(stage), stage.outputs)


def _recorded_seconds(stamp: Path) -> float:
    import json

    try:
        return float(json.loads(stamp.read_text(encoding="utf-8")).get("seconds", 0.0))
    except (OSError, ValueError, TypeError):
        return 0.0


def run_stage(stage: Stage, stamp_dir: Path, force: bool = False, log_dir: Path | None = None,
              echo: Callable[[str], None] | None = None) -> tuple[bool, float]:
    """Run ``stage`` unless fresh. Returns (ran, wall seconds of the run or of the recorded run).

    ``echo`` receives every output line that reports a finished fold (:data:`FOLD_LINE`).
    """
    stamp = _stamp(stage, stamp_dir)
    fp = fingerprint(stage)
    if not force and is_current(stamp, fp, stage.outputs):
        return False, _recorded_seconds(stamp)
    env = dict(os.environ, **stage.env)
    start = time.perf_counter()
    log = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"{stage.name}.log", "w", encoding="utf-8")
    try:
        if log is None:
            proc = subprocess.run(stage.command, env=env)
            returncode = proc.returncode
        else:
            with subprocess.Popen(stage.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, encoding="utf-8", errors="replace", bufsize=1) as proc:
                for line in proc.stdout:
                    log.write(line)
                    log.flush()
                    if echo is not None and FOLD_LINE.search(line):
                        echo(line.rstrip())
            returncode = proc.returncode
    finally:
        if log is not None:
            log.close()
    seconds = time.perf_counter() - start
    if returncode != 0:
        hint = f"; see {log_dir / (stage.name + '.log')}" if log_dir else ""
        raise RuntimeError(f"stage '{stage.name}' failed with exit code {returncode}{hint}: {' '.join(stage.command)}")
    missing = [str(p) for p in stage.outputs if not p.exists()]
    if missing:
        raise RuntimeError(f"stage '{stage.name}' finished but did not write {missing[:3]}")
    write_stamp(stamp, fp, seconds=seconds, command=[str(c) for c in stage.command])
    return True, seconds


def py(module: str, *args: str | os.PathLike) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]
