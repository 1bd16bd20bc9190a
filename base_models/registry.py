"""Name -> factory registries (backbone heads, losses, samplers, optimisers, schedulers).

A typo gives an error listing the valid names, never a silent ``None`` (the ``globals().get`` trap).
Later issues register new entries with the decorator, e.g. ``@LOSSES.register("lovasz")``.
"""

from __future__ import annotations

from typing import Callable, Iterator
from hpa_ens._validation import ContractError  # noqa: E402


class Registry:
    """A small mapping from names to factories.

    Parameters
    ----------
    kind : str
        What the entries are, for error messages ("loss", "sampler", ...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        """Decorator registering ``factory`` under ``name`` (refuses a duplicate name)."""

        def deco(factory: Callable) -> Callable:
            if name in self._entries:
                raise ContractError(f"The {self.kind} {name!r} is already registered.")
            self._entries[name] = factory
            return factory

        return deco

    def get(self, name: str) -> Callable:
        """The factory registered as ``name``; a ValueError naming the valid ones otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ContractError(
                f"The '{self.kind}' parameter must be one of {', '.join(sorted(self._entries))}. "
                f"Got {name!r} instead."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
