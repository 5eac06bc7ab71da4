"""``report.html`` and the Markdown summary, rendered FROM ``report.json``.

The HTML page is one self-contained file: plotly.js is embedded once in the page head (no CDN,
it opens offline), every chart is a plotly figure drawn from the report's arrays, the tables are
plain HTML (the trades and per-event tables sort on a click of their header).

Sections: headline metrics against buy-and-hold, run identity (run_id, version, spec, data
window, dataset fingerprints, config); equity with buy-and-hold, underwater chart, monthly
returns; the price chart (linear/log) with signal triggers and every entry and exit, Fear &
Greed and liquidations in linked panels below it (one shared time axis) and a menu that zooms
to each flush event; trades; what the strategy did at each flush; the optimization section
(history, importances, parallel coordinates, in-sample vs out-of-sample per fold, DSR, PBO)
and the audit section when the report has them.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.reports.schema import Report, validate_report, write_text_atomic
from flushback.backtests.reports.tables import (
    ENTRY_WINDOW_DAYS,
    HORIZON_DAYS,
    FlushEvent,
    drawdown,
    flush_events_for,
    forward_event_outcomes,
    monthly_returns,
)

__all__ = [
    "render_report_html",
    "render_report_markdown",
    "html_page",
    "figure_html",
    "records_table",
    "fmt",
    "as_report",
]

COLORS = {
    "strategy": "#1f77b4",
    "benchmark": "#7f7f7f",
    "entry": "#2ca02c",
    "exit": "#d62728",
    "fng": "#9467bd",
    "liq_long": "#d62728",
    "liq_short": "#2ca02c",
}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f"]

#: signals with more triggers than this (other than "entry") start hidden on the price chart
MAX_VISIBLE_TRIGGERS = 400

# Metrics shown first (when present), in this order; every other metric follows.
PREFERRED_METRICS = (
    "total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
    "max_drawdown_duration", "exposure", "n_trades", "num_trades", "win_rate", "avg_win",
    "avg_loss", "profit_factor", "expectancy", "best_trade", "worst_trade", "avg_holding",
)

# Fractions shown as percentages (units as documented in flushback.backtests.run.metrics).
PERCENT_KEYS = frozenset({
    "total_return", "cagr", "volatility", "max_drawdown", "exposure", "win_rate", "avg_win_pct",
    "avg_loss_pct", "expectancy_pct", "best_trade", "worst_trade", "avg_mae", "worst_mae",
    "avg_mfe", "best_mfe", "return_pct", "mae", "mfe", "trade_return", "strategy_return",
    "benchmark_return",
})


UNSIGNED_PERCENT_KEYS = frozenset({"volatility", "exposure", "win_rate"})


def fmt_metric(key: str, value: Any) -> str:
    """``fmt`` that shows the fraction-valued metrics as percentages."""
    if key in PERCENT_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return pct(value, signed=key not in UNSIGNED_PERCENT_KEYS)
    return fmt(value)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#13233a;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:22px} header .sub{opacity:.8;font-size:13px;margin-top:4px}
main{padding:8px 24px 40px;max-width:1400px;margin:auto}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:10px 16px;
margin:14px 0}
h2{font-size:18px;margin:6px 0 10px} h3{font-size:15px;margin:12px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
th,td{border-bottom:1px solid #eee;padding:3px 9px;text-align:right;white-space:nowrap}
th{background:#f2f4f7} td.l,th.l{text-align:left} .scroll th{position:sticky;top:0}
table.sortable th{cursor:pointer} table.sortable th[data-dir=asc]::after{content:" \\25B2"}
table.sortable th[data-dir=desc]::after{content:" \\25BC"}
.scroll{max-height:480px;overflow:auto;border:1px solid #eee}
.grid{display:flex;flex-wrap:wrap;gap:18px} .grid>div{flex:1 1 420px}
.note{color:#555;font-size:13px;max-width:1000px}
pre{background:#f6f8fa;padding:8px;font-size:12px;overflow:auto;max-height:360px}
.good{color:#137333} .bad{color:#b3261e} code{font-size:12px}
"""

_SORT_JS = """
document.addEventListener('DOMContentLoaded',function(){
document.querySelectorAll('table.sortable').forEach(function(t){
 var ths=t.tHead?t.tHead.rows[0].cells:[];
 Array.prototype.forEach.call(ths,function(th,i){th.addEventListener('click',function(){
  var tb=t.tBodies[0],rows=Array.prototype.slice.call(tb.rows);
  var asc=th.getAttribute('data-dir')!=='asc';
  Array.prototype.forEach.call(ths,function(h){h.removeAttribute('data-dir');});
  th.setAttribute('data-dir',asc?'asc':'desc');
  var num=th.getAttribute('data-type')==='num';
  function key(r){var c=r.cells[i];var v=c.getAttribute('data-v');return v===null?c.textContent:v;}
  rows.sort(function(a,b){var x=key(a),y=key(b);
   if(num){x=parseFloat(x);y=parseFloat(y);if(isNaN(x)&&isNaN(y))return 0;if(isNaN(x))return 1;
    if(isNaN(y))return -1;return asc?x-y:y-x;}
   return asc?String(x).localeCompare(String(y)):String(y).localeCompare(String(x));});
  rows.forEach(function(r){tb.appendChild(r);});});});});});
"""

_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


# --------------------------------------------------------------------------- small helpers
def as_report(report: Report | Mapping[str, Any]) -> Report:
    return report if isinstance(report, Report) else validate_report(report)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: ints as ints, floats with ``digits`` significant digits (thousands
    separated), timestamps as ``YYYY-MM-DD[ HH:MM]``, missing values as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, pd.Timestamp):
        if value is pd.NaT:
            return "–"
        return value.strftime("%Y-%m-%d %H:%M" if (value.hour or value.minute) else "%Y-%m-%d")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value == 0:
            return "0"
        if abs(value) >= 10 ** digits:
            return f"{value:,.0f}"
        return f"{value:,.{max(digits - 1 - int(math.floor(math.log10(abs(value)))), 0)}f}"
    if value is pd.NaT:
        return "–"
    return str(value)


def pct(value: Any, digits: int = 2, signed: bool = True) -> str:
    """A fraction as a percentage (``0.125`` -> ``+12.50 %``); missing -> en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value) * 100:{'+' if signed else ''}.{digits}f} %"


def _sort_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, pd.Timestamp):
        return "" if value is pd.NaT else str(value.value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return "" if isinstance(value, float) and not math.isfinite(value) else repr(value)
    return str(value)


def records_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]] | None = None,
    *,
    sortable: bool = False,
    formatters: Mapping[str, Any] | None = None,
    table_id: str | None = None,
    scroll: bool = False,
) -> str:
    """An HTML table of records. ``columns`` is a list of (key, header); numeric columns are
    right-aligned and sort numerically; ``formatters`` maps key -> callable(value) -> text."""
    if columns is None:
        keys: list[str] = []
        for r in rows:
            for k in r:
                if k not in keys:
                    keys.append(k)
        columns = [(k, k) for k in keys]
    formatters = dict(formatters or {})
    numeric = {}
    for key, _ in columns:
        vals = [r.get(key) for r in rows if r.get(key) is not None]
        numeric[key] = bool(vals) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in vals
        )
    attrs = ' class="sortable"' if sortable else ""
    if table_id:
        attrs += f' id="{esc(table_id)}"'
    head = "".join(
        f'<th data-type="{"num" if numeric[k] else "str"}"'
        f'{"" if numeric[k] else " class=l"}>{esc(h)}</th>'
        for k, h in columns
    )
    body = []
    for r in rows:
        cells = []
        for k, _ in columns:
            v = r.get(k)
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            text = formatters[k](v) if k in formatters else fmt(v)
            cls = "" if numeric[k] else ' class="l"'
            cells.append(f'<td{cls} data-v="{esc(_sort_value(v))}">{esc(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>' if scroll else table


def figure_html(fig: Any, div_id: str) -> str:
    """A plotly figure as a ``<div>`` + its ``Plotly.newPlot`` call (plotly.js NOT included)."""
    import plotly.io as pio

    return pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config=_PLOTLY_CONFIG,
        validate=True,
    )


def html_page(title: str, subtitle: str, sections: Iterable[str]) -> str:
    """A full HTML document with plotly.js embedded once in the head."""
    import plotly
    from plotly.offline import get_plotlyjs

    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{esc(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>{_CSS}</style>\n"
        f"<!-- plotly.js {esc(plotly.__version__)} (plotly.py), embedded so the page opens "
        "offline -->\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n'
        f"<script>{_SORT_JS}</script>\n</head>\n<body>\n"
        f"<header><h1>{esc(title)}</h1><div class=\"sub\">{esc(subtitle)}</div></header>\n"
        "<main>\n" + "\n".join(sections) + "\n</main>\n</body>\n</html>\n"
    )


def _naive_utc(stamps: Iterable[Any]) -> pd.DatetimeIndex:
    """UTC timestamps without zone for plotly.js (which has no time zones); axes say UTC."""
    idx = pd.DatetimeIndex(pd.to_datetime(list(stamps), utc=True))
    return idx.tz_localize(None)


def _section(title: str, body: str, sid: str) -> str:
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{body}</section>'


def ordered_metric_keys(*metric_dicts: Mapping[str, Any]) -> list[str]:
    keys: list[str] = [k for k in PREFERRED_METRICS if any(k in m for m in metric_dicts)]
    for m in metric_dicts:
        for k in m:
            if k not in keys:
                keys.append(k)
    return keys


# --------------------------------------------------------------------------- figures
def _base_layout(title: str, height: int = 380) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.01, "y": 0.985, "yanchor": "top"},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 80, "b": 40},
        "template": "plotly_white",
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom",
                   "traceorder": "normal"},
    }


def _equity(report: Report) -> pd.DataFrame | None:
    """The report's equity frame, or None when it has no equity value to chart."""
    eq = report.equity_frame()
    return None if eq.empty or eq["equity"].dropna().empty else eq


def fig_equity(report: Report) -> Any | None:
    import plotly.graph_objects as go

    eq = _equity(report)
    if eq is None:
        return None
    x = eq.index.tz_localize(None)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=eq["equity"], name="strategy", mode="lines",
                             line={"color": COLORS["strategy"], "width": 1.6}))
    if "benchmark" in eq and eq["benchmark"].notna().any():
        fig.add_trace(go.Scatter(x=x, y=eq["benchmark"], name=report.benchmark.name, mode="lines",
                                 line={"color": COLORS["benchmark"], "width": 1.2}))
    fig.update_layout(**_base_layout("Equity: strategy vs " + report.benchmark.name))
    values = eq[[c for c in ("equity", "benchmark") if c in eq]].to_numpy(dtype="float64")
    values = values[np.isfinite(values) & (values > 0)]
    # a curve spanning more than 10x reads better on a log scale (the button switches back)
    log = values.size > 0 and values.max() / values.min() > 10
    fig.update_layout(updatemenus=[_scale_menu("yaxis", active=1 if log else 0)])
    if log:
        fig.update_yaxes(type="log")
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_yaxes(title_text="portfolio value")
    return fig


def fig_underwater(report: Report) -> Any | None:
    import plotly.graph_objects as go

    eq = _equity(report)
    if eq is None:
        return None
    x = eq.index.tz_localize(None)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=drawdown(eq["equity"]) * 100, name="strategy", mode="lines",
                             fill="tozeroy", line={"color": COLORS["strategy"], "width": 1}))
    if "benchmark" in eq and eq["benchmark"].notna().any():
        fig.add_trace(go.Scatter(x=x, y=drawdown(eq["benchmark"]) * 100,
                                 name=report.benchmark.name, mode="lines",
                                 line={"color": COLORS["benchmark"], "width": 1}))
    fig.update_layout(**_base_layout("Underwater: drawdown from the running peak", 300))
    fig.update_yaxes(title_text="drawdown (%)", ticksuffix=" %")
    fig.update_xaxes(title_text="time (UTC)")
    return fig


def fig_monthly(report: Report) -> Any | None:
    import plotly.graph_objects as go

    eq = _equity(report)
    if eq is None:
        return None
    table = monthly_returns(eq["equity"]) * 100
    if table.empty:
        return None
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    z = [[None if pd.isna(v) else round(float(v), 2) for v in row] for row in table.to_numpy()]
    text = [["" if v is None else f"{v:+.1f}" for v in row] for row in z]
    finite = [abs(v) for row in z for v in row if v is not None]
    bound = max(finite) if finite else 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=months, y=[str(y) for y in table.index], text=text, texttemplate="%{text}",
        colorscale="RdYlGn", zmid=0, zmin=-bound, zmax=bound, xgap=2, ygap=2,
        colorbar={"title": {"text": "%"}},
        hovertemplate="%{y} %{x}: %{z:+.2f} %<extra></extra>",
    ))
    layout = _base_layout("Monthly returns of the strategy (%)", 120 + 26 * len(z))
    layout["hovermode"] = "closest"
    fig.update_layout(**layout)
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def _scale_menu(axis: str, x: float = 0.0, y: float = 1.01, active: int = 0) -> dict[str, Any]:
    return {
        "active": active,
        "type": "buttons",
        "direction": "right",
        "x": x,
        "y": y,
        "xanchor": "left",
        "yanchor": "bottom",
        "showactive": True,
        "buttons": [
            {"label": "linear", "method": "relayout",
             "args": [{f"{axis}.type": "linear", f"{axis}.autorange": True}]},
            {"label": "log", "method": "relayout",
             "args": [{f"{axis}.type": "log", f"{axis}.autorange": True}]},
        ],
    }


def _has_data(values: Sequence[Any]) -> bool:
    return any(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values)


def fig_price(report: Report, events: Sequence[FlushEvent] = ()) -> Any | None:
    """Price (close) with triggers, entries and exits; F&G and liquidations panels below on the
    same (linked) time axis; linear/log buttons; a menu zooming every panel to a flush event."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = report.series_frame()
    if s.empty or "close" not in s or s["close"].dropna().empty:
        return None
    x = s.index.tz_localize(None)
    panels = ["price"]
    if "fng" in s and s["fng"].notna().any():
        panels.append("fng")
    liq_cols = [c for c in ("liq_long_usd", "liq_short_usd") if c in s and s[c].notna().any()]
    if liq_cols:
        panels.append("liq")
    heights = {"price": 0.58, "fng": 0.2, "liq": 0.22}
    total = sum(heights[p] for p in panels)
    fig = make_subplots(
        rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.03,
        row_heights=[heights[p] / total for p in panels],
    )
    row = {p: i + 1 for i, p in enumerate(panels)}
    fig.add_trace(go.Scatter(x=x, y=s["close"], name=f"{report.data.symbol} close", mode="lines",
                             line={"color": "#333", "width": 1.2}), row=1, col=1)
    close_at = s["close"]
    for i, (name, stamps) in enumerate(sorted(report.triggers.items())):
        if not stamps:
            continue
        t = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True))
        y = close_at.reindex(t)
        keep = y.notna().to_numpy()
        if not keep.any():
            continue
        # a signal that is "on" for long stretches (e.g. an exit condition) would bury the
        # chart: it starts hidden (click its legend entry to show it)
        crowded = name != "entry" and int(keep.sum()) > MAX_VISIBLE_TRIGGERS
        fig.add_trace(go.Scatter(
            x=t[keep].tz_localize(None), y=y[keep], mode="markers",
            name=f"signal: {name}" + (" (click to show)" if crowded else ""),
            visible="legendonly" if crowded else True,
            marker={"symbol": "circle-open", "size": 7, "color": PALETTE[(i + 1) % 10],
                    "line": {"width": 1.5}},
        ), row=1, col=1)
    trades = report.trades_frame()
    if not trades.empty:
        hover = [
            f"trade {tid}<br>return {fmt(r)}<br>{reason or ''}"
            for tid, r, reason in zip(
                trades.get("trade_id", pd.Series([None] * len(trades))),
                trades.get("return_pct", pd.Series([None] * len(trades))),
                trades.get("exit_reason", pd.Series([None] * len(trades))),
                strict=True,
            )
        ]
        fig.add_trace(go.Scatter(
            x=trades["entry_time"].dt.tz_localize(None), y=trades["entry_price"], mode="markers",
            name="entry", text=hover, hovertemplate="entry %{y}<br>%{text}<extra></extra>",
            marker={"symbol": "triangle-up", "size": 11, "color": COLORS["entry"],
                    "line": {"width": 1, "color": "#0b3d0b"}},
        ), row=1, col=1)
        done = trades.dropna(subset=["exit_time", "exit_price"])
        if not done.empty:
            fig.add_trace(go.Scatter(
                x=done["exit_time"].dt.tz_localize(None), y=done["exit_price"], mode="markers",
                name="exit", marker={"symbol": "triangle-down", "size": 11,
                                     "color": COLORS["exit"], "line": {"width": 1,
                                                                       "color": "#4d0b0b"}},
            ), row=1, col=1)
    for col, label, color in (("level_take_profit", "level take-profit", COLORS["entry"]),
                              ("level_stop", "level stop", COLORS["exit"])):
        # the structure levels in force during each trade (NaN between trades: the line
        # breaks), one light line each
        if col in s and s[col].notna().any():
            fig.add_trace(go.Scatter(
                x=x, y=s[col], name=label, mode="lines", connectgaps=False,
                line={"color": color, "width": 1, "dash": "dot", "shape": "hv"},
                hovertemplate=f"{label} %{{y:,.2f}}<extra></extra>",
            ), row=1, col=1)
    if "fng" in row:
        fig.add_trace(go.Scatter(x=x, y=s["fng"], name="Fear & Greed", mode="lines",
                                 line={"color": COLORS["fng"], "width": 1}), row=row["fng"], col=1)
        for level in (25, 75):
            fig.add_hline(y=level, line={"dash": "dot", "color": "#bbb", "width": 1},
                          row=row["fng"], col=1)
        fig.update_yaxes(range=[0, 100], title_text="F&G", row=row["fng"], col=1)
    if "liq" in row:
        bar = len(s) <= 6000
        for col, label, color in (("liq_long_usd", "longs liquidated", COLORS["liq_long"]),
                                  ("liq_short_usd", "shorts liquidated", COLORS["liq_short"])):
            if col not in liq_cols:
                continue
            y = s[col] / 1e6
            if bar:
                trace = go.Bar(x=x, y=y, name=label, marker={"color": color, "line": {"width": 0}})
            else:
                trace = go.Scatter(x=x, y=y, name=label, mode="lines",
                                   line={"color": color, "width": 1})
            fig.add_trace(trace, row=row["liq"], col=1)
        fig.update_yaxes(title_text="liq. $M", row=row["liq"], col=1)
        fig.update_layout(barmode="stack", bargap=0)
    layout = _base_layout(
        f"{report.data.symbol} {report.data.interval}: signals, entries and exits", 640
    )
    layout["margin"]["t"] = 110
    layout["legend"]["y"] = 1.06
    fig.update_layout(**layout)
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=len(panels), col=1)
    menus = [_scale_menu("yaxis", y=1.01)]
    zoom = _event_zoom_buttons(s, events, row)
    if zoom:
        menus.append({
            "type": "dropdown", "direction": "down", "x": 0.12, "y": 1.01, "xanchor": "left",
            "yanchor": "bottom", "showactive": True, "buttons": zoom, "active": 0,
        })
    fig.update_layout(updatemenus=menus)
    return fig


def _event_zoom_buttons(
    s: pd.DataFrame, events: Sequence[FlushEvent], row: Mapping[str, int]
) -> list[dict[str, Any]]:
    if not events:
        return []
    first, last = s.index[0], s.index[-1]
    # every panel's x axis is set explicitly: the panels are linked (matches), but a relayout
    # of one member of a match group does not reliably move the others
    xaxes = ["xaxis"] + [f"xaxis{i}" for i in range(2, len(row) + 1)]
    buttons = [{
        "label": "full history", "method": "relayout",
        "args": [{**{f"{ax}.autorange": True for ax in xaxes}, "yaxis.autorange": True,
                  "yaxis.type": "linear",
                  **({f"yaxis{row['liq']}.autorange": True} if "liq" in row else {})}],
    }]
    for ev in events:
        lo = ev.start - pd.Timedelta(days=20)
        hi = ev.end + pd.Timedelta(days=40)
        win = s.loc[max(lo, first):min(hi, last)]
        if win.empty or win["close"].dropna().empty:
            continue
        x_range = [str(lo.tz_localize(None)), str(hi.tz_localize(None))]
        args: dict[str, Any] = {**{f"{ax}.range": x_range for ax in xaxes},
                                "yaxis.type": "linear"}
        low = win["low"] if "low" in win and win["low"].notna().any() else win["close"]
        high = win["high"] if "high" in win and win["high"].notna().any() else win["close"]
        lo_p, hi_p = float(low.min()), float(high.max())
        pad = (hi_p - lo_p) * 0.06 or abs(hi_p) * 0.05
        args["yaxis.range"] = [lo_p - pad, hi_p + pad]
        if "liq" in row:
            cols = [c for c in ("liq_long_usd", "liq_short_usd") if c in win]
            peak = float((win[cols].fillna(0).sum(axis=1) / 1e6).max()) if cols else 0.0
            if peak > 0:
                args[f"yaxis{row['liq']}.range"] = [0, peak * 1.08]
        buttons.append({"label": ev.label, "method": "relayout", "args": [args]})
    return buttons if len(buttons) > 1 else []


# ------------------------------------------------------------------ optimization figures
def _first(d: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _trials(opt: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    trials = _first(opt, "trials", "history", "study_trials") or []
    return [t for t in trials if isinstance(t, Mapping)]


def _trial_value(t: Mapping[str, Any]) -> float | None:
    v = _first(t, "value", "objective")
    if v is None and isinstance(t.get("values"), list) and t["values"]:
        v = t["values"][0]
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _objective_label(opt: Mapping[str, Any]) -> str:
    """The first objective as written by the optimizer (e.g. ``max_sharpe``)."""
    raw = opt.get("study")
    study: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    obj = _first(opt, "objective", "metric") or _first(study, "objectives", "objective")
    if isinstance(obj, list):
        obj = obj[0] if obj else None
    return str(obj or "objective")


def _objective(opt: Mapping[str, Any]) -> str:
    """The objective's metric name (``max_sharpe`` -> ``sharpe``)."""
    label = _objective_label(opt)
    for prefix in ("max_", "min_"):
        if label.startswith(prefix):
            return label[len(prefix):]
    return label


def _direction(opt: Mapping[str, Any]) -> str:
    d = _first(opt, "direction", "directions")
    if isinstance(d, list):
        d = d[0] if d else None
    if d is None:
        d = "minimize" if _objective_label(opt).startswith("min_") else "maximize"
    return "minimize" if str(d).lower().startswith("min") else "maximize"


def _complete(t: Mapping[str, Any]) -> bool:
    return str(t.get("state", "COMPLETE")).upper() == "COMPLETE"


def fig_opt_history(opt: Mapping[str, Any]) -> Any | None:
    import plotly.graph_objects as go

    trials = [t for t in _trials(opt) if _complete(t) and _trial_value(t) is not None]
    if not trials:
        return None
    better = min if _direction(opt) == "minimize" else max
    objective = _objective(opt)
    folds = sorted({t.get("fold") for t in trials}, key=lambda f: (f is None, f))
    fig = go.Figure()
    for k, fold in enumerate(folds):
        rows = sorted(((t.get("number", i), _trial_value(t)) for i, t in enumerate(trials)
                       if t.get("fold") == fold), key=lambda r: r[0])
        nums = [n for n, _ in rows]
        vals = [v for _, v in rows]
        best: list[float | None] = []
        acc: float | None = None
        for v in vals:
            if v is not None:
                acc = v if acc is None else better(acc, v)
            best.append(acc)
        tag = "" if fold is None else f" (fold {fold})"
        color = PALETTE[k % 10]
        fig.add_trace(go.Scatter(x=nums, y=vals, mode="markers", name=f"trial{tag}",
                                 marker={"size": 5, "color": color, "opacity": 0.55}))
        fig.add_trace(go.Scatter(x=nums, y=best, mode="lines", name=f"best so far{tag}",
                                 line={"color": color, "width": 2}))
    layout = _base_layout(f"Optimization history ({objective}, in-sample)", 360)
    layout["hovermode"] = "closest"
    fig.update_layout(**layout)
    fig.update_xaxes(title_text="trial")
    fig.update_yaxes(title_text=objective)
    return fig


def fig_opt_importances(opt: Mapping[str, Any]) -> Any | None:
    import plotly.graph_objects as go

    imp = _first(opt, "importances", "param_importances", "parameter_importances")
    if not isinstance(imp, Mapping) or not imp:
        return None
    items = sorted(((str(k), float(v)) for k, v in imp.items() if v is not None),
                   key=lambda kv: kv[1])
    if not items:
        return None
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                           marker={"color": COLORS["strategy"]}))
    layout = _base_layout("Parameter importances (optuna)", 120 + 28 * len(items))
    layout["hovermode"] = "closest"
    fig.update_layout(**layout)
    fig.update_xaxes(title_text="importance")
    return fig


def fig_opt_parallel(opt: Mapping[str, Any]) -> Any | None:
    import plotly.graph_objects as go

    trials = [t for t in _trials(opt) if _complete(t) and _trial_value(t) is not None
              and isinstance(t.get("params"), Mapping)]
    fold = opt.get("best_params_fold")
    if fold is not None and any(t.get("fold") == fold for t in trials):
        trials = [t for t in trials if t.get("fold") == fold]  # the fold that chose the params
    if len(trials) < 2:
        return None
    names: list[str] = []
    for t in trials:
        for k in t["params"]:
            if k not in names:
                names.append(k)
    dims = []
    for name in names:
        raw = [t["params"].get(name) for t in trials]
        present = [v for v in raw if v is not None]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            vals = [float("nan") if v is None else float(v) for v in raw]
            dims.append({"label": name, "values": vals})
        else:
            cats = sorted({str(v) for v in raw})
            code = {c: i for i, c in enumerate(cats)}
            dims.append({"label": name, "values": [code[str(v)] for v in raw],
                         "tickvals": list(range(len(cats))), "ticktext": cats})
    objective = _objective(opt)
    values = [_trial_value(t) for t in trials]
    dims.append({"label": objective, "values": values})
    fig = go.Figure(go.Parcoords(
        line={"color": values, "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": objective}}},
        dimensions=dims,
    ))
    title = "Parallel coordinates of the trials" + (f" (fold {fold})" if fold else "")
    layout = _base_layout(title, 420)
    layout["margin"] = {"l": 70, "r": 70, "t": 90, "b": 30}
    fig.update_layout(**layout)
    return fig


def _fold_rows(opt: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per walk-forward fold: in-sample and out-of-sample objective (+ DSR, PBO), read
    from the section's ``is_vs_oos`` list (its layout is validated by
    ``flushback.backtests.optimize.study.validate_optimization_section``)."""
    objective = _objective(opt)
    rows = []
    for f in opt.get("is_vs_oos") or []:
        row: dict[str, Any] = {
            "fold": f["fold"],
            "train": f"{str(f['train'][0])[:10]} → {str(f['train'][1])[:10]}",
            "test": f"{str(f['test'][0])[:10]} → {str(f['test'][1])[:10]}",
            f"in-sample {objective}": f["in_sample"].get(objective),
            f"out-of-sample {objective}": f["out_of_sample"].get(objective),
        }
        for key in ("dsr", "pbo"):
            if f.get(key) is not None:
                row[key.upper()] = f[key]
        rows.append(row)
    return rows


def fig_opt_folds(opt: Mapping[str, Any]) -> Any | None:
    import plotly.graph_objects as go

    objective = _objective(opt)
    rows = _fold_rows(opt)
    ins = [r.get(f"in-sample {objective}") for r in rows]
    oos = [r.get(f"out-of-sample {objective}") for r in rows]
    if not any(v is not None for v in ins + oos):
        return None
    labels = [f"fold {r['fold']}" for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=ins, name="in-sample", marker={"color": "#9ecae1"}))
    fig.add_trace(go.Bar(x=labels, y=oos, name="out-of-sample",
                         marker={"color": COLORS["strategy"]}))
    layout = _base_layout(f"In-sample vs out-of-sample {objective} per walk-forward fold", 340)
    layout["hovermode"] = "closest"
    fig.update_layout(barmode="group", **layout)
    fig.update_yaxes(title_text=objective)
    return fig


# --------------------------------------------------------------------------- sections
def _headline(report: Report) -> str:
    m, b = report.metrics, report.benchmark.metrics
    rows = [{"metric": k, "strategy": m.get(k), "benchmark": b.get(k)}
            for k in ordered_metric_keys(m, b)]
    table = "<table><thead><tr><th class=l>metric</th><th>strategy</th>" + (
        f"<th>{esc(report.benchmark.name)}</th></tr></thead><tbody>") + "".join(
        f"<tr><td class=l>{esc(r['metric'])}</td><td>{esc(fmt_metric(r['metric'], r['strategy']))}"
        f"</td><td>{esc(fmt_metric(r['metric'], r['benchmark']))}</td></tr>" for r in rows
    ) + "</tbody></table>"
    return _section("Headline metrics vs " + report.benchmark.name, table, "metrics")


def _warmup_html(report: Report) -> str:
    """The warm-up of the run's signals: a warning when it reaches into the window."""
    w = report.warmup
    if not w:
        return ""
    rows = records_table(
        list(w.get("signals") or []),
        [("name", "signal"), ("type", "type"), ("warmup_bars", "warm-up (bars)"),
         ("inputs_from", "inputs from"), ("valid_from", "valid from")],
    ) if w.get("signals") else ""
    cls = "bad" if w.get("inside_window") else "good"
    head = (f'<p class="{cls}" id="warmup-message"><b>'
            f'{"Warning: " if w.get("inside_window") else ""}{esc(w.get("message", ""))}</b></p>'
            f'<p class=note>first bar at which every signal is valid: '
            f'<code id="warmup-first-valid">{esc(w.get("first_valid_bar"))}</code>; window starts '
            f'<code>{esc(w.get("window_start"))}</code>; bars of the window before it: '
            f'{esc(w.get("bars_in_window_before_valid"))} of {esc(w.get("window_bars"))}.</p>')
    return _section("Signal warm-up", head + rows, "warmup")


def _identity(report: Report) -> str:
    d = report.data
    info = [
        ("run_id", report.run_id), ("kind", report.kind), ("spec", report.spec_name),
        ("flushback version", report.flushback_version),
        ("report schema", report.schema_version), ("created", report.created_at),
        ("symbol", d.symbol), ("interval", d.interval), ("data window", f"{d.start} → {d.end}"),
        ("periods per year", report.periods_per_year),
        ("trades", len(report.trades)),
    ]
    info_html = "<table>" + "".join(
        f'<tr><th class="l">{esc(k)}</th><td class="l"><code>{esc(v)}</code></td></tr>'
        for k, v in info
    ) + "</table>"
    fps = records_table(
        [{"dataset": k, "sha256": v} for k, v in sorted(d.fingerprints.items())],
        [("dataset", "dataset"), ("sha256", "content fingerprint (sha256)")],
    ) if d.fingerprints else "<p class=note>no dataset fingerprints recorded</p>"
    sources = (f"<details><summary>data sources ({len(d.sources)})</summary>"
               f"<pre>{esc(json.dumps(d.sources, indent=1))}</pre></details>"
               if d.sources else "")
    config = (f"<details><summary>configuration (full spec)</summary>"
              f"<pre>{esc(json.dumps(report.config, indent=1, sort_keys=True))}</pre></details>")
    body = (f'<div class="grid"><div>{info_html}</div><div><h3>Data fingerprints</h3>{fps}'
            f"{sources}</div></div>{config}")
    return _section("Run", body, "run")


TRADE_COLUMNS = [
    ("trade_id", "#"), ("signal_time", "signal"), ("entry_time", "entry"),
    ("entry_price", "entry price"), ("exit_time", "exit"), ("exit_price", "exit price"),
    ("size", "size"), ("entry_fee", "entry fee"), ("exit_fee", "exit fee"), ("pnl", "P&L"),
    ("return_pct", "return"), ("bars_held", "bars"), ("exit_reason", "exit reason"),
    ("mae", "MAE"), ("mfe", "MFE"),
]


def _trade_rows(report: Report) -> list[dict[str, Any]]:
    rows = []
    for t in report.trades:
        d = t.model_dump(mode="json")
        for k in ("signal_time", "entry_time", "exit_time"):
            d[k] = pd.Timestamp(d[k]) if d.get(k) else None
        rows.append(d)
    return rows


def _trades_section(report: Report) -> str:
    rows = _trade_rows(report)
    if not rows:
        return _section("Trades", "<p class=note>no closed trades</p>", "trades")
    extra = [(k, k) for k in rows[0] if k not in dict(TRADE_COLUMNS)]
    table = records_table(rows, TRADE_COLUMNS + extra, sortable=True, table_id="trades-table",
                          scroll=True, formatters={k: pct for k in ("return_pct", "mae", "mfe")})
    note = (f"<p class=note>{len(rows)} closed trades; click a column header to sort. "
            "Times are bar open times in UTC.</p>")
    return _section("Trades", note + table, "trades")


def _events_section(report: Report, events: Sequence[FlushEvent]) -> str:
    parts = []
    if events:
        out = forward_event_outcomes(report, list(events))
        rows = out.to_dict(orient="records")
        for r in rows:
            for k in ("start", "entry_time", "exit_time", "horizon_end"):
                r[k] = None if pd.isna(r[k]) else pd.Timestamp(r[k])
            r["entered"] = bool(r["entered"])
        pfmt = {k: pct for k in ("strategy_return", "benchmark_return", "trade_return")}
        parts.append(
            "<p class=note>For each flush event in the data window: whether the strategy "
            f"entered (a trade entered from the day before the event to {ENTRY_WINDOW_DAYS} days "
            "after it; 'in position' = a trade entered earlier was open at the event), that "
            "trade, and the equity change of the strategy and of "
            f"{esc(report.benchmark.name)} from the day before the event to {HORIZON_DAYS} days "
            "after it (or the end of the data).</p>"
        )
        parts.append(records_table(rows, [
            ("start", "event"), ("name", "name"), ("action", "action"),
            ("n_trades", "trades"), ("entry_time", "entry"), ("entry_price", "entry price"),
            ("exit_time", "exit"), ("exit_price", "exit price"), ("trade_return", "trade return"),
            ("strategy_return", f"strategy +{HORIZON_DAYS}d"),
            ("benchmark_return", f"{report.benchmark.name} +{HORIZON_DAYS}d"),
        ], sortable=True, formatters=pfmt, table_id="events-table"))
    if report.events:
        parts.append(_event_study_html(report.events))
    if not parts:
        return ""
    return _section("Flush events: what the strategy did", "".join(parts), "events")


def _ts_cells(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        r = dict(r)
        for k in keys:
            if isinstance(r.get(k), str) and r[k]:
                r[k] = pd.Timestamp(r[k])
        out.append(r)
    return out


def _event_study_html(section: Mapping[str, Any]) -> str:
    """The events section (schema ``flushback.events/1`` of the event study, else generic)."""
    parts = ["<h3>Event study (events section)</h3>"]
    meta = {k: v for k, v in section.items() if not isinstance(v, Mapping | list)}
    if meta:
        parts.append(generic_html(meta))
    strategy = section.get("strategy")
    if isinstance(strategy, list) and strategy:
        cols = [("event_day", "event"), ("event_name", "name"), ("action", "action"),
                ("entry_time", "entry"), ("entry_price", "entry price"),
                ("exit_time", "exit"), ("exit_price", "exit price"),
                ("exit_reason", "exit reason"), ("pnl", "P&L"), ("return_pct", "return")]
        parts.append("<h3>What the strategy did at each event</h3>" + records_table(
            _ts_cells(strategy, ("event_day", "entry_time", "exit_time")), cols, sortable=True,
            formatters={"return_pct": pct}, table_id="event-strategy-table"))
    summary = section.get("summary")
    if isinstance(summary, list) and summary:
        pkeys = {k for r in summary for k in r if k.startswith(("ret_", "mae_", "mfe_"))
                 and "p_value" not in k and "p_greater" not in k} | {"win_rate"}
        parts.append("<h3>Forward returns after the events vs random days</h3>"
                     + records_table([_flatten(r) for r in summary],
                                     formatters={k: pct for k in pkeys}))
    outcomes = section.get("outcomes")
    if isinstance(outcomes, list) and outcomes:
        flat = [_flatten(r) for r in _ts_cells(outcomes, ("day", "entry_time"))]
        pkeys = {k for r in flat for k in r if k.startswith(("returns.", "mae.", "mfe."))} | {
            "drawdown_ahead"}
        parts.append("<h3>Each event's forward outcomes</h3>" + records_table(
            flat, sortable=True, scroll=len(flat) > 20, formatters={k: pct for k in pkeys}))
    rest = {k: v for k, v in section.items() if isinstance(v, Mapping | list)
            and k not in ("strategy", "summary", "outcomes")}
    if rest:
        parts.append(generic_html(rest))
    return "".join(parts)


DSR_SENTENCE = (
    "The Deflated Sharpe Ratio is the probability that the chosen parameters' Sharpe ratio "
    "beats the best one that luck alone would produce from the same number of trials, given "
    "how much the trials' Sharpe ratios varied and the skew and fat tails of the returns; "
    "values near 1 mean the result survives the search, values below 0.95 mean it may be luck "
    "from trying many combinations."
)
PBO_SENTENCE = (
    "The Probability of Backtest Overfitting is the share of combinatorial train/test splits "
    "in which the configuration that was best in-sample ranked in the bottom half "
    "out-of-sample; near 0 the selection generalises, near or above 0.5 the selection is no "
    "better than picking a configuration at random."
)


def _stat_value(opt: Mapping[str, Any], *keys: str) -> Any:
    v = _first(opt, *keys)
    if isinstance(v, Mapping):
        v = _first(v, "value", "dsr", "pbo", "probability")
    return v


def _optimization_section(report: Report, figs: list[str]) -> str:
    opt = report.optimization or {}
    parts = []
    dsr = _stat_value(opt, "dsr", "deflated_sharpe", "deflated_sharpe_ratio")
    pbo = _stat_value(opt, "pbo", "probability_of_backtest_overfitting")
    stats = []
    for label, key, value, sentence in (
            ("Deflated Sharpe Ratio (DSR)", "dsr", dsr, DSR_SENTENCE),
            ("Probability of Backtest Overfitting (PBO)", "pbo", pbo, PBO_SENTENCE)):
        detail = opt.get(key)
        more = (f"<details><summary>details</summary>{generic_html(detail)}</details>"
                if isinstance(detail, Mapping) else "")
        stats.append(f"<p><b>{label}: {esc(fmt(value))}</b><br><span class=note>{sentence}"
                     f"</span></p>{more}")
    parts.append("".join(stats))
    best = _first(opt, "best_params", "best_parameters")
    if isinstance(best, Mapping):
        parts.append("<h3>Chosen parameters</h3>" + records_table(
            [{"parameter": k, "value": v} for k, v in best.items()]))
    for name, builder in (("opt-history", fig_opt_history), ("opt-importances",
                                                             fig_opt_importances),
                          ("opt-parallel", fig_opt_parallel), ("opt-folds", fig_opt_folds)):
        fig = builder(opt)
        if fig is not None:
            figs.append(name)
            parts.append(figure_html(fig, name))
    folds = _fold_rows(opt)
    if folds:
        parts.append("<h3>Walk-forward folds</h3>" + records_table(folds))
    known = {"trials", "history", "study_trials", "importances", "param_importances",
             "parameter_importances", "folds", "walk_forward", "walkforward", "dsr",
             "deflated_sharpe", "deflated_sharpe_ratio", "pbo", "is_vs_oos", "note",
             "probability_of_backtest_overfitting", "best_params", "best_parameters"}
    rest = {k: v for k, v in opt.items() if k not in known}
    if rest:
        parts.append("<details><summary>Other optimization details</summary>"
                     + generic_html(rest) + "</details>")
    note = ("<p class=note>Headline metrics above are the out-of-sample backtest of the chosen "
            "parameters; in-sample values appear only in this section."
            + (f" {esc(opt['note'])}." if isinstance(opt.get("note"), str) else "") + "</p>")
    return _section("Optimization", note + "".join(parts), "optimization")


def generic_html(obj: Any, depth: int = 0) -> str:
    """Render a free-form section (events, audit, ...) readably: scalars as a key/value table,
    lists of records as tables, nested mappings as sub-headings."""
    if isinstance(obj, Mapping):
        scalars = {k: v for k, v in obj.items() if not isinstance(v, Mapping | list)}
        out = []
        if scalars:
            out.append("<table>" + "".join(
                f'<tr><th class="l">{esc(k)}</th><td class="l">{esc(fmt(v))}</td></tr>'
                for k, v in scalars.items()) + "</table>")
        for k, v in obj.items():
            if isinstance(v, Mapping | list):
                if depth >= 3:
                    out.append(f"<h3>{esc(k)}</h3><pre>{esc(json.dumps(v, indent=1))}</pre>")
                else:
                    out.append(f"<h3>{esc(k)}</h3>" + generic_html(v, depth + 1))
        return "".join(out)
    if isinstance(obj, list):
        if obj and all(isinstance(r, Mapping) for r in obj):
            flat = [_flatten(r) for r in obj]
            return records_table(flat, sortable=True, scroll=len(flat) > 20)
        return f"<p>{esc(', '.join(fmt(v) for v in obj))}</p>"
    return f"<p>{esc(fmt(obj))}</p>"


def _flatten(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, Mapping) and all(not isinstance(x, Mapping | list) for x in v.values()):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        elif isinstance(v, Mapping | list):
            out[k] = json.dumps(v)
        else:
            out[k] = v
    return out


def _audit_section(report: Report) -> str:
    audit = report.audit or {}
    verdict = _first(audit, "verdict", "passed", "ok", "status")
    head = ""
    if verdict is not None:
        good = verdict is True or str(verdict).lower() in ("pass", "passed", "ok", "true")
        head = (f'<p><b>Verdict: <span class="{"good" if good else "bad"}">'
                f"{esc(fmt(verdict))}</span></b></p>")
    checks = audit.get("checks")
    parts = [head]
    if isinstance(checks, list) and checks and all(isinstance(c, Mapping) for c in checks):
        # one line per check, then each check's own table (its declared columns first)
        parts.append(records_table(
            [{"check": c.get("title") or c.get("name"), "verdict": c.get("verdict"),
              "summary": c.get("summary")} for c in checks]))
        for c in checks:
            rows = c.get("rows")
            if isinstance(rows, list) and rows and all(isinstance(r, Mapping) for r in rows):
                cols = [(k, k) for k in c.get("columns") or []] or None
                parts.append(
                    f"<details><summary>{esc(c.get('title') or c.get('name'))}: "
                    f"{len(rows)} rows</summary>"
                    + records_table([_flatten(r) for r in rows], cols, sortable=True,
                                    scroll=len(rows) > 20) + "</details>")
            findings = c.get("findings")
            if isinstance(findings, list) and findings:
                parts.append(f"<h3>{esc(c.get('name'))}: findings</h3>" + generic_html(findings))
        rest = {k: v for k, v in audit.items() if k not in ("checks", "verdict", "passed")}
        parts.append("<details><summary>audit settings</summary>" + generic_html(rest)
                     + "</details>")
    else:
        parts.append(generic_html(audit))
    return _section("Bias audit", "".join(parts), "audit")


# --------------------------------------------------------------------------- entry points
def build_report_html(report: Report | Mapping[str, Any],
                      events: Sequence[FlushEvent] | None = None) -> tuple[str, list[str]]:
    """(HTML text, ids of the chart divs) for a report."""
    rep = as_report(report)
    if events is None:
        events = flush_events_for(rep)
    figs: list[str] = []
    sections = [_headline(rep), _identity(rep)]
    warm = _warmup_html(rep)
    if warm:
        # a warm-up inside the window qualifies every number below: show it first
        if (rep.warmup or {}).get("inside_window"):
            sections.insert(0, warm)
        else:
            sections.append(warm)

    def add(fig: Any, div_id: str) -> str:
        if fig is None:
            return ""
        figs.append(div_id)
        return figure_html(fig, div_id)

    perf = add(fig_equity(rep), "equity") + add(fig_underwater(rep), "underwater") + add(
        fig_monthly(rep), "monthly")
    if perf:
        sections.append(_section("Performance", perf, "performance"))
    price = add(fig_price(rep, events), "price")
    if price:
        note = ("<p class=note>Use the buttons above the chart for a log price scale and the "
                "menu to zoom every panel to a flush event; the panels share one time axis, so "
                "zooming or panning any of them moves all.</p>") if events else ""
        sections.append(_section("Price, signals and trades", note + price, "price-section"))
    sections.append(_trades_section(rep))
    ev = _events_section(rep, events)
    if ev:
        sections.append(ev)
    if rep.optimization:
        sections.append(_optimization_section(rep, figs))
    if rep.audit:
        sections.append(_audit_section(rep))
    title = f"flushback report: {rep.spec_name or rep.run_id}"
    subtitle = (f"run {rep.run_id} · {rep.data.symbol} {rep.data.interval} · "
                f"{rep.data.start[:10]} → {rep.data.end[:10]} · flushback "
                f"{rep.flushback_version}")
    return html_page(title, subtitle, sections), figs


def render_report_html(
    report: Report | Mapping[str, Any],
    path: str | Path | None = None,
    *,
    events: Sequence[FlushEvent] | None = None,
) -> str:
    """Render ``report.html`` from a report (dict or :class:`Report`); write it atomically to
    ``path`` when given. Returns the HTML text."""
    text, _ = build_report_html(report, events)
    if path is not None:
        write_text_atomic(path, text)
    return text


_MD_SPECIAL = "\\`*_[]|#~"


def md_escape(text: Any) -> str:
    """``text`` as literal Markdown inline text: the characters that start emphasis, code, links,
    tables or headings are backslash-escaped, ``&``/``<``/``>`` become HTML entities (no raw
    HTML such as ``<script>`` survives) and line breaks become spaces (no injected blocks)."""
    out = []
    flat = " ".join(str(text).split()) if text is not None else ""
    for i, ch in enumerate(flat):
        # an underscore inside a word (snake_case) never starts emphasis: left as written
        inner = ch == "_" and 0 < i < len(flat) - 1 and flat[i - 1].isalnum() \
            and flat[i + 1].isalnum()
        if ch in _MD_SPECIAL and not inner:
            out.append("\\" + ch)
        else:
            out.append({"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(ch, ch))
    return "".join(out)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return md_escape(v)

    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def render_report_markdown(report: Report | Mapping[str, Any],
                           events: Sequence[FlushEvent] | None = None,
                           max_trades: int = 20) -> str:
    """A Markdown summary of a run that pastes into an issue or a notebook."""
    rep = as_report(report)
    if events is None:
        events = flush_events_for(rep)
    d = rep.data
    out = [
        f"## flushback report: {md_escape(rep.spec_name or rep.run_id)}",
        "",
        *([f"> {md_escape(rep.config['description'])}", ""]
          if rep.config.get("description") else []),
        f"- run_id: `{rep.run_id}` ({rep.kind}), flushback {rep.flushback_version}, "
        f"report schema {rep.schema_version}",
        f"- data: {d.symbol} {d.interval}, {d.start} → {d.end}",
        "- fingerprints: " + (", ".join(f"{k} `{v[:12]}`" for k, v in
                                       sorted(d.fingerprints.items())) or "none"),
        "",
        "### Headline metrics",
        "",
        _md_table(["metric", "strategy", rep.benchmark.name],
                  [(k, fmt_metric(k, rep.metrics.get(k)),
                    fmt_metric(k, rep.benchmark.metrics.get(k)))
                   for k in ordered_metric_keys(rep.metrics, rep.benchmark.metrics)]),
        "",
    ]
    rows = _trade_rows(rep)
    out += [f"### Trades ({len(rows)})", ""]
    if rows:
        shown = rows[:max_trades]
        out.append(_md_table(
            ["#", "entry", "entry price", "exit", "exit price", "return", "exit reason"],
            [(fmt(r.get("trade_id")), fmt(r.get("entry_time")), fmt(r.get("entry_price")),
              fmt(r.get("exit_time")), fmt(r.get("exit_price")), pct(r.get("return_pct")),
              r.get("exit_reason") or "") for r in shown]))
        if len(rows) > max_trades:
            out.append(f"\n({len(rows) - max_trades} more trades in report.json)")
    else:
        out.append("No closed trades.")
    out.append("")
    if events:
        o = forward_event_outcomes(rep, list(events))
        out += ["### Flush events", "",
                _md_table(["event", "action", "entry", "trade return",
                           f"strategy +{HORIZON_DAYS}d", f"{rep.benchmark.name} +{HORIZON_DAYS}d"],
                          [(f"{r.start:%Y-%m-%d} {r.name}", r.action,
                            fmt(None if pd.isna(r.entry_time) else r.entry_time),
                            pct(r.trade_return), pct(r.strategy_return),
                            pct(r.benchmark_return)) for r in o.itertuples()]), ""]
    if rep.optimization:
        opt = rep.optimization
        dsr = _stat_value(opt, "dsr", "deflated_sharpe", "deflated_sharpe_ratio")
        pbo = _stat_value(opt, "pbo", "probability_of_backtest_overfitting")
        out += ["### Optimization", "",
                f"- trials: {len(_trials(opt))}",
                f"- Deflated Sharpe Ratio: {fmt(dsr)}. {DSR_SENTENCE}",
                f"- PBO: {fmt(pbo)}. {PBO_SENTENCE}", ""]
        folds = _fold_rows(opt)
        if folds:
            obj = _objective(opt)
            out += [_md_table(["fold", f"in-sample {obj}", f"out-of-sample {obj}"],
                              [(r["fold"], fmt(r.get(f"in-sample {obj}")),
                                fmt(r.get(f"out-of-sample {obj}"))) for r in folds]), ""]
    if rep.audit:
        verdict = _first(rep.audit, "verdict", "passed", "ok", "status")
        out += ["### Bias audit", "", f"- verdict: {fmt(verdict)}", ""]
    return "\n".join(out).rstrip() + "\n"
