"""``flushback backtest SPEC``: run a spec, print strategy vs benchmark and the trades, write
the run folder."""

from __future__ import annotations

from typing import Any

import typer

from flushback.backtests.cli._common import (
    STATE,
    Engine,
    OutputFormat,
    console,
    console_err,
    print_json,
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
) -> None:
    """Run a backtest spec against buy-and-hold and write runs/<run_id>/."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flushback.backtests.api import backtest as api_backtest
    from flushback.backtests.spec import load_spec

    spec_obj = load_spec(spec, overrides=list(set_ or []))
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
        run_dir = run.save(runs_dir)
        result = run.raw

    warm = result.warmup or {}
    if warm.get("inside_window"):
        console_err.print(f"warning: {warm['message']}", markup=False, highlight=False,
                          soft_wrap=True)
    if fmt == OutputFormat.json:
        from flushback.backtests.report_schema import to_jsonable

        print_json({
            "run_id": result.run_id,
            "run_dir": str(run_dir),
            "spec": spec_obj.name,
            "engine": engine.value,
            "window": result.config.get("window"),
            "metrics": to_jsonable(result.metrics),
            "benchmark": {"name": spec_obj.benchmark.type,
                          "metrics": to_jsonable(result.benchmark_metrics)},
            "trades": to_jsonable(result.trades),
            "warmup": warm or None,
        })
        return
    _print_tables(result, run_dir)


def _print_tables(result: Any, run_dir: Any) -> None:
    from rich.table import Table

    spec = result.spec
    w = result.config.get("window", {})
    title = (f"{spec.name}: {spec.data.symbol} {spec.data.interval}, "
             f"{w.get('start', '')[:10]} .. {w.get('end', '')[:10]}")
    table = Table(title=title)
    table.add_column("Metric")
    table.add_column(spec.strategy.type, justify="right")
    table.add_column(spec.benchmark.type, justify="right")
    for key, label, kind in _ROWS:
        table.add_row(label, _fmt(result.metrics.get(key), kind),
                      _fmt(result.benchmark_metrics.get(key), kind))
    console.print(table)

    trades = result.trades
    tf = "%Y-%m-%d" if spec.data.interval == "1d" else "%Y-%m-%d %H:%M"
    tt = Table(title=f"Trades ({len(trades)})")
    for col in ("#", "entry", "price", "exit", "price", "size", "P&L", "return", "reason"):
        tt.add_column(col, justify="left" if col in ("reason", "entry", "exit") else "right",
                      no_wrap=True)
    shown = trades.tail(_MAX_TRADES_SHOWN)
    for _, t in shown.iterrows():
        tt.add_row(
            str(t["trade_id"]),
            t["entry_time"].strftime(tf),
            f"{t['entry_price']:,.0f}",
            t["exit_time"].strftime(tf),
            f"{t['exit_price']:,.0f}",
            f"{t['size']:.4f}",
            f"{t['pnl']:,.2f}",
            f"{t['return_pct'] * 100:,.1f}%",
            str(t["exit_reason"]),
        )
    if len(trades):
        out = console
        if not console.is_terminal and console.width < 120:
            import sys

            from rich.console import Console

            out = Console(file=sys.stdout, width=120, color_system=None)
        out.print(tt)
        if len(trades) > _MAX_TRADES_SHOWN:
            console.print(f"(last {_MAX_TRADES_SHOWN} of {len(trades)} trades shown; all in "
                          "trades.csv)")
    else:
        console.print("No trades.")
    console.print(f"run {result.run_id} -> {run_dir}", markup=False, highlight=False,
                  soft_wrap=True)
