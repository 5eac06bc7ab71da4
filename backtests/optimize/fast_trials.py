"""Optimizer trials on the fast engine, without frames: the per-trial work is arrays.

:class:`FastTrials` serves one window ``[start, end]`` of a ``Prepared`` (the evaluator's
view that ends at ``end``). What does not change between trials is built once: the window's
OHLC and funding arrays, the bar length, the output buffers; the signals come from the
view's :class:`~flushback.signals.base.SignalCache` (each indicator and each signal
configuration is computed once and reused by every trial that asks for it again); the
strategy's extra columns (realised volatility) are cached per lookback. A trial is then a
config vector, one compiled kernel call (:func:`flushback.strategies.nb.simulate`) and the
metrics over numpy arrays: no DataFrame, no model dump, no benchmark run.

The metrics are those of :func:`flushback.backtests.run.metrics.compute_metrics` on the same
equity, position and trades as ``run_backtest(engine="fast")`` (and so backtrader) gives:
``tests/test_fast_trials.py`` checks them equal, trial by trial.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.optimize.evaluator import bar_returns
from flushback.backtests.run.metrics import compute_metrics
from flushback.data.errors import ConfigError

__all__ = ["FastTrials"]


class _Column:
    """One numeric column of the kernel's trades: what ``trade_metrics`` reads of it."""

    def __init__(self, values: np.ndarray) -> None:
        self._values = values

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        return self._values if dtype is None else self._values.astype(dtype, copy=False)

    @property
    def is_unique(self) -> bool:
        return len(np.unique(self._values)) == len(self._values)


class _TradeColumns:
    """The slice of the kernel's trades array that ``trade_metrics`` reads, column by name."""

    def __init__(self, rows: np.ndarray) -> None:
        from flushback.strategies import nb

        self._rows = rows
        self._col = {name: i for i, name in enumerate(nb.TRADE_FIELDS)}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, name: str) -> bool:
        return name in self._col

    def __getitem__(self, name: str) -> Any:
        return _Column(self._rows[:, self._col[name]])

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (round trips of multi-leg trades need one)."""
        return pd.DataFrame(self._rows, columns=list(self._col))


class FastTrials:
    """Evaluate parameter sets on one window of a prepared frame with the fast engine."""

    def __init__(self, spec: Any, view: Any, periods_per_year: int) -> None:
        from flushback.strategies.engines import engine_supports
        from flushback.strategies.fast import FAST_STRATEGIES

        if not engine_supports("fast", spec.strategy.type):
            raise ConfigError(f"the fast engine does not run '{spec.strategy.type}'")
        self.spec = spec
        self.view = view
        self.ppy = periods_per_year
        self._kinds = FAST_STRATEGIES
        frame = view.frame
        sl = view.window_slice
        self.slice = sl
        window = frame.iloc[sl]
        window.attrs = dict(frame.attrs)
        if len(window) < 2:
            from flushback.data.errors import DataError

            raise DataError("fewer than two bars in the backtest window",
                            hint="widen --since/--until or data.start/data.end")
        from flushback.strategies.columns import bar_hours

        self.index = window.index
        self.ohlc = np.ascontiguousarray(window[["open", "high", "low", "close"]].to_numpy(
            dtype=np.float64))
        self.bar_hours = bar_hours(window)
        self.funding: np.ndarray | None
        if spec.costs.funding == "settlements":
            from flushback.backtests.run.runner import funding_line

            self.funding = np.ascontiguousarray(funding_line(
                spec, window, getattr(view, "settlements", None)), dtype=np.float64)
        else:
            self.funding = (np.ascontiguousarray(window["funding_rate"].to_numpy(
                dtype=np.float64)) if "funding_rate" in window.columns else None)
        n = len(window)
        self._eq, self._cash, self._pos = np.empty(n), np.empty(n), np.empty(n)
        self._trades = np.empty((n + 1, 17))
        self._fills = np.empty((2 * n + 1, 5))
        self._extra: dict[Any, dict[str, np.ndarray]] = {}
        self._empty = np.empty(0)
        #: signal config (JSON) -> its values on the window, for configurations seen before
        self._memo: dict[str, np.ndarray] = {}

    def _signal(self, config: Mapping[str, Any]) -> np.ndarray:
        from flushback.signals import build_signal

        key = json.dumps(config, sort_keys=True, default=str)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if len(self._memo) > 4096:
            self._memo.clear()
        self._memo[key] = arr = self._compute_signal(build_signal, config)
        return arr

    def _sections(self, params: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        """The signal tables and the strategy parameters with a trial's parameters applied.

        A trial changes values of ``signals.*`` and ``strategy.*`` parameters only, so the
        rest of the spec (data, costs, cash, the signal and strategy types it was validated
        with) stays as loaded: the changed signal tables are validated when their signal is
        built, the strategy parameters as ``[strategy]`` is (declared ranges, defaults, the
        perpetual combinations). Any other key, or an error, goes through the whole spec
        (``with_overrides``), which gives the same values and the canonical message."""
        from flushback.backtests.run.spec import apply_overrides
        from flushback.strategies.config import update_strategy_params

        spec = self.spec
        if not params:
            return spec.signals, spec.strategy.params
        by_signal: dict[str, dict[str, Any]] = {}
        strategy: dict[str, Any] = {}
        sections_only = True
        for key, value in params.items():
            head, _, rest = key.partition(".")
            name, dot, path = rest.partition(".")
            if head == "strategy" and rest and not dot:
                strategy[rest] = value
            elif head == "signals" and dot and path and name in spec.signals:
                by_signal.setdefault(name, {})[path] = value
            else:
                sections_only = False
                break
        if sections_only:
            try:
                signals = dict(spec.signals)
                for name, changes in by_signal.items():
                    signals[name] = apply_overrides(spec.signals[name], changes)
                st = (update_strategy_params(spec.strategy.type, spec.strategy.params,
                                             strategy)
                      if strategy else spec.strategy.params)
                return signals, st
            except ConfigError:
                pass  # the whole spec words the error
        whole = spec.with_overrides(dict(params))
        return whole.signals, whole.strategy.params

    def _compute_signal(self, build_signal: Any, config: Any) -> np.ndarray:
        cache = self.view.signal_cache
        with cache.active():
            values = build_signal(config).compute(self.view.frame)
        arr = values.to_numpy()
        if arr.dtype == np.bool_:  # a trigger: 1.0 / 0.0
            arr = arr.astype(np.float64)
        elif arr.dtype != np.float64:
            arr = pd.to_numeric(values.astype("float64"), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
        return np.ascontiguousarray(arr[self.slice])

    def _feed(self, strategy_type: str, cfg: Mapping[str, Any]) -> dict[str, np.ndarray]:
        from flushback.strategies.engines import feed_columns

        # the feed columns depend on the sizing and the structure-level parameters only
        key = (strategy_type, cfg.get("sizing"), cfg.get("vol_lookback"),
               *sorted((k, v) for k, v in cfg.items() if k.startswith(("level_", "swing_"))))
        if key not in self._extra:
            cols = feed_columns(strategy_type, self.view.frame, dict(cfg), self.ppy)
            self._extra[key] = {k: np.ascontiguousarray(
                pd.to_numeric(pd.Series(v).astype("float64"), errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan)[self.slice]) for k, v in cols.items()}
        return self._extra[key]

    def simulate(self, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(equity, position units, trade rows) of one parameter set on this window; the
        position and the trade rows are this object's buffers (valid until the next call)."""
        from flushback.strategies import nb
        from flushback.strategies.fast import config_vector

        spec = self.spec
        signals, strategy = self._sections(params)
        kind = spec.strategy.type
        cfg = dict(strategy)
        lines = {name: self._signal(signals[name]) for name in signals
                 if name in ("entry", "exit")}
        lines.update(self._feed(kind, cfg))
        if spec.costs.funding:
            if self.funding is None:
                raise ConfigError("costs.funding = true needs the funding_rate column",
                                  hint="add 'funding' to data.externals")
        vec = config_vector(kind, cfg, cash=spec.cash, commission=spec.costs.commission,
                            slippage=spec.costs.slippage, funding=spec.costs.funding,
                            bar_hours=self.bar_hours, validated=True)
        e = self._empty
        nt, _, status = nb.simulate(self.ohlc, lines.get("entry", e), lines.get("exit", e),
                                    lines.get("vol", e), lines.get("fng", e),
                                    self.funding if spec.costs.funding else e,
                                    lines.get("level_tp", e), lines.get("level_sl", e), vec,
                                    self._eq, self._cash, self._pos, self._trades, self._fills)
        if status == nb.STATUS_MARGIN:
            raise RuntimeError("order rejected by the broker (Margin); sizing should have "
                               "prevented this")
        return self._eq.copy(), self._pos, self._trades[:nt]

    def metrics(self, eq: np.ndarray, pos: np.ndarray, rows: np.ndarray) -> dict[str, Any]:
        """:func:`compute_metrics` of an equity, its position units and its trade rows."""
        from flushback.strategies import nb

        worst, longest, held, bad = nb.path_stats(eq, pos)
        return compute_metrics(eq, _TradeColumns(rows) if len(rows) else pd.DataFrame(),
                               self.ppy, position=pos,
                               path=None if bad else (worst, longest, held))

    def evaluate(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
        """(metrics, per-bar simple returns with a leading 0) of one parameter set."""
        eq, pos, rows = self.simulate(params)
        return self.metrics(eq, pos, rows), bar_returns(eq)
