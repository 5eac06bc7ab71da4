"""Choosing an engine: the one entry point ``backtests/`` calls to run a strategy.

- ``"backtrader"``: the reference engine (:mod:`flushback.strategies.adapter` and the strategy
  classes); runs every strategy, custom ones included.
- ``"fast"``: the compiled engine (:mod:`flushback.strategies.fast`, kernel in
  :mod:`flushback.strategies.nb`), proven equal to the reference by the parity tests; runs the
  built-in strategy types.

Both take the same inputs and return the same :class:`~flushback.strategies.results.EngineResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from flushback.data.errors import ConfigError
from flushback.strategies.columns import builtin_feed_columns
from flushback.strategies.config import builtin_strategies, get_strategy, list_strategies
from flushback.strategies.results import EngineResult

__all__ = ["ENGINES", "check_engine", "engine_supports", "feed_columns", "run_strategy"]

ENGINES = ("backtrader", "fast")


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'", hint="one of: " + ", ".join(ENGINES))
    return engine


def engine_supports(engine: str, strategy_type: str) -> bool:
    """Whether ``engine`` runs ``strategy_type`` (the fast engine: the built-in types)."""
    check_engine(engine)
    return engine == "backtrader" or strategy_type in builtin_strategies()


def feed_columns(strategy_type: str, frame: pd.DataFrame, cfg: dict,
                 periods_per_year: int) -> dict:
    """The extra per-bar columns a strategy type reads (computed in pandas on ``frame``)."""
    if strategy_type in builtin_strategies():
        return builtin_feed_columns(strategy_type, frame, cfg, periods_per_year)
    if strategy_type not in list_strategies():
        get_strategy(strategy_type)  # raises the did-you-mean error
    return get_strategy(strategy_type).feed_columns(frame, cfg, periods_per_year)


def run_strategy(
    engine: str,
    strategy_type: str,
    frame: pd.DataFrame,
    extra: pd.DataFrame | None = None,
    *,
    cash: float,
    commission: float,
    slippage: float,
    funding: bool | str,
    cfg: dict[str, Any],
    on_progress: Callable[[int, int], None] | None = None,
    validate: bool = True,
) -> EngineResult:
    """Run ``strategy_type`` with ``cfg`` on ``frame`` (+ ``extra`` columns) on ``engine``."""
    check_engine(engine)
    if engine == "fast":
        if not engine_supports(engine, strategy_type):
            raise ConfigError(
                f"the fast engine does not run strategy type '{strategy_type}'",
                hint="run it with --engine backtrader (the fast engine runs: "
                + ", ".join(builtin_strategies()) + ")",
            )
        from flushback.strategies.fast import run_fast

        res = run_fast(strategy_type, frame, extra, cash=cash, commission=commission,
                       slippage=slippage, funding=funding, strategy_params={"cfg": cfg},
                       validate=validate)
        if on_progress is not None:
            on_progress(len(frame), len(frame))
        return res
    from flushback.strategies.adapter import run_engine

    return run_engine(get_strategy(strategy_type), frame, extra, cash=cash,
                      commission=commission, slippage=slippage, funding=funding,
                      strategy_params={"cfg": cfg}, on_progress=on_progress,
                      validate=validate)
