"""``report.html``, rendered FROM ``report.json`` through the Jinja2 templates in
``templates/`` (``report.html.j2``): this module turns a :class:`Report` into the templates'
context (sections, tables, charts) and nothing else. The figures are built in
:mod:`~flushback.backtests.reports.figures`, the metrics' names, units and explanations live in
:mod:`~flushback.backtests.reports.metric_view`, the page (embedded plotly.js, tables) in
:mod:`~flushback.backtests.reports.page`, the Markdown summary in
:mod:`~flushback.backtests.reports.markdown`.

Sections: the metrics grouped (returns, risk, trades, exposure) beside buy-and-hold, run
identity, equity / underwater / monthly returns, the price chart with signals, trades, Fear &
Greed (guides at the spec's thresholds) and liquidations, the trades, what the strategy did at
each flush (one table) with the event study against random days, and the optimization and
audit sections when the report has them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from flushback.backtests.reports.figures import (
    cpcv_path_rows,
    fig_equity,
    fig_monthly,
    fig_opt_folds,
    fig_opt_history,
    fig_opt_importances,
    fig_opt_parallel,
    fig_price,
    fig_underwater,
    fng_thresholds,
    fold_rows,
)
from flushback.backtests.reports.format import (
    benchmark_label,
    esc,
    fmt,
    fmt_metric,
    fmt_time,
    pct,
    words,
)
from flushback.backtests.reports.markdown import (
    as_report,
    md_escape,
    render_report_markdown,
    trade_rows,
)
from flushback.backtests.reports.metric_view import (
    DSR_PLAIN,
    DSR_SENTENCE,
    PBO_PLAIN,
    PBO_SENTENCE,
    cpcv_sentence,
    metric_groups,
)
from flushback.backtests.reports.page import Page, records_table, render_page
from flushback.backtests.reports.schema import Report, write_text_atomic
from flushback.backtests.reports.tables import (
    ENTRY_WINDOW_DAYS,
    HORIZON_DAYS,
    FlushEvent,
    flush_events_for,
    forward_event_outcomes,
)

__all__ = [
    "render_report_html",
    "build_report_html",
    "render_report_markdown",
    "html_page",
    "figure_html",
    "records_table",
    "fmt",
    "fmt_metric",
    "pct",
    "esc",
    "md_escape",
    "as_report",
    "write_text_atomic",
    "fig_equity",
    "fig_underwater",
    "fig_monthly",
    "fig_price",
    "fig_opt_history",
    "fig_opt_importances",
    "fig_opt_parallel",
    "fig_opt_folds",
    "DSR_SENTENCE",
    "PBO_SENTENCE",
]

TRADE_COLUMNS = [
    ("trade_id", "#"), ("signal_time", "signal"), ("entry_time", "entry"),
    ("entry_price", "entry price"), ("exit_time", "exit"), ("exit_price", "exit price"),
    ("size", "size"), ("entry_fee", "entry fee"), ("exit_fee", "exit fee"), ("pnl", "P&L"),
    ("return_pct", "return"), ("bars_held", "bars"), ("exit_reason", "exit reason"),
    ("mae", "worst point (MAE)"), ("mfe", "best point (MFE)"),
]


# --------------------------------------------------------------------------- sections
def _warmup(report: Report) -> dict[str, Any] | None:
    w = report.warmup
    if not w:
        return None
    table = records_table(
        list(w.get("signals") or []),
        [("name", "signal"), ("type", "type"), ("warmup_bars", "warm-up (bars)"),
         ("inputs_from", "inputs from"), ("valid_from", "valid from")],
        formatters={"inputs_from": fmt_time, "valid_from": fmt_time, "type": words},
    ) if w.get("signals") else ""
    return {"inside_window": bool(w.get("inside_window")), "message": w.get("message", ""),
            "first_valid_bar": fmt_time(w.get("first_valid_bar")),
            "window_start": fmt_time(w.get("window_start")),
            "bars_before": w.get("bars_in_window_before_valid"),
            "window_bars": w.get("window_bars"), "table": table}


def _identity(report: Report) -> dict[str, Any]:
    d = report.data
    identity = [
        ("run_id", report.run_id), ("kind", report.kind), ("spec", report.spec_name),
        ("flushback version", report.flushback_version),
        ("report schema", report.schema_version), ("created", report.created_at),
        ("symbol", d.symbol), ("interval", d.interval), ("data window", f"{d.start} → {d.end}"),
        ("periods per year", report.periods_per_year),
        ("trades (round trips)", report.metrics.get("n_trades", len(report.trades))),
    ]
    fps = records_table(
        [{"dataset": k, "sha256": v} for k, v in sorted(d.fingerprints.items())],
        [("dataset", "dataset"), ("sha256", "content fingerprint (sha256)")],
    ) if d.fingerprints else ""
    return {"identity": identity, "fingerprints": fps, "sources": d.sources,
            "sources_json": json.dumps(d.sources, indent=1),
            "config_json": json.dumps(report.config, indent=1, sort_keys=True)}


def _trades(report: Report) -> dict[str, Any]:
    rows = trade_rows(report)
    if not rows:
        return {"table": "", "note": ""}
    known = dict(TRADE_COLUMNS)
    extra = [(k, k.replace("_", " ")) for k in rows[0] if k not in known]
    table = records_table(rows, TRADE_COLUMNS + extra, sortable=True, table_id="trades-table",
                          scroll=True, formatters={**{k: pct for k in ("return_pct", "mae", "mfe")},
                                                   "exit_reason": words})
    trips = len({r.get("trade_id") for r in rows}) if all(
        r.get("trade_id") is not None for r in rows) else len(rows)
    note = f"{trips} trade{'s' if trips != 1 else ''} (round trips)"
    if len(rows) != trips:
        note += (f" in {len(rows)} rows: a position opened or closed in parts has one row per "
                 "part, all with the same #")
    note += ". Click a column header to sort. Times are bar open times in UTC."
    return {"table": table, "note": note}


def _portfolio(report: Report) -> dict[str, Any] | None:
    """A portfolio run's assets (contribution, exposure, their own buy-and-hold) and the
    correlation of their bar returns; None for a single-asset run."""
    sec = report.portfolio
    if sec is None:
        return None
    rows = [a.model_dump() for a in sec.assets]
    cols = [("symbol", "asset"), ("first_bar", "first bar"), ("trades", "trades"),
            ("win_rate", "win rate"), ("pnl", "P&L"), ("contribution", "contribution"),
            ("exposure", "exposure"), ("asset_return", "asset buy-and-hold")]
    assets = records_table(rows, cols, table_id="assets-table", formatters={
        **{k: pct for k in ("win_rate", "contribution", "exposure", "asset_return")},
        "first_bar": lambda v: "-" if v is None else str(v)[:10]})
    names = [a.symbol for a in sec.assets]
    corr_rows = [{"asset": a, **{b: sec.correlation.get(a, {}).get(b) for b in names}}
                 for a in names]
    corr = records_table(corr_rows, [("asset", ""), *[(b, b) for b in names]],
                         table_id="correlation-table",
                         formatters={b: (lambda v: "-" if v is None else f"{v:.2f}")
                                     for b in names})
    return {"assets": assets, "correlation": corr,
            "note": ("Each asset's positions: its P&L over the starting cash is its "
                     "contribution (the contributions add up to the total return); exposure "
                     "is the share of bars holding it; its own buy-and-hold runs from its "
                     "first bar in the window.")}


def _events(report: Report, events: Sequence[FlushEvent]) -> dict[str, Any] | None:
    bench = benchmark_label(report.benchmark.name)
    out: dict[str, Any] = {"table": "", "note": "", "study": None}
    if events:
        frame = forward_event_outcomes(report, list(events))
        rows = frame.to_dict(orient="records")
        for r in rows:
            for k in ("start", "entry_time", "exit_time", "horizon_end"):
                r[k] = None if pd.isna(r[k]) else pd.Timestamp(r[k])
        out["note"] = (
            "For each flush event in the data window: whether the strategy entered (a trade "
            f"entered from the day before the event to {ENTRY_WINDOW_DAYS} days after it; 'in "
            "position' = a trade entered earlier was open at the event), that trade, and the "
            f"equity change of the strategy and of {bench} from the day before "
            f"the event to {HORIZON_DAYS} days after it (or the end of the data).")
        out["table"] = records_table(rows, [
            ("start", "event"), ("name", "name"), ("action", "action"),
            ("n_trades", "trades"), ("entry_time", "entry"), ("entry_price", "entry price"),
            ("exit_time", "exit"), ("exit_price", "exit price"), ("trade_return", "trade return"),
            ("strategy_return", f"strategy +{HORIZON_DAYS}d"),
            ("benchmark_return", f"{bench} +{HORIZON_DAYS}d"),
        ], sortable=True, table_id="events-table",
            formatters={**{k: pct for k in ("strategy_return", "benchmark_return",
                                            "trade_return")}, "action": words})
    section = report.events
    if section is not None and section.summary:
        base = section.baseline
        out["study"] = {
            "note": (f"Mean forward return of {report.data.symbol} after the catalog's events "
                     f"against {fmt(section.draws)} draws of as many random days (seed "
                     f"{fmt(base.get('seed'))}). p-value (two-sided): twice the smaller share "
                     "of random draws whose mean return is at least as high, or at least as "
                     "low, as the events' mean; near 1 the events look like any other days."),
            "table": records_table(
                [s.model_dump() for s in section.summary],
                [("horizon", "days ahead"), ("n_events", "events"),
                 ("n_clusters", "independent clusters"), ("ret_mean", "mean return"),
                 ("ret_median", "median return"), ("ret_ci_lo", "95 % CI low"),
                 ("ret_ci_hi", "95 % CI high"), ("win_rate", "share up"),
                 ("ret_baseline", "random days: mean"), ("ret_p_value", "p-value"),
                 ("mae_mean", "mean worst point"), ("mae_baseline", "random days: worst")],
                formatters={k: pct for k in ("ret_mean", "ret_median", "ret_ci_lo", "ret_ci_hi",
                                             "win_rate", "ret_baseline", "mae_mean",
                                             "mae_baseline")},
                table_id="event-study-table"),
        }
    if not out["table"] and not out["study"]:
        return None
    return out


def _optimization(report: Report, page: Page) -> dict[str, Any] | None:
    opt = report.optimization
    if opt is None:
        return None
    stats = []
    for sid, label, value, plain, sentence, details in (
            ("opt-dsr", "Deflated Sharpe Ratio (DSR)", opt.dsr_value, DSR_PLAIN, DSR_SENTENCE,
             opt.dsr),
            ("opt-pbo", "Probability of Backtest Overfitting (PBO)", opt.pbo_value, PBO_PLAIN,
             PBO_SENTENCE, opt.pbo)):
        pairs = [(k.replace("_", " "), fmt(v)) for k, v in (details or {}).items()
                 if not isinstance(v, Mapping | list)]
        stats.append({"id": sid, "label": label, "value": fmt(value), "plain": plain,
                      "sentence": sentence, "details": pairs})
    best = records_table([{"parameter": k, "value": v} for k, v in opt.best_params.items()]) \
        if opt.best_params else ""
    charts = [page.chart(fig_opt_history(opt), "opt-history"),
              page.chart(fig_opt_importances(opt), "opt-importances"),
              page.chart(fig_opt_parallel(opt), "opt-parallel"),
              page.chart(fig_opt_folds(opt), "opt-folds")]
    folds = fold_rows(opt)
    paths = cpcv_path_rows(opt)
    return {"note": opt.note, "stats": stats, "best": best, "charts": [c for c in charts if c],
            "folds": records_table(folds) if folds else "", "warnings": opt.warnings or [],
            "cpcv": {"table": records_table(
                paths, table_id="cpcv-paths", sortable=True,
                formatters={k: pct for k in ("total return", "CAGR", "max drawdown")}),
                     "sentence": cpcv_sentence(opt.cpcv)} if paths else None}


def _audit(report: Report) -> dict[str, Any] | None:
    audit = report.audit
    if audit is None:
        return None
    verdict = audit.verdict if audit.verdict is not None else (
        None if audit.passed is None else ("pass" if audit.passed else "fail"))
    good = audit.passed if audit.passed is not None else str(verdict).lower() == "pass"
    summary = records_table([{"check": c.title or c.name, "verdict": c.verdict,
                              "summary": c.summary} for c in audit.checks]) \
        if audit.checks else ""
    checks = []
    for c in audit.checks:
        cols = [(k, k.replace("_", " ")) for k in c.columns] or None
        checks.append({
            "title": c.title or c.name, "n_rows": len(c.rows),
            "table": records_table(c.rows, cols, sortable=True, scroll=len(c.rows) > 20)
            if c.rows else "",
            "findings": records_table(
                c.findings, [("kind", "kind"), ("bar", "bar"), ("column", "column"),
                             ("message", "what was found")]) if c.findings else "",
        })
    return {"verdict": verdict, "good": bool(good), "summary": summary, "checks": checks}


# --------------------------------------------------------------------------- entry points
def build_report_html(report: Report | Mapping[str, Any],
                      events: Sequence[FlushEvent] | None = None) -> tuple[str, list[str]]:
    """(HTML text, ids of the chart divs) for a report."""
    rep = as_report(report)
    if events is None:
        events = flush_events_for(rep)
    page = Page()
    performance = [c for c in (page.chart(fig_equity(rep), "equity"),
                               page.chart(fig_underwater(rep), "underwater"),
                               page.chart(fig_monthly(rep), "monthly")) if c]
    price_chart = page.chart(fig_price(rep, events), "price")
    guides = [label for _, label in fng_thresholds(rep.config)] \
        if "fng" in rep.series_frame() else []
    context = {
        "benchmark_name": benchmark_label(rep.benchmark.name),
        "metrics_note": ("Each metric of the run beside the same metric of "
                         f"{benchmark_label(rep.benchmark.name)} over the same bars; trades are "
                         "counted by round trip (a position from flat back to flat)."),
        "metric_groups": metric_groups(rep.metrics, rep.benchmark.metrics),
        "warmup": _warmup(rep),
        **_identity(rep),
        "performance": performance,
        "price_chart": price_chart,
        "has_events": bool(events),
        "fng_guides": guides,
        "portfolio": _portfolio(rep),
        "warnings": list(rep.warnings or []),
        "trades": _trades(rep),
        "events": _events(rep, events),
        "optimization": _optimization(rep, page),
        "audit": _audit(rep),
    }
    title = f"flushback report: {rep.spec_name or rep.run_id}"
    basket = rep.config.get("data", {}).get("basket") if rep.portfolio is not None else None
    symbols = ", ".join([rep.data.symbol, *[b for b in basket or [] if b != rep.data.symbol]])
    subtitle = (f"run {rep.run_id} · {symbols} {rep.data.interval} · "
                f"{rep.data.start[:10]} → {rep.data.end[:10]} · flushback "
                f"{rep.flushback_version}")
    text = render_page("report.html.j2", title=title, subtitle=subtitle, page=page, **context)
    return text, page.ids


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


# --------------------------------------------------------------- pages made of fragments
def html_page(title: str, subtitle: str, sections: Sequence[str],
              page: Page | None = None) -> str:
    """A full document of ready HTML fragments; the charts registered on ``page`` are
    embedded (plotly.js once, compressed)."""
    return render_page("fragments.html.j2", title=title, subtitle=subtitle, page=page,
                       fragments=list(sections))


def figure_html(fig: Any, div_id: str, page: Page) -> str:
    """Register ``fig`` on ``page`` and return the ``<div>`` it is drawn into."""
    return page.chart(fig, div_id)
