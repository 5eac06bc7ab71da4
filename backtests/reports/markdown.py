"""The Markdown summary of a run (``flushback report --format md``), rendered from
``report.json``: headline metrics beside the benchmark, trades, what the strategy did at each
flush, the optimization statistics in plain words and the audit verdict. Every text from the
spec (name, description) is escaped, so it reads as written and injects nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from flushback.backtests.reports.figures import fold_rows
from flushback.backtests.reports.format import fmt, fmt_metric, pct
from flushback.backtests.reports.metric_view import (
    DSR_SENTENCE,
    PBO_SENTENCE,
    cpcv_sentence,
    ordered_metric_keys,
)
from flushback.backtests.reports.schema import Report, validate_report
from flushback.backtests.reports.tables import (
    HORIZON_DAYS,
    FlushEvent,
    flush_events_for,
    forward_event_outcomes,
)

__all__ = ["render_report_markdown", "md_escape", "trade_rows", "as_report"]


def as_report(report: Report | Mapping[str, Any]) -> Report:
    """A :class:`Report` from a report or its JSON dict (validated)."""
    return report if isinstance(report, Report) else validate_report(report)


def trade_rows(report: Report) -> list[dict[str, Any]]:
    """The report's trade rows (legs) as dicts, times as ``pd.Timestamp``."""
    rows = []
    for t in report.trades:
        d = t.model_dump(mode="json")
        for k in ("signal_time", "entry_time", "exit_time"):
            d[k] = pd.Timestamp(d[k]) if d.get(k) else None
        rows.append(d)
    return rows


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
    rows = trade_rows(rep)
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
        out += ["### Optimization", "",
                f"- trials: {len(opt.trials)}",
                f"- Deflated Sharpe Ratio: {fmt(opt.dsr_value)}. {DSR_SENTENCE}",
                f"- PBO: {fmt(opt.pbo_value)}. {PBO_SENTENCE}", ""]
        if opt.cpcv:
            out += [f"- {cpcv_sentence(opt.cpcv)}", ""]
        folds = fold_rows(opt)
        if folds:
            obj = opt.objective
            out += [_md_table(["fold", f"in-sample {obj}", f"out-of-sample {obj}"],
                              [(r["fold"], fmt(r.get(f"in-sample {obj}")),
                                fmt(r.get(f"out-of-sample {obj}"))) for r in folds]), ""]
    if rep.audit:
        out += ["### Bias audit", "", f"- verdict: {fmt(rep.audit.verdict)}", ""]
    return "\n".join(out).rstrip() + "\n"
