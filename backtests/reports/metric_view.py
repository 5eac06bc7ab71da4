"""How the run's metrics are presented: grouped (returns, risk, trades, exposure), each with
a plain name, its unit and a one-line explanation, beside the benchmark's value; and the
plain-words sentences for the overfitting statistics (DSR, PBO).

The definitions behind each line are those of :mod:`flushback.backtests.run.metrics`; this
module only says them in words and picks the unit a trader reads them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flushback.backtests.reports.format import fmt, pct

__all__ = [
    "MetricInfo",
    "METRICS",
    "GROUPS",
    "HIDDEN_METRICS",
    "metric_groups",
    "ordered_metric_keys",
    "format_metric_value",
    "DSR_SENTENCE",
    "PBO_SENTENCE",
    "DSR_PLAIN",
    "PBO_PLAIN",
]


@dataclass(frozen=True)
class MetricInfo:
    """One metric as a reader sees it."""

    key: str
    group: str
    name: str
    unit: str  # "%", "% a year", "$", "days", "ratio", "count", "years", "bars"
    explain: str
    signed: bool = True  # percentages shown with a sign


GROUPS: tuple[tuple[str, str], ...] = (
    ("returns", "Returns"),
    ("risk", "Risk"),
    ("trades", "Trades (per round trip)"),
    ("exposure", "Exposure"),
)

_M = MetricInfo
METRICS: dict[str, MetricInfo] = {m.key: m for m in (
    _M("total_return", "returns", "Total return", "%",
       "Change of the portfolio value from the first bar to the last."),
    _M("cagr", "returns", "Annual growth rate (CAGR)", "% a year",
       "The constant yearly rate that compounds to the total return over the window."),
    _M("start_equity", "returns", "Starting value", "$", "Portfolio value at the first bar."),
    _M("end_equity", "returns", "Final value", "$", "Portfolio value at the last bar."),
    _M("volatility", "risk", "Volatility", "% a year",
       "Standard deviation of the per-bar returns, annualised.", signed=False),
    _M("sharpe", "risk", "Sharpe ratio", "ratio",
       "Mean return per unit of volatility, annualised (risk-free rate 0); above 1 is good."),
    _M("sortino", "risk", "Sortino ratio", "ratio",
       "Like Sharpe but only losing bars count as risk."),
    _M("calmar", "risk", "Calmar ratio", "ratio",
       "Annual growth rate divided by the deepest drawdown."),
    _M("max_drawdown", "risk", "Deepest drawdown", "%",
       "Largest fall of the portfolio from a previous peak."),
    _M("max_drawdown_duration_days", "risk", "Longest time under water", "days",
       "Longest stretch spent below a previous peak (an unrecovered one counts to the end)."),
    _M("n_trades", "trades", "Trades", "count",
       "Round trips: a position from flat back to flat, however many fills it took."),
    _M("n_legs", "trades", "Fills that reduced a position", "count",
       "Rows of the trades table (a trade closed in parts has one row per part)."),
    _M("win_rate", "trades", "Win rate", "%",
       "Share of trades that made money after fees.", signed=False),
    _M("profit_factor", "trades", "Profit factor", "ratio",
       "Money made by winners divided by money lost by losers; above 1 makes money."),
    _M("expectancy", "trades", "Average profit per trade", "$",
       "Mean profit or loss of a trade after fees."),
    _M("expectancy_pct", "trades", "Average return per trade", "%",
       "Mean return of a trade on the money it put in."),
    _M("avg_win_pct", "trades", "Average winner", "%", "Mean return of the winning trades."),
    _M("avg_loss_pct", "trades", "Average loser", "%", "Mean return of the losing trades."),
    _M("avg_win", "trades", "Average profit of a winner", "$",
       "Mean profit of the winning trades."),
    _M("avg_loss", "trades", "Average loss of a loser", "$", "Mean loss of the losing trades."),
    _M("best_trade", "trades", "Best trade", "%", "Return of the best trade."),
    _M("worst_trade", "trades", "Worst trade", "%", "Return of the worst trade."),
    _M("avg_mae", "trades", "Average worst point in a trade", "%",
       "Mean of each trade's lowest price against its entry (maximum adverse excursion)."),
    _M("worst_mae", "trades", "Worst point in any trade", "%",
       "The lowest price any trade saw against its entry."),
    _M("avg_mfe", "trades", "Average best point in a trade", "%",
       "Mean of each trade's highest price against its entry (maximum favourable excursion)."),
    _M("best_mfe", "trades", "Best point in any trade", "%",
       "The highest price any trade saw against its entry."),
    _M("exposure", "exposure", "Time in the market", "%",
       "Share of bars that ended holding a position.", signed=False),
    _M("avg_holding_days", "exposure", "Average holding time", "days",
       "Mean time from a trade's entry to its exit."),
    _M("n_bars", "exposure", "Bars in the window", "count", "Number of price bars the run saw."),
    _M("years", "exposure", "Length of the window", "years",
       "Calendar length of the window the run saw."),
)}

#: metrics that repeat another one in a different unit (kept in report.json, not shown twice)
HIDDEN_METRICS = frozenset({"max_drawdown_duration_bars", "avg_bars_held", "num_trades"})


def format_metric_value(key: str, value: Any) -> str:
    """A metric's value in its unit (percentages as ``+12.50 %``, money with two decimals)."""
    info = METRICS.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return fmt(value)
    if info is None:
        return fmt(value)
    if info.unit.startswith("%"):
        return pct(value, signed=info.signed)
    if info.unit == "$":
        return f"{value:,.2f}"
    if info.unit == "count":
        return f"{int(value):,}"
    if info.unit in ("days", "years"):
        return f"{value:,.1f}"
    return fmt(value)


def metric_groups(metrics: Mapping[str, Any], benchmark: Mapping[str, Any]) -> list[dict]:
    """The metrics of a run and its benchmark, grouped: ``[{"key", "title", "rows": [{"key",
    "name", "unit", "explain", "strategy", "benchmark"}]}]``, in the order of :data:`METRICS`;
    metrics this module does not know go to a last group under their own key."""
    groups: dict[str, dict[str, Any]] = {
        key: {"key": key, "title": title, "rows": []} for key, title in GROUPS}
    present = [k for k in METRICS if k in metrics or k in benchmark]
    for key in present:
        info = METRICS[key]
        groups[info.group]["rows"].append({
            "key": key, "name": info.name, "unit": info.unit, "explain": info.explain,
            "strategy": format_metric_value(key, metrics.get(key)),
            "benchmark": format_metric_value(key, benchmark.get(key)),
        })
    other = [k for k in ordered_metric_keys(metrics, benchmark)
             if k not in METRICS and k not in HIDDEN_METRICS]
    out = [g for g in groups.values() if g["rows"]]
    if other:
        out.append({"key": "other", "title": "Other", "rows": [
            {"key": k, "name": k.replace("_", " "), "unit": "", "explain": "",
             "strategy": fmt(metrics.get(k)), "benchmark": fmt(benchmark.get(k))}
            for k in other]})
    return out


def ordered_metric_keys(*metric_dicts: Mapping[str, Any]) -> list[str]:
    """Every metric key of the dicts, the known ones first in :data:`METRICS` order."""
    keys: list[str] = [k for k in METRICS if any(k in m for m in metric_dicts)]
    for m in metric_dicts:
        for k in m:
            if k not in keys:
                keys.append(k)
    return keys


DSR_PLAIN = ("The chance that the chosen parameters are really better than luck, after "
             "allowing for how many combinations were tried (near 1: real; below 0.95: may "
             "be luck).")
PBO_PLAIN = ("How often the parameters that looked best in training ended in the worse half "
             "when tested on unseen data (near 0: the choice holds up; 0.5 or more: no better "
             "than a random pick).")
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


def cpcv_sentence(cpcv: Mapping[str, Any] | None) -> str:
    """The combinatorial purged k-fold in words: how many paths, how their Sharpe ratios
    spread, how many made money and beat buy-and-hold (empty without CPCV)."""
    if not cpcv:
        return ""
    summ = cpcv.get("summary") or {}
    sh = summ.get("sharpe") or {}
    text = (f"{cpcv.get('n_splits')} splits of {cpcv.get('n_groups')} groups of bars, "
            f"{cpcv.get('n_test_groups')} tested per split, give {cpcv.get('n_paths')} "
            "out-of-sample backtest paths over the whole period, each group traded with the "
            "parameters of a different split. Their Sharpe ratios: mean "
            f"{fmt(sh.get('mean'), 3)}, standard deviation {fmt(sh.get('std'), 3)}, from "
            f"{fmt(sh.get('min'), 3)} to {fmt(sh.get('max'), 3)}; "
            f"{pct(summ.get('share_positive_sharpe'), 0, signed=False)} of the paths have a "
            "positive Sharpe ratio")
    bench = (cpcv.get("benchmark_metrics") or {}).get("total_return")
    if "share_beating_benchmark" in summ:
        text += (f" and {pct(summ['share_beating_benchmark'], 0, signed=False)} beat "
                 f"buy-and-hold over the same bars ({pct(bench)})")
    return text + ". The headline figures above are path 1."
