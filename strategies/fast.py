"""The fast engine's API: frames and configs in, an :class:`EngineResult` out, through the
compiled kernel of :mod:`flushback.strategies.nb`.

It runs the built-in strategy types (``contrarian``, ``buy_and_hold``,
``fear_greed_accumulation``) with the reference engine's rules (see the kernel's docstring);
a custom (registered) strategy runs on backtrader only. :func:`prepare_arrays` and
:func:`config_vector` are the two halves of a run, so that an optimizer can convert the bars
once and change only the config vector (and the signal arrays) per trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.errors import ConfigError
from flushback.strategies import nb
from flushback.strategies.columns import bar_hours, validate_bars
from flushback.strategies.config import strategy_param_specs, validate_strategy_params
from flushback.strategies.results import (
    FILL_COLUMNS,
    TRADE_COLUMNS,
    EngineResult,
    equity_frame,
    trades_frame,
)

__all__ = ["FAST_STRATEGIES", "FastArrays", "prepare_arrays", "config_vector", "run_fast"]

FAST_STRATEGIES = {
    "contrarian": nb.KIND_CONTRARIAN,
    "buy_and_hold": nb.KIND_BUY_AND_HOLD,
    "fear_greed_accumulation": nb.KIND_FEAR_GREED,
}
_EMPTY = np.empty(0, dtype=np.float64)
# The kernel's config vector has a slot for every built-in type's parameters; a type fills the
# slots of the others with their declared defaults (unused by its kind).
_ALL_DEFAULTS = {key: p.default for name in FAST_STRATEGIES
                 for key, p in strategy_param_specs(name).items()}
_LINES = ("entry", "exit", "vol", "fng", "funding_rate", "level_tp", "level_sl")


@dataclass
class FastArrays:
    """The kernel's inputs for one window: OHLC (n x 4) and the optional per-bar lines
    (length n, or length 0 when the feed does not carry them)."""

    index: pd.DatetimeIndex
    ohlc: np.ndarray
    lines: dict[str, np.ndarray]
    bar_hours: float

    def line(self, name: str) -> np.ndarray:
        return self.lines.get(name, _EMPTY)


def _as_float(values: Any) -> np.ndarray:
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if s.dtype == bool or s.dtype == np.float64:
        return np.ascontiguousarray(s.to_numpy(dtype=np.float64))
    return np.ascontiguousarray(pd.to_numeric(s.astype("float64"), errors="coerce")
                                .to_numpy(dtype=np.float64, na_value=np.nan))


def prepare_arrays(frame: pd.DataFrame, extra: pd.DataFrame | None = None, *,
                   validate: bool = True) -> FastArrays:
    """Convert the bars (and ``extra``'s columns, as the reference feed reads them: booleans
    as 1.0/0.0, missing as NaN) to the kernel's arrays."""
    if validate:
        validate_bars(frame)
    ohlc = np.ascontiguousarray(frame[["open", "high", "low", "close"]].to_numpy(
        dtype=np.float64))
    lines: dict[str, np.ndarray] = {}
    if extra is not None:
        for name in _LINES:
            if name in extra.columns:
                lines[name] = _as_float(extra[name])
    return FastArrays(index=frame.index, ohlc=ohlc, lines=lines, bar_hours=bar_hours(frame))


def config_vector(strategy_type: str, cfg: Mapping[str, Any], *, cash: float,
                  commission: float, slippage: float, funding: bool | str,
                  bar_hours: float, validated: bool = False) -> np.ndarray:
    """The kernel's config vector (layout: the ``CFG_*`` indices of the kernel module);
    ``validated``: ``cfg`` is already a validated, complete parameter set."""
    if strategy_type not in FAST_STRATEGIES:
        raise ConfigError(
            f"the fast engine does not run strategy type '{strategy_type}'",
            hint="run it with --engine backtrader (the fast engine runs: "
            + ", ".join(FAST_STRATEGIES) + ")",
        )
    v = np.zeros(nb.CFG_SIZE, dtype=np.float64)
    v[nb.CFG_KIND] = FAST_STRATEGIES[strategy_type]
    v[nb.CFG_CASH] = float(cash)
    v[nb.CFG_COMMISSION] = float(commission)
    v[nb.CFG_SLIPPAGE] = float(slippage)
    v[nb.CFG_FUNDING] = funding_code(funding)
    v[nb.CFG_BAR_HOURS] = float(bar_hours)
    c = {**_ALL_DEFAULTS, **(cfg if validated else validate_strategy_params(strategy_type, cfg))}
    v[nb.CFG_FRACTION] = float(c["fraction"])
    v[nb.CFG_VOL_SIZING] = 1.0 if c["sizing"] == "volatility" else 0.0
    v[nb.CFG_VOL_TARGET] = float(c["vol_target"])
    v[nb.CFG_HOLD] = int(c["hold_bars"])
    v[nb.CFG_TP] = float(c["take_profit"])
    v[nb.CFG_SL] = float(c["stop_loss"])
    v[nb.CFG_TRAIL] = float(c["trailing_stop"])
    v[nb.CFG_INTRABAR] = 1.0 if c["exit_mode"] == "intrabar" else 0.0
    v[nb.CFG_EXIT_ON_SIGNAL] = 1.0 if c["exit_on_signal"] else 0.0
    v[nb.CFG_COOLDOWN] = int(c["cooldown_bars"])
    v[nb.CFG_TRANCHES] = int(c["max_tranches"])
    v[nb.CFG_SPACING] = int(c["tranche_spacing_bars"])
    v[nb.CFG_BUY_BELOW] = float(c["buy_below"])
    v[nb.CFG_SELL_ABOVE] = float(c["sell_above"])
    v[nb.CFG_BUY_FRACTION] = float(c["buy_fraction"])
    v[nb.CFG_SELL_FRACTION] = float(c["sell_fraction"])
    v[nb.CFG_LEVEL_MOVING] = 1.0 if c["level_update"] == "moving" else 0.0
    v[nb.CFG_SIDE] = -1.0 if c["side"] == "short" else 1.0
    v[nb.CFG_LEVERAGE] = float(c["leverage"])
    v[nb.CFG_MAINTENANCE] = float(c["maintenance_margin"])
    return v


def funding_code(funding: bool | str) -> float:
    """The kernel's funding switch: 0 off, 1 accrued per bar (``True``), 2 at the
    settlements (``"settlements"``)."""
    if funding == "settlements":
        return 2.0
    return 1.0 if funding else 0.0


def closes_finite(ohlc: np.ndarray) -> float:
    """The kernel's ``CFG_CLOSES_FINITE`` for these bars: 1.0 when every close is finite."""
    return float(np.isfinite(ohlc[:, 3]).all())


def run_arrays(arrays: FastArrays, cfg_vector: np.ndarray) -> EngineResult:
    """One kernel run over prepared arrays."""
    n = len(arrays.index)
    equity = np.empty((n, 3))
    trades = np.empty((n + 1, len(nb.TRADE_FIELDS)))
    fills = np.empty((2 * n + 1, len(FILL_COLUMNS)))
    eq, cash_, pos = np.empty(n), np.empty(n), np.empty(n)
    cfg_vector = cfg_vector.copy()
    cfg_vector[nb.CFG_CLOSES_FINITE] = closes_finite(arrays.ohlc)
    nt, nf, status = nb.simulate(arrays.ohlc, arrays.line("entry"), arrays.line("exit"),
                                 arrays.line("vol"), arrays.line("fng"),
                                 arrays.line("funding_rate"), arrays.line("level_tp"),
                                 arrays.line("level_sl"), cfg_vector, eq, cash_, pos,
                                 trades, fills, np.empty(0))
    if status == nb.STATUS_MARGIN:
        raise RuntimeError("order rejected by the broker (Margin); sizing should have "
                           "prevented this")
    equity[:, 0], equity[:, 1], equity[:, 2] = eq, cash_, pos
    rows = pd.DataFrame(trades[:nt], columns=list(nb.TRADE_FIELDS))
    if nt:
        rows["exit_reason"] = np.asarray(nb.REASONS, dtype=object)[
            rows["exit_reason"].to_numpy(dtype=np.int64)]
    else:
        rows = pd.DataFrame(columns=TRADE_COLUMNS)
    fills_df = pd.DataFrame(fills[:nf], columns=FILL_COLUMNS)
    fills_df["bar"] = fills_df["bar"].astype("int64")
    fills_df["reason"] = np.asarray(nb.REASONS, dtype=object)[
        fills_df["reason"].to_numpy(dtype=np.int64)] if nf else pd.Series(dtype=object)
    return EngineResult(equity=equity_frame(equity, arrays.index),
                        trades=trades_frame(rows, arrays.index), fills=fills_df)


def run_fast(
    strategy_type: str,
    frame: pd.DataFrame,
    extra: pd.DataFrame | None = None,
    *,
    cash: float = 10_000.0,
    commission: float = 0.0,
    slippage: float = 0.0,
    funding: bool | str = False,
    strategy_params: Mapping[str, Any] | None = None,
    validate: bool = True,
) -> EngineResult:
    """Run one backtest of a built-in strategy type on the fast engine; the arguments are the
    reference :func:`~flushback.strategies.adapter.run_engine`'s (the strategy named by its
    type), and so is the result (``strategy`` is None)."""
    cfg = dict((strategy_params or {}).get("cfg") or {})
    arrays = prepare_arrays(frame, extra, validate=validate)
    vec = config_vector(strategy_type, cfg, cash=cash, commission=commission,
                        slippage=slippage, funding=funding, bar_hours=arrays.bar_hours)
    return run_arrays(arrays, vec)
