"""Command-line plumbing shared by every command: parsers, one-line errors, verbosity, consoles, progress bars.

Every command's ``main(argv)`` is called through :func:`run`: the project's own errors
(:class:`~hpa_ens.validation.HpaEnsError`: bad input, a broken contract, a parameter out of range)
print as one line and exit 2; anything else is a bug or a failure and keeps its traceback (exit 1).
``--debug`` (or ``HPA_ENS_DEBUG=1``) shows the traceback of the one-line errors too.

**The command's name.** :func:`run` records how the user typed the command (``hpa-ens stack`` from the
dispatcher, ``python -m hpa_ens.stack`` from a module's main guard); :func:`parser` puts it in the usage
line and :func:`prog` gives it to error messages. Called directly (``main([...])`` in a test or a
notebook), a command is named ``hpa-ens NAME``.

**Verbosity.** Every parser has ``-q/--quiet`` (no progress bars, no informational lines; warnings and
errors still print) and ``-v/--verbose``. Progress bars are also off when stderr is not a terminal.
"""

from __future__ import annotations

import argparse
import contextvars
import os
import sys
from typing import Callable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from ..utils import available_cpus, resolve_n_jobs

__all__ = ["console", "errors", "progress", "progress_callback", "run", "parser", "prog", "warn", "say", "verbosity",
           "add_task_argument", "add_n_jobs_argument", "add_deprecated_pred_alias", "resolve_n_jobs", "available_cpus",
           "train_extra_message",
           "EXIT_BAD_INPUT", "EXIT_FAILURE"]

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

#: Informational output (tables, "wrote …" lines); silent under ``--quiet``.
console = Console(stderr=True, highlight=False)
#: Errors and warnings: printed whatever the verbosity.
errors = Console(stderr=True, highlight=False)

_PROG: contextvars.ContextVar[str | None] = contextvars.ContextVar("hpa_ens_prog", default=None)
_VERBOSITY: contextvars.ContextVar[int] = contextvars.ContextVar("hpa_ens_verbosity", default=0)


def prog(default: str | None = None) -> str:
    """How the running command was typed (``hpa-ens stack`` / ``python -m hpa_ens.stack``), for messages."""
    name = _PROG.get()
    if name:
        return name
    return default if default is None or " " in default else f"hpa-ens {default}"


def train_extra_message(missing: str, command: str | None = None) -> str:
    """The one-line error of a command that needs the [train] extra; ``missing`` is the absent package."""
    return (f"`{command or prog()}` needs the [train] extra ({missing} is not installed); run "
            f"`pip install 'hpa-ens[train]'` (or `make install`).")


def verbosity() -> int:
    """-1 under ``--quiet``, 1 under ``--verbose``, else 0."""
    return _VERBOSITY.get()


def _set_verbosity(level: int) -> None:
    _VERBOSITY.set(level)
    console.quiet = level < 0


def say(message: str) -> None:
    """An informational line (not under ``--quiet``)."""
    console.print(message, soft_wrap=True)


def warn(message: str) -> None:
    """A warning line, printed whatever the verbosity."""
    errors.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def progress(transient: bool = False) -> Progress:
    """The project's progress bar on stderr: off under ``--quiet`` and when stderr is not a terminal.

    **The library's progress convention.** A library function that does long work takes an optional
    ``progress`` callback and calls it as ``progress(n_done, n_total, description)``: first with
    ``n_done = 0`` once the amount of work is known, then with the running count after each piece
    (``n_total`` is fixed for one ``description``; a new description is a new piece of work, e.g. the
    next image set). The library never draws anything itself; a command wires the callback to a bar::

        with progress() as bar:
            stats = channel_stats(folder, progress=progress_callback(bar))
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=verbosity() < 0 or not console.is_terminal,
    )


def progress_callback(bar: Progress) -> Callable[[int, int, str], None]:
    """A library ``progress(n_done, n_total, description)`` callback that draws on ``bar``.

    Each new ``description`` gets its own task on the bar (added at its first call); later calls move it.
    """
    tasks: dict[str, TaskID] = {}

    def update(n_done: int, n_total: int, description: str) -> None:
        if description not in tasks:
            tasks[description] = bar.add_task(description, total=n_total)
        bar.update(tasks[description], completed=n_done, total=n_total)

    return update


def _debug_requested(argv: Sequence[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else list(argv)
    return "--debug" in args or os.environ.get("HPA_ENS_DEBUG") == "1"


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
        prog: str | None = None) -> int:
    """Call ``main(argv)`` as the command ``prog``; the project's expected errors become one line, exit 2.

    Only :class:`~hpa_ens.validation.HpaEnsError` (bad input) is shortened. Any other exception propagates
    with its traceback (the interpreter exits 1), so a real bug is never disguised as a message.
    """
    from ..validation import HpaEnsError

    prog_token = _PROG.set(prog)
    verbosity_token = _VERBOSITY.set(0)
    console.quiet = False
    try:
        code = main(argv)
    except HpaEnsError as err:
        if _debug_requested(argv):
            raise
        text = str(err).strip()
        message = text.splitlines()[0] if text else type(err).__name__
        errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
        return EXIT_BAD_INPUT
    finally:
        _PROG.reset(prog_token)
        _VERBOSITY.reset(verbosity_token)
        console.quiet = False
    return int(code or 0)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show every default, but not "(default: None)" on flags that have none or are required."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required or action.default in (None, argparse.SUPPRESS) or "%(default)" in text:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._CountAction)):
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An argument parser that applies ``--quiet``/``--verbose`` as it parses."""

    def parse_args(self, args=None, namespace=None):  # noqa: D102 - argparse's
        parsed = super().parse_args(args, namespace)
        quiet, verbose = getattr(parsed, "quiet", False), getattr(parsed, "verbose", False)
        _set_verbosity(-1 if quiet else (1 if verbose else 0))
        return parsed


def parser(command: str, description: str) -> argparse.ArgumentParser:
    """The project's argument parser for ``command``: defaults in ``--help``, ``--debug``, ``-q``/``-v``.

    ``command`` is the subcommand's name (``"stack"``: usage ``hpa-ens stack``) or a full program name;
    when :func:`run` was told how the user typed the command, that name is used instead.
    """
    ap = _Parser(prog=prog(command), description=description, formatter_class=_HelpFormatter)
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an input error too")
    loud = ap.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors (no progress bars)")
    loud.add_argument("-v", "--verbose", action="store_true", help="print more detail")
    return ap


# ---------------------------------------------------------------------------------- shared flags
def _n_jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an integer is required. Got {text!r} instead.") from None
    return value


def add_n_jobs_argument(ap: argparse.ArgumentParser) -> None:
    """``--n-jobs N``: workers/threads in joblib's convention (-1 every CPU, -2 all but one, …)."""
    ap.add_argument("--n-jobs", type=_n_jobs, default=-1,
                    help=f"parallel workers or threads; -1 = every available CPU (here {available_cpus()}), "
                         f"-2 = all but one, …")


def add_task_argument(ap: argparse.ArgumentParser) -> None:
    """``--task``: a built-in task name or a task file (CSV id,name or YAML); default HPA 2018."""
    from ..task import BUILTIN_TASKS, DEFAULT_TASK

    ap.add_argument("--task", default=DEFAULT_TASK.name,
                    help=f"the classes: a built-in name ({', '.join(sorted(BUILTIN_TASKS))}), a CSV id,name or a "
                         f"YAML task file")


class _DeprecatedAlias(argparse.Action):
    """A hidden old spelling of a flag: stores like the new one and says, in one warning line, to use that."""

    def __init__(self, option_strings, dest, replacement: str, reason: str = "", **kwargs):
        self.replacement, self.reason = replacement, reason
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        warn(f"{option_string} is deprecated in {parser.prog}: use {self.replacement}{self.reason}.")


def add_deprecated_pred_alias(ap: argparse.ArgumentParser, nargs: str | None = "+") -> None:
    """``--models`` as a hidden, deprecated alias of ``--pred`` (prediction-set folders).

    ``--models`` names base-model *configs* (``base-models``, ``demo``); where it once meant prediction
    sets it still works for old scripts, with a one-line warning pointing at ``--pred``.
    """
    ap.add_argument("--models", dest="pred", nargs=nargs, action=_DeprecatedAlias, replacement="--pred",
                    reason=" (prediction-set folders; --models names base-model configs in base-models and demo)",
                    help=argparse.SUPPRESS)
