"""Engine parity: is a fast-engine run the reference's run?

:func:`compare_results` compares two :class:`~flushback.strategies.results.EngineResult`
(or the ``trades``/``equity`` frames of two backtest results): the trades exactly (times,
prices, sizes, fees, funding, pnl, reasons, tranches, excursions) and the equity curve to a
relative tolerance (1e-9 by default). The answer names the first differing trade, which is what
a user needs to find the rule the engines disagree on. The optimizer re-runs its winners on
the reference engine and fails on a mismatch (``backtests/optimize``); the tests run it over
random configurations and every shipped spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ParityReport", "compare_results", "compare_frames", "EQUITY_RTOL"]

EQUITY_RTOL = 1e-9
_EXACT = ("trade_id", "signal_time", "entry_time", "exit_time", "exit_reason", "bars_held",
          "tranches", "entry_price", "exit_price", "size", "entry_fee", "exit_fee", "funding",
          "pnl", "return_pct", "mae", "mfe")


@dataclass
class ParityReport:
    """The outcome of one comparison; ``ok`` when trades and equity agree."""

    trades_reference: int
    trades_fast: int
    first_difference: dict[str, Any] | None = None
    equity_max_rel_diff: float = 0.0
    equity_first_bad: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_difference is None and self.equity_first_bad is None

    def describe(self) -> str:
        if self.ok:
            return (f"engines agree: {self.trades_reference} trades identical, equity within "
                    f"{self.equity_max_rel_diff:.1e} relative")
        parts = []
        if self.first_difference is not None:
            d = self.first_difference
            parts.append(f"first differing trade #{d['trade']} ({d['field']}): reference "
                         f"{d['reference']!r} vs fast {d['fast']!r}")
        if self.equity_first_bad is not None:
            parts.append(f"equity differs from {self.equity_first_bad} (max relative "
                         f"difference {self.equity_max_rel_diff:.3g})")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "trades_reference": self.trades_reference,
                "trades_fast": self.trades_fast,
                "first_difference": self.first_difference,
                "equity_max_rel_diff": self.equity_max_rel_diff,
                "equity_first_bad": self.equity_first_bad, "summary": self.describe()}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | np.floating) and isinstance(b, float | np.floating):
        return (a == b) or (a != a and b != b)
    return bool(a == b)


def _jsonable(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return v


def compare_frames(ref_trades: pd.DataFrame, fast_trades: pd.DataFrame,
                   ref_equity: pd.Series, fast_equity: pd.Series, *,
                   rtol: float = EQUITY_RTOL) -> ParityReport:
    """Compare trade tables exactly and equity series to ``rtol`` (relative)."""
    rep = ParityReport(len(ref_trades), len(fast_trades))
    n = max(len(ref_trades), len(fast_trades))
    cols = [c for c in _EXACT if c in ref_trades.columns or c in fast_trades.columns]
    for i in range(n):
        if i >= len(ref_trades) or i >= len(fast_trades):
            row = (fast_trades if i >= len(ref_trades) else ref_trades).iloc[i]
            rep.first_difference = {
                "trade": i + 1, "field": "presence",
                "reference": None if i >= len(ref_trades) else _jsonable(row.get("entry_time")),
                "fast": None if i >= len(fast_trades) else _jsonable(row.get("entry_time")),
                "entry_time": _jsonable(row.get("entry_time"))}
            break
        a, b = ref_trades.iloc[i], fast_trades.iloc[i]
        for col in cols:
            va, vb = a.get(col), b.get(col)
            if not _same(va, vb):
                rep.first_difference = {"trade": i + 1, "field": col,
                                        "reference": _jsonable(va), "fast": _jsonable(vb),
                                        "entry_time": _jsonable(a.get("entry_time"))}
                break
        if rep.first_difference is not None:
            break
    ea = np.asarray(ref_equity, dtype=np.float64)
    eb = np.asarray(fast_equity, dtype=np.float64)
    if ea.shape != eb.shape:
        rep.equity_first_bad = f"length {len(ea)} vs {len(eb)}"
        rep.equity_max_rel_diff = float("inf")
        return rep
    if len(ea):
        denom = np.maximum(np.abs(ea), 1e-300)
        rel = np.abs(ea - eb) / denom
        rel = np.where(np.isnan(ea) & np.isnan(eb), 0.0, rel)
        rep.equity_max_rel_diff = float(np.nanmax(rel)) if np.isfinite(rel).any() else 0.0
        bad = np.flatnonzero(~(rel <= rtol))
        if len(bad):
            where = ref_equity.index[bad[0]] if isinstance(ref_equity, pd.Series) else bad[0]
            rep.equity_first_bad = str(_jsonable(where))
    return rep


def compare_results(reference: Any, fast: Any, *, rtol: float = EQUITY_RTOL) -> ParityReport:
    """Compare two results that carry ``trades`` and ``equity`` (an ``EngineResult`` or a
    ``BacktestResult``)."""
    return compare_frames(reference.trades, fast.trades, reference.equity["equity"],
                          fast.equity["equity"], rtol=rtol)
