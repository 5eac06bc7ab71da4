"""The public Python API behind ``import flushback as fb``; the CLI calls the same functions.

Owns: :func:`backtest` (a spec, or the user's own prices and boolean entry/exit series, like
vectorbt's ``from_signals`` but with flushback's time rules), :class:`Result` (metrics as a
pandas Series, trades and equity as DataFrames, an inline plotly figure, HTML), and
:func:`study_events` (the flush-event study). ``optimize`` is the optimizer's own
``optimize_spec``. May import everything in ``flushback.backtests``; nothing here is imported by
the engine or the signals.

The user's own series follow the same rules as every signal: a value at bar t is known at t's
close, an entry decided at t fills at t+1's open, and NaN never triggers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flushback.backtests.events import DEFAULT_DRAWS
from flushback.data.errors import ConfigError, DataError

__all__ = ["USER_ENTRY", "USER_EXIT", "Result", "backtest", "study_events"]

USER_ENTRY = "user_entry"
USER_EXIT = "user_exit"


def _user_trigger(column: str) -> dict[str, Any]:
    """The signal config that reads a user's boolean column (stored as 1.0/0.0/NaN)."""
    return {"type": "threshold", "op": ">=", "level": 0.5, "column": column}


@dataclass
class Result:
    """One backtest: what a notebook reads, and what ``save()`` writes as a run folder.

    - ``metrics`` / ``benchmark_metrics``: pandas Series (fractions, not percent; the
      annualisation is ``periods_per_year``);
    - ``trades``: one row per trade (entry/exit time and price, size, P&L, MAE/MFE, reason);
    - ``equity``: per bar ``equity``, ``cash``, ``position`` and the benchmark's equity;
    - ``plot()``: a plotly figure (shows inline in Jupyter); ``to_html()``: the run's report.
    """

    raw: Any = field(repr=False)  # flushback.backtests.run.runner.BacktestResult
    run_dir: Path | None = None
    #: the dotted overrides it was run with (``key=value``), as ``--set`` records them
    overrides: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.raw.run_id)

    @property
    def spec(self) -> Any:
        return self.raw.spec

    @property
    def metrics(self) -> pd.Series:
        name = "portfolio" if self.raw.spec.portfolio is not None else self.raw.spec.strategy.type
        return pd.Series(self.raw.metrics, name=name, dtype=object)

    @property
    def assets(self) -> pd.DataFrame | None:
        """A portfolio run asset by asset (trades, win rate, P&L, contribution to the total
        return, exposure, the asset's own buy-and-hold); None for a single-asset run."""
        section = self.raw.portfolio
        return None if section is None else pd.DataFrame(section["assets"]).set_index("symbol")

    @property
    def correlation(self) -> pd.DataFrame | None:
        """A portfolio run's correlation of the assets' bar returns; None for one asset."""
        section = self.raw.portfolio
        return None if section is None else pd.DataFrame(section["correlation"])

    @property
    def benchmark_metrics(self) -> pd.Series:
        return pd.Series(self.raw.benchmark_metrics, name=self.raw.spec.benchmark.type,
                         dtype=object)

    @property
    def trades(self) -> pd.DataFrame:
        return self.raw.trades.copy()

    @property
    def equity(self) -> pd.DataFrame:
        return self.raw.equity.copy()

    @property
    def frame(self) -> pd.DataFrame:
        """The bars (and external columns) of the trading window."""
        return self.raw.frame.copy()

    def report(self) -> dict[str, Any]:
        """The ``report.json`` document of this run (with the flush-event section)."""
        from flushback.backtests.events.strategy import report_sections
        from flushback.backtests.run.folders import report_dict

        return report_dict(self.raw, sections=report_sections(self.raw))

    def save(self, runs_dir: str | Path | None = None,
             overrides: Sequence[str] | None = None) -> Path:
        """Write ``runs/<run_id>/`` (report.json, trades.csv, equity.csv, report.html)
        exactly as ``flushback backtest`` does; returns the folder. ``overrides`` (default:
        the ``set`` values this result was run with) are recorded so runs can be told apart."""
        from flushback.backtests.events.strategy import report_sections
        from flushback.backtests.run.folders import write_run

        sections = dict(report_sections(self.raw))
        recorded = list(self.overrides if overrides is None else overrides)
        if recorded:
            sections["overrides"] = recorded
        self.run_dir = write_run(self.raw, runs_dir=runs_dir, sections=sections)
        return self.run_dir

    def to_html(self) -> str:
        """The self-contained report.html of this run, as a string."""
        from flushback.backtests.reports.html import render_report_html

        return render_report_html(self.report())

    def plot(self) -> Any:
        """Price with the trades, and equity against the benchmark (a plotly Figure)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        f, eq, tr = self.raw.frame, self.raw.equity, self.raw.trades
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4],
                            vertical_spacing=0.04)
        fig.add_trace(go.Scatter(x=f.index, y=f["close"], name="close",
                                 line={"color": "#555", "width": 1}), row=1, col=1)
        if len(tr):
            fig.add_trace(go.Scatter(x=tr["entry_time"], y=tr["entry_price"], mode="markers",
                                     name="entry", marker={"symbol": "triangle-up",
                                                           "size": 9, "color": "#1a9850"}),
                          row=1, col=1)
            fig.add_trace(go.Scatter(x=tr["exit_time"], y=tr["exit_price"], mode="markers",
                                     name="exit", marker={"symbol": "triangle-down",
                                                          "size": 9, "color": "#d73027"}),
                          row=1, col=1)
        fig.add_trace(go.Scatter(x=eq.index, y=eq["equity"], name=self.spec.strategy.type),
                      row=2, col=1)
        if "benchmark_equity" in eq.columns:
            fig.add_trace(go.Scatter(x=eq.index, y=eq["benchmark_equity"],
                                     name=self.spec.benchmark.type,
                                     line={"dash": "dot"}), row=2, col=1)
        fig.update_layout(title=f"{self.spec.name}: {self.spec.data.symbol} "
                                f"{self.spec.data.interval}", height=600,
                          margin={"l": 40, "r": 20, "t": 50, "b": 30})
        return fig

    def _repr_html_(self) -> str:  # a compact table in notebooks
        both = pd.DataFrame({"strategy": self.metrics, "benchmark": self.benchmark_metrics})
        return f"<b>{self.spec.name}</b> run {self.run_id}" + both.to_html()


def _user_series(values: Any, index: pd.DatetimeIndex, what: str) -> pd.Series:
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if not isinstance(s.index, pd.DatetimeIndex) or not s.index.equals(index):
        if len(s) == len(index) and not isinstance(s.index, pd.DatetimeIndex):
            s = pd.Series(s.to_numpy(), index=index)
        else:
            raise DataError(f"{what} is not aligned with the price frame",
                            column=what, hint="pass a Series on exactly the frame's index "
                            "(bar open times, UTC), e.g. frame['close'] < x")
    if s.dtype != bool:
        if s.dropna().isin([True, False, 0, 1]).all():
            s = s.astype("float64")
        else:
            raise DataError(f"{what} must be boolean (True on the bars whose close decides "
                            "the order)", column=what, hint="e.g. entries = rsi < 25")
    return s.astype("float64")  # NaN stays NaN: never a trigger


def _user_spec(frame: pd.DataFrame, has_exit: bool, strategy: Mapping[str, Any] | None,
               cash: float) -> dict[str, Any]:
    from flushback.data.frames import bar_interval

    step = bar_interval(frame)
    interval = {pd.Timedelta(hours=1): "1h", pd.Timedelta(hours=4): "4h",
                pd.Timedelta(days=1): "1d"}.get(step)
    if interval is None:
        raise DataError(f"bars every {step} are not supported", file="data",
                        hint="resample to 1h, 4h or 1d (flushback.data.frames.resample_bars)")
    signals = {"entry": _user_trigger(USER_ENTRY)}
    if has_exit:
        signals["exit"] = _user_trigger(USER_EXIT)
    return {
        "name": "user_signals",
        "description": "the user's own entry/exit series",
        "cash": cash,
        "data": {"symbol": str(frame.attrs.get("symbol", "USER")), "interval": interval,
                 "externals": []},
        "signals": signals,
        "strategy": {"type": "contrarian", "fraction": 1.0, **dict(strategy or {})},
        "benchmark": {"type": "buy_and_hold"},
    }


def backtest(
    spec: Any = None,
    *,
    set: Mapping[str, Any] | Sequence[str] | None = None,
    data: pd.DataFrame | None = None,
    entries: Any = None,
    exits: Any = None,
    strategy: Mapping[str, Any] | None = None,
    cash: float = 10_000.0,
    since: Any = None,
    until: Any = None,
    data_dir: str | Path | None = None,
    save: bool = False,
    runs_dir: str | Path | None = None,
    progress: Any = None,
    engine: str = "backtrader",
) -> Result:
    """Run a backtest and return a :class:`Result`.

    - ``spec``: a shipped spec name, a TOML path, a dict or a ``BacktestSpec``; ``set`` applies
      dotted overrides (``{"strategy.take_profit": 0.2}``), as ``--set`` does.
    - ``data``: your own frame (UTC bar-open index, ``open, high, low, close[, volume]`` and
      any external columns the signals read) instead of loading the spec's data.
    - ``entries`` / ``exits``: your own boolean series on ``data``'s index; a True at bar t
      means "decided at t's close", filled at t+1's open. Without ``spec`` a contrarian
      strategy (all-in, ``strategy`` overrides such as ``{"stop_loss": 0.1}``) against
      buy-and-hold is used; with ``spec`` they replace its entry/exit signals.
    - ``save=True`` writes the run folder as ``flushback backtest`` does.
    - ``engine``: ``"backtrader"`` (the reference, default) or ``"fast"`` (the compiled engine,
      proven equal to it; docs/strategies.md).
    """
    from flushback.backtests.run.runner import prepare_frame, run_backtest
    from flushback.backtests.run.spec import load_spec

    overrides = dict(set) if isinstance(set, Mapping) else list(set or [])
    if entries is not None or exits is not None:
        if data is None:
            if spec is None:
                raise ConfigError("entries/exits need the prices they were computed on",
                                  hint="pass data=frame (e.g. fb.data.load(...).frame)")
            data = backtest_frame(spec, overrides, since, until, data_dir)
        data = data.copy()
        if entries is not None:
            data[USER_ENTRY] = _user_series(entries, data.index, "entries")
        if exits is not None:
            data[USER_EXIT] = _user_series(exits, data.index, "exits")
        if spec is None:
            if entries is None:
                raise ConfigError("exits without entries", hint="pass entries=...")
            spec = _user_spec(data, exits is not None, strategy, cash)
        else:
            sig_over: dict[str, Any] = {}
            if entries is not None:
                sig_over["signals.entry"] = _user_trigger(USER_ENTRY)
            if exits is not None:
                sig_over["signals.exit"] = _user_trigger(USER_EXIT)
            spec = load_spec(spec, overrides).to_dict()
            for key, value in sig_over.items():
                spec["signals"][key.split(".", 1)[1]] = value
            overrides = []
    elif spec is None:
        raise ConfigError("nothing to run", hint="pass a spec name/path, or data= with "
                          "entries=")
    spec_obj = load_spec(spec, overrides)
    if data is not None:
        prepared = prepare_frame(spec_obj, data, since=since, until=until)
        raw = run_backtest(spec_obj, prepared=prepared, progress=progress, engine=engine)
    else:
        raw = run_backtest(spec_obj, data_dir=data_dir, since=since, until=until,
                           progress=progress, engine=engine)
    result = Result(raw, overrides=_override_texts(set))
    if save:
        result.save(runs_dir)
    return result


def _override_texts(values: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    from flushback.backtests.run.spec import active_overrides

    if isinstance(values, Mapping):
        values = [f"{k}={v}" for k, v in values.items()]
    return active_overrides(list(values or []))


def backtest_frame(spec: Any, overrides: Any = None, since: Any = None, until: Any = None,
                   data_dir: str | Path | None = None) -> pd.DataFrame:
    """The frame a spec's backtest runs on (with its warm-up history): compute your own
    entries on it and pass both to :func:`backtest`."""
    from flushback.backtests.run.runner import prepare
    from flushback.backtests.run.spec import load_spec

    return prepare(load_spec(spec, overrides), data_dir=data_dir, since=since,
                   until=until).frame.copy()


def study_events(
    events: str = "catalog",
    *,
    symbol: str = "BTC-USD",
    interval: str = "1d",
    start: Any = None,
    end: Any = None,
    horizons: Sequence[int] = (1, 3, 7, 14, 30, 90),
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    alpha: float = 0.05,
    cluster: str = "mean",
    match_volatility: bool = False,
    catalog: str | None = None,
    data_dir: str | Path | None = None,
    frame: pd.DataFrame | None = None,
) -> Any:
    """The flush-event study (``flushback events study``): forward returns from the open after
    each event against a random-day baseline. ``events``: ``"catalog"``, ``"detected"``, a
    signal name or config (its triggers are the events). Returns the report section (its
    ``summary`` rows and per-event ``outcomes``; ``to_report()`` for JSON)."""
    from flushback.backtests.events.study import run_event_study
    from flushback.data import load_frame

    if frame is None:
        frame = load_frame(symbol, interval, start=start, end=end, data_dir=data_dir).frame
    evs, version = _study_events_on(events, frame, interval, catalog)
    st = run_event_study(frame, evs, horizons=horizons, draws=draws, seed=seed, alpha=alpha,
                         cluster=cluster,  # type: ignore[arg-type]
                         match_volatility=match_volatility)
    return st.to_section(source=events, catalog_version=version, symbol=symbol,
                         interval=interval)


def _study_events_on(events: str, frame: pd.DataFrame, interval: str,
                     catalog: str | None) -> tuple[list[Any], str | None]:
    """The events of a study (``catalog``, ``detected`` or a signal's triggers) on ``frame``'s
    bars, and the catalogue version when it is the catalogue."""
    from flushback.backtests.events.study import events_from_catalog, events_from_triggers
    from flushback.data.flush_events import load_catalog
    from flushback.signals import build_signal

    cat = load_catalog(catalog)
    version = None
    if events == "catalog":
        evs = events_from_catalog(cat.between(frame.index[0], frame.index[-1]))
        version = cat.version
    elif events == "detected":
        from flushback.backtests.events.detector import detect_flushes

        evs = detect_flushes(frame).study_events(frame.attrs.get("interval", interval))
    else:
        from flushback.signals.registry import config_from_text

        cfg = config_from_text(events.strip().removeprefix("signal:"))
        sig = build_signal(cfg)
        fired = sig.compute(frame)
        if fired.dtype != bool:
            raise ConfigError(
                f"events {cfg['type']}: the signal returns a float strength, not a trigger",
                hint="use a trigger signal (e.g. extreme_fear, liquidation_spike, capitulation)")
        evs = events_from_triggers(fired, frame.attrs.get("interval", "1d"), prefix=cfg["type"])
    if not evs:
        raise DataError(f"no events ({events}) inside the loaded bars", hint="widen start/end")
    return evs, version


def study_events_across(
    events: str = "catalog",
    *,
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    interval: str = "1d",
    start: Any = None,
    end: Any = None,
    horizons: Sequence[int] = (1, 3, 7, 14, 30, 90),
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    alpha: float = 0.05,
    cluster: str = "mean",
    match_volatility: bool = False,
    catalog: str | None = None,
    data_dir: str | Path | None = None,
) -> Any:
    """The event study on several assets, side by side (``flushback events study --symbols``).

    The events are dated once, on the first symbol (the reference: the catalogue's days, or
    the flushes detected / the signal's triggers on ITS bars), and every asset is measured
    from the open after the same days, against its own random-day baseline (same draws and
    seed). An event before an asset's first bar has no outcome for it. ``paired`` compares
    each other asset with the reference on the events where both have a return: did ETH and
    SOL rebound more than BTC? (:class:`~flushback.backtests.events.across.AcrossAssets`)."""
    from flushback.backtests.events.across import AcrossAssets
    from flushback.backtests.events.study import run_event_study
    from flushback.data import load_frame

    names = [str(s) for s in symbols]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError("--symbols needs two or more different symbols",
                          hint="e.g. --symbols BTCUSDT,ETHUSDT,SOLUSDT")
    frames = {s: load_frame(s, interval, start=start, end=end, data_dir=data_dir).frame
              for s in names}
    evs, version = _study_events_on(events, frames[names[0]], interval, catalog)
    sections = {}
    for s in names:
        st = run_event_study(frames[s], evs, horizons=horizons, draws=draws, seed=seed,
                             alpha=alpha, cluster=cluster,  # type: ignore[arg-type]
                             match_volatility=match_volatility)
        sections[s] = st.to_section(source=events, catalog_version=version, symbol=s,
                                    interval=interval)
    return AcrossAssets.from_sections(sections, horizons=list(horizons))
