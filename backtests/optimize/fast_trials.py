"""Optimizer trials on the fast engine, without frames: the per-trial work is arrays.

:class:`FastTrials` serves one window ``[start, end]`` of a ``Prepared`` (the evaluator's
view that ends at ``end``). What does not change between trials is built once: the window's
OHLC and funding arrays, the bar length, the output buffers; the signals come from the
view's :class:`~flushback.signals.base.SignalCache` (each indicator and each signal
configuration is computed once and reused by every trial that asks for it again); the
strategy's extra columns (realised volatility) are cached per lookback; a threshold trigger
(``Signal.threshold_form``) is its level, which the kernel compares itself. A trial is then a
config vector, one compiled kernel call (:func:`flushback.strategies.nb.simulate`) and its
scores (:meth:`FastTrials.scores`: the metrics a study reads, from compiled passes): no
DataFrame, no model dump, no benchmark run.

The metrics are those of :func:`flushback.backtests.run.metrics.compute_metrics` on the same
equity, position and trades as ``run_backtest(engine="fast")`` (and so backtrader) gives:
``tests/test_fast_trials.py`` checks them equal, trial by trial.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from flushback.backtests.optimize.evaluator import bar_returns
from flushback.backtests.run.metrics import SCORE_METRICS, compute_metrics, score_metrics
from flushback.data.errors import ConfigError

__all__ = ["FastTrials"]

_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


class Line(NamedTuple):
    """An entry / exit line as the kernel reads it (``nb.CFG_ENTRY_CMP``): a trigger
    (``cmp`` 0: fires where ``values > 0``) or a level (``cmp`` > 0: fires where ``values
    <op> threshold``, from bar ``start`` of the window on)."""

    values: np.ndarray
    cmp: int
    threshold: float
    start: int


def _level_codes() -> dict[str, int]:
    from flushback.strategies import nb

    return nb.LEVEL_COMPARISONS


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
        from flushback.strategies.fast import closes_finite

        self._closes_finite = closes_finite(self.ohlc)  # the kernel's CFG_CLOSES_FINITE
        self.funding: np.ndarray | None
        if spec.costs.funding == "settlements":
            from flushback.backtests.run.runner import funding_line

            self.funding = np.ascontiguousarray(funding_line(
                spec, window, getattr(view, "settlements", None)), dtype=np.float64)
        else:
            self.funding = (np.ascontiguousarray(window["funding_rate"].to_numpy(
                dtype=np.float64)) if "funding_rate" in window.columns else None)
        n = len(window)
        self._eq, self._pos = np.empty(n), np.empty(n)
        self._trades = np.empty((n + 1, 17))
        self._fills = np.empty((2 * n + 1, 5))
        self._extra: dict[Any, dict[str, np.ndarray]] = {}
        self._empty = np.empty(0)
        #: the last :meth:`simulate`'s ``nb_stats.path_stats``, as the kernel wrote them
        self.path = np.empty(4)
        #: signal config (JSON) -> its line on the window, for configurations seen before
        self._memo: dict[str, Line] = {}
        #: a threshold trigger's config without its threshold (JSON) -> (its level on the
        #: window, warm-up bars left in the window)
        self._levels: dict[str, tuple[np.ndarray, int]] = {}
        #: arrays of the window's length kept per memo: about 64 MB of them
        self._memo_cap = max(32, (64 << 20) // (8 * n))
        #: (signal name, its trial parameters) -> its line; trial strategy parameters ->
        #: (config vector, feed columns): a trial's inputs without building a spec section
        self._lines: dict[tuple[Any, ...], Line] = {}
        self._strategies: dict[tuple[Any, ...], tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        #: threshold triggers: signal name -> its threshold parameter; (signal name, its other
        #: trial values) -> (the signal, a line built for them)
        self._threshold_param: dict[str, str] = {}
        self._thresholds: dict[tuple[Any, ...], tuple[Any, Line]] = {}

    def _signal(self, config: Mapping[str, Any]) -> Line:
        """A signal configuration's line on the window (kept for the configurations seen)."""
        from flushback.signals import build_signal

        key = json.dumps(config, sort_keys=True, default=str)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if len(self._memo) >= self._memo_cap:
            self._memo.clear()
        self._memo[key] = line = self._compute_signal(build_signal, config)
        return line

    def trigger(self, config: Mapping[str, Any]) -> np.ndarray:
        """A signal configuration on the window as the kernel reads it: 1.0 where it fires,
        0.0 elsewhere (a level line compared here)."""
        values, cmp, thr, start = self._signal(config)
        if cmp == 0:
            return (values > 0).astype(np.float64)
        op = {v: k for k, v in _level_codes().items()}[cmp]
        out = _COMPARE[op](values, thr).astype(np.float64)
        out[:max(start, 0)] = 0.0
        return out

    def _inputs(self, params: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The kernel's lines (entry/exit signals, feed columns) and config vector for a
        parameter set. Each part is kept by the trial parameters it depends on (a signal's
        line by that signal's, the vector and feed by the strategy's), so a trial that
        repeats a signal's values or the strategy's builds neither section again; parameters
        outside ``signals.*``/``strategy.*`` build everything (``_sections``)."""
        names = [name for name in self.spec.signals if name in ("entry", "exit")]
        own: dict[str, list[tuple[str, Any]]] = {name: [] for name in names}
        strategy: list[tuple[str, Any]] = []
        for key, value in params.items():
            head, _, rest = key.partition(".")
            if head == "strategy":
                strategy.append((key, value))
            elif head == "signals" and rest.partition(".")[0] in self.spec.signals:
                own.setdefault(rest.partition(".")[0], []).append((key, value))
            else:
                return self._assemble(*self._build_inputs(params, names))
        keys = {name: (name, *own[name]) for name in names}
        skey = tuple(strategy)
        try:
            lines = {name: self._lines.get(keys[name]) or self._new_threshold(name, own[name])
                     for name in names}
            st = self._strategies.get(skey)
        except TypeError:  # a value that cannot be a key (a list): nothing kept
            return self._assemble(*self._build_inputs(params, names))
        missing = [name for name in names if lines[name] is None]
        if missing:
            signals = self._sections(dict(kv for name in missing for kv in own[name]))[0]
            if len(self._lines) >= self._memo_cap:
                self._lines.clear()
            for name in missing:
                line = lines[name] = self._lines[keys[name]] = self._signal(signals[name])
                if line.cmp:
                    self._remember_threshold(name, own[name], line)
        if st is None:
            if len(self._strategies) >= 65_536:
                self._strategies.clear()
            st = self._strategies[skey] = self._build_strategy(dict(strategy))
        return self._assemble(lines, *st)  # type: ignore[arg-type]

    def prepare(self, fixed: Mapping[str, Any], dists: Mapping[str, Any],
                limit: int) -> int:
        """Build now, before the trials, each threshold trigger's level at every value of the
        signal's other searched parameters (a signal at a time, everything else at the
        search's first value), when that is at most ``limit`` levels in all. A new level is
        the costly part of a new configuration (a 4h RSI of hourly bars: ~0.9 ms, where a
        trial is ~0.5 ms); built here, in the process worker processes are forked from,
        it is paid once instead of once per worker. Returns the number of levels built (0:
        nothing to prepare, or too many)."""
        from itertools import product

        from flushback.signals import build_signal

        base = {**fixed, **{k: _first_value(d) for k, d in dists.items()}}
        plans: list[tuple[list[str], list[tuple[Any, ...]]]] = []
        tables = self._sections({})[0]
        for name in (n for n in self.spec.signals if n in ("entry", "exit")):
            try:
                form = build_signal(tables[name]).threshold_form()
            except ConfigError:
                return 0
            if form is None:
                continue
            keys = [k for k in dists if k.startswith(f"signals.{name}.")
                    and k != f"signals.{name}.{form[0]}"]
            values = [_discrete_values(dists[k], limit) for k in keys]
            if not keys or any(v is None for v in values):
                continue
            plans.append((keys, list(product(*values))))  # type: ignore[arg-type]
        if not plans or sum(len(c) for _, c in plans) > limit:
            return 0
        built = 0
        for keys, combos in plans:
            for combo in combos:
                try:
                    self._inputs({**base, **dict(zip(keys, combo, strict=True))})
                    built += 1
                except ConfigError:
                    continue  # the trials that ask for it report it
        return built

    def _remember_threshold(self, name: str, own: list[tuple[str, Any]], line: Line) -> None:
        """After a threshold line was built for signal ``name`` from the trial values
        ``own``: keep what a trial that changes only the threshold needs (the signal, its
        threshold parameter, the level)."""
        from flushback.signals import build_signal

        signal = build_signal(self._sections_for(name, own))
        param = signal.threshold_form()[0]
        key = f"signals.{name}.{param}"
        if len(self._thresholds) >= 4096:
            self._thresholds.clear()
        self._threshold_param[name] = param
        self._thresholds[(name, *[kv for kv in own if kv[0] != key])] = (signal, line)

    def _new_threshold(self, name: str, own: list[tuple[str, Any]]) -> Line | None:
        """Signal ``name``'s line for trial values ``own`` when they differ from ones seen
        only in the threshold: the same validation a new signal gets (the parameter's
        declaration, the signal's cross-checks), then the seen level. None otherwise."""
        param = self._threshold_param.get(name)
        if param is None:
            return None
        key = f"signals.{name}.{param}"
        value = [v for k, v in own if k == key]
        hit = self._thresholds.get((name, *[kv for kv in own if kv[0] != key]))
        if hit is None or len(value) != 1:
            return None
        signal, seen = hit
        try:
            v = signal.param_specs[param].validate(value[0], param, signal.name)
            signal._validate({**signal.params, param: v})
        except ConfigError:
            return None  # the whole spec words the error
        return Line(seen.values, seen.cmp, float(v), seen.start)

    def _sections_for(self, name: str, own: list[tuple[str, Any]]) -> Mapping[str, Any]:
        """Signal ``name``'s table with trial values ``own`` applied."""
        return self._sections(dict(own))[0][name]

    @staticmethod
    def _assemble(lines: Mapping[str, Line], vec: np.ndarray,
                  feed: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The kernel's arrays and a config vector of its own with each line's comparison."""
        from flushback.strategies import nb

        out = dict(feed)
        vec = vec.copy()
        for name, (values, cmp, thr, start) in lines.items():
            out[name] = values
            if name == "entry":
                vec[nb.CFG_ENTRY_CMP], vec[nb.CFG_ENTRY_THR], vec[nb.CFG_ENTRY_FROM] = (
                    cmp, thr, start)
            else:
                vec[nb.CFG_EXIT_CMP], vec[nb.CFG_EXIT_THR], vec[nb.CFG_EXIT_FROM] = (
                    cmp, thr, start)
        return out, vec

    def _build_inputs(self, params: Mapping[str, Any], names: list[str]) -> tuple[
            dict[str, Line], np.ndarray, dict[str, np.ndarray]]:
        """(signal lines, config vector without their comparisons, feed columns)."""
        signals = self._sections(params)[0]
        return {name: self._signal(signals[name]) for name in names}, *self._build_strategy(
            params)

    def _build_strategy(self, params: Mapping[str, Any]) -> tuple[
            np.ndarray, dict[str, np.ndarray]]:
        """(config vector without the lines' comparisons, feed columns) for the strategy
        parameters of ``params``."""
        from flushback.strategies import nb
        from flushback.strategies.fast import config_vector

        spec = self.spec
        cfg = dict(self._sections(params)[1])
        kind = spec.strategy.type
        vec = config_vector(kind, cfg, cash=spec.cash, commission=spec.costs.commission,
                            slippage=spec.costs.slippage, funding=spec.costs.funding,
                            bar_hours=self.bar_hours, validated=True)
        vec[nb.CFG_CLOSES_FINITE] = self._closes_finite
        return vec, self._feed(kind, cfg)

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

    def _compute_signal(self, build_signal: Any, config: Any) -> Line:
        signal = build_signal(config)
        form = signal.threshold_form()
        if form is not None:
            return self._threshold_line(signal, config, *form)
        with self.view.signal_cache.active():
            values = signal.compute(self.view.frame)
        arr = values.to_numpy()
        if arr.dtype == np.bool_:  # a trigger: 1.0 / 0.0
            arr = arr.astype(np.float64)
        elif arr.dtype != np.float64:
            arr = pd.to_numeric(values.astype("float64"), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
        return Line(np.ascontiguousarray(arr[self.slice]), 0, 0.0, 0)

    def _threshold_line(self, signal: Any, config: Mapping[str, Any], param: str,
                        op: str) -> Line:
        """A level-against-threshold trigger (``Signal.threshold_form``) on the window: its
        level, computed once per configuration of everything but the threshold, for the
        kernel to compare (``nb.CFG_ENTRY_CMP``), from the first bar after the warm-up --
        where ``compute`` fires, the kernel fires."""
        from flushback.signals.base import bar_interval

        key = json.dumps({k: v for k, v in config.items() if k != param}, sort_keys=True,
                         default=str)
        hit = self._levels.get(key)
        if hit is None:
            if len(self._levels) >= 256:
                self._levels.clear()
            with self.view.signal_cache.active():
                values = signal.level(self.view.frame)
            warm = signal.warmup_for(bar_interval(self.view.frame)) - (self.slice.start or 0)
            hit = self._levels[key] = (np.ascontiguousarray(
                values.to_numpy(dtype=np.float64, na_value=np.nan)[self.slice]), max(warm, 0))
        level, warm = hit
        return Line(level, _level_codes()[op], float(signal.params[param]), warm)

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

    def simulate(self, params: Mapping[str, Any], *, copy: bool = True) -> tuple[
            np.ndarray, np.ndarray, np.ndarray]:
        """(equity, position units, trade rows) of one parameter set on this window; the
        position and the trade rows (and the equity with ``copy=False``) are this object's
        buffers, valid until the next call."""
        from flushback.strategies import nb

        spec = self.spec
        if spec.costs.funding and self.funding is None:
            raise ConfigError("costs.funding = true needs the funding_rate column",
                              hint="add 'funding' to data.externals")
        lines, vec = self._inputs(params)
        e = self._empty
        nt, _, status = nb.simulate(self.ohlc, lines.get("entry", e), lines.get("exit", e),
                                    lines.get("vol", e), lines.get("fng", e),
                                    self.funding if spec.costs.funding else e,
                                    lines.get("level_tp", e), lines.get("level_sl", e), vec,
                                    self._eq, e, self._pos, self._trades, self._fills,
                                    self.path)
        if status == nb.STATUS_MARGIN:
            raise RuntimeError("order rejected by the broker (Margin); sizing should have "
                               "prevented this")
        return self._eq.copy() if copy else self._eq, self._pos, self._trades[:nt]

    def metrics(self, eq: np.ndarray, pos: np.ndarray, rows: np.ndarray) -> dict[str, Any]:
        """:func:`compute_metrics` of an equity, its position units and its trade rows."""
        from flushback.strategies import nb_stats

        worst, longest, held, bad = nb_stats.path_stats(eq, pos)
        return compute_metrics(eq, _TradeColumns(rows) if len(rows) else pd.DataFrame(),
                               self.ppy, position=pos,
                               path=None if bad else (worst, longest, held))

    def evaluate(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
        """(metrics, per-bar simple returns with a leading 0) of one parameter set."""
        eq, pos, rows = self.simulate(params)
        return self.metrics(eq, pos, rows), bar_returns(eq)

    def scores(self, eq: np.ndarray, pos: np.ndarray, rows: np.ndarray,
               path: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray]:
        """(:data:`~flushback.backtests.run.metrics.SCORE_METRICS`, per-bar simple returns
        with a leading 0) of an equity, its position units and its trade rows: what a trial
        is scored and stored with, without the rest of :meth:`metrics`. ``path``: the run's
        ``nb_stats.path_stats`` as the kernel wrote them (:attr:`path` after :meth:`simulate`),
        else computed here.

        The passes over the bars are compiled (``nb_stats.path_stats``,
        ``nb_stats.return_sums``:
        numpy's pairwise sums reproduced) and the formulas are
        :func:`~flushback.backtests.run.metrics.score_metrics`', so the values are
        :meth:`metrics`' for those keys, bit for bit (``tests/test_fast_trials.py``). A curve
        with a bar that is not a positive number, trades of several legs, or a numpy whose
        sums the compiled ones do not reproduce (checked once per process) take
        :meth:`metrics` instead."""
        from flushback.strategies import nb, nb_stats

        worst, longest, held, bad = (nb_stats.path_stats(eq, pos) if path is None else
                                     (float(path[0]), int(path[1]), int(path[2]),
                                      int(path[3])))
        ids = rows[:, 0]
        if bad or (len(ids) > 1 and not (ids[1:] > ids[:-1]).all()) or not sums_match_numpy():
            full = self.metrics(eq, pos, rows)
            return {k: full[k] for k in SCORE_METRICS}, bar_returns(eq)
        n = len(eq)
        r = np.empty(n)
        mean, dev, neg = nb_stats.return_sums(eq, r)
        return score_metrics(eq, rows[:, nb.TRADE_FIELDS.index("pnl")], self.ppy,
                             path=(worst, longest, held),
                             moments=moments_from_sums(mean, dev, neg, n - 1)), r


def _first_value(dist: Any) -> Any:
    choices = getattr(dist, "choices", None)
    return choices[0] if choices is not None else dist.low


def _discrete_values(dist: Any, limit: int) -> list[Any] | None:
    """Every value of an integer or categorical distribution (None: continuous, or more
    than ``limit``)."""
    choices = getattr(dist, "choices", None)
    if choices is not None:
        return list(choices) if len(choices) <= limit else None
    if getattr(dist, "log", False) or not isinstance(dist.low, int) or dist.step is None:
        return None
    values = list(range(dist.low, dist.high + 1, dist.step))
    return values if len(values) <= limit else None


def moments_from_sums(mean: float, dev: float, neg: float,
                      m: int) -> tuple[float, float | None, float | None]:
    """(mean, standard deviation with ddof=1, downside deviation) of ``m`` returns from
    ``nb_stats.return_sums``' sums: numpy's divisions and square roots after its sums."""
    return (mean, math.sqrt(dev / (m - 1)) if m >= 2 else None,
            math.sqrt(neg / m) if m >= 1 else None)


_SUMS_MATCH: bool | None = None


def sums_match_numpy() -> bool:
    """Whether the compiled return moments equal numpy's here, bit for bit: checked once
    per process on curves of lengths around numpy's summation blocks (a numpy that sums
    differently makes trials take the numpy metrics, slower and the same)."""
    global _SUMS_MATCH
    if _SUMS_MATCH is None:
        from flushback.backtests.run.metrics import _moments
        from flushback.strategies import nb_stats

        rng = np.random.default_rng(20141)
        ok = True
        for n in (2, 3, 9, 10, 17, 129, 130, 137, 1000, 8193, 20011):
            r = rng.standard_normal(n - 1) * 0.01
            r[rng.random(n - 1) < 0.7] = 0.0
            eq = np.concatenate([[1e4], 1e4 * np.cumprod(1.0 + r)])
            sums = nb_stats.return_sums(eq, np.empty(n))
            got = moments_from_sums(sums[0], sums[1], sums[2], n - 1)
            ref = _moments(eq[1:] / eq[:-1] - 1.0)
            ok = ok and got[0] == ref[0] and got[1] == ref[1] and got[2] == ref[2]
        _SUMS_MATCH = bool(ok)
    return _SUMS_MATCH
