"""Atomic file writes, hashing, and a lock file: a crash never leaves a half-written output, and two writers
of one output take turns."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temp file beside ``path``; on success fsync and rename it over ``path``.

    The rename is atomic on POSIX, so readers see the old file or the new one, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the output the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serialisable")


def writable_cache_dir(data_dir: str | os.PathLike, *parts: str) -> Path:
    """``DATA/.cache/<parts>`` when it can be written, else ``~/.cache/hpa_ens/<parts>`` (read-only data folders)."""
    candidate = Path(data_dir, ".cache", *parts)
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        if os.access(candidate, os.W_OK):
            return candidate
    except OSError:
        pass
    fallback = Path.home().joinpath(".cache", "hpa_ens", *parts)
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float | None = None, what: str | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on the lock file ``path`` (created, and removed on release) while the block runs.

    The lock is ``fcntl.flock`` on the open file: the kernel drops it when its holder exits, however it
    exits, so the lock of a process killed with ``kill -9`` never blocks anyone (its file may stay behind;
    the next holder takes it over). The file holds the holder's pid, for the waiter's message. A lock held
    by this process is not re-entrant: a second ``file_lock`` on the same path from the same process waits
    for the first.

    Parameters
    ----------
    path : path-like, the lock file (its folder is created)
    timeout : float or None
        Seconds to wait for another holder; None waits as long as it takes.
    what : str, optional, what the lock guards, for the timeout message (default ``path``)

    Raises
    ------
    hpa_ens.validation.ContractError
        When ``timeout`` runs out, naming the holder's pid.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        from .validation import ContractError

                        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                        raise ContractError(f"{what or path}: another process (pid {holder}) has held its lock "
                                            f"{path} for more than {timeout:g} s; try again when it has finished.")
                    time.sleep(delay)
                    delay = min(2 * delay, 0.2)
            # A releasing holder unlinks the file: the lock counts only on the file still at ``path``.
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield path
    finally:
        # Unlinked while still held: a waiter that opened it finds it gone and opens the new one.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
