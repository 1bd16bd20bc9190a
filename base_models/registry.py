"""Every name -> factory registry of the base models, and where their built-in entries live.

A config names a head, a loss, a sampler, an optimiser, a scheduler; a typo gives an error listing
the valid names, never a silent ``None``. The registries are defined here and nowhere else; the
modules that hold the built-in entries register them with the decorator
(``@LOSSES.register("lovasz")``) and import only this module, so no two modules import each other
to fill a registry. A registry imports its built-in modules the first time it is read, so the list
is complete however the package was entered, and ``base_models.segment`` (numpy only) never pulls
in torch.
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterator, Sequence

from hpa_ens.validation import ContractError, ParameterError


class Registry:
    """A small mapping from names to factories.

    Parameters
    ----------
    kind : str
        What the entries are, for error messages ("loss", "sampler", ...).
    builtins : sequence of str
        Modules holding the built-in entries, imported on the first lookup.
    """

    def __init__(self, kind: str, builtins: Sequence[str] = ()):
        self.kind = kind
        self.builtins = tuple(builtins)
        self._entries: dict[str, Callable] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.builtins:
                importlib.import_module(module)

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator registering ``factory`` under ``name`` (refuses a duplicate name)."""

        def deco(factory: Callable) -> Callable:
            if name in self._entries:
                raise ContractError(f"The {self.kind} {name!r} is already registered.")
            self._entries[name] = factory
            return factory

        return deco

    def get(self, name: str) -> Callable:
        """The factory registered as ``name``; an error naming the valid ones otherwise."""
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ParameterError(
                f"The '{self.kind}' parameter must be one of {', '.join(sorted(self._entries))}. "
                f"Got {name!r} instead."
            ) from None

    def check(self, name) -> None:
        """Refuse an unknown name (the error of :meth:`get`) without building anything."""
        self.get(name)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


HEADS = Registry("head", ("base_models.models", "base_models.heads"))
LOSSES = Registry("loss", ("base_models.losses",))
SAMPLERS = Registry("sampler", ("base_models.samplers",))
