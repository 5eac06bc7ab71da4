"""``flushback study SIGNAL_OR_SPEC``: forward returns after a signal (or every bar, by buckets
of a series), per day and per cluster, against random days
(``flushback.backtests.events.signal_study``).
"""

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


def _pct(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-"
    return "-" if v != v else f"{v * 100:+.2f}%"


def study(
    target: str = typer.Argument(
        None, metavar="[SIGNAL_OR_SPEC]",
        help="A signal name, a JSON signal config, a spec (its [signals.entry]), or nothing / "
        "every-bar (every bar; use with --buckets).",
    ),
    buckets: str = typer.Option(
        None, "--buckets", help="Group bars by a series: COLUMN:EDGES, e.g. fng:0,25,45,55,76,101 "
        "(buckets are [edge_i, edge_i+1)).",
    ),
    horizons: str = typer.Option("1,7,30,90", "--horizons", help="Days, comma-separated."),
    symbol: str = typer.Option(None, "--symbol", help="Default: the spec's, else BTC-USD."),
    interval: str = typer.Option(None, "--interval", help="Default: the spec's, else 1d."),
    start: str = typer.Option(None, "--start", help="First trigger bar (UTC date)."),
    end: str = typer.Option(None, "--end", help="Last trigger bar (UTC date), inclusive."),
    draws: int = typer.Option(DEFAULT_DRAWS, "--draws", help="Random-day baseline draws."),
    seed: int = typer.Option(0, "--seed", help="Seed of the baseline."),
    alpha: float = typer.Option(0.05, "--alpha", help="Level of the intervals."),
    cluster: str = typer.Option("mean", "--cluster", help="Cluster value: mean or first."),
    out: str = typer.Option(
        None, "--out", help="Write study.json, study_table.csv, study_days.csv, study.html and "
        "study.png to this folder."),
    png: bool = typer.Option(True, "--png/--no-png", help="Also write study.png (with --out)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Forward returns after each trigger (or every bar by buckets): per-day AND per-cluster
    mean, median, win rate and n; random-day baseline and p-values; worst drawdown ahead."""
    from flushback.backtests.cli.events import _parse_horizons
    from flushback.backtests.events.signal_study import study as run_study
    from flushback.backtests.events.signal_study import study_data
    from flushback.data.errors import ConfigError

    if cluster not in ("mean", "first"):
        raise ConfigError(f"--cluster {cluster!r} is not mean or first")
    frame, cfg, window = study_data(target, symbol=symbol, interval=interval, start=start,
                                    end=end, data_dir=STATE.data_dir or None, buckets=buckets)
    st = run_study(frame, cfg, buckets=buckets, horizons=_parse_horizons(horizons),
                   start=window["start"], end=window["end"], draws=draws, seed=seed,
                   alpha=alpha, cluster=cluster)  # type: ignore[arg-type]
    paths = st.write(out, png=png) if out else {}
    if fmt == OutputFormat.json:
        doc = st.to_dict()
        if not out:
            doc.pop("days")  # the per-day rows go to study_days.csv / study.json with --out
        doc["files"] = {k: str(v) for k, v in paths.items()}
        print_json(doc)
        return
    from rich.table import Table

    from flushback.backtests.reports.study_plots import study_table_rows

    s = st.settings
    title = (f"study: {s['label']}"
             + (f" by {s['buckets']['column']} bucket" if s["buckets"] else "")
             + f" on {s['symbol']} {s['interval']}, {s['period_start'][:10]} .. "
             f"{s['period_end'][:10]}; entry at the next bar's open")
    out_console = wide_console(170)
    out_console.print(title, markup=False, highlight=False)
    for sub, header, rows in study_table_rows(st):
        table = Table(title=sub)
        for i, col in enumerate(header):
            table.add_column(col, justify="left" if i == 0 else "right")
        for r in rows:
            table.add_row(*[str(c) for c in r])
        out_console.print(table)
    console.print(
        "per-day: mean/median/win over every day's forward return (days overlap); per-cluster: "
        "days whose holding windows overlap form one cluster valued at its days' "
        f"{'mean' if cluster == 'mean' else 'first day'}; baseline and p-value (2-sided) test "
        f"the per-cluster mean against random entry days ({draws} draws, seed {seed}); "
        "worst drawdown ahead: lowest low within the longest horizon vs the trigger bar's close.",
        markup=False, highlight=False, soft_wrap=True)
    for kind, p in paths.items():
        console.print(f"{kind}: {p}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("study")(study)
