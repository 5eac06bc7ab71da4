"""Charts of a signal study and of ``flushback today``: plotly for HTML, matplotlib for PNG.

plotly draws the interactive pages (self-contained HTML, plotly.js inlined once). PNG files are
drawn with matplotlib on its Agg backend: plotly's PNG export (kaleido) needs a browser, which a
headless server or CI does not have. Both read only the result objects; no computation here.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["study_html", "study_png", "today_html", "today_png"]


def _pct(x: Any, digits: int = 1) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "-"
    if not np.isfinite(v):
        return "-"
    return f"{v * 100:+.{digits}f}%"


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:system-ui,sans-serif;"
        "margin:20px;color:#222}table{border-collapse:collapse;font-size:13px}"
        "th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}"
        "th{background:#f2f4f7}td.l,th.l{text-align:left}.note{color:#555;font-size:13px}"
        "</style></head><body>" + body + "</body></html>"
    )


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    head = "".join(f"<th class={'l' if i < left else ''}>{html.escape(h)}</th>"
                   for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td class={'l' if i < left else ''}>{html.escape(str(c))}</td>"
                         for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fig_div(fig: Any, first: bool) -> str:
    return fig.to_html(full_html=False, include_plotlyjs="inline" if first else False,
                       config={"displaylogo": False, "responsive": True})


# --------------------------------------------------------------------------- study
def study_table_rows(st: Any) -> list[tuple[str, list[str], list[list[Any]]]]:
    """The two labelled tables -- per day and per cluster -- as (title, header, rows); the
    HTML page and the CLI both print these."""
    # per trigger bar: a day on daily bars (the per_day_* columns), an hour on hourly ones
    u = "day" if st.settings.get("interval") in (None, "1d") else "bar"
    day_h = ["group", "horizon", f"{u}s (n)", f"per-{u} mean", f"per-{u} median",
             f"per-{u} win", "MAE mean", "worst MAE", "worst drawdown ahead"]
    clu_h = ["group", "horizon", "clusters (n)", "per-cluster mean", "95% CI",
             "per-cluster median", "per-cluster win", "baseline (random days)",
             "baseline band", "p (2-sided)", "p (>)"]
    day_rows, clu_rows = [], []
    for r in st.table.to_dict("records"):
        g, h = r["group"], f"{r['horizon']}d"
        day_rows.append([
            g, h, _int(r.get("per_day_n")), _pct(r.get("per_day_mean")),
            _pct(r.get("per_day_median")), _share(r.get("per_day_win_rate")),
            _pct(r.get("mae_mean")), _pct(r.get("mae_worst")),
            _pct(r.get("drawdown_ahead_worst")),
        ])
        if _nan(r.get("per_cluster_n")):
            continue  # the unconditional row has no clusters: it is the baseline population
        clu_rows.append([
            g, h, _int(r.get("per_cluster_n")), _pct(r.get("per_cluster_mean")),
            f"[{_pct(r.get('per_cluster_ci_lo'))}, {_pct(r.get('per_cluster_ci_hi'))}]",
            _pct(r.get("per_cluster_median")), _share(r.get("per_cluster_win_rate")),
            _pct(r.get("baseline_mean")),
            f"[{_pct(r.get('baseline_lo'))}, {_pct(r.get('baseline_hi'))}]",
            _p(r.get("p_value")), _p(r.get("p_greater")),
        ])
    return [(f"per {u} (every trigger {u} counts once; holding windows overlap)", day_h,
             day_rows),
            ("per cluster (overlapping days count once; tested against random days)", clu_h,
             clu_rows)]


def _int(x: Any) -> str:
    return "-" if _nan(x) else str(int(float(x)))


def _share(x: Any) -> str:
    return "-" if _nan(x) else f"{float(x):.0%}"


def _p(x: Any) -> str:
    if _nan(x):
        return "-"
    return f"{float(x):.4f}" if float(x) >= 1e-4 else "<0.0001"


def _nan(x: Any) -> bool:
    try:
        return x is None or not np.isfinite(float(x))
    except (TypeError, ValueError):
        return True


def study_html(st: Any) -> str:
    """A self-contained page: the labelled table and the distribution of per-day returns
    (box per group, one panel per horizon) with the per-day and per-cluster means marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = st.settings
    horizons = list(s["horizons"])
    groups = st.groups()
    fig = make_subplots(rows=1, cols=len(horizons), subplot_titles=[f"{h} days" for h in horizons])
    for j, h in enumerate(horizons, start=1):
        for g in groups:
            vals = st.days.loc[st.days["group"] == g, f"ret_{h}"].dropna() * 100 if len(
                st.days) else pd.Series(dtype=float)
            fig.add_trace(go.Box(y=vals, name=g, boxmean=True, showlegend=False,
                                 marker={"size": 2}), row=1, col=j)
        means = st.table[st.table["horizon"] == h]
        fig.add_trace(go.Scatter(
            x=means["group"], y=means["per_cluster_mean"].astype(float) * 100,
            mode="markers", marker={"symbol": "diamond", "size": 10, "color": "#b3261e"},
            name="per-cluster mean", showlegend=j == 1), row=1, col=j)
        fig.update_yaxes(title_text="forward return, %" if j == 1 else None, row=1, col=j)
    fig.update_layout(height=520, margin={"t": 60, "l": 50, "r": 20, "b": 80},
                      title="per-day forward returns (box: quartiles, dashed: per-day mean; "
                      "diamond: per-cluster mean)")
    tables = "".join(f"<h2>{html.escape(t)}</h2>" + _table(h, r, left=2)
                     for t, h, r in study_table_rows(st))
    what = s.get("label") or "study"
    sub = (f"{s.get('symbol') or ''} {s.get('interval')}, {s['period_start'][:10]} .. "
           f"{s['period_end'][:10]}; entry: {s['entry']}; baseline: {s['baseline']} "
           f"({s['draws']} draws, seed {s['seed']})")
    body = (f"<h1>flushback study: {html.escape(what)}</h1><p class=note>{html.escape(sub)}</p>"
            + tables
            + "<p class=note>per-day: every day counts once (overlapping windows included); "
              "per-cluster: days whose holding windows overlap form one cluster, valued at the "
              "mean of its days; the p-value tests the per-cluster mean against random "
              "days.</p>" + _fig_div(fig, True))
    return _page(f"flushback study: {what}", body)


def study_png(st: Any, path: str | Path) -> Path:
    """Box plots of per-day forward returns per group and horizon (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    horizons = list(st.settings["horizons"])
    groups = st.groups()
    fig, axes = plt.subplots(1, len(horizons), figsize=(4.2 * len(horizons), 4.6),
                             squeeze=False)
    for ax, h in zip(axes[0], horizons, strict=True):
        data = [st.days.loc[st.days["group"] == g, f"ret_{h}"].dropna().to_numpy() * 100
                if len(st.days) else np.array([]) for g in groups]
        ax.boxplot([d if d.size else [np.nan] for d in data], showmeans=True,
                   showfliers=False)
        ax.set_xticks(range(1, len(groups) + 1), groups, rotation=35, ha="right", fontsize=8)
        cm = st.table[st.table["horizon"] == h].set_index("group")["per_cluster_mean"]
        ax.scatter(range(1, len(groups) + 1),
                   [float(cm.get(g)) * 100 if not _nan(cm.get(g)) else np.nan for g in groups],
                   marker="D", color="#b3261e", zorder=3, label="per-cluster mean")
        ax.axhline(0, color="#999", lw=0.8)
        ax.set_title(f"{h} days")
        ax.set_ylabel("forward return, %")
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"flushback study: {st.settings.get('label')} (triangle: per-day mean)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- today
def today_html(td: Any) -> str:
    """Signals of the day, the analogues' features and what followed them, with a chart of the
    price path after each analogue (normalised to its entry)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for a in td.analogues:
        path = a.get("path") or []
        if path:
            fig.add_trace(go.Scatter(x=list(range(1, len(path) + 1)),
                                     y=[(p - 1) * 100 for p in path], mode="lines",
                                     name=f"{a['date'][:10]} (d={a['distance']:.2f})"))
    fig.update_layout(height=460, title="after each analogue: close / entry open - 1, %",
                      xaxis_title="days after entry", yaxis_title="%")
    sig_rows = [[r["name"], r["status"], "; ".join(
        f"{i['column']}={i['value_text']} ({i['age_text']})" for i in r["inputs"])]
        for r in td.signals]
    feat_cols = list(td.feature_names)
    an_rows = [[a["date"][:10], f"{a['distance']:.3f}", a.get("catalog_event") or "-",
                *[_f(a["features"].get(c)) for c in feat_cols],
                *[_pct(a["forward"].get(str(h))) for h in td.horizons],
                _pct(a.get("drawdown_ahead"))] for a in td.analogues]
    today_row = [[td.date[:10], "-", "today", *[_f(td.features.get(c)) for c in feat_cols],
                  *["" for _ in td.horizons], ""]]
    body = (f"<h1>flushback today: {html.escape(td.date[:10])}</h1>"
            f"<p>{html.escape(td.summary)}</p><h2>Signals</h2>"
            + _table(["signal", "status", "inputs (age at the bar's close)"], sig_rows, left=3)
            + "<h2>Nearest historical setups</h2>"
            + _table(["date", "distance", "catalog", *feat_cols,
                      *[f"{h}d" for h in td.horizons], "drawdown ahead"],
                     today_row + an_rows, left=3)
            + f"<p class=note>{html.escape(td.method)}</p>" + _fig_div(fig, True))
    return _page(f"flushback today {td.date[:10]}", body)


def _f(x: Any) -> str:
    if _nan(x):
        return "-"
    return f"{float(x):.3g}"


def today_png(td: Any, path: str | Path) -> Path:
    """The analogues' price paths after entry (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for a in td.analogues:
        path_ = np.asarray(a.get("path") or [], dtype=float)
        if path_.size:
            ax.plot(np.arange(1, path_.size + 1), (path_ - 1) * 100,
                    label=f"{a['date'][:10]} (d={a['distance']:.2f})")
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_xlabel("days after entry")
    ax.set_ylabel("close / entry open - 1, %")
    ax.set_title(f"nearest setups to {td.date[:10]}: what followed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
