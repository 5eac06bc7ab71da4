"""Put strategies side by side: ``flushback compare RUN_OR_REPORT...``.

Reads each run's ``report.json`` (never re-runs anything) and builds:

- a metrics table (strategy x metric) with the benchmark alongside;
- equity curves overlaid, each rebased to 1 at the common start (growth of 1 unit);
- a strategy x flush-event outcome matrix: for each event of the catalog inside the common data
  window, whether the strategy entered and its equity change from the day before the event to
  ``horizon_days`` after it (see :func:`flushback.backtests.reports.tables.forward_event_outcomes`);
- for each pair of strategies: the difference in annualized Sharpe ratio with a bootstrap
  confidence interval (``scipy.stats.bootstrap``, paired resampling of the bars both curves
  share; an i.i.d. bootstrap, so it ignores the autocorrelation of returns and reads as an
  approximate interval), and a paired test on the per-event returns (Wilcoxon signed-rank from
  ``scipy.stats``, with the paired t-test alongside).

Runs over different symbols, intervals or data windows are refused with a message that says
what differs, unless ``allow_mismatch=True``: their numbers are not comparable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.reports.schema import Report, load_report_file
from flushback.backtests.reports.tables import (
    HORIZON_DAYS,
    FlushEvent,
    flush_events_for,
    forward_event_outcomes,
    period_returns,
)
from flushback.data.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_METRICS",
    "Comparison",
    "PairStats",
    "resolve_report_path",
    "load_reports",
    "data_mismatches",
    "compare_reports",
    "sharpe_annualized",
    "render_compare_html",
    "print_comparison",
]

DEFAULT_METRICS = (
    "total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "volatility",
    "exposure", "n_trades", "n_legs", "win_rate", "profit_factor", "expectancy_pct",
)


# --------------------------------------------------------------------------- loading
def resolve_report_path(ref: str | Path, runs_dir: str | Path | None = None) -> Path:
    """A ``report.json`` path from a file, a run folder, a run id or a unique run-id prefix
    (looked up in the runs folder)."""
    from flushback.data.paths import runs_dir as default_runs_dir

    p = Path(ref).expanduser()
    if p.is_file():
        return p
    if p.is_dir() and (p / "report.json").is_file():
        return p / "report.json"
    root = default_runs_dir(runs_dir)
    direct = root / str(ref) / "report.json"
    if direct.is_file():
        return direct
    matches = sorted(d for d in root.glob(f"{ref}*") if (d / "report.json").is_file()) \
        if root.is_dir() and "/" not in str(ref) else []
    if len(matches) == 1:
        return matches[0] / "report.json"
    if len(matches) > 1:
        raise ConfigError(
            f"run id prefix {str(ref)!r} is ambiguous: "
            + ", ".join(m.name for m in matches[:5]),
            hint="give more characters of the run id",
        )
    raise DataError(
        f"no run or report {str(ref)!r}",
        file=str(root),
        hint="give a report.json, a run folder, or a run id from `flushback runs list`",
    )


def load_reports(refs: Sequence[str | Path], runs_dir: str | Path | None = None) -> list[Report]:
    return [load_report_file(resolve_report_path(r, runs_dir)) for r in refs]


def data_mismatches(reports: Sequence[Report]) -> list[str]:
    """What differs between the reports' data (symbol, interval, start, end), one line each."""
    out = []
    names = _labels(reports)
    for attr in ("symbol", "interval", "start", "end"):
        values = [getattr(r.data, attr) for r in reports]
        if len(set(values)) > 1:
            pairs = ", ".join(f"{n}: {v}" for n, v in zip(names, values, strict=True))
            out.append(f"{attr} differs ({pairs})")
    return out


def _overrides(rep: Report) -> list[str]:
    return [str(o) for o in (rep.config or {}).get("overrides") or []]


def _labels(reports: Sequence[Report]) -> list[str]:
    """Spec names; runs of one spec are told apart by their ``--set`` overrides (or, when
    those agree, by run id)."""
    base = [r.spec_name or r.run_id[:12] for r in reports]
    out = []
    for i, (name, rep) in enumerate(zip(base, reports, strict=True)):
        if base.count(name) > 1:
            same = [r for b, r in zip(base, reports, strict=True) if b == name]
            sets = [" ".join(_overrides(r)) for r in same]
            mine = " ".join(_overrides(rep))
            if sets.count(mine) == 1:
                name = f"{name} [{mine or 'no --set'}]"
            else:
                name = f"{name} [{rep.run_id[:8]}]"
            if name in out:
                name = f"{name} #{i + 1}"
        out.append(name)
    return out


def runs_rows(comp: Comparison) -> list[dict[str, Any]]:
    """One row per compared run: label, run id, created, kind, spec, window, overrides."""
    rows = []
    for lab, r in zip(comp.labels, comp.reports, strict=True):
        window = (r.config or {}).get("window") or {}
        rows.append({
            "label": lab, "run_id": r.run_id, "created_at": r.created_at, "kind": r.kind,
            "spec": r.spec_name, "symbol": r.data.symbol, "interval": r.data.interval,
            "start": str(window.get("start") or r.data.start),
            "end": str(window.get("end") or r.data.end),
            "overrides": _overrides(r),
        })
    return rows


# --------------------------------------------------------------------------- statistics
def sharpe_annualized(returns: np.ndarray, periods_per_year: int, axis: int = -1) -> np.ndarray:
    """mean / std (ddof=1) * sqrt(periods_per_year) along ``axis`` (NaN when std is 0)."""
    r = np.asarray(returns, dtype="float64")
    mean = r.mean(axis=axis)
    sd = r.std(axis=axis, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mean / sd * math.sqrt(periods_per_year), np.nan)


@dataclass(frozen=True)
class PairStats:
    a: str
    b: str
    sharpe_a: float | None
    sharpe_b: float | None
    sharpe_diff: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    n_bars: int
    n_events: int
    mean_event_diff: float | None
    wilcoxon_p: float | None
    ttest_p: float | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _clean(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def sharpe_difference(
    ra: pd.Series, rb: pd.Series, periods_per_year: int, *, n_resamples: int = 2000,
    confidence: float = 0.95, seed: int = 0,
) -> dict[str, Any]:
    """Sharpe(a), Sharpe(b), their difference and its CI (keys ``sharpe_a, sharpe_b,
    sharpe_diff, ci_low, ci_high, n_bars``), all on the bars both return series share, with a
    paired percentile bootstrap (scipy.stats.bootstrap)."""
    from scipy import stats

    joined = pd.concat([ra.rename("a"), rb.rename("b")], axis=1, join="inner").dropna()
    n = len(joined)
    out: dict[str, Any] = {"sharpe_a": None, "sharpe_b": None, "sharpe_diff": None,
                           "ci_low": None, "ci_high": None, "n_bars": n}
    if n < 3:
        return out
    a = joined["a"].to_numpy()
    b = joined["b"].to_numpy()
    out["sharpe_a"] = _clean(sharpe_annualized(a, periods_per_year))
    out["sharpe_b"] = _clean(sharpe_annualized(b, periods_per_year))
    if out["sharpe_a"] is None or out["sharpe_b"] is None:
        return out
    out["sharpe_diff"] = out["sharpe_a"] - out["sharpe_b"]

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return sharpe_annualized(x, periods_per_year, axis) - sharpe_annualized(
            y, periods_per_year, axis)

    batch = max(1, int(2e7 // max(n, 1)))
    res = stats.bootstrap(
        (a, b), stat, paired=True, vectorized=True, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", batch=batch,
        rng=np.random.default_rng(seed),
    )
    out["ci_low"] = _clean(res.confidence_interval.low)
    out["ci_high"] = _clean(res.confidence_interval.high)
    return out


def paired_event_test(
    xa: Sequence[float], xb: Sequence[float]
) -> tuple[int, float | None, float | None, float | None, str]:
    """(n events, mean difference, Wilcoxon p, paired t p, note) on events where both have a
    value."""
    from scipy import stats

    a = np.asarray(xa, dtype="float64")
    b = np.asarray(xb, dtype="float64")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n == 0:
        return 0, None, None, None, "no event with an outcome for both"
    d = a - b
    mean = float(d.mean())
    if n < 2:
        return n, mean, None, None, "one event: no test"
    if np.allclose(d, 0.0, atol=1e-15):
        return n, mean, 1.0, 1.0, "identical per-event returns"
    wil = _clean(stats.wilcoxon(a, b, zero_method="zsplit").pvalue)
    tt = _clean(stats.ttest_rel(a, b).pvalue)
    return n, mean, wil, tt, ""


# --------------------------------------------------------------------------- comparison
@dataclass
class Comparison:
    reports: list[Report]
    labels: list[str]
    metrics: pd.DataFrame  # index = metric, columns = labels + benchmark
    equity: pd.DataFrame  # index = timestamp, columns = labels + benchmark (rebased to 1)
    events: list[FlushEvent]
    outcomes: dict[str, pd.DataFrame]  # label -> forward_event_outcomes frame
    event_returns: pd.DataFrame  # index = event label, columns = labels + benchmark
    event_entered: pd.DataFrame  # index = event label, columns = labels (bool)
    pairs: list[PairStats]
    mismatches: list[str] = field(default_factory=list)
    horizon_days: int = HORIZON_DAYS
    benchmark_label: str = "buy_and_hold"

    def to_dict(self) -> dict[str, Any]:
        from flushback.backtests.reports.schema import to_jsonable

        return to_jsonable({
            "runs": [{**row, "spec_name": r.spec_name, "data": r.data.model_dump()}
                     for row, r in zip(runs_rows(self), self.reports, strict=True)],
            "mismatches": self.mismatches,
            "metrics": {c: self.metrics[c].to_dict() for c in self.metrics.columns},
            "events": {"horizon_days": self.horizon_days,
                       "returns": {c: self.event_returns[c].to_dict()
                                   for c in self.event_returns.columns},
                       "entered": {c: self.event_entered[c].to_dict()
                                   for c in self.event_entered.columns}},
            "pairs": [p.as_dict() for p in self.pairs],
        })


def compare_reports(
    reports: Sequence[Report],
    *,
    allow_mismatch: bool = False,
    metrics: Sequence[str] | None = None,
    events: Sequence[FlushEvent] | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare reports (see the module docstring). Raises ConfigError on mismatched data
    unless ``allow_mismatch``."""
    reports = list(reports)
    if len(reports) < 2:
        raise ConfigError("compare needs at least two runs", hint="give two or more run ids")
    mismatches = data_mismatches(reports)
    if mismatches and not allow_mismatch:
        raise ConfigError(
            "runs cover different data, their numbers are not comparable: "
            + "; ".join(mismatches),
            hint="compare runs of the same symbol, interval and window, or pass "
            "--allow-mismatch",
        )
    labels = _labels(reports)
    bench_label = f"{reports[0].benchmark.name} ({reports[0].data.symbol})"
    # metrics
    wanted = list(metrics) if metrics else [
        m for m in DEFAULT_METRICS if any(m in r.metrics for r in reports)
    ]
    unknown = [m for m in wanted if not any(m in r.metrics for r in reports)]
    if unknown and metrics:
        from flushback.data.suggest import closest

        known = sorted({k for r in reports for k in r.metrics})
        hints = [f"{u} -> {closest(u, known)}" for u in unknown if closest(u, known)]
        raise ConfigError(
            f"unknown metric(s): {', '.join(unknown)}",
            hint=("did you mean " + ", ".join(hints) + "?") if hints
            else "available: " + ", ".join(known),
        )
    table = {lab: [r.metrics.get(m) for m in wanted] for lab, r in zip(labels, reports,
                                                                       strict=True)}
    table[bench_label] = [reports[0].benchmark.metrics.get(m) for m in wanted]
    metric_frame = pd.DataFrame(table, index=pd.Index(wanted, name="metric"), dtype=object)
    # equity (rebased)
    curves = {}
    for lab, r in zip(labels, reports, strict=True):
        eq = r.equity_frame()
        if not eq.empty:
            curves[lab] = eq["equity"]
    eq0 = reports[0].equity_frame()
    if not eq0.empty and "benchmark" in eq0:
        curves[bench_label] = eq0["benchmark"]
    equity = pd.DataFrame(curves)
    common = equity.dropna()
    if not common.empty:
        start = common.index[0]
        equity = equity.loc[start:] / equity.loc[start]
    # events
    if events is None:
        events = flush_events_for(reports[0])
        if allow_mismatch:  # keep the events every run covers
            lo = max(pd.Timestamp(r.data.start) for r in reports)
            hi = min(pd.Timestamp(r.data.end) for r in reports)
            events = [e for e in events if e.start >= lo and e.start <= hi]
    events = list(events)
    outcomes = {lab: forward_event_outcomes(r, events)
                for lab, r in zip(labels, reports, strict=True)}
    ev_index = pd.Index([e.event_id for e in events], name="event")
    event_returns = pd.DataFrame(
        {lab: o["strategy_return"].to_numpy() for lab, o in outcomes.items()}, index=ev_index
    )
    if outcomes:
        event_returns[bench_label] = next(iter(outcomes.values()))["benchmark_return"].to_numpy()
    event_entered = pd.DataFrame(
        {lab: o["entered"].astype(bool).to_numpy() for lab, o in outcomes.items()},
        index=ev_index,
    )
    # pairs
    rets = {lab: period_returns(r.equity_frame()["equity"]) if r.equity else pd.Series(
        dtype="float64") for lab, r in zip(labels, reports, strict=True)}
    ppy = {lab: r.periods_per_year for lab, r in zip(labels, reports, strict=True)}
    pairs = []
    for la, lb in itertools.combinations(labels, 2):
        note = ""
        if ppy[la] == ppy[lb]:
            sd = sharpe_difference(rets[la], rets[lb], ppy[la], n_resamples=n_resamples,
                                   confidence=confidence, seed=seed)
            if mismatches:
                note = f"Sharpe on the {sd['n_bars']} bars both runs cover"
        else:
            note = "different bar intervals: each Sharpe on its own run, no interval"
            sa = _clean(sharpe_annualized(rets[la].to_numpy(), ppy[la])) \
                if len(rets[la]) > 2 else None
            sb = _clean(sharpe_annualized(rets[lb].to_numpy(), ppy[lb])) \
                if len(rets[lb]) > 2 else None
            sd = {"sharpe_a": sa, "sharpe_b": sb, "ci_low": None, "ci_high": None, "n_bars": 0,
                  "sharpe_diff": None if sa is None or sb is None else sa - sb}
        ne, mean_d, wp, tp, enote = paired_event_test(
            outcomes[la]["strategy_return"], outcomes[lb]["strategy_return"]
        )
        pairs.append(PairStats(
            a=la, b=lb, **sd, confidence=confidence, n_events=ne, mean_event_diff=mean_d,
            wilcoxon_p=wp, ttest_p=tp, note="; ".join(x for x in (note, enote) if x),
        ))
    return Comparison(
        reports=reports, labels=labels, metrics=metric_frame, equity=equity, events=events,
        outcomes=outcomes, event_returns=event_returns, event_entered=event_entered,
        pairs=pairs, mismatches=mismatches, benchmark_label=bench_label,
    )


# --------------------------------------------------------------------------- output
def _fmt_metric(key: str, value: Any) -> str:
    from flushback.backtests.reports.format import fmt_metric

    return fmt_metric(key, value)


def _pct(v: Any) -> str:
    from flushback.backtests.reports.format import pct

    return pct(v)


def _num(v: Any, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else \
        f"{v:+.{digits}f}"


def _p(v: Any) -> str:
    return "–" if v is None else f"{v:.3g}"


def print_comparison(comp: Comparison, console: Any = None) -> None:
    """Rich tables in the terminal: metrics, per-event outcomes, pairwise statistics."""
    from rich.console import Console
    from rich.markup import escape as esc
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:
        # piped or captured output: print the tables whole instead of truncating cells
        console = Console(width=max(console.width, 220), highlight=False)
    if comp.mismatches:
        console.print("[yellow]warning: runs cover different data (--allow-mismatch): "
                      + "; ".join(comp.mismatches) + "[/yellow]")
    runs = Table(title="Runs", title_justify="left")
    for col in ("label", "run_id", "created (UTC)", "kind", "spec", "window", "overrides (--set)"):
        runs.add_column(col)
    for row in runs_rows(comp):
        runs.add_row(esc(row["label"]), row["run_id"], row["created_at"][:16].replace("T", " "),
                     row["kind"], row["spec"] or "-",
                     f"{row['symbol']} {row['interval']} {row['start'][:10]}→{row['end'][:10]}",
                     esc(" ".join(row["overrides"]) or "-"))
    console.print(runs)
    t = Table(title="Metrics", title_justify="left")
    t.add_column("metric")
    for c in comp.metrics.columns:
        t.add_column(esc(str(c)), justify="right")
    for m, row in comp.metrics.iterrows():
        t.add_row(str(m), *[_fmt_metric(str(m), v) for v in row.tolist()])
    console.print(t)
    if "n_trades" in comp.metrics.index:
        console.print("n_trades, win_rate, profit_factor and expectancy count round trips (a "
                      "position from flat to flat, however many legs); n_legs counts the fills "
                      "that reduced a position (the rows of trades.csv).", markup=False,
                      highlight=False)
    if comp.events:
        e = Table(title=f"Flush events: equity change from the day before to +{comp.horizon_days}"
                  " days (* = entered a trade at the event)", title_justify="left")
        e.add_column("event")
        for c in comp.event_returns.columns:
            e.add_column(esc(str(c)), justify="right")
        for ev_label, row in comp.event_returns.iterrows():
            cells = []
            for c in comp.event_returns.columns:
                mark = "*" if c in comp.event_entered and bool(
                    comp.event_entered.loc[ev_label, c]) else ""
                cells.append(_pct(row[c]) + mark)
            e.add_row(str(ev_label), *cells)
        console.print(e)
    p = Table(title="Pairs: Sharpe difference (bootstrap CI) and paired test on per-event "
              "returns", title_justify="left")
    for col in ("A", "B", "Sharpe A", "Sharpe B", "A - B", "CI", "events", "mean diff",
                "Wilcoxon p", "t-test p", "note"):
        p.add_column(col, justify="left" if col in ("A", "B", "note") else "right")
    for s in comp.pairs:
        ci = "–" if s.ci_low is None else f"[{s.ci_low:+.3f}, {s.ci_high:+.3f}]"
        p.add_row(esc(s.a), esc(s.b), _num(s.sharpe_a), _num(s.sharpe_b), _num(s.sharpe_diff), ci,
                  str(s.n_events), _pct(s.mean_event_diff), _p(s.wilcoxon_p), _p(s.ttest_p),
                  s.note)
    console.print(p)


def fig_compare_equity(comp: Comparison) -> Any | None:
    import plotly.graph_objects as go

    from flushback.backtests.reports.figures import PALETTE, base_layout, scale_menu

    if comp.equity.empty:
        return None
    fig = go.Figure()
    x = comp.equity.index.tz_localize(None)
    for i, col in enumerate(comp.equity.columns):
        is_bench = col == comp.benchmark_label
        fig.add_trace(go.Scatter(
            x=x, y=comp.equity[col], name=str(col), mode="lines",
            line={"color": "#7f7f7f" if is_bench else PALETTE[i % 10],
                  "width": 1.2 if is_bench else 1.6, "dash": "dot" if is_bench else "solid"},
        ))
    fig.update_layout(**base_layout("Equity curves, rebased to 1 at the common start", 420))
    fig.update_layout(updatemenus=[scale_menu("yaxis")])
    fig.update_xaxes(title_text="time (UTC)")
    fig.update_yaxes(title_text="growth of 1")
    return fig


def fig_event_matrix(comp: Comparison) -> Any | None:
    import plotly.graph_objects as go

    from flushback.backtests.reports.figures import base_layout

    er = comp.event_returns
    if er.empty or er.isna().all().all():
        return None
    z = (er.T * 100).round(2)
    text = []
    for col in er.columns:
        row = []
        for ev in er.index:
            v = er.loc[ev, col]
            mark = " *" if col in comp.event_entered and bool(comp.event_entered.loc[ev, col]) \
                else ""
            row.append("" if pd.isna(v) else f"{v * 100:+.1f}{mark}")
        text.append(row)
    zz = [[None if pd.isna(v) else float(v) for v in r] for r in z.to_numpy()]
    finite = [abs(v) for r in zz for v in r if v is not None]
    bound = max(finite) if finite else 1.0
    fig = go.Figure(go.Heatmap(
        z=zz, x=[str(e) for e in er.index], y=[str(c) for c in er.columns], text=text,
        texttemplate="%{text}", colorscale="RdYlGn", zmid=0, zmin=-bound, zmax=bound,
        xgap=2, ygap=2, colorbar={"title": {"text": "%"}},
        hovertemplate="%{y}<br>%{x}: %{z:+.2f} %<extra></extra>",
    ))
    layout = base_layout(
        f"Strategy x flush event: equity change to +{comp.horizon_days} days (%, * = entered)",
        220 + 40 * len(er.columns),
    )
    layout["hovermode"] = "closest"
    layout["margin"] = {"l": 220, "r": 20, "t": 80, "b": 160}
    fig.update_layout(**layout)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-40)
    return fig


def render_compare_html(comp: Comparison, path: str | Path | None = None) -> str:
    """The comparison as one self-contained HTML page (plotly.js embedded once)."""
    from flushback.backtests.reports.html import (
        esc,
        figure_html,
        html_page,
        records_table,
        write_text_atomic,
    )
    from flushback.backtests.reports.page import Page

    page = Page()

    sections = []
    if comp.mismatches:
        sections.append("<section><p class=bad>Runs cover different data (compared with "
                        "--allow-mismatch): " + esc("; ".join(comp.mismatches)) + "</p></section>")
    runs = [{"label": row["label"], "run_id": row["run_id"],
             "created (UTC)": row["created_at"][:16].replace("T", " "), "kind": row["kind"],
             "spec": row["spec"], "symbol": row["symbol"], "interval": row["interval"],
             "start": row["start"][:10], "end": row["end"][:10],
             "overrides (--set)": " ".join(row["overrides"]) or "–",
             "trades (round trips)": r.metrics.get("n_trades")}
            for row, r in zip(runs_rows(comp), comp.reports, strict=True)]
    sections.append("<section><h2>Runs</h2>" + records_table(runs) + "</section>")
    rows = []
    for m, row in comp.metrics.iterrows():
        rows.append({"metric": m, **{str(c): _fmt_metric(str(m), v) for c, v in row.items()}})
    head = "".join(f"<th>{esc(c)}</th>" for c in comp.metrics.columns)
    body = "".join(
        "<tr><td class=l>" + esc(r["metric"]) + "</td>"
        + "".join(f"<td>{esc(r[str(c)])}</td>" for c in comp.metrics.columns) + "</tr>"
        for r in rows)
    sections.append(f"<section id=metrics><h2>Metrics</h2><table><thead><tr><th class=l>metric"
                    f"</th>{head}</tr></thead><tbody>{body}</tbody></table></section>")
    fig = fig_compare_equity(comp)
    if fig is not None:
        sections.append("<section><h2>Equity</h2>" + figure_html(fig, "compare-equity", page)
                        + "</section>")
    fig = fig_event_matrix(comp)
    if fig is not None:
        table_rows = []
        for ev in comp.event_returns.index:
            r: dict[str, Any] = {"event": ev}
            for c in comp.event_returns.columns:
                v = comp.event_returns.loc[ev, c]
                r[str(c)] = None if pd.isna(v) else float(v)
            table_rows.append(r)
        from flushback.backtests.reports.format import pct

        fmts = {str(c): pct for c in comp.event_returns.columns}
        sections.append(
            "<section><h2>Flush events</h2><p class=note>Equity change of each strategy from the "
            f"day before each flush to {comp.horizon_days} days after it (or the end of the "
            "data); * marks a trade entered at the flush.</p>"
            + figure_html(fig, "compare-events", page)
            + records_table(table_rows, sortable=True, formatters=fmts, table_id="events-matrix")
            + "</section>")
    pair_rows = []
    for s in comp.pairs:
        pair_rows.append({
            "A": s.a, "B": s.b, "Sharpe A": s.sharpe_a, "Sharpe B": s.sharpe_b,
            "Sharpe A - B": s.sharpe_diff,
            f"{int(s.confidence * 100)} % CI": "–" if s.ci_low is None
            else f"[{s.ci_low:+.3f}, {s.ci_high:+.3f}]",
            "bars": s.n_bars, "events": s.n_events, "mean event diff": s.mean_event_diff,
            "Wilcoxon p": s.wilcoxon_p, "paired t p": s.ttest_p, "note": s.note,
        })
    sections.append(
        "<section><h2>Pairs</h2><p class=note>Sharpe ratios are annualized from the per-bar "
        "returns of each equity curve; the interval comes from a paired bootstrap over the bars "
        "both runs share (scipy.stats.bootstrap, percentile method; i.i.d. resampling, so treat "
        "it as approximate for autocorrelated returns). The paired tests compare the two "
        "strategies' per-event returns (Wilcoxon signed-rank; paired t-test alongside): a small "
        "p-value says one did consistently better at the flushes.</p>"
        + records_table(pair_rows, sortable=True, formatters={"mean event diff": _pct})
        + "</section>")
    title = "flushback compare: " + " vs ".join(comp.labels)
    r0 = comp.reports[0]
    sub = f"{r0.data.symbol} {r0.data.interval} · {r0.data.start[:10]} → {r0.data.end[:10]}"
    text = html_page(title, sub, sections, page)
    if path is not None:
        write_text_atomic(path, text)
    return text
