"""Routing strategies, one module each; the registry finds every Strategy subclass defined in this package."""

from __future__ import annotations

import importlib
import pkgutil

from leadflow.core.strategies.base import Pick, Strategy, Turn, tier_band

__all__ = ["STRATEGIES", "Pick", "Strategy", "Turn", "strategy", "tier_band"]


def _discover() -> dict[str, Strategy]:
    found: dict[str, Strategy] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    todo = list(Strategy.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if "key" in vars(cls):
            found[cls.key] = cls()
    return dict(sorted(found.items()))


STRATEGIES: dict[str, Strategy] = _discover()


def strategy(key: str) -> Strategy:
    """The strategy registered under this key."""
    return STRATEGIES[key]
