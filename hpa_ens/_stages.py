"""Run pipeline stages as subprocesses and skip those whose inputs have not changed.

A stage is fresh when its stamp file records the same fingerprint (command line + sha256 of every
input file) and all its outputs exist. This is what makes a second ``make demo`` take seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .io import atomic_write_json, sha256_file


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
    digest = hashlib.sha256()
    digest.update(json.dumps(stage.command).encode())
    digest.update(json.dumps(sorted(stage.env.items())).encode())
    for path in stage.inputs:
        digest.update(str(path).encode())
        digest.update(_input_digest(path).encode())
    return digest.hexdigest()


def is_fresh(stage: Stage, stamp_dir: Path) -> bool:
    stamp = stamp_dir / f"{stage.name}.json"
    if not stamp.exists() or not all(p.exists() for p in stage.outputs):
        return False
    try:
        return json.loads(stamp.read_text())["fingerprint"] == fingerprint(stage)
    except (json.JSONDecodeError, KeyError):
        return False


def run_stage(stage: Stage, stamp_dir: Path, force: bool = False, log_dir: Path | None = None) -> tuple[bool, float]:
    """Run ``stage`` unless fresh. Returns (ran, wall seconds of the run or of the recorded run)."""
    stamp = stamp_dir / f"{stage.name}.json"
    if not force and is_fresh(stage, stamp_dir):
        return False, float(json.loads(stamp.read_text()).get("seconds", 0.0))
    env = dict(os.environ, **stage.env)
    start = time.perf_counter()
    log = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"{stage.name}.log", "w")
    try:
        proc = subprocess.run(stage.command, env=env, stdout=log or None, stderr=subprocess.STDOUT if log else None)
    finally:
        if log is not None:
            log.close()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        hint = f"; see {log_dir / (stage.name + '.log')}" if log_dir else ""
        raise RuntimeError(f"stage '{stage.name}' failed with exit code {proc.returncode}{hint}: {' '.join(stage.command)}")
    missing = [str(p) for p in stage.outputs if not p.exists()]
    if missing:
        raise RuntimeError(f"stage '{stage.name}' finished but did not write {missing[:3]}")
    atomic_write_json(stamp, {"fingerprint": fingerprint(stage), "seconds": seconds, "command": stage.command})
    return True, seconds


def py(module: str, *args: str | os.PathLike) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]
