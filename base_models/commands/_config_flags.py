"""One command-line flag per training-config key (``image_size`` -> ``--image-size``), for train and distill.

The keys, their types, ranges and help lines are :data:`base_models.config.SPEC`; flags only override the
YAML, and :func:`base_models.config.load_config` checks the result.
"""

from __future__ import annotations

import argparse

import yaml

from ..config import SPEC

__all__ = ["parse_value", "add_config_flags", "overrides_from_args"]


def parse_value(text: str):
    """A flag's text parsed as YAML (numbers, booleans, null, mappings); plain text stays a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def add_config_flags(ap: argparse.ArgumentParser, skip: tuple = ()) -> None:
    """One ``--key-name`` flag (also accepted as ``--key_name``) per config key, default: not given.

    A true/false key's flag alone means true (``--pretrained`` = ``--pretrained true``).
    """
    group = ap.add_argument_group("config keys (flags override the YAML; values parsed as YAML)")
    for key, spec in SPEC.items():
        if key in skip or key == "kind":
            continue
        flags = [f"--{key.replace('_', '-')}"] + ([f"--{key}"] if "_" in key else [])
        switch = {"nargs": "?", "const": True} if spec.kind == "bool" else {}
        group.add_argument(*flags, dest=f"cfg_{key}", type=parse_value, default=argparse.SUPPRESS,
                           metavar=spec.kind.rstrip("?").upper(), help=spec.describe().replace("%", "%%"), **switch)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The config keys given as flags: ``{key: value}``."""
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_")}
