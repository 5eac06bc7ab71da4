"""``flushback events ...``: the flush catalog, the detector and the event study."""

from __future__ import annotations

from typing import Any

import typer

from flushback.backtests.cli._common import (
    STATE,
    OutputFormat,
    console,
    print_json,
    wide_console,
)
from flushback.backtests.events import DEFAULT_DRAWS

app = typer.Typer(no_args_is_help=True, help="Flush events: catalog, detector, event study.")


def _pct(x: Any, digits: int = 1) -> str:
    if x is None:
        return "-"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-"
    if v != v:  # NaN
        return "-"
    return f"{v * 100:+.{digits}f}%"


def _p(x: Any) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:.4f}" if x >= 0.0001 else "<0.0001"


def _usd(x: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"${x / div:,.2f}{unit}"
    return f"${x:,.0f}"


def _parse_horizons(text: str) -> list[int]:
    from flushback.data.errors import ConfigError

    try:
        out = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ConfigError(
            f"--horizons {text!r} is not a comma-separated list of days",
            hint="e.g. --horizons 1,3,7,30",
        ) from None
    if not out or any(h <= 0 for h in out):
        raise ConfigError(f"--horizons {text!r} must list positive days", hint="e.g. 7,30,90")
    return out


def _load(symbol: str, interval: str, start: str | None, end: str | None):
    from flushback.data import load_frame

    return load_frame(symbol, interval, start=start, end=end, data_dir=STATE.data_dir or None)


@app.command("list")
def list_events(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
    catalog: str = typer.Option(None, "--catalog", help="A catalog TOML (default: shipped)."),
) -> None:
    """List the catalog of historical flushes with their headline facts."""
    from flushback.data.flush_events import load_catalog

    cat = load_catalog(catalog)
    if fmt == OutputFormat.json:
        print_json({"version": cat.version, "events": [e.as_dict() for e in cat]})
        return
    from rich.table import Table

    table = Table(title=f"flush catalog v{cat.version} ({len(cat)} events, UTC days)")
    for col in ("id", "window", "name", "F&G min", "liq 24h (max reported)", "BTC low", "facts"):
        table.add_column(col, overflow="fold")
    for ev in cat:
        fng = ev.headline("fng")
        liq = ev.headline("liq_24h_usd")
        low = ev.headline("btc_low_usd")
        window = ev.start.isoformat() + ("" if ev.end == ev.start else f"..{ev.end.isoformat()}")
        table.add_row(
            ev.id,
            window,
            ev.name,
            "-" if fng is None else f"{fng.value:g}",
            "-" if liq is None else f"{_usd(liq.value)} ({liq.scope.split(',')[0]})",
            "-" if low is None else f"{low.value:,.0f}",
            str(len(ev.facts)),
        )
    console.print(table)
    console.print("each fact's source: `flushback events list --format json`")


def _detect(symbol, interval, start, end, cluster_days, fear, fear_window, mode):
    from flushback.backtests.events.detector import detect_flushes

    af = _load(symbol, interval, start, end)
    det = detect_flushes(
        af.frame, fear=fear, fear_window_days=fear_window, cluster_days=cluster_days, mode=mode
    )
    return af, det


@app.command("detect")
def detect(
    symbol: str = typer.Option("BTC-USD", "--symbol"),
    interval: str = typer.Option("1d", "--interval"),
    start: str = typer.Option(None, "--start", help="First bar (UTC date)."),
    end: str = typer.Option(None, "--end", help="Last bar (UTC date)."),
    cluster_days: float = typer.Option(7, "--cluster-days", help="Merge triggers <= N days apart."),
    fear: float = typer.Option(
        None, "--fear", help="Gate: Fear & Greed <= this on the bar or shortly before."
    ),
    fear_window: int = typer.Option(3, "--fear-window", help="Days the fear gate looks back."),
    mode: str = typer.Option(
        "prefer_liquidations", "--mode",
        help="prefer_liquidations (proxy only without liquidation data) or union.",
    ),
    tolerance: int = typer.Option(3, "--tolerance", help="Days of slack when matching."),
    catalog: str = typer.Option(None, "--catalog", help="A catalog TOML (default: shipped)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Detect flushes with the signals and score them against the catalog (recall)."""
    from flushback.backtests.events.detector import score_detection
    from flushback.data.flush_events import load_catalog

    af, det = _detect(symbol, interval, start, end, cluster_days, fear, fear_window, mode)
    import pandas as pd

    idx = af.frame.index
    cat = load_catalog(catalog)
    # the catalog covers its own years only: score from January 1 of its first year
    first_year = pd.Timestamp(year=min(e.start for e in cat).year, month=1, day=1, tz="UTC")
    period = (max(idx[0], first_year), idx[-1])
    score = score_detection(det.events, cat, period=period, tolerance_days=tolerance)
    if fmt == OutputFormat.json:
        print_json(
            {
                "symbol": symbol,
                "interval": interval,
                "settings": det.settings,
                "detected": [
                    {
                        "id": e.id,
                        "first": e.first.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "last": e.last.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "n_triggers": e.n_triggers,
                        "sources": list(e.sources),
                    }
                    for e in det.events
                ],
                "score": score.model_dump(mode="json"),
            }
        )
        return
    from rich.table import Table

    table = Table(title=f"catalog events vs detected flushes, {symbol} {interval}")
    for col in ("catalog event", "start", "found", "detected on"):
        table.add_column(col)
    for m in sorted(score.found + score.missed, key=lambda m: m.start):
        table.add_row(
            m.event_id, m.start, "[green]yes[/]" if m.found else "[red]no[/]",
            ", ".join(m.detected) or "-",
        )
    console.print(table)
    recall = "-" if score.recall is None else f"{score.recall:.0%}"
    precision = "-" if score.precision is None else f"{score.precision:.0%}"
    console.print(
        f"recall {recall} ({len(score.found)}/{score.n_catalog} catalog events in "
        f"{score.period_start}..{score.period_end}); {score.n_detected} detected events, "
        f"precision vs catalog {precision}; tolerance +-{tolerance} days; mode {mode}"
        + ("" if fear is None else f"; fear gate F&G <= {fear:g}"),
        highlight=False,
    )
    if score.extra:
        console.print(f"detected but not in the catalog: {', '.join(score.extra)}", soft_wrap=True)


@app.command("study")
def study(
    events: str = typer.Option(
        "catalog", "--events",
        help="catalog | detected | a signal name or JSON config (its triggers are the events).",
    ),
    symbol: str = typer.Option("BTC-USD", "--symbol"),
    symbols: str = typer.Option(
        None, "--symbols",
        help="Comma-separated symbols: the same events on each asset, side by side, each "
        "compared with the first (e.g. BTCUSDT,ETHUSDT,SOLUSDT).",
    ),
    interval: str = typer.Option("1d", "--interval"),
    start: str = typer.Option(None, "--start", help="First bar (UTC date)."),
    end: str = typer.Option(None, "--end", help="Last bar (UTC date)."),
    horizons: str = typer.Option("1,3,7,14,30,90", "--horizons", help="Days, comma-separated."),
    baseline: str = typer.Option("random", "--baseline", help="random (random entry days)."),
    draws: int = typer.Option(DEFAULT_DRAWS, "--draws", help="Random-day baseline draws."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    alpha: float = typer.Option(0.05, "--alpha", help="Level of the intervals / test."),
    match_volatility: bool = typer.Option(
        False, "--match-volatility", help="Draw baseline days from the event's volatility regime."
    ),
    cluster: str = typer.Option(
        "mean", "--cluster", help="Overlapping events count once: mean of members, or first."
    ),
    per_event: bool = typer.Option(True, "--per-event/--no-per-event", help="Per-event table."),
    catalog: str = typer.Option(None, "--catalog", help="A catalog TOML (default: shipped)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Forward returns after the events vs a random-day baseline (intervals, p-values)."""
    from flushback.backtests.api import study_events
    from flushback.data.errors import ConfigError

    if baseline != "random":
        raise ConfigError(f"--baseline {baseline!r} is not supported", hint="use --baseline random")
    hs = _parse_horizons(horizons)
    if symbols:
        _study_across(events, [x.strip() for x in symbols.split(",") if x.strip()], hs,
                      interval=interval, start=start, end=end, draws=draws, seed=seed,
                      alpha=alpha, cluster=cluster, match_volatility=match_volatility,
                      catalog=catalog, fmt=fmt)
        return
    section = study_events(
        events, symbol=symbol, interval=interval, start=start, end=end, horizons=hs,
        draws=draws, seed=seed, alpha=alpha, cluster=cluster,
        match_volatility=match_volatility, catalog=catalog, data_dir=STATE.data_dir or None,
    )
    if fmt == OutputFormat.json:
        print_json(section.to_report())
        return
    from rich.table import Table

    lvl = f"{(1 - alpha) * 100:g}%"
    table = Table(
        title=(
            f"event study: {events} events on {symbol} {interval}, entry at next bar's open; "
            f"baseline = random days ({draws} draws, seed {seed}"
            + (", volatility-matched" if match_volatility else "") + ")"
        )
    )
    for col in (
        "horizon", "events", "per-event mean", "clusters", "per-cluster mean", f"{lvl} CI",
        "median", "win", "baseline", f"baseline {lvl}", "p (2-sided)", "p (>)", "MAE mean",
        "MFE mean",
    ):
        table.add_column(col, justify="right")
    ok = [o for o in section.outcomes if o.status == "ok"]
    for row in section.summary:
        # every event counts once here (overlapping holding windows included); the clustered
        # mean, CI, median, win rate and test are over clusters (see `flushback study`)
        rets = [o.returns.get(str(row.horizon)) for o in ok]
        rets = [r for r in rets if r is not None]
        table.add_row(
            f"{row.horizon}d", str(row.n_events),
            _pct(sum(rets) / len(rets)) if rets else "-",
            str(row.n_clusters), _pct(row.ret_mean),
            f"[{_pct(row.ret_ci_lo)}, {_pct(row.ret_ci_hi)}]", _pct(row.ret_median),
            "-" if row.win_rate is None else f"{row.win_rate:.0%}",
            _pct(row.ret_baseline),
            f"[{_pct(row.ret_baseline_lo)}, {_pct(row.ret_baseline_hi)}]",
            _p(row.ret_p_value), _p(row.ret_p_greater), _pct(row.mae_mean), _pct(row.mfe_mean),
        )
    wide_console(150).print(table)
    b = section.baseline
    console.print(
        f"baseline period {b['period_start'][:10]}..{b['period_end'][:10]}; overlapping events "
        f"are clustered per horizon (cluster value = {cluster}); per-cluster mean, CI, median, "
        "win and p-values are over clusters; per-event mean over every event "
        "(`flushback study` shows both with medians and win rates).",
        highlight=False,
    )
    if per_event:
        pt = Table(title="per event (returns from the open after the event day's close)")
        for col in ("event", "entry", "entry price", *[f"{h}d" for h in hs],
                    "MAE max-h", "days to recover", "drawdown ahead"):
            pt.add_column(col, justify="right" if col != "event" else "left", overflow="fold")
        hmax = str(max(hs))
        for o in section.outcomes:
            rec = o.days_to_recover
            pt.add_row(
                o.event_id,
                (o.entry_time or "-")[:10],
                "-" if o.entry_price is None else f"{o.entry_price:,.2f}",
                *[_pct(o.returns.get(str(h))) for h in hs],
                _pct(o.mae.get(hmax)),
                "not yet" if rec is None and o.status == "ok" else (
                    "-" if rec is None else f"{rec:g}"
                ),
                _pct(o.drawdown_ahead),
            )
        console.print(pt)


def _study_across(events: str, symbols: list[str], hs: list[int], *, fmt: OutputFormat,
                  **kwargs: Any) -> None:
    """``events study --symbols``: one study per asset, then each asset against the first."""
    from rich.table import Table

    from flushback.backtests.api import study_events_across

    across = study_events_across(events, symbols=symbols, horizons=hs,
                                 data_dir=STATE.data_dir or None, **kwargs)
    if fmt == OutputFormat.json:
        print_json(across.to_report())
        return
    alpha, draws = kwargs["alpha"], kwargs["draws"]
    lvl = f"{(1 - alpha) * 100:g}%"
    table = Table(title=(f"event study across assets: {events} events dated on "
                         f"{across.reference}, entry at each asset's next open; per-cluster "
                         f"mean [{lvl} CI], p (>) vs its random days ({draws} draws)"))
    table.add_column("horizon", justify="right")
    for s in across.symbols:
        table.add_column(s, justify="right")
    for h in hs:
        cells = []
        for s in across.symbols:
            row = next((r for r in across.sections[s].summary if r.horizon == h), None)
            cells.append("-" if row is None or row.ret_mean is None else
                         f"{_pct(row.ret_mean)} [{_pct(row.ret_ci_lo)}, {_pct(row.ret_ci_hi)}]"
                         f" p {_p(row.ret_p_greater)} (n {row.n_clusters})")
        table.add_row(f"{h}d", *cells)
    wide_console(160).print(table)
    pt = Table(title=f"each asset minus {across.reference}, event by event (events where both "
                     "have a return): mean difference, events better, Wilcoxon p")
    pt.add_column("horizon", justify="right")
    for s in across.symbols[1:]:
        pt.add_column(f"{s} - {across.reference}", justify="right")
    for h in hs:
        rows = {p.symbol: p for p in across.paired if p.horizon == h}
        pt.add_row(f"{h}d", *[
            "-" if rows[s].mean_diff is None else
            f"{_pct(rows[s].mean_diff)}, {rows[s].n_better} of {rows[s].n_events}, "
            f"p {_p(rows[s].wilcoxon_p)}" for s in across.symbols[1:]])
    wide_console(160).print(pt)
    shown = [h for h in hs if h in (7, 30)] or [max(hs)]
    et = Table(title="per event (returns from the open after the event day's close)")
    et.add_column("event", overflow="fold")
    for s in across.symbols:
        for h in shown:
            et.add_column(f"{s} {h}d", justify="right")
    rets = {h: across.returns(h) for h in shown}
    ids = [o.event_id for o in across.sections[across.reference].outcomes]
    for e in ids:
        et.add_row(e, *[_pct(rets[h][s].get(e)) for s in across.symbols for h in shown])
    wide_console(160).print(et)


@app.command("strategy")
def strategy(
    spec: str = typer.Argument(..., help="A backtest spec: shipped name or TOML path."),
    override: list[str] = typer.Option(
        None, "--set", help="Spec override KEY=VALUE (repeatable), e.g. strategy.take_profit=0.2"
    ),
    entry_window: int = typer.Option(
        7, "--entry-window", help="Days after an event's end an entry still counts."
    ),
    horizons: str = typer.Option("7,30,90", "--horizons", help="Event-study horizons (days)."),
    draws: int = typer.Option(DEFAULT_DRAWS, "--draws",
                              help="Random-day baseline draws of the event study."),
    seed: int = typer.Option(0, "--seed"),
    write: bool = typer.Option(
        False, "--write", help="Write the run folder with the events section in report.json."
    ),
    runs_dir: str = typer.Option(None, "--runs-dir", help="Where to write the run (--write)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Run a backtest spec and show what the strategy did at each catalog event."""
    from flushback.backtests.events.strategy import events_section_for_run
    from flushback.backtests.run.runner import run_backtest
    from flushback.backtests.run.spec import load_spec

    result = run_backtest(load_spec(spec, overrides=list(override or [])),
                          data_dir=STATE.data_dir or None)
    section = events_section_for_run(
        result, horizons=_parse_horizons(horizons), draws=draws, seed=seed,
        entry_window_days=entry_window,
    )
    run_dir = None
    if write:
        from flushback.backtests.run.folders import write_run

        run_dir = write_run(result, runs_dir=runs_dir, sections={"events": section.to_report()})
    if fmt == OutputFormat.json:
        doc = section.to_report()
        doc["run_id"] = result.run_id
        doc["run_dir"] = None if run_dir is None else str(run_dir)
        print_json(doc)
        return
    from rich.table import Table

    table = Table(title=f"{result.spec.name}: what the strategy did at each flush (run "
                        f"{result.run_id})")
    for col in ("event", "day", "action", "entry", "price", "days after", "exit", "reason",
                "P&L", "return"):
        table.add_column(col, justify="left" if col in ("event", "action", "reason") else "right")
    for r in section.strategy or []:
        table.add_row(
            r.event_id, r.event_day[:10], r.action, (r.entry_time or "-")[:10],
            "-" if r.entry_price is None else f"{r.entry_price:,.2f}",
            "-" if r.days_after_event is None else f"{r.days_after_event:g}",
            (r.exit_time or "-")[:10], r.exit_reason or "-",
            "-" if r.pnl is None else f"{r.pnl:,.2f}", _pct(r.return_pct),
        )
    console.print(table)
    if run_dir is not None:
        console.print(f"run written with the events section: {run_dir}", markup=False)
