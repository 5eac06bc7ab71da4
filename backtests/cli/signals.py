"""``flushback signals ...``: list the registered signals, scan a symbol's history for triggers."""

from __future__ import annotations

import json
import math
from typing import Any

import typer

from flushback.backtests.cli._common import STATE, OutputFormat, console, print_json

app = typer.Typer(no_args_is_help=True, help="List signals and scan history for their triggers.")


def _signal_info(name: str) -> dict[str, Any]:

    from flushback.signals import get_signal
    from flushback.signals.base import duration

    cls = get_signal(name)
    sig = cls.example()
    space = sig.search_space()
    return {
        "name": name,
        "kind": sig.kind,
        "summary": cls.summary or (cls.__doc__ or "").strip().split("\n")[0],
        "inputs": list(sig.required_columns()),
        "optional_inputs": list(sig.optional_inputs),
        "warmup_bars": {iv: sig.warmup_for(duration(iv)) for iv in ("1d", "4h", "1h")
                        if _fits(sig, iv)},
        "tolerance": sig.tolerance,
        "composite": hasattr(sig, "children"),
        "params": {k: {**p.to_dict(), "value": sig.params[k]} for k, p in space.items()},
    }


def _fits(sig: Any, interval: str) -> bool:
    from flushback.data.errors import FlushbackError
    from flushback.signals.base import duration

    try:
        sig.warmup_for(duration(interval))
    except FlushbackError:
        return False
    return True


@app.command("list")
def list_cmd(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Registered signals: parameters with their search ranges, warm-up and inputs."""
    from flushback.signals import list_signals

    infos = [_signal_info(n) for n in list_signals()]
    if fmt == OutputFormat.json:
        print_json({"signals": infos})
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(infos)} registered signals (composites shown with an example)",
                  show_lines=True)
    table.add_column("name / kind", no_wrap=True)
    for col in ("inputs", "warm-up (bars)", "what it does; parameters: default  range"):
        table.add_column(col, overflow="fold")
    from flushback.signals import get_signal

    for info in infos:
        example = get_signal(info["name"]).example()
        space = example.search_space()
        if info["composite"]:
            space = {k: v for k, v in space.items() if not k.startswith("of.")}
        params = escape("\n".join(  # ranges and patterns hold brackets, not rich markup
            f"{k} = {_show(info['params'][k]['value'])}  {p.describe_range()}"
            + (f" {p.units}" if p.units else "")
            for k, p in space.items()
        )) or "-"
        if info["composite"]:
            params += ("\n" if space else "") + "+ each child's parameters as of.<i>.<param>"
        warm = ", ".join(f"{iv}: {w}" for iv, w in info["warmup_bars"].items())
        table.add_row(f"{info['name']}\n[dim]{info['kind']}[/dim]",
                      ", ".join(info["inputs"]) or "-", warm,
                      f"[italic]{info['summary']}[/italic]\n{params}")
    console.print(table)


def _show(v: Any) -> str:
    if isinstance(v, float) and (abs(v) >= 1e6 or (v != 0 and abs(v) < 1e-3)):
        return f"{v:g}"
    return str(v)


def _parse_sets(sets: list[str], sig_type: str) -> dict[str, Any]:
    from flushback.data.errors import ConfigError

    out: dict[str, Any] = {}
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not name.param=value",
                              hint=f"e.g. --set {sig_type}.threshold=25")
        key, value = item.split("=", 1)
        key = key.strip()
        if key.startswith(sig_type + "."):
            key = key[len(sig_type) + 1:]
        out[key] = value.strip()
    return out


def _config(signal: str, sets: list[str]) -> dict[str, Any]:
    from flushback.signals.registry import config_from_text

    config = config_from_text(signal)
    return {**config, **_parse_sets(sets, str(config.get("type", "")))}


def _fmt_value(col: str, v: Any) -> str:
    import pandas as pd

    if isinstance(v, pd.Timestamp):  # e.g. the bar a swing or a gap is dated at
        return v.strftime("%Y-%m-%d %H:%M")
    if hasattr(v, "item"):
        v = v.item()
    if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        # a child trigger without its inputs on this bar is "no data", never "no"
        return "no data" if ":" in col else "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if not isinstance(v, int | float):
        return str(v)
    base = col.rsplit(".", 1)[-1]
    if "usd" in base or base == "baseline":
        return f"${v / 1e6:,.1f}M"
    if base in ("long_share", "drawdown", "change", "return"):
        return f"{v * 100:+.1f}%" if base != "long_share" else f"{v * 100:.0f}%"
    if base == "funding_rate":
        return f"{v:.6f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _jsonable(v: Any) -> Any:
    import pandas as pd

    if v is None or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        from flushback.backtests.run.timefmt import iso_z

        return iso_z(v)
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@app.command("scan")
def scan(
    signal: str = typer.Argument(..., help="A signal name (see `signals list`) or a JSON config."),
    symbol: str = typer.Option("BTC-USD", "--symbol", help="Symbol, e.g. BTC-USD, BTCUSDT."),
    interval: str = typer.Option("1d", "--interval", help="Bar interval: 1d, 4h or 1h."),
    sets: list[str] = typer.Option(
        [], "--set", help="Override a parameter: name.param=value (repeatable)."
    ),
    since: str = typer.Option(None, "--since", help="First bar to report (UTC date/time)."),
    until: str = typer.Option(None, "--until", help="Last bar to report (UTC date/time)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json"),
) -> None:
    """Print every bar where SIGNAL fires, with the values that made it fire."""
    import pandas as pd

    from flushback.backtests.run.timefmt import iso_z
    from flushback.data import load_frame
    from flushback.data.errors import ConfigError
    from flushback.signals import build_signal
    from flushback.signals.base import duration

    config = _config(signal, sets)
    sig = build_signal(config)
    if sig.kind != "bool":
        raise ConfigError(
            f"'{sig.name}' is a float strength, not a trigger; scan lists triggers",
            hint="scan its trigger variant, e.g. oversold_rsi / overbought_rsi",
        )
    start = end = None
    if since:
        start = pd.Timestamp(since, tz="UTC") if pd.Timestamp(since).tzinfo is None else (
            pd.Timestamp(since))
    if until:
        end = pd.Timestamp(until, tz="UTC") if pd.Timestamp(until).tzinfo is None else (
            pd.Timestamp(until))
    step = duration(interval)
    load_start = None if start is None else start - step * (sig.warmup_for(step) + 10)
    assembled = load_frame(symbol, interval, start=load_start, end=end,
                           data_dir=STATE.data_dir or None)
    frame = assembled.frame
    fired = sig.compute(frame)
    explain = sig.explain(frame)
    window = pd.Series(True, index=frame.index)
    if start is not None:
        window &= frame.index >= start
    if end is not None:
        window &= frame.index <= end
    hits = fired[fired & window].index
    have_inputs = sig.evaluable(frame) & window
    n_bars = int(window.sum())
    n_eval = int(have_inputs.sum())
    summary = {
        "signal": sig.to_config(),
        "symbol": symbol,
        "interval": interval,
        "first_bar": iso_z(frame.index[window][0]) if n_bars else None,
        "last_bar": iso_z(frame.index[window][-1]) if n_bars else None,
        "bars": n_bars,
        "bars_with_inputs": n_eval,
        "warmup_bars": sig.warmup_for(step),
        "count": len(hits),
        "trigger_rate": (len(hits) / n_eval) if n_eval else None,
    }
    rows = explain.loc[hits]  # a composite leg without its inputs holds None: "no data"
    if fmt == OutputFormat.json:
        print_json({
            **summary,
            "fingerprints": assembled.fingerprints,
            "triggers": [
                {"timestamp": iso_z(ts),
                 "values": {c: _jsonable(rows.at[ts, c]) for c in rows.columns}}
                for ts in hits
            ],
        })
        return
    from rich.table import Table

    rate = summary["trigger_rate"]
    title = (f"{sig.name} on {symbol} {interval}: {len(hits)} trigger(s) in {n_eval} bars with "
             f"inputs" + (f" ({rate * 100:.1f} %)" if rate is not None else ""))
    console.print(title, markup=False, highlight=False, soft_wrap=True)
    console.print(f"config: {json.dumps(sig.to_config())}", markup=False, highlight=False,
                  soft_wrap=True)
    table = Table()
    daily = step >= pd.Timedelta(days=1)
    table.add_column("bar (UTC open)", no_wrap=True)
    wide = len(rows.columns) > 7  # composites: one "values" cell per trigger instead
    if wide:
        table.add_column("values", overflow="fold")
    else:
        for c in rows.columns:
            table.add_column(c, justify="right", overflow="fold")
    for ts in hits:
        label = ts.strftime("%Y-%m-%d") if daily else ts.strftime("%Y-%m-%d %H:%M")
        cells = [_fmt_value(c, rows.at[ts, c]) for c in rows.columns]
        if wide:
            table.add_row(label, "  ".join(
                f"{c}={v}" for c, v in zip(rows.columns, cells, strict=True) if v != "-"))
        else:
            table.add_row(label, *cells)
    console.print(table)
