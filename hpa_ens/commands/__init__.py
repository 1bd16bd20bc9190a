"""The command layer: ``hpa-ens COMMAND``, one module per subcommand, each a thin ``main(argv)`` over the library.

``hpa-ens stack …`` and ``python -m hpa_ens.stack …`` run the same ``main``; the ``python -m`` forms are
main guards (``if __name__ == "__main__": launch(...)``) in the modules named by the design, so every
old invocation keeps working. Subcommands are imported lazily: ``hpa-ens --help`` imports no stage and
never torch. Only this layer parses arguments, prints, and sets process-wide settings (thread wait
policies, offline hubs), and only where the user has not set them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

__all__ = ["COMMANDS", "main", "launch", "console_main"]

#: subcommand -> (module with a ``main(argv)``, one-line description), in pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("hpa_ens.commands.synth", "write the synthetic HPA-like image set (the embedded default)"),
    "folds": ("hpa_ens.commands.folds", "multilabel-stratified folds.csv, duplicate groups kept whole"),
    "eda": ("hpa_ens.commands.eda", "label and image exploration report, channel statistics"),
    "base-models": ("base_models.commands.base_models",
                    "train every base-model config on every fold, collect prediction sets"),
    "train": ("base_models.commands.train", "train one fold of one CNN config"),
    "collect": ("base_models.commands.collect", "assemble a config's folds into a prediction set"),
    "features": ("base_models.commands.features", "the image-feature base model (no torch)"),
    "predict": ("base_models.commands.predict", "predict new images with trained checkpoints"),
    "distill": ("base_models.commands.distill", "train a small student on a teacher's soft labels"),
    "import": ("hpa_ens.commands.import_preds", "turn a team's saved predictions (CSV, npy, npz, parquet) into a prediction set"),
    "blend": ("hpa_ens.commands.blend", "blend prediction sets (mean, rank, weighted, caruana) or vote submissions"),
    "vote": ("hpa_ens.commands.vote", "vote label by label across submission files"),
    "stack": ("hpa_ens.commands.stack", "per-class LightGBM stacker over every set's class probabilities"),
    "thresholds": ("hpa_ens.commands.thresholds", "per-class thresholds maximising macro F1 (under a target distribution)"),
    "dedup": ("hpa_ens.commands.dedup", "near-duplicate images between train, external and test"),
    "submit": ("hpa_ens.commands.submit", "thresholds, duplicates and leaks -> submission.csv"),
    "score": ("hpa_ens.commands.score", "macro F1 of a submission against a truth file"),
    "report": ("hpa_ens.commands.report", "HTML report of your prediction sets: leaderboard, correlation, per-class F1"),
    "demo": ("hpa_ens.commands.demo", "the whole pipeline on the synthetic set, with a report"),
}

#: Top-level packages whose absence means the [train] extra is not installed.
_TRAIN_EXTRA = ("torch", "timm", "torchvision", "base_models", "safetensors", "skimage")


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: hpa-ens COMMAND [options]   (hpa-ens COMMAND --help for a command's options)", "",
             "From multi-label microscopy images to a submission. Commands, in pipeline order:", ""]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Each command is also `python -m MODULE` (e.g. python -m hpa_ens.stack)."]
    return "\n".join(lines)


def _import_command(name: str, prog: str):
    """The command's module, or None after a one-line error when the [train] extra is missing."""
    from rich.markup import escape

    from ._cli import errors, train_extra_message

    try:
        return importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in _TRAIN_EXTRA:
            errors.print(f"[red]error:[/red] {escape(train_extra_message(err.name, prog))}", soft_wrap=True)
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """``hpa-ens COMMAND [options]``: dispatch to the command's ``main``."""
    from ._cli import errors, run

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from .. import __version__

        print(f"hpa-ens {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        errors.print(f"[red]error:[/red] unknown command {name!r}; expected one of {', '.join(COMMANDS)}.",
                     soft_wrap=True)
        return 2
    prog = f"hpa-ens {name}"
    module = _import_command(name, prog)
    if module is None:
        return 2
    return run(module.main, rest, prog=prog)


def launch(name: str, module: str) -> None:
    """Run command ``name`` as ``python -m module`` (a module's main guard) and exit with its code."""
    from ._cli import run

    prog = f"python -m {module}"
    command = _import_command(name, prog)
    sys.exit(2 if command is None else run(command.main, None, prog=prog))


def console_main() -> None:
    """Entry point of the ``hpa-ens`` console script."""
    sys.exit(main())
