"""``flushback today [SPEC] [--date D]``: the signals at the latest bar (yes / no / no data) and
the nearest historical setups with what followed them (``flushback.backtests.events.today``)."""

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


def _pct(x: Any) -> str:
    return "-" if x is None else f"{x * 100:+.1f}%"


def _num(x: Any, col: str = "") -> str:
    if x is None:
        return "-"
    if col == "drawdown":
        return f"{x * 100:.1f}%"
    if col == "funding":
        return f"{x * 100:.4f}%"
    return f"{x:.3g}"


_STYLE = {"yes": "bold green", "no": "", "no data": "yellow", "warming up": "yellow"}


def today(
    spec: str = typer.Argument(
        None, metavar="[SPEC]", help="A spec (shipped name or .toml) whose signals are read; "
        "default: the library's trigger signals with their defaults on BTC-USD daily."),
    date: str = typer.Option(
        None, "--date", help="Read the latest bar known at the close of this UTC day "
        "(default: the latest bar in the data)."),
    k: int = typer.Option(5, "--k", min=1, max=50, help="How many analogues."),
    horizons: str = typer.Option("7,30,90", "--horizons", help="Days, comma-separated."),
    exclude_days: int = typer.Option(
        30, "--exclude-days", help="Analogues end this many days before the date."),
    min_gap_days: int = typer.Option(
        30, "--min-gap-days", help="Analogues at least this many days apart."),
    symbol: str = typer.Option(None, "--symbol", help="Default: the spec's, else BTC-USD."),
    out: str = typer.Option(
        None, "--out", help="Write today.json, today.html and today.png to this folder."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Is this the bottom? Every signal at the latest bar with its inputs and their age, and
    the k most similar historical days with what followed each."""
    from flushback.backtests.cli.events import _parse_horizons
    from flushback.backtests.events.today import today as run_today

    res = run_today(spec, date=date, data_dir=STATE.data_dir or None, k=k,
                    horizons=_parse_horizons(horizons), exclude_days=exclude_days,
                    min_gap_days=min_gap_days, symbol=symbol)
    paths = res.write(out) if out else {}
    if fmt == OutputFormat.json:
        doc = res.to_dict()
        doc["files"] = {kk: str(v) for kk, v in paths.items()}
        print_json(doc)
        return
    from rich.table import Table

    out_console = wide_console(200)
    st = Table(title=f"signals at {res.date[:10]} ({res.symbol} {res.interval})")
    for col in ("signal", "status", "last fired", "inputs: value (age at the bar's close)"):
        st.add_column(col, overflow="fold")
    for s in res.signals:
        name = ("  " + s["name"]) if s["leg"] else s["name"]
        st.add_row(
            f"{name} ({s['type']})" if s["name"] != s["type"] else name,
            f"[{_STYLE[s['status']]}]{s['status']}[/]" if _STYLE[s["status"]] else s["status"],
            "-" if s["last_fired"] is None else s["last_fired"][:10],
            "; ".join(f"{i['column']}={i['value_text']} ({i['age_text']})" for i in s["inputs"]),
        )
    out_console.print(st)
    at = Table(title="nearest historical setups (standardised point-in-time features; "
                     "docs/today.md)")
    feats = res.feature_names
    for col in ("date", "distance", "catalog", *feats, *[f"{h}d" for h in res.horizons],
                "drawdown ahead"):
        at.add_column(col, justify="left" if col in ("date", "catalog") else "right",
                      no_wrap=True)
    at.add_row(f"{res.date[:10]} (today)", "-", "-", *[_num(res.features[c], c) for c in feats],
               *["" for _ in res.horizons], "")
    for a in res.analogues:
        at.add_row(a["date"][:10], f"{a['distance']:.3f}", a["catalog_event"] or "-",
                   *[_num(a["features"][c], c) for c in feats],
                   *[_pct(a["forward"][str(h)]) for h in res.horizons],
                   _pct(a["drawdown_ahead"]))
    out_console.print(at)
    out_console.print(res.summary, markup=False, highlight=False, soft_wrap=True)
    for kind, p in paths.items():
        console.print(f"{kind}: {p}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("today")(today)
