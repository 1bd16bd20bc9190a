"""Where the base-model commands print what the library reports through its callbacks.

Module-level functions, so ``base-models`` can hand them to fold jobs in other processes (they pickle by
name). ``warn`` is :func:`hpa_ens.commands._cli.warn`.
"""

from __future__ import annotations

from hpa_ens.commands._cli import console, warn

__all__ = ["echo", "note", "warn"]


def echo(line: str) -> None:
    """A line of the run's record (a finished or kept fold, a model's score): stdout, flushed, whatever the
    verbosity, so a log file shows it as it happens and the demo echoes fold lines
    (:data:`hpa_ens.commands._stages.FOLD_LINE`)."""
    print(line, flush=True)


def note(line: str) -> None:
    """A note while working (resuming, skipped images, a feature-model fold): the console (stderr), silent
    under ``--quiet``."""
    console.print(line)
