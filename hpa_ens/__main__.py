"""``hpa-ens`` / ``python -m hpa_ens``: one command, a subcommand per stage.

``hpa-ens stack …`` is ``python -m hpa_ens.stack …``; every ``python -m`` form keeps working.
Subcommands are resolved lazily, so ``hpa-ens --help`` imports neither torch nor any stage.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

#: subcommand -> (module with a ``main(argv)``, one-line description), in pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("hpa_ens.synth.generate", "write the synthetic HPA-like image set (the embedded default)"),
    "folds": ("hpa_ens.folds", "multilabel-stratified folds.csv, duplicate groups kept whole"),
    "eda": ("hpa_ens.eda", "label and image exploration report, channel statistics"),
    "base-models": ("base_models.run_all", "train every base-model config on every fold, collect prediction sets"),
    "train": ("base_models.train", "train one fold of one CNN config"),
    "collect": ("base_models.collect", "assemble a config's folds into a prediction set"),
    "features": ("base_models.features", "the image-feature base model (no torch)"),
    "predict": ("base_models.predict", "predict new images with trained checkpoints"),
    "distill": ("base_models.distill", "train a small student on a teacher's soft labels"),
    "import": ("hpa_ens.import_preds", "turn a team's saved predictions (CSV, npy, npz, parquet) into a prediction set"),
    "blend": ("hpa_ens.blend", "blend prediction sets (mean, rank, weighted, caruana) or vote submissions"),
    "stack": ("hpa_ens.stack", "per-class LightGBM stacker over every set's class probabilities"),
    "thresholds": ("hpa_ens.tune_thresholds", "per-class thresholds maximising macro F1 (under a target distribution)"),
    "dedup": ("hpa_ens.dedup", "near-duplicate images between train, external and test"),
    "submit": ("hpa_ens.submit", "thresholds, duplicates and leaks -> submission.csv"),
    "score": ("hpa_ens.score", "macro F1 of a submission against a truth file"),
    "demo": ("hpa_ens.demo", "the whole pipeline on the synthetic set, with a report"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: hpa-ens COMMAND [options]   (hpa-ens COMMAND --help for a command's options)", "",
             "From multi-label microscopy images to a submission. Commands, in pipeline order:", ""]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Each command is also `python -m MODULE` (e.g. python -m hpa_ens.stack)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import console, run

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from . import __version__

        print(f"hpa-ens {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        console.print(f"[red]error:[/red] unknown command {name!r}; expected one of {', '.join(COMMANDS)}.",
                      soft_wrap=True)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in ("torch", "timm", "torchvision", "base_models"):
            console.print(f"[red]error:[/red] `hpa-ens {name}` needs the [train] extra ({err.name} is not installed); "
                          f"run `make install`.", soft_wrap=True)
            return 2
        raise
    return run(module.main, rest)


def console_main() -> None:
    """Entry point of the ``hpa-ens`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
