"""Transitional alias of :mod:`hpa_ens.commands._cli` while stage modules move to the command layer.

Removed once no library module needs it (tests/test_architecture.py lists the modules still using it).
"""

import sys

from .commands._cli import *  # noqa: F401,F403
from .commands._cli import _debug_requested, console, errors, parser, progress, run  # noqa: F401
from .utils import available_cpus, resolve_n_jobs  # noqa: F401


def entry(main) -> None:
    """``if __name__ == "__main__": entry(main)`` (old-style modules only; new ones call commands.launch)."""
    sys.exit(run(main))
