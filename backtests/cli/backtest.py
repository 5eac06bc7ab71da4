"""``flushback backtest SPEC``: run a spec, print strategy vs benchmark and the trades, write
the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flushback.backtests.cli._common import (
    STATE,
    Engine,
    OutputFormat,
    console,
    console_err,
    print_json,
    wide_console,
)

_ROWS = [
    ("total_return", "Total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("volatility", "Volatility (ann.)", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("calmar", "Calmar", "num"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_duration_days", "Max DD duration (days)", "num1"),
    ("exposure", "Exposure", "pct"),
    ("n_trades", "Trades", "int"),
    ("win_rate", "Win rate", "pct"),
    ("avg_win_pct", "Avg win", "pct"),
    ("avg_loss_pct", "Avg loss", "pct"),
    ("profit_factor", "Profit factor", "num"),
    ("expectancy", "Expectancy (cash)", "num"),
    ("best_trade", "Best trade", "pct"),
    ("worst_trade", "Worst trade", "pct"),
    ("avg_holding_days", "Avg holding (days)", "num1"),
    ("avg_mae", "Avg MAE", "pct"),
    ("avg_mfe", "Avg MFE", "pct"),
    ("end_equity", "End equity", "money"),
]
_MAX_TRADES_SHOWN = 40


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{value * 100:,.2f} %"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "num1":
        return f"{value:,.1f}"
    return f"{value:,.3f}"


def backtest(
    spec: str = typer.Argument(..., help="A spec file (.toml) or a shipped spec name."),
    set_: list[str] = typer.Option(
        None, "--set", help="Override a spec value: --set strategy.take_profit=0.2 (repeatable)."
    ),
    since: str = typer.Option(None, "--since", help="Start of the window (YYYY-MM-DD)."),
    until: str = typer.Option(None, "--until", help="End of the window, inclusive."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    runs_dir: str = typer.Option(
        None, "--runs-dir", envvar="FLUSHBACK_RUNS_DIR", help="Where run folders are written."
    ),
    engine: Engine = typer.Option(
        Engine.backtrader, "--engine",
        help="backtrader (the reference) or fast (compiled, proven equal; built-in strategies)."
    ),
    symbols: str = typer.Option(
        None, "--symbols",
        help="Comma-separated symbols: the same playbook on each asset (data.symbol), one run "
        "each, side by side.",
    ),
) -> None:
    """Run a backtest spec against buy-and-hold and write runs/<run_id>/."""
    from flushback.backtests.run.spec import load_spec

    if symbols:
        _per_asset(spec, [x.strip() for x in symbols.split(",") if x.strip()], set_ or [],
                   since=since, until=until, fmt=fmt, runs_dir=runs_dir, engine=engine)
        return
    spec_obj = load_spec(spec, overrides=list(set_ or []))
    _run_one(spec_obj, set_ or [], since=since, until=until, fmt=fmt, runs_dir=runs_dir,
             engine=engine)


def _per_asset(spec: str, symbols: list[str], set_: list[str], *, fmt: OutputFormat,
               **kwargs: Any) -> None:
    """``backtest --symbols``: the spec on each symbol (one run folder each), then a table of
    the headline metrics side by side."""
    from rich.table import Table

    from flushback.backtests.run.spec import load_spec
    from flushback.data.errors import ConfigError

    if len(symbols) < 2 or len(set(symbols)) != len(symbols):
        raise ConfigError("--symbols needs two or more different symbols",
                          hint="e.g. --symbols BTCUSDT,ETHUSDT,SOLUSDT")
    runs = []
    for sym in symbols:
        spec_obj = load_spec(spec, overrides=[*set_, f"data.symbol={sym}"])
        if spec_obj.portfolio is not None:
            raise ConfigError(f"{spec_obj.name} is a portfolio: it trades its basket already",
                              hint="--symbols runs a single-asset spec on each asset")
        runs.append(_run_one(spec_obj, [*set_, f"data.symbol={sym}"], fmt=fmt, quiet=True,
                             **kwargs))
    if fmt == OutputFormat.json:
        from flushback.backtests.reports.schema import to_jsonable

        print_json({"spec": runs[0][0].spec.name, "runs": [
            {"symbol": sym, "run_id": r.run_id, "run_dir": str(d), "window": r.config["window"],
             "metrics": to_jsonable(r.metrics),
             "benchmark": {"name": r.spec.benchmark.type,
                           "metrics": to_jsonable(r.benchmark_metrics)}}
            for sym, (r, d) in zip(symbols, runs, strict=True)]})
        return
    table = Table(title=f"{runs[0][0].spec.name} on each asset (the same playbook, one run each)")
    table.add_column("Metric")
    for sym in symbols:
        table.add_column(sym, justify="right")
    for key, label, kind in _ROWS:
        table.add_row(label, *[_fmt(r.metrics.get(key), kind) for r, _ in runs])
    table.add_row("Buy-and-hold return", *[
        _fmt(r.benchmark_metrics.get("total_return"), "pct") for r, _ in runs])
    table.add_row("Window", *[f"{r.config['window']['start'][:10]} .. "
                              f"{r.config['window']['end'][:10]}" for r, _ in runs])
    console.print(table)
    for sym, (r, d) in zip(symbols, runs, strict=True):
        console.print(f"{sym}: run {r.run_id} -> {d}", markup=False, highlight=False)
    console.print("`flushback compare --allow-mismatch <run ids>` puts their equity and "
                  "per-flush outcomes side by side.", markup=False, highlight=False)


def _run_one(spec_obj: Any, set_: list[str], *, since: str | None, until: str | None,
             fmt: OutputFormat, runs_dir: str | None, engine: Engine,
             quiet: bool = False) -> tuple[Any, Path]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flushback.backtests.api import backtest as api_backtest
    from flushback.backtests.run.spec import active_overrides

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} bars"),
        TimeElapsedColumn(), console=console_err, transient=True,
        disable=fmt == OutputFormat.json or not console_err.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def on_progress(stage: str, done: int | None = None, total: int | None = None) -> None:
        if done is None:
            if STATE.debug:
                console_err.print(stage, markup=False)
            return
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    with progress:
        # the same function as fb.backtest(); every run carries the flush-event section (the
        # catalog event study on its bars and what the strategy did at each event)
        run = api_backtest(spec_obj, data_dir=STATE.data_dir, since=since, until=until,
                           progress=on_progress, engine=engine.value)
        run_dir = run.save(runs_dir, overrides=active_overrides(set_ or []))
        result = run.raw

    warm = result.warmup or {}
    if warm.get("inside_window"):
        console_err.print(f"warning: {spec_obj.data.symbol}: {warm['message']}" if quiet
                          else f"warning: {warm['message']}", markup=False, highlight=False,
                          soft_wrap=True)
    if quiet:
        return result, run_dir
    if fmt == OutputFormat.json:
        from flushback.backtests.reports.schema import to_jsonable
        from flushback.backtests.run.metrics import round_trips

        print_json({
            "run_id": result.run_id,
            "run_dir": str(run_dir),
            "spec": spec_obj.name,
            "engine": engine.value,
            "window": result.config.get("window"),
            "metrics": to_jsonable(result.metrics),
            "benchmark": {"name": spec_obj.benchmark.type,
                          "metrics": to_jsonable(result.benchmark_metrics)},
            "trades": to_jsonable(result.trades),  # one row per leg
            "round_trips": to_jsonable(round_trips(result.trades)),
            "warmup": warm or None,
        })
        return result, run_dir
    _print_tables(result, run_dir)
    return result, run_dir


def _print_tables(result: Any, run_dir: Any) -> None:
    from rich.table import Table

    spec = result.spec
    w = result.config.get("window", {})
    portfolio = spec.portfolio is not None
    from flushback.data.basket import basket_members

    symbols = (", ".join(basket_members(spec.data.symbol, spec.data.basket)) if portfolio
               else spec.data.symbol)
    title = (f"{spec.name}: {symbols} {spec.data.interval}, "
             f"{w.get('start', '')[:10]} .. {w.get('end', '')[:10]}")
    table = Table(title=title)
    table.add_column("Metric")
    table.add_column("portfolio" if portfolio else spec.strategy.type, justify="right")
    table.add_column(spec.benchmark.type, justify="right")
    for key, label, kind in _ROWS:
        table.add_row(label, _fmt(result.metrics.get(key), kind),
                      _fmt(result.benchmark_metrics.get(key), kind))
    console.print(table)
    if result.portfolio:
        _print_assets(result.portfolio)

    from flushback.backtests.run.metrics import round_trips

    legs = result.trades
    trips = round_trips(legs)
    tf = "%Y-%m-%d" if spec.data.interval == "1d" else "%Y-%m-%d %H:%M"
    n_legs = len(legs)
    title = f"Trades ({len(trips)} round trip{'' if len(trips) == 1 else 's'}" + (
        f", {n_legs} legs)" if n_legs != len(trips) else ")")
    tt = Table(title=title)
    asset = ({} if "symbol" not in legs.columns
             else dict(zip(legs["trade_id"], legs["symbol"], strict=True)))
    for col in ("#", *(("asset",) if asset else ()), "entry", "price", "exit", "price", "size",
                "P&L", "return", "legs", "reason"):
        tt.add_column(col, justify="left" if col in ("reason", "entry", "exit", "asset")
                      else "right", no_wrap=True)
    shown = trips.tail(_MAX_TRADES_SHOWN)
    for _, t in shown.iterrows():
        tt.add_row(
            str(t["trade_id"]),
            *((str(asset.get(t["trade_id"], "")),) if asset else ()),
            t["entry_time"].strftime(tf),
            _px(t["entry_price"]),
            t["exit_time"].strftime(tf),
            _px(t["exit_price"]),
            f"{t['size']:.4f}",
            f"{t['pnl']:,.2f}",
            f"{t['return_pct'] * 100:,.1f}%",
            str(t["legs"]),
            str(t["exit_reason"]),
        )
        for leg in _leg_rows(legs, t, tf):
            tt.add_row(*leg, style="dim")
    if len(trips):
        out = console
        if not console.is_terminal and console.width < 120:
            import sys

            from rich.console import Console

            out = Console(file=sys.stdout, width=120, color_system=None)
        out.print(tt)
        if len(trips) > _MAX_TRADES_SHOWN:
            console.print(f"(last {_MAX_TRADES_SHOWN} of {len(trips)} round trips shown)",
                          markup=False, highlight=False)
        console.print(
            "A trade is a round trip, flat to flat: a position bought or sold in parts is one "
            f"trade with its legs listed under it (up to {_MAX_LEGS_SHOWN}), and the win rate, "
            "profit factor and expectancy count round trips. Every leg is a row of trades.csv; "
            "its trade_id names the round trip." if n_legs != len(trips) else
            "Every trade is a row of trades.csv.", markup=False, highlight=False)
        stop_note = _stop_note(spec, trips)
        if stop_note:
            console.print(stop_note, markup=False, highlight=False, soft_wrap=True)
    else:
        console.print("No trades.")
    for note in getattr(result, "warnings", None) or []:  # also in report.json / report.html
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    console.print(f"run {result.run_id} -> {run_dir}", markup=False, highlight=False,
                  soft_wrap=True)
    html = Path(run_dir) / "report.html"
    if html.is_file():
        console.print(f"report: {html} (open it in a browser, or run `flushback report "
                      f"{result.run_id} --open`)", markup=False, highlight=False,
                      soft_wrap=True)


_MAX_LEGS_SHOWN = 6


def _print_assets(section: dict[str, Any]) -> None:
    """A portfolio run asset by asset, and the correlation of their bar returns."""
    from rich.table import Table

    at = Table(title="Assets (contribution = the asset's P&L / starting cash; they add up to "
                     "the total return)")
    for col in ("asset", "first bar", "trades", "win rate", "P&L", "contribution", "exposure",
                "asset buy-and-hold"):
        at.add_column(col, justify="left" if col in ("asset", "first bar") else "right")
    for a in section["assets"]:
        at.add_row(a["symbol"], (a["first_bar"] or "-")[:10], str(a["trades"]),
                   _fmt(a["win_rate"], "pct"), _fmt(a["pnl"], "money"),
                   _fmt(a["contribution"], "pct"), _fmt(a["exposure"], "pct"),
                   _fmt(a["asset_return"], "pct"))
    wide_console(120).print(at)
    names = [a["symbol"] for a in section["assets"]]
    ct = Table(title="Correlation of bar returns")
    ct.add_column("")
    for n in names:
        ct.add_column(n, justify="right")
    for a in names:
        ct.add_row(a, *[_fmt(section["correlation"][a][b], "num") for b in names])
    console.print(ct)


def _px(value: float) -> str:
    """A price with the decimals its size needs (BTC 84,303; SOL 87.36; 0.0412)."""
    v = float(value)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}"


def _leg_rows(legs: Any, trip: Any, tf: str) -> list[tuple[str, ...]]:
    """The legs of a multi-leg round trip as dim sub-rows (at most ``_MAX_LEGS_SHOWN``)."""
    if int(trip["legs"]) < 2:
        return []
    mine = legs[legs["trade_id"] == trip["trade_id"]]
    rows: list[tuple[str, ...]] = []
    for k, (_, leg) in enumerate(mine.iterrows(), start=1):
        if k > _MAX_LEGS_SHOWN - 1 and k < len(mine):
            if k == _MAX_LEGS_SHOWN:
                rows.append(("", f"  ... {len(mine) - k} more legs", "", "", "", "", "", "",
                             "", "(trades.csv)"))
            continue
        rows.append((
            "", f"  leg {k}", "", leg["exit_time"].strftime(tf), _px(leg["exit_price"]),
            f"{leg['size']:.4f}", f"{leg['pnl']:,.2f}", f"{leg['return_pct'] * 100:,.1f}%", "",
            str(leg["exit_reason"]),
        ))
    return rows


def _stop_note(spec: Any, trips: Any) -> str | None:
    """Why a close-based stop lost more than its level: it is decided on a bar's close and
    filled at the next bar's open (``exit_mode = "close"``, the default)."""
    if spec.portfolio is not None:  # a portfolio's stops are close-based and unlevered
        from flushback.strategies.portfolio import PortfolioConfig

        level, close_based, leverage = (
            PortfolioConfig.from_mapping(spec.portfolio).stop_loss, True, 1.0)
    else:
        from flushback.strategies.margin import position_terms

        params = spec.strategy.params
        if "stop_loss" not in params:  # a strategy type without a stop
            return None
        level = float(params["stop_loss"] or 0.0)
        close_based = params.get("exit_mode") in (None, "close")
        leverage = position_terms(params)[1]
    if not level or not close_based or not len(trips):
        return None
    stopped = trips[trips["exit_reason"] == "stop_loss"]
    # a trade's return is on its margin: the price move times the leverage
    beyond = stopped[stopped["return_pct"] < -level * leverage]
    if beyond.empty:
        return None
    worst = float(beyond["return_pct"].min())
    return (f"note: {len(beyond)} of {len(stopped)} stop-loss exits lost more than the "
            f"{level:.0%} stop (worst {worst:.1%}): stops are close-based (exit_mode = "
            "\"close\"), decided when a bar CLOSES beyond the stop and filled at the NEXT "
            "bar's open, after any further move, plus costs. "
            + ("A portfolio's stops are always close-based." if spec.portfolio is not None else
               "strategy.exit_mode = \"intrabar\" rests the stop as an order that fills at "
               "the stop price (or the open when a bar gaps through it)."))
