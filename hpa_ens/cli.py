"""Shared command-line plumbing: one-line errors, the shared flags, a rich console, progress bars.

Every stage's ``main(argv)`` is called through :func:`run`: the project's own errors
(:class:`~hpa_ens._validation.HpaEnsError`: bad input, a broken contract, a parameter out of range)
print as one line and exit 2; anything else is a bug or a failure and keeps its traceback (exit 1).
``--debug`` (or ``HPA_ENS_DEBUG=1``) shows the traceback of the one-line errors too.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, highlight=False)

__all__ = ["console", "progress", "run", "parser", "entry", "available_cpus", "add_task_argument",
           "add_n_jobs_argument", "resolve_n_jobs", "EXIT_BAD_INPUT", "EXIT_FAILURE"]

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def progress(transient: bool = False) -> Progress:
    """The project's standard progress bar (on stderr; silent when not a terminal unless forced)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=os.environ.get("HPA_ENS_NO_PROGRESS") == "1",
    )


def _debug_requested(argv: Sequence[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else list(argv)
    return "--debug" in args or os.environ.get("HPA_ENS_DEBUG") == "1"


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Call ``main``; the project's expected errors become one line and exit code 2.

    Only :class:`HpaEnsError` (bad input) is shortened. Any other exception propagates with its
    traceback (the interpreter exits 1), so a real bug is never disguised as a message.
    """
    from ._validation import HpaEnsError

    try:
        code = main(argv)
    except HpaEnsError as err:
        if _debug_requested(argv):
            raise
        text = str(err).strip()
        message = text.splitlines()[0] if text else type(err).__name__
        console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
        return EXIT_BAD_INPUT
    return int(code or 0)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show every default, but not "(default: None)" on flags that have none or are required."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required or action.default in (None, argparse.SUPPRESS) or "%(default)" in text:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return text
        return super()._get_help_string(action)


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The project's argument parser: defaults in ``--help``, plus ``--debug``."""
    ap = argparse.ArgumentParser(prog=prog, description=description, formatter_class=_HelpFormatter)
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an input error too")
    return ap


def entry(main: Callable[[Sequence[str] | None], int | None]) -> None:
    """``if __name__ == "__main__": entry(main)``."""
    sys.exit(run(main))


# ---------------------------------------------------------------------------------- shared flags
def available_cpus() -> int:
    """CPUs this process may use: its CPU affinity, capped by a cgroup (container) CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_limit()
    if quota is not None:
        count = min(count, quota)
    return max(1, count)


def _cgroup_cpu_limit() -> int | None:
    """The cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``) CPU limit, rounded up; None when unlimited."""
    import math

    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", encoding="ascii") as handle:
            quota_us = int(handle.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us", encoding="ascii") as handle:
            period_us = int(handle.read())
        if quota_us > 0 and period_us > 0:
            return max(1, math.ceil(quota_us / period_us))
    except (OSError, ValueError):
        pass
    return None


def resolve_n_jobs(n_jobs: int | None) -> int:
    """``None``, 0 or -1 mean every available CPU; a positive number is taken as given (at least 1)."""
    from ._validation import check_param

    if n_jobs is None or n_jobs in (0, -1):
        return available_cpus()
    check_param("n_jobs", n_jobs, "a positive integer, or -1/0 for every available CPU",
                isinstance(n_jobs, int) and n_jobs > 0)
    return int(n_jobs)


def add_n_jobs_argument(ap: argparse.ArgumentParser) -> None:
    """``--n-jobs N``: parallel workers/threads; default every available CPU (affinity and cgroup aware)."""
    ap.add_argument("--n-jobs", type=int, default=-1,
                    help=f"parallel workers or threads; -1 = every available CPU (here {available_cpus()})")


def add_task_argument(ap: argparse.ArgumentParser) -> None:
    """``--task``: a built-in task name or a task file (CSV id,name or YAML); default HPA 2018."""
    from .task import BUILTIN_TASKS, DEFAULT_TASK

    ap.add_argument("--task", default=DEFAULT_TASK.name,
                    help=f"the classes: a built-in name ({', '.join(sorted(BUILTIN_TASKS))}), a CSV id,name or a "
                         f"YAML task file")
