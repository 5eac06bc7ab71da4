"""flushback.signals: pure pandas/numpy signals over the assembled frame.

The contract is the docstring of :class:`flushback.signals.base.Signal`. Signals are
registered by ``@register("name")`` in the modules imported below (no directory scanning)::

    from flushback.signals import build_signal
    sig = build_signal({"type": "all", "window": 2, "of": [
        {"type": "extreme_fear", "threshold": 15},
        {"type": "any", "of": [{"type": "liquidation_spike"}, {"type": "oversold_rsi",
                                                               "threshold": 25}]},
    ]})
    triggers = sig.compute(frame)          # bool Series on frame.index
    sig.search_space()                     # {"window": Param, "of.0.threshold": Param, ...}

This package imports only numpy, pandas and ``flushback.data`` (never strategies, backtests,
backtrader or optuna).
"""

from flushback.signals import (
    breadth,
    compose,
    derivatives,
    generic,
    liquidations,
    price,
    rsi,
    sentiment,
    structure,
)
from flushback.signals.base import Param, Signal, SignalCache, bar_interval, cached_part
from flushback.signals.registry import (
    build_signal,
    get_signal,
    list_signals,
    register,
    temporary_registration,
)


def get(name: str, **params: object) -> Signal:
    """A signal by its registry name with parameters: ``get("oversold_rsi", period=14)``."""
    return build_signal({"type": name, **params})


__all__ = [
    "Param",
    "Signal",
    "SignalCache",
    "bar_interval",
    "breadth",
    "build_signal",
    "cached_part",
    "compose",
    "derivatives",
    "generic",
    "get_signal",
    "liquidations",
    "list_signals",
    "price",
    "register",
    "rsi",
    "sentiment",
    "structure",
    "temporary_registration",
]
