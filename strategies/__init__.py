"""flushback.strategies: backtrader strategies over precomputed signals.

Only this package imports backtrader, through :mod:`flushback.strategies.adapter` (the feed,
fills, costs and bookkeeping); the strategy modules build on it. Parameter declarations and
the registry live in :mod:`flushback.strategies.config`, which does not import backtrader.

    from flushback.strategies import FlushbackStrategy, register_strategy
"""

from __future__ import annotations

from typing import Any

from flushback.strategies.config import (
    get_strategy,
    list_strategies,
    register_strategy,
    strategy_param_specs,
)

__all__ = [
    "FlushbackStrategy",
    "ContrarianStrategy",
    "BuyAndHold",
    "FearGreedAccumulation",
    "get_strategy",
    "list_strategies",
    "register_strategy",
    "strategy_param_specs",
]

_LAZY = {
    "FlushbackStrategy": "flushback.strategies.adapter",
    "ContrarianStrategy": "flushback.strategies.contrarian",
    "BuyAndHold": "flushback.strategies.benchmarks",
    "FearGreedAccumulation": "flushback.strategies.benchmarks",
}


def __getattr__(name: str) -> Any:  # imports backtrader only when a strategy class is used
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flushback.strategies' has no attribute {name!r}")
