"""Shared command-line plumbing: one-line errors, a rich console, progress bars."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, highlight=False)


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


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Call ``main`` and turn expected errors into a one-line message and exit code 2."""
    from ._validation import ContractError

    try:
        code = main(argv)
    except (ContractError, ValueError, FileNotFoundError, KeyError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
        return 2
    return int(code or 0)


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def entry(main: Callable[[Sequence[str] | None], int | None]) -> None:
    """``if __name__ == "__main__": entry(main)``."""
    sys.exit(run(main))
