"""Run a backtest spec: load once (``prepare``), run many times (``run_backtest``).

``prepare`` loads the assembled frame (with enough history before ``start`` for every
signal's warm-up) and its dataset fingerprints once; ``run_backtest`` computes the signals in
pandas on the whole loaded history, cuts the trading window, hands the bars plus the signal
columns to backtrader through :mod:`flushback.strategies.adapter`, runs the benchmark the same
way (cached on the ``Prepared`` object, keyed by its own config and the configs of the
signals it reads: the strategy's parameters do not change it) and
computes the metrics. ``params`` (a flat dict of dotted overrides) is what the optimizer
changes per trial.

Reusing signal work across runs: every ``Prepared`` carries a
:class:`~flushback.signals.base.SignalCache` for its frame (``prepared.signal_cache``).
``run_backtest(..., prepared=p)`` computes the signals inside it (``reuse_signals=True``, the
default), so runs that share a ``Prepared`` -- an optimizer's trials -- compute a signal (or
a composite's child) with a configuration already seen only once, and a signal whose only
changed parameter is a threshold reuses its indicator (RSI values, liquidation z-scores).
Results are bit-identical to a plain run (tested); ``reuse_signals=False`` computes from
scratch. The frame of a ``Prepared`` must not be mutated.

The two steps inside ``run_backtest`` are public too, for benchmarks and tools that time or
reuse them: :func:`compute_signals` (the spec's signal columns on a frame) and
:func:`run_strategy_window` (one strategy over the trading window, signals precomputed).

``run_id`` = the first 16 hex digits of sha256 over the effective config (the spec after
overrides, plus the trading window), the dataset fingerprints and the flushback version: the
same inputs give the same id and, backtrader being deterministic, the same numbers.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.run.breakdown import portfolio_breakdown
from flushback.backtests.run.metrics import compute_metrics, periods_per_year_for
from flushback.backtests.run.spec import BacktestSpec, load_spec
from flushback.data.basket import basket_members
from flushback.data.errors import ConfigError, DataError
from flushback.data.intervals import parse_interval
from flushback.signals.base import SignalCache
from flushback.strategies.columns import validate_bars
from flushback.strategies.config import strategy_signals
from flushback.strategies.engines import check_engine, engine_supports
from flushback.strategies.levels import LEVEL_COLUMNS
from flushback.strategies.results import TRADE_COLUMNS, EngineResult

__all__ = [
    "Prepared",
    "BacktestResult",
    "SignalCache",
    "prepare",
    "prepare_frame",
    "run_backtest",
    "compute_signals",
    "run_strategy_window",
    "compute_run_id",
    "flushback_version",
    "validate_bars",
]

_MIN_WARMUP_BARS = 400


@functools.lru_cache(maxsize=1)
def flushback_version() -> str:
    """The installed distribution's version (read once per process: it is in every run id)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flushback")
    except PackageNotFoundError:  # pragma: no cover
        return "0+unknown"


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ts = pd.NaT
    if ts is pd.NaT:  # words such as "yesterday" or "now" are not dates
        raise ConfigError(f"{str(value)!r} is not a date",
                          hint="write the window as YYYY-MM-DD (or YYYY-MM-DDTHH:MM UTC), "
                          "e.g. --since 2024-01-01")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _window_end(value: Any) -> pd.Timestamp | None:
    """An inclusive end: a plain date includes that whole day."""
    ts = _ts(value)
    if ts is None:
        return None
    if ts == ts.normalize() and isinstance(value, str) and "T" not in value and ":" not in value:
        return ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return ts


@dataclass
class Prepared:
    """A loaded frame (with warm-up history) and its fingerprints, reusable across runs.

    ``signal_cache`` (made for ``frame``; a copy made with ``dataclasses.replace`` gets a fresh
    one) is where ``run_backtest`` reuses signal work across the runs of this object.
    ``validated``: the frame already passed ``validate_bars`` (set by ``prepare`` and
    ``prepare_frame``; otherwise the first run validates it). Treat the frame as read-only.
    """

    spec: BacktestSpec
    frame: pd.DataFrame
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    fingerprints: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    external_sources: dict[str, Any] = field(default_factory=dict)
    warmup_bars: int = 0
    #: the perpetual's funding settlements (rate by settlement time), for
    #: ``costs.funding = "settlements"``
    settlements: pd.Series | None = None
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    validated: bool = False
    signal_cache: SignalCache = field(init=False, repr=False)
    _slice: tuple[Any, slice] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.signal_cache = SignalCache(self.frame)

    @property
    def window_slice(self) -> slice:
        """The window's positions in ``frame`` (one contiguous slice: the index is sorted)."""
        f = self.frame
        key = (id(f), len(f), self.start, self.end)
        if self._slice is None or self._slice[0] != key:
            idx = f.index
            i0 = 0 if self.start is None else int(idx.searchsorted(self.start, side="left"))
            i1 = len(f) if self.end is None else int(idx.searchsorted(self.end, side="right"))
            self._slice = (key, slice(i0, max(i0, i1)))
        return self._slice[1]

    @property
    def window(self) -> pd.DataFrame:
        """The trading window ``start <= t <= end`` of ``frame`` (a new frame each time)."""
        f = self.frame
        out = f.iloc[self.window_slice]
        out.attrs = dict(f.attrs)
        return out


@dataclass
class BacktestResult:
    """Everything a run produced (see the team contract; ``write_run`` persists it)."""

    spec: BacktestSpec
    run_id: str
    frame: pd.DataFrame
    signals: pd.DataFrame
    equity: pd.DataFrame
    trades: pd.DataFrame
    metrics: dict[str, Any]
    benchmark_metrics: dict[str, Any]
    fingerprints: dict[str, str]
    periods_per_year: int
    benchmark_trades: pd.DataFrame | None = None
    datasets: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    external_sources: dict[str, Any] = field(default_factory=dict)
    warmup: dict[str, Any] | None = None  # flushback.backtests.run.warmup.warmup_report
    #: the structure levels the strategy's level exits read (``level_tp``/``level_sl`` on
    #: the window; empty without level exits)
    levels: pd.DataFrame | None = None
    #: a portfolio run's per-asset breakdown (flushback.backtests.run.breakdown); None for
    #: a single-asset run
    portfolio: dict[str, Any] | None = None
    #: things a reader must know about this run (e.g. a leveraged configuration whose worst
    #: adverse excursion reaches its liquidation distance); report.json ``warnings``
    warnings: list[str] = field(default_factory=list)


def _signal_warmup(spec: BacktestSpec) -> int:
    from flushback.signals import build_signal

    iv = parse_interval(spec.data.interval)
    w = 0
    for cfg in spec.signals.values():
        sig = build_signal(cfg)
        w = max(w, int(sig.warmup_for(iv)))
    if spec.strategy.params.get("sizing") == "volatility":
        w = max(w, int(spec.strategy.params["vol_lookback"]) + 1)
    if spec.strategy.type == "contrarian":
        from flushback.strategies.levels import level_warmup

        w = max(w, level_warmup(spec.strategy.params))
    return w


def prepare_frame(
    spec: BacktestSpec | str | Path,
    frame: pd.DataFrame,
    *,
    fingerprints: Mapping[str, str] | None = None,
    since: Any = None,
    until: Any = None,
) -> Prepared:
    """A :class:`Prepared` over a frame you already have (tests, notebooks, custom data).

    Without ``fingerprints`` the frame's content is fingerprinted (sha256 of its values, column
    names and ``attrs['symbol']``).
    """
    spec = spec if isinstance(spec, BacktestSpec) else load_spec(spec)
    validate_bars(frame)
    if fingerprints is None:
        # row hashes do not see column names: the names (and the symbol) are hashed too, so
        # the same numbers under other columns (e.g. liq_long_usd <-> liq_short_usd) differ
        h = hashlib.sha256(json.dumps([[str(c) for c in frame.columns],
                                       str(frame.attrs.get("symbol", ""))]).encode())
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
        fingerprints = {"frame": h.hexdigest()}
    start = _ts(since if since is not None else spec.data.start)
    end = _window_end(until if until is not None else spec.data.end)
    if "interval" not in frame.attrs:
        frame = frame.copy()
        frame.attrs["interval"] = spec.data.interval
    return Prepared(spec=spec, frame=frame, start=start, end=end,
                    fingerprints=dict(fingerprints), warmup_bars=_signal_warmup(spec),
                    validated=True)


def prepare(
    spec: BacktestSpec | str | Path,
    *,
    data_dir: str | Path | None = None,
    since: Any = None,
    until: Any = None,
) -> Prepared:
    """Load the data a spec needs (plus warm-up history before its start) once."""
    from flushback.data.basket import load_with_basket

    spec = spec if isinstance(spec, BacktestSpec) else load_spec(spec)
    start = _ts(since if since is not None else spec.data.start)
    end = _window_end(until if until is not None else spec.data.end)
    if start is not None and end is not None and end < start:
        raise ConfigError(f"the window ends ({end}) before it starts ({start})",
                          hint="check --since/--until and data.start/data.end")
    warmup = _signal_warmup(spec)
    if spec.data.warmup_bars is not None:
        warmup = max(warmup, spec.data.warmup_bars)
    history = max(2 * warmup, _MIN_WARMUP_BARS)
    load_start = None if start is None else start - history * parse_interval(spec.data.interval)
    try:
        af = load_with_basket(spec.data.symbol, spec.data.interval, start=load_start, end=end,
                              data_dir=data_dir, **spec.data.load_kwargs())
    except DataError as exc:
        raise _window_outside_data(exc, spec, start, end) from None
    frame = af.frame
    validate_bars(frame)
    prepared = Prepared(spec=spec, frame=frame, start=start, end=end,
                        fingerprints=dict(af.fingerprints), datasets=dict(af.datasets),
                        external_sources=dict(af.sources), warmup_bars=warmup, validated=True)
    if spec.costs.funding == "settlements":
        prepared.settlements = _load_settlements(spec, data_dir, prepared)
    if len(prepared.window) < 2:
        raise DataError(
            f"fewer than two {spec.data.interval} bars of {spec.data.symbol} in the window "
            f"{start} .. {end}",
            hint=f"the loaded data covers {frame.index[0]} .. {frame.index[-1]}",
        )
    return prepared


def _load_settlements(spec: BacktestSpec, data_dir: str | Path | None,
                      prepared: Prepared) -> pd.Series:
    """The raw 8h funding settlements of the spec's perpetual (Binance USDT-M), fingerprinted
    into the run's datasets."""
    from flushback.data import load_dataset

    symbol = spec.data.symbol
    if not symbol.endswith("USDT-PERP"):
        raise ConfigError(f"costs.funding = \"settlements\" needs a perpetual, not {symbol}",
                          hint="use a -PERP symbol (e.g. BTCUSDT-PERP) or funding = true")
    did = f"derivatives/binance_{symbol.removesuffix('USDT-PERP').lower()}usdt_funding_8h"
    rows, info = load_dataset(did, data_dir=data_dir)
    prepared.fingerprints[did] = info.fingerprint
    prepared.datasets[did] = info
    return pd.Series(rows["funding_rate"].to_numpy(dtype=np.float64),
                     index=pd.DatetimeIndex(rows["known_at"]), name="funding_rate")


def funding_line(spec: BacktestSpec, window: pd.DataFrame,
                 settlements: pd.Series | None) -> np.ndarray | None:
    """The ``funding_rate`` line the engines read: None without funding, the rate known at
    each bar (``funding = true``), or the rates settled in each bar (``"settlements"``)."""
    if not spec.costs.funding:
        return None
    if spec.costs.funding == "settlements":
        from flushback.strategies.funding import settled_funding

        if settlements is None:
            raise ConfigError("costs.funding = \"settlements\" needs the funding settlements",
                              hint="load the spec with prepare() (a -PERP symbol), or use "
                              "funding = true")
        return settled_funding(window.index, parse_interval(spec.data.interval), settlements)
    if "funding_rate" not in window.columns:
        raise ConfigError("costs.funding = true needs the funding_rate column",
                          hint="add 'funding' to data.externals")
    return window["funding_rate"].to_numpy()


def _window_outside_data(exc: DataError, spec: BacktestSpec, start: pd.Timestamp | None,
                         end: pd.Timestamp | None) -> DataError:
    """The loader's "no bars" error restated for the window the user asked for (the loader
    saw the window widened by the warm-up history)."""
    first, last = getattr(exc, "coverage", (None, None))
    what = f"{spec.data.symbol} {spec.data.interval}"
    if last is not None and start is not None and start > last:
        return DataError(
            f"the window starts {start:%Y-%m-%d}, after the last bar of the {what} data "
            f"({last:%Y-%m-%d %H:%M} UTC)", file=exc.file,
            hint=f"choose --since / data.start on or before {last:%Y-%m-%d}, or update the data")
    if first is not None and end is not None and end < first:
        return DataError(
            f"the window ends {end:%Y-%m-%d}, before the first bar of the {what} data "
            f"({first:%Y-%m-%d %H:%M} UTC)", file=exc.file,
            hint=f"choose --until / data.end on or after {first:%Y-%m-%d}")
    return exc


def compute_run_id(config: Mapping[str, Any], fingerprints: Mapping[str, str],
                   version: str | None = None) -> str:
    payload = {
        "config": config,
        "fingerprints": dict(sorted(fingerprints.items())),
        "version": version or flushback_version(),
    }
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compute_signals(spec: BacktestSpec, frame: pd.DataFrame,
                     cache: SignalCache | None = None) -> pd.DataFrame:
    """The spec's signal columns on ``frame`` (inside ``cache`` when given)."""
    from flushback.signals import build_signal

    if cache is not None and cache.frame is not frame:
        cache = None
    cols = {}
    with cache.active() if cache is not None else contextlib.nullcontext():
        for name, cfg in spec.signals.items():
            cols[name] = build_signal(cfg).compute(frame)
    out = pd.DataFrame(cols, index=frame.index)
    return out


def _window_positions(frame_full: pd.DataFrame, window: pd.DataFrame) -> slice | None:
    """``window``'s positions in ``frame_full`` when it is a contiguous slice of it."""
    n = len(window)
    if n == 0:
        return None
    i0 = int(frame_full.index.searchsorted(window.index[0]))
    sl = slice(i0, i0 + n)
    return sl if frame_full.index[sl].equals(window.index) else None


def run_strategy_window(spec_strategy, frame_full, window, signals_full, spec, ppy, progress=None,
                        validate=True, engine="backtrader", settlements=None):
    """Run one strategy (the spec's or its benchmark) on the window with ``engine``;
    ``progress(stage, done, total)`` hears about the bars done, ``stage`` being the strategy
    type. ``validate=False``: the bars were validated already (a ``Prepared`` frame)."""
    from flushback.strategies.engines import feed_columns, run_strategy

    cfg = dict(spec_strategy.params)
    sl = _window_positions(frame_full, window)

    def cut(values: Any) -> Any:
        if sl is not None:
            return np.asarray(values)[sl]
        return pd.Series(values, index=frame_full.index).loc[window.index].to_numpy()

    cols: dict[str, Any] = {}
    for name in signals_full.columns:
        cols[name] = cut(signals_full[name].to_numpy())
    for name, series in feed_columns(spec_strategy.type, frame_full, cfg, ppy).items():
        cols[name] = cut(series)
    funding = funding_line(spec, window, settlements)
    if funding is not None:
        cols["funding_rate"] = funding
    extra = pd.DataFrame(cols, index=window.index)
    on_progress = None
    if progress:
        def on_progress(done: int, total: int, _stage: str = spec_strategy.type) -> None:
            progress(_stage, done, total)
    res = run_strategy(engine, spec_strategy.type, window, extra, cash=spec.cash,
                       commission=spec.costs.commission, slippage=spec.costs.slippage,
                       funding=spec.costs.funding, cfg=cfg, on_progress=on_progress,
                       validate=validate)
    res.feed = extra
    return res


def _portfolio_engine(spec: BacktestSpec, frame_full: pd.DataFrame, wslice: slice,
                      signals_full: pd.DataFrame, engine: str) -> EngineResult:
    """Run the spec's ``[portfolio]`` over the window (its ranking RSI and volatility read the
    warm-up history too) and return it in the engine result's shape: ``position`` is the
    share of equity invested, trades carry ``symbol`` and ``weight``."""
    from flushback.strategies.portfolio import (
        PortfolioConfig,
        PortfolioResult,
        portfolio_inputs,
        run_portfolio_fast,
    )

    cfg = PortfolioConfig.from_mapping(spec.portfolio or {})
    full = portfolio_inputs(frame_full, signals_full["entry"],
                            signals_full["exit"] if "exit" in signals_full else None, cfg)
    inputs = replace(full, index=full.index[wslice],
                     **{k: getattr(full, k)[wslice] for k in
                        ("open", "high", "low", "close", "entry", "exit", "rsi", "vol")})
    run: Callable[..., PortfolioResult] = run_portfolio_fast
    if engine != "fast":
        from flushback.strategies.portfolio_bt import run_portfolio_backtrader

        run = run_portfolio_backtrader
    out = run(inputs, cfg, cash=spec.cash, commission=spec.costs.commission,
              slippage=spec.costs.slippage)
    equity = out.equity[["equity", "cash"]].copy()
    equity["position"] = out.equity["exposure"]
    trades = out.trades.copy()
    trades["funding"] = 0.0
    trades["tranches"] = 1
    trades = trades[[*TRADE_COLUMNS, "symbol", "weight"]]
    feed = signals_full.iloc[wslice].copy()
    return EngineResult(equity=equity, trades=trades, fills=pd.DataFrame(), feed=feed)


def run_backtest(
    spec: BacktestSpec | str | Path,
    *,
    prepared: Prepared | None = None,
    data_dir: str | Path | None = None,
    since: Any = None,
    until: Any = None,
    params: Mapping[str, Any] | None = None,
    progress: Callable[..., None] | None = None,
    benchmark: bool = True,
    reuse_signals: bool = True,
    engine: str = "backtrader",
) -> BacktestResult:
    """Run one backtest. ``params``: flat dotted overrides, e.g.
    ``{"signals.entry.threshold": 20, "strategy.take_profit": 0.2}``.

    ``benchmark=False`` skips the benchmark run (for callers that only look at the strategy,
    e.g. the audit's truncated re-runs): ``equity`` then has no ``benchmark_equity`` column,
    ``benchmark_metrics`` is empty and ``benchmark_trades`` is None; the strategy's numbers
    and the ``run_id`` are the same as with the benchmark.

    ``progress(stage, done=None, total=None)`` is called with the stage name and, while
    backtrader runs, with the bars done so far (the CLI draws a rich progress bar from it).

    ``reuse_signals`` (default True): compute the signals inside ``prepared.signal_cache``,
    reusing what earlier runs on the same ``Prepared`` computed (see the module docstring);
    the results are identical either way. False computes every signal from scratch.

    ``engine``: ``"backtrader"`` (the reference, default) or ``"fast"`` (the compiled engine,
    proven equal by the parity tests; built-in strategy types only). The benchmark runs on the
    same engine; the ``run_id`` does not depend on the engine (the numbers do not either).
    """
    spec = spec if isinstance(spec, BacktestSpec) else load_spec(spec)
    check_engine(engine)
    if params:
        spec = spec.with_overrides(dict(params))
    if prepared is None:
        if progress:
            progress("loading data")
        prepared = prepare(spec, data_dir=data_dir, since=since, until=until)
    frame_full = prepared.frame
    if not prepared.validated:
        validate_bars(frame_full)
        prepared.validated = True
    window, wslice = prepared.window, prepared.window_slice
    if len(window) < 2:
        raise DataError("fewer than two bars in the backtest window",
                        hint="widen --since/--until or data.start/data.end")
    ppy = periods_per_year_for(spec.data.interval)
    if progress:
        progress("computing signals")
    signals_full = compute_signals(spec, frame_full,
                                   prepared.signal_cache if reuse_signals else None)
    if progress:
        progress(f"running {spec.strategy.type} on {len(window):,} bars")
    if spec.portfolio is not None:
        res = _portfolio_engine(spec, frame_full, wslice, signals_full, engine)
    else:
        res = run_strategy_window(spec.strategy, frame_full, window, signals_full, spec, ppy,
                                  progress, validate=False, engine=engine,
                                  settlements=prepared.settlements)

    equity = res.equity.copy()
    bench = None
    bmetrics: dict[str, Any] = {}
    if benchmark:
        # a benchmark that reads signals (e.g. a contrarian benchmark) depends on their configs
        read = [s for group in strategy_signals(spec.benchmark.type) for s in group]
        bengine = engine if engine_supports(engine, spec.benchmark.type) else "backtrader"
        bkey = json.dumps([bengine, spec.benchmark.to_config(), spec.costs.model_dump(), spec.cash,
                           str(window.index[0]), str(window.index[-1]),
                           {s: spec.signals.get(s) for s in read}],
                          sort_keys=True, default=str)
        cached = prepared.cache.get(bkey)
        if cached is None:
            if progress:
                progress(f"running benchmark {spec.benchmark.type}")
            bench = run_strategy_window(spec.benchmark, frame_full, window, signals_full, spec,
                                        ppy, progress, validate=False, engine=bengine,
                                        settlements=prepared.settlements)
            cached = (bench, compute_metrics(bench.equity["equity"], bench.trades, ppy,
                                             position=bench.equity["position"]))
            prepared.cache[bkey] = cached
        bench = cached[0]
        bmetrics = copy.deepcopy(cached[1])
        equity["benchmark_equity"] = bench.equity["equity"].to_numpy()
    metrics = compute_metrics(equity["equity"], res.trades, ppy, position=equity["position"])
    config = spec.to_dict()
    config["window"] = {
        "start": window.index[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": window.index[-1].strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    run_id = compute_run_id(config, prepared.fingerprints)
    warmup = _warmup_section(spec, prepared, window)
    return BacktestResult(
        spec=spec,
        run_id=run_id,
        frame=window,
        signals=signals_full.iloc[wslice],
        equity=equity,
        trades=res.trades,
        metrics=metrics,
        benchmark_metrics=bmetrics,
        fingerprints=dict(prepared.fingerprints),
        periods_per_year=ppy,
        benchmark_trades=None if bench is None else bench.trades,
        datasets=dict(prepared.datasets),
        config=config,
        external_sources=dict(prepared.external_sources),
        warmup=warmup,
        levels=res.feed[[c for c in res.feed.columns if c in LEVEL_COLUMNS]],
        portfolio=None if spec.portfolio is None else portfolio_breakdown(
            window, res.trades, basket_members(spec.data.symbol, spec.data.basket), spec.cash),
        warnings=_run_warnings(spec, res.trades),
    )


def _run_warnings(spec: BacktestSpec, trades: pd.DataFrame) -> list[str]:
    """A leveraged or short contrarian configuration whose stop lies beyond its liquidation
    distance, or whose worst adverse excursion reaches it
    (:func:`flushback.strategies.margin.margin_warning`)."""
    if spec.portfolio is not None or spec.strategy.type != "contrarian":
        return []
    from flushback.strategies.margin import margin_warning

    note = margin_warning(spec.strategy.params, trades)
    return [note] if note else []


def _warmup_section(spec: BacktestSpec, prepared: Prepared, window: pd.DataFrame
                    ) -> dict[str, Any]:
    """Where the signals' warm-up ends relative to the window (inputs' first values plus
    declared warm-ups: a few column scans, no signal computation)."""
    from flushback.backtests.run.warmup import warmup_report
    from flushback.signals import build_signal

    sigs = {name: build_signal(cfg) for name, cfg in spec.signals.items()}
    return warmup_report(sigs, prepared.frame, window.index[0],
                         parse_interval(spec.data.interval), window.index[-1])
