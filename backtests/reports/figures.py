"""The plotly figures of ``report.html``, each built from a :class:`Report` (or its typed
optimization section): equity against buy-and-hold, underwater, monthly returns, the price
chart with signals, trades, Fear & Greed (guides at the spec's own thresholds) and
liquidations in linked panels, and the optimization charts (history, importances, parallel
coordinates, in-sample vs out-of-sample per fold).

Figures carry data, not page layout: :mod:`flushback.backtests.reports.page` embeds them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.reports.format import benchmark_label, fmt
from flushback.backtests.reports.schema import OptimizationSection, Report
from flushback.backtests.reports.tables import FlushEvent, drawdown, monthly_returns

__all__ = [
    "COLORS",
    "PALETTE",
    "base_layout",
    "scale_menu",
    "fng_thresholds",
    "fig_equity",
    "fig_underwater",
    "fig_monthly",
    "fig_price",
    "fig_opt_history",
    "fig_opt_importances",
    "fig_opt_parallel",
    "fig_opt_folds",
    "fold_rows",
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


def _rounded(values: Iterable[Any], digits: int = 7) -> list[float | None]:
    """Chart values to ``digits`` significant digits (what a chart can show; the page stays
    small), missing values as None (a gap)."""
    out: list[float | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        f = float(v)
        if not math.isfinite(f):
            out.append(None)
        elif f == 0:
            out.append(0.0)
        else:
            out.append(round(f, digits - 1 - int(math.floor(math.log10(abs(f))))))
    return out


def _times(index: pd.DatetimeIndex) -> list[str]:
    """Bar times as plotly reads them (UTC, no zone): dates alone when every bar is at
    midnight."""
    idx = index.tz_localize(None) if index.tz is not None else index
    if len(idx) and bool((idx.normalize() == idx).all()):
        return [t.strftime("%Y-%m-%d") for t in idx]
    return [t.strftime("%Y-%m-%d %H:%M") for t in idx]


def base_layout(title: str, height: int = 380) -> dict[str, Any]:
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
    x = _times(eq.index)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=_rounded(eq["equity"]), name="strategy", mode="lines",
                             line={"color": COLORS["strategy"], "width": 1.6}))
    if "benchmark" in eq and eq["benchmark"].notna().any():
        fig.add_trace(go.Scatter(x=x, y=_rounded(eq["benchmark"]),
                                 name=benchmark_label(report.benchmark.name), mode="lines",
                                 line={"color": COLORS["benchmark"], "width": 1.2}))
    bench = benchmark_label(report.benchmark.name)
    fig.update_layout(**base_layout("Equity: strategy vs " + bench))
    values = eq[[c for c in ("equity", "benchmark") if c in eq]].to_numpy(dtype="float64")
    values = values[np.isfinite(values) & (values > 0)]
    # a curve spanning more than 10x reads better on a log scale (the button switches back)
    log = values.size > 0 and values.max() / values.min() > 10
    fig.update_layout(updatemenus=[scale_menu("yaxis", active=1 if log else 0)])
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
    x = _times(eq.index)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=_rounded(drawdown(eq["equity"]) * 100, 5), name="strategy",
                             mode="lines",
                             fill="tozeroy", line={"color": COLORS["strategy"], "width": 1}))
    if "benchmark" in eq and eq["benchmark"].notna().any():
        fig.add_trace(go.Scatter(x=x, y=_rounded(drawdown(eq["benchmark"]) * 100, 5),
                                 name=benchmark_label(report.benchmark.name), mode="lines",
                                 line={"color": COLORS["benchmark"], "width": 1}))
    fig.update_layout(**base_layout("Underwater: drawdown from the running peak", 300))
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
    layout = base_layout("Monthly returns of the strategy (%)", 120 + 26 * len(z))
    layout["hovermode"] = "closest"
    fig.update_layout(**layout)
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def scale_menu(axis: str, x: float = 0.0, y: float = 1.01, active: int = 0) -> dict[str, Any]:
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


_FNG_SIGNALS = {"extreme_fear": "<=", "extreme_greed": ">="}


def fng_thresholds(config: Mapping[str, Any]) -> list[tuple[float, str]]:
    """The Fear & Greed levels the spec's signals fire at, as (level, label): every
    ``extreme_fear`` / ``extreme_greed`` signal (its declared default when the spec leaves the
    threshold out) and every ``threshold`` signal on the ``fng`` column, at any depth of a
    composition. Sorted, without repeats."""
    found: dict[float, str] = {}

    def default(kind: str) -> float | None:
        try:
            from flushback.signals.registry import get_signal

            spec = get_signal(kind).param_specs.get("threshold")
        except Exception:  # an unknown signal type: no guide rather than a wrong one
            return None
        return None if spec is None else float(spec.default)

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            kind = node.get("type")
            if kind in _FNG_SIGNALS:
                level = node.get("threshold", default(kind))
                if isinstance(level, int | float):
                    found.setdefault(float(level), f"{kind} {_FNG_SIGNALS[kind]} {level:g}")
            elif kind == "threshold" and node.get("column") == "fng":
                level = node.get("level")
                if isinstance(level, int | float):
                    found.setdefault(float(level), f"fng {node.get('op', '<=')} {level:g}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk(config.get("signals") or {})
    return sorted(found.items())


def fig_price(report: Report, events: Sequence[FlushEvent] = ()) -> Any | None:
    """Price (close) with triggers, entries and exits; F&G and liquidations panels below on the
    same (linked) time axis; linear/log buttons; a menu zooming every panel to a flush event."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = report.series_frame()
    if s.empty or "close" not in s or s["close"].dropna().empty:
        return None
    x = _times(s.index)
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
    fig.add_trace(go.Scatter(x=x, y=_rounded(s["close"]), name=f"{report.data.symbol} close",
                             mode="lines",
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
                x=x, y=_rounded(s[col]), name=label, mode="lines", connectgaps=False,
                line={"color": color, "width": 1, "dash": "dot", "shape": "hv"},
                hovertemplate=f"{label} %{{y:,.2f}}<extra></extra>",
            ), row=1, col=1)
    if "fng" in row:
        fig.add_trace(go.Scatter(x=x, y=_rounded(s["fng"], 4), name="Fear & Greed",
                                 mode="lines", line={"color": COLORS["fng"], "width": 1}),
                      row=row["fng"], col=1)
        for level, label in fng_thresholds(report.config):
            # a guide where the spec's own signal fires (not a fixed 25/75)
            fig.add_hline(y=level, line={"dash": "dot", "color": "#999", "width": 1},
                          annotation_text=label, annotation_position="top left",
                          annotation_font={"size": 10, "color": "#666"},
                          row=row["fng"], col=1)
        fig.update_yaxes(range=[0, 100], title_text="F&G", row=row["fng"], col=1)
    if "liq" in row:
        bar = len(s) <= 6000
        for col, label, color in (("liq_long_usd", "longs liquidated", COLORS["liq_long"]),
                                  ("liq_short_usd", "shorts liquidated", COLORS["liq_short"])):
            if col not in liq_cols:
                continue
            y = _rounded(s[col] / 1e6, 5)
            if bar:
                trace = go.Bar(x=x, y=y, name=label, marker={"color": color, "line": {"width": 0}})
            else:
                trace = go.Scatter(x=x, y=y, name=label, mode="lines",
                                   line={"color": color, "width": 1})
            fig.add_trace(trace, row=row["liq"], col=1)
        fig.update_yaxes(title_text="liq. $M", row=row["liq"], col=1)
        fig.update_layout(barmode="stack", bargap=0)
    layout = base_layout(
        f"{report.data.symbol} {report.data.interval}: signals, entries and exits", 640
    )
    layout["margin"]["t"] = 110
    layout["legend"]["y"] = 1.06
    fig.update_layout(**layout)
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=len(panels), col=1)
    menus = [scale_menu("yaxis", y=1.01)]
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
def _opt(opt: OptimizationSection | Mapping[str, Any]) -> OptimizationSection:
    return opt if isinstance(opt, OptimizationSection) else \
        OptimizationSection.model_validate(dict(opt))


def fig_opt_history(opt: OptimizationSection | Mapping[str, Any]) -> Any | None:
    """Each fold's trials (in-sample objective) and the best so far, by trial number."""
    import plotly.graph_objects as go

    sec = _opt(opt)
    trials = [t for t in sec.trials if t.state.upper() == "COMPLETE" and t.value is not None]
    if not trials:
        return None
    better = min if sec.minimize else max
    folds = sorted({t.fold for t in trials}, key=lambda f: (f is None, f))
    fig = go.Figure()
    for k, fold in enumerate(folds):
        rows = sorted((t.number, t.value) for t in trials if t.fold == fold)
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
    layout = base_layout(f"Optimization history ({sec.objective}, in-sample)", 360)
    layout["hovermode"] = "closest"
    fig.update_layout(**layout)
    fig.update_xaxes(title_text="trial")
    fig.update_yaxes(title_text=sec.objective)
    return fig


def fig_opt_importances(opt: OptimizationSection | Mapping[str, Any]) -> Any | None:
    """optuna's parameter importances as horizontal bars."""
    import plotly.graph_objects as go

    sec = _opt(opt)
    items = sorted(((str(k), float(v)) for k, v in (sec.param_importances or {}).items()
                    if v is not None), key=lambda kv: kv[1])
    if not items:
        return None
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
                           marker={"color": COLORS["strategy"]}))
    layout = base_layout("Parameter importances (optuna)", 120 + 28 * len(items))
    layout["hovermode"] = "closest"
    fig.update_layout(**layout)
    fig.update_xaxes(title_text="importance")
    return fig


def fig_opt_parallel(opt: OptimizationSection | Mapping[str, Any]) -> Any | None:
    """Parallel coordinates of the trials of the fold that chose the parameters."""
    import plotly.graph_objects as go

    sec = _opt(opt)
    trials = [t for t in sec.trials if t.state.upper() == "COMPLETE" and t.value is not None
              and t.params]
    fold = sec.best_params_fold
    if fold is not None and any(t.fold == fold for t in trials):
        trials = [t for t in trials if t.fold == fold]  # the fold that chose the params
    if len(trials) < 2:
        return None
    names: list[str] = []
    for t in trials:
        for k in t.params:
            if k not in names:
                names.append(k)
    dims = []
    for name in names:
        raw = [t.params.get(name) for t in trials]
        present = [v for v in raw if v is not None]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            vals = [float("nan") if v is None else float(v) for v in raw]
            dims.append({"label": name, "values": vals})
        else:
            cats = sorted({str(v) for v in raw})
            code = {c: i for i, c in enumerate(cats)}
            dims.append({"label": name, "values": [code[str(v)] for v in raw],
                         "tickvals": list(range(len(cats))), "ticktext": cats})
    values = [t.value for t in trials]
    dims.append({"label": sec.objective, "values": values})
    fig = go.Figure(go.Parcoords(
        line={"color": values, "colorscale": "Viridis", "showscale": True,
              "colorbar": {"title": {"text": sec.objective}}},
        dimensions=dims,
    ))
    title = "Parallel coordinates of the trials" + (f" (fold {fold})" if fold else "")
    layout = base_layout(title, 420)
    layout["margin"] = {"l": 70, "r": 70, "t": 90, "b": 30}
    fig.update_layout(**layout)
    return fig


def fold_rows(opt: OptimizationSection | Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per walk-forward fold (or CPCV split): its windows as dates (a split's test
    groups by number), the objective in-sample and out-of-sample, and the fold's DSR and PBO
    when it has them."""
    sec = _opt(opt)
    objective = sec.objective
    rows = []
    for f in sec.is_vs_oos:
        row: dict[str, Any] = {
            "fold": f.fold,
            "train": f"{str(f.train[0])[:10]} → {str(f.train[1])[:10]}",
            "test": (f"{str(f.test[0])[:10]} → {str(f.test[1])[:10]}" if not f.test_groups
                     else "groups " + " + ".join(str(g) for g in f.test_groups)),
            f"in-sample {objective}": f.in_sample.get(objective),
            f"out-of-sample {objective}": f.out_of_sample.get(objective),
        }
        if f.dsr is not None:
            row["DSR"] = f.dsr
        if f.pbo is not None:
            row["PBO"] = f.pbo
        rows.append(row)
    return rows


def cpcv_path_rows(opt: OptimizationSection | Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per combinatorial purged k-fold backtest path (empty without CPCV)."""
    cpcv = _opt(opt).cpcv or {}
    rows = []
    for p in cpcv.get("paths") or []:
        m = p.get("metrics") or {}
        rows.append({"path": p.get("path"),
                     "splits per group": ", ".join(str(f) for f in p.get("folds") or []),
                     "total return": m.get("total_return"), "CAGR": m.get("cagr"),
                     "Sharpe": m.get("sharpe"), "max drawdown": m.get("max_drawdown"),
                     "trades": m.get("n_trades")})
    return rows


def fig_opt_folds(opt: OptimizationSection | Mapping[str, Any]) -> Any | None:
    """In-sample against out-of-sample objective, one pair of bars per fold."""
    import plotly.graph_objects as go

    sec = _opt(opt)
    objective = sec.objective
    rows = fold_rows(sec)
    ins = [r.get(f"in-sample {objective}") for r in rows]
    oos = [r.get(f"out-of-sample {objective}") for r in rows]
    if not any(v is not None for v in ins + oos):
        return None
    labels = [f"fold {r['fold']}" for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=ins, name="in-sample", marker={"color": "#9ecae1"}))
    fig.add_trace(go.Bar(x=labels, y=oos, name="out-of-sample",
                         marker={"color": COLORS["strategy"]}))
    layout = base_layout(f"In-sample vs out-of-sample {objective} per walk-forward fold", 340)
    layout["hovermode"] = "closest"
    fig.update_layout(barmode="group", **layout)
    fig.update_yaxes(title_text=objective)
    return fig
