"""Performance metrics: pure functions with the annualisation explicit.

Written by hand on purpose: quantstats/empyrical assume 252 trading days a year and guess
whether they were given prices or returns; crypto trades every day of the year and flushback
always passes an equity curve plus ``periods_per_year`` (365 for daily bars, 8760 hourly,
6*365 = 2190 for 4h bars).

Definitions (``r_t = E_t / E_{t-1} - 1`` are the per-bar simple returns of the equity curve
``E_0..E_n``; ``P = periods_per_year``; the risk-free rate is 0):

- ``total_return = E_n / E_0 - 1``; ``cagr = (E_n / E_0) ** (P / n) - 1``
- ``volatility = std(r, ddof=1) * sqrt(P)``; ``sharpe = mean(r) / std(r, ddof=1) * sqrt(P)``
- ``sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(P)`` (downside deviation over all bars)
- ``max_drawdown = min(E_t / max_{s<=t} E_s - 1)`` (a negative fraction);
  ``max_drawdown_duration_bars``: the longest run of consecutive bars that end below the
  running peak (underwater bars; a drawdown not yet recovered counts to the end);
  ``..._days`` = bars * 365 / P
- ``calmar = cagr / |max_drawdown|``
- ``exposure``: the fraction of bars that end with a non-zero position (None when neither
  the positions nor the trades are given)
- trades are counted by ROUND TRIP: a position from flat back to flat is one trade, however
  many legs it was opened or closed in. The engine writes one row per reducing fill (a *leg*:
  ``pnl`` in cash net of fees and funding, ``return_pct`` = pnl / (size * entry_price +
  entry_fee)); legs of one position share a ``trade_id`` and :func:`round_trips` folds them
  into one row: ``pnl`` = the legs' sum, ``return_pct`` = sum(pnl) / sum(size * entry_price +
  entry_fee) (the P&L over everything paid for the units), ``mae``/``mfe`` the lowest/highest
  price while it was open against its mean entry price. Per round trip: ``n_trades``,
  ``n_legs`` (the rows), ``win_rate`` (pnl > 0),
  ``avg_win``/``avg_loss`` (mean pnl of winners / losers), ``avg_win_pct``/``avg_loss_pct``,
  ``profit_factor = sum(winning pnl) / |sum(losing pnl)|``, ``expectancy`` (mean pnl),
  ``expectancy_pct`` (mean return_pct), ``best_trade``/``worst_trade`` (return_pct),
  ``avg_bars_held``, ``avg_holding_days``, ``avg_mae``/``worst_mae``, ``avg_mfe``/``best_mfe``.

Undefined values (no trades, no losing trades, zero volatility) are ``None``, never NaN or inf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.intervals import periods_per_year

__all__ = [
    "METRIC_NAMES",
    "returns_from_equity",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_duration",
    "calmar",
    "exposure",
    "round_trips",
    "trade_metrics",
    "compute_metrics",
    "score_metrics",
    "SCORE_METRICS",
    "periods_per_year_for",
]

#: bars per year for an interval ("1d" -> 365, "4h" -> 2190, "1h" -> 8760); the one definition
#: is :func:`flushback.data.intervals.periods_per_year`
periods_per_year_for = periods_per_year


def _arr(equity: pd.Series | Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(equity, dtype=np.float64)


def _none_if_bad(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def returns_from_equity(equity: pd.Series | Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-bar simple returns ``E_t / E_{t-1} - 1`` (length n-1)."""
    e = _arr(equity)
    return e[1:] / e[:-1] - 1.0


def total_return(equity) -> float:
    e = _arr(equity)
    return float(e[-1] / e[0] - 1.0)


def cagr(equity, periods_per_year: int) -> float | None:
    e = _arr(equity)
    n = len(e) - 1
    if n <= 0 or e[0] <= 0:
        return None
    growth = e[-1] / e[0]
    if growth <= 0:
        return -1.0
    return float(growth ** (periods_per_year / n) - 1.0)


def volatility(equity, periods_per_year: int) -> float | None:
    return _volatility(returns_from_equity(equity), periods_per_year)


def sharpe(equity, periods_per_year: int) -> float | None:
    return _sharpe(returns_from_equity(equity), periods_per_year)


def sortino(equity, periods_per_year: int) -> float | None:
    return _sortino(returns_from_equity(equity), periods_per_year)


def max_drawdown(equity) -> float:
    e = _arr(equity)
    return _max_drawdown(e, np.maximum.accumulate(e))


def max_drawdown_duration(equity) -> int:
    """The longest run of consecutive bars that end below the running peak (underwater)."""
    e = _arr(equity)
    return _max_drawdown_duration(e, np.maximum.accumulate(e))


# The same definitions on intermediates computed once (compute_metrics shares the returns,
# their standard deviation and the running peak between the metrics that read them).

def _moments(r: np.ndarray) -> tuple[Any, float | None, float | None]:
    """(mean, standard deviation with ddof=1, downside deviation) of per-bar returns, as
    numpy computes them (pairwise sums); the deviations are None below 2 (1) returns."""
    m = len(r)
    mean = np.mean(r) if m else math.nan
    sd = float(np.std(r, ddof=1)) if m >= 2 else None
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if m else None
    return mean, sd, dd


def _ratios(mean: Any, sd: float | None, dd: float | None,
            periods_per_year: int) -> tuple[float | None, float | None, float | None]:
    """(volatility, sharpe, sortino) from :func:`_moments` (undefined: None)."""
    root = math.sqrt(periods_per_year)
    vol = None if sd is None else float(sd * root)
    sharpe_ = float(mean / sd * root) if sd is not None and sd > 0 else None
    sortino_ = float(mean / dd * root) if dd is not None and dd > 0 else None
    return vol, sharpe_, sortino_


def _volatility(r: np.ndarray, periods_per_year: int) -> float | None:
    return _ratios(*_moments(r), periods_per_year)[0]


def _sharpe(r: np.ndarray, periods_per_year: int) -> float | None:
    return _ratios(*_moments(r), periods_per_year)[1]


def _sortino(r: np.ndarray, periods_per_year: int) -> float | None:
    return _ratios(*_moments(r), periods_per_year)[2]


def _max_drawdown(e: np.ndarray, peak: np.ndarray) -> float:
    return float(np.min(e / peak - 1.0))


def _max_drawdown_duration(e: np.ndarray, peak: np.ndarray) -> int:
    under = e < peak
    if not under.any():
        return 0
    # runs of True: starts where it turns on, ends where it turns off (on the padded array)
    edges = np.flatnonzero(np.diff(np.r_[False, under, False].astype(np.int8)))
    return int(np.max(edges[1::2] - edges[::2]))


def calmar(equity, periods_per_year: int) -> float | None:
    c = cagr(equity, periods_per_year)
    mdd = max_drawdown(equity)
    if c is None or mdd == 0:
        return None
    return float(c / abs(mdd))


def exposure(position) -> float:
    p = _arr(position)
    if len(p) == 0:
        return 0.0
    return float(np.mean(np.abs(p) > 1e-12))


ROUND_TRIP_COLUMNS = [
    "trade_id", "signal_time", "entry_time", "entry_price", "exit_time", "exit_price", "size",
    "entry_fee", "exit_fee", "funding", "pnl", "return_pct", "bars_held", "exit_reason",
    "legs", "tranches", "mae", "mfe",
]


def round_trips(trades: pd.DataFrame | None) -> pd.DataFrame:
    """One row per round trip (flat to flat) from the legs (one row per reducing fill).

    Legs are grouped by ``trade_id`` (rows without one are each their own round trip), in
    order of first appearance. Per round trip: the first leg's ``signal_time``/``entry_time``,
    the last leg's ``exit_time``/``exit_reason``; ``bars_held`` and ``tranches`` the largest of
    the legs; ``size`` = units sold over all legs; ``entry_price`` = sum(size * entry_price) /
    size (average-cost legs: the mean price paid); ``exit_price`` = sum(size * exit_price) /
    size; fees, funding and ``pnl`` summed; ``return_pct`` = pnl / sum(size * entry_price +
    entry_fee); ``legs`` = number of legs; ``mae``/``mfe`` = the lowest/highest price while the
    position was open (recovered from each leg's excursion against its own average cost)
    against the round trip's ``entry_price``. A one-leg round trip is that leg, unchanged.
    """
    if trades is None or len(trades) == 0:
        return pd.DataFrame(columns=ROUND_TRIP_COLUMNS)
    t = trades.reset_index(drop=True)
    n = len(t)
    if "trade_id" in t:
        ids = t["trade_id"]
        key = ids.astype(str).where(ids.notna(), pd.Series([f"\0row{i}" for i in range(n)]))
        codes = pd.factorize(key, sort=False)[0]
    else:
        codes = np.arange(n)
    k = int(codes.max()) + 1
    first = np.unique(codes, return_index=True)[1]  # codes number groups by first appearance
    last = n - 1 - np.unique(codes[::-1], return_index=True)[1]
    legs = np.bincount(codes, minlength=k)
    multi = legs > 1

    nan = np.full(n, np.nan)

    def col(name: str) -> np.ndarray:
        """A column as floats (NaN when the table lacks it)."""
        return t[name].to_numpy(np.float64) if name in t else nan

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=values, minlength=k)

    def pick(extreme: Any, values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(k, fill)
        extreme.at(out, codes, values)
        return out

    pnl, ret = col("pnl"), col("return_pct")
    size = col("size") if "size" in t else None
    entry = col("entry_price") if "entry_price" in t else None
    exit_ = col("exit_price") if "exit_price" in t else None
    out: dict[str, Any] = {
        "trade_id": t["trade_id"].to_numpy()[first] if "trade_id" in t else np.arange(1, k + 1),
    }
    for name in ("signal_time", "entry_time"):
        if name in t:
            out[name] = t[name].iloc[first].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        sz = total(size) if size is not None else np.full(k, np.nan)
        avg_entry = total(size * entry) / sz if size is not None and entry is not None else None
        if avg_entry is not None:
            out["entry_price"] = avg_entry
        if "exit_time" in t:
            out["exit_time"] = t["exit_time"].iloc[last].to_numpy()
        if size is not None and exit_ is not None:
            out["exit_price"] = total(size * exit_) / sz
        out["size"] = sz
        for name in ("entry_fee", "exit_fee", "funding"):
            if name in t:
                out[name] = total(col(name))
        p = total(pnl)
        out["pnl"] = p
        if size is not None and entry is not None and "entry_fee" in t:
            basis = total(size * entry + col("entry_fee"))
        else:  # the legs' basis recovered from pnl / return_pct
            basis = total(pnl / ret)
        out["return_pct"] = np.where(multi & (basis > 0), p / basis, ret[first])
        if "bars_held" in t:
            out["bars_held"] = pick(np.maximum, col("bars_held"), -np.inf).astype(np.int64)
        if "exit_reason" in t:
            out["exit_reason"] = t["exit_reason"].to_numpy()[last]
        out["legs"] = legs.astype(np.int64)
        if "tranches" in t:
            out["tranches"] = pick(np.maximum, col("tranches"), -np.inf).astype(np.int64)
        for name, extreme, fill in (("mae", np.minimum, np.inf), ("mfe", np.maximum, -np.inf)):
            exc = col(name)
            if exc is None:
                continue
            if entry is not None and avg_entry is not None:
                price = pick(extreme, (1.0 + exc) * entry, fill)
                merged = price / avg_entry - 1.0
            else:
                merged = pick(extreme, exc, fill)
            out[name] = np.where(multi, merged, exc[first])
    frame = pd.DataFrame(out)
    return frame[[c for c in ROUND_TRIP_COLUMNS if c in frame.columns]]


def _pnl_metrics(pnl: np.ndarray) -> dict[str, Any]:
    """``n_trades``, ``win_rate``, ``profit_factor`` and ``expectancy`` of the round trips'
    P&L (at least one)."""
    wins, losses = pnl > 0, pnl < 0
    return {
        "n_trades": int(len(pnl)),
        "win_rate": float(np.mean(wins)),
        "profit_factor": (float(np.sum(pnl[wins]) / abs(np.sum(pnl[losses])))
                          if losses.any() else None),
        "expectancy": float(np.mean(pnl)),
    }


def trade_metrics(trades: pd.DataFrame | None, periods_per_year: int) -> dict[str, Any]:
    """Trade statistics per round trip (legs sharing a ``trade_id`` are one trade)."""
    out: dict[str, Any] = {
        "n_trades": 0,
        "n_legs": 0,
        "win_rate": None,
        "avg_win": None,
        "avg_loss": None,
        "avg_win_pct": None,
        "avg_loss_pct": None,
        "profit_factor": None,
        "expectancy": None,
        "expectancy_pct": None,
        "best_trade": None,
        "worst_trade": None,
        "avg_bars_held": None,
        "avg_holding_days": None,
        "avg_mae": None,
        "worst_mae": None,
        "avg_mfe": None,
        "best_mfe": None,
    }
    if trades is None or len(trades) == 0:
        return out
    out["n_legs"] = int(len(trades))
    if "trade_id" in trades and not trades["trade_id"].is_unique:
        if not isinstance(trades, pd.DataFrame):  # a light column view (optimizer trials)
            trades = trades.to_frame()
        trades = round_trips(trades)  # one leg per trade otherwise: the rows are the trades
    pnl = trades["pnl"].to_numpy(dtype=np.float64)
    ret = trades["return_pct"].to_numpy(dtype=np.float64)
    wins, losses = pnl > 0, pnl < 0
    out.update(_pnl_metrics(pnl))
    if wins.any():
        out["avg_win"] = float(np.mean(pnl[wins]))
        out["avg_win_pct"] = float(np.mean(ret[wins]))
    if losses.any():
        out["avg_loss"] = float(np.mean(pnl[losses]))
        out["avg_loss_pct"] = float(np.mean(ret[losses]))
    out["expectancy_pct"] = float(np.mean(ret))
    out["best_trade"] = float(np.max(ret))
    out["worst_trade"] = float(np.min(ret))
    if "bars_held" in trades:
        bars = trades["bars_held"].to_numpy(dtype=np.float64)
        out["avg_bars_held"] = float(np.mean(bars))
        out["avg_holding_days"] = float(np.mean(bars) * 365.0 / periods_per_year)
    if "mae" in trades:
        mae = trades["mae"].to_numpy(dtype=np.float64)
        out["avg_mae"] = float(np.mean(mae))
        out["worst_mae"] = float(np.min(mae))
    if "mfe" in trades:
        mfe = trades["mfe"].to_numpy(dtype=np.float64)
        out["avg_mfe"] = float(np.mean(mfe))
        out["best_mfe"] = float(np.max(mfe))
    return out


METRIC_NAMES = (
    "start_equity",
    "end_equity",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration_bars",
    "max_drawdown_duration_days",
    "exposure",
    "n_bars",
    "years",
)


def _headline(e: np.ndarray, periods_per_year: int, mdd: float, expo: float | None,
              moments: tuple[Any, float | None, float | None]) -> dict[str, Any]:
    """The equity metrics a study scores: returns, risk and their ratios, drawdown, exposure
    (``moments``: :func:`_moments` of the per-bar returns)."""
    growth = cagr(e, periods_per_year)
    vol, sharpe_, sortino_ = _ratios(*moments, periods_per_year)
    return {
        "total_return": total_return(e),
        "cagr": growth,
        "volatility": vol,
        "sharpe": sharpe_,
        "sortino": sortino_,
        "calmar": None if growth is None or mdd == 0 else float(growth / abs(mdd)),
        "max_drawdown": mdd,
        "exposure": expo,
    }


#: what :func:`score_metrics` gives: every metric a study can score (its objectives, the
#: ``min_trades`` count) and stores per trial
SCORE_METRICS = ("total_return", "cagr", "volatility", "sharpe", "sortino", "calmar",
                 "max_drawdown", "exposure", "n_trades", "win_rate", "profit_factor",
                 "expectancy")


def score_metrics(equity: np.ndarray, pnl: np.ndarray, periods_per_year: int, *,
                  path: tuple[float, int, int],
                  moments: tuple[Any, float | None, float | None]) -> dict[str, Any]:
    """:data:`SCORE_METRICS` of an equity curve and the P&L of its round trips, from its
    path statistics (``(max drawdown, longest underwater run, bars with a position)``) and
    return moments (:func:`_moments`) already computed: the values :func:`compute_metrics`
    gives for those keys, by the same code."""
    e = _arr(equity)
    out = _headline(e, periods_per_year, float(path[0]), float(path[2] / len(e)), moments)
    out.update(_pnl_metrics(pnl) if len(pnl) else
               {"n_trades": 0, "win_rate": None, "profit_factor": None, "expectancy": None})
    return {k: (_none_if_bad(v) if isinstance(v, float) else v) for k, v in out.items()}


def compute_metrics(
    equity: pd.Series,
    trades: pd.DataFrame | None,
    periods_per_year: int,
    *,
    position: pd.Series | None = None,
    path: tuple[float, int, int] | None = None,
) -> dict[str, Any]:
    """All metrics of an equity curve (one value per bar) and its closed trades.

    ``position`` (units held at each bar close) gives the exposure; without it the exposure
    is derived from the trades' ``entry_time``/``exit_time`` intervals (an ``end_of_data``
    trade is held at its last bar's close too); with neither, the exposure is None.
    ``path``: (max drawdown, longest underwater run in bars, bars with a position) of this
    equity and position, already computed (the fast engine's ``nb_stats.path_stats``: one pass
    instead of several over a long curve; the same values).
    """
    if periods_per_year is None or periods_per_year <= 0:
        raise ValueError("periods_per_year must be a positive integer (365 daily, 8760 hourly)")
    e = _arr(equity)
    if len(e) == 0:
        raise ValueError("empty equity curve")
    expo: float | None
    if path is not None and position is not None:
        expo = float(path[2] / len(e))
    elif position is not None:
        expo = exposure(position)
    elif trades is not None and len(trades) and isinstance(equity, pd.Series):
        held = np.zeros(len(e), dtype=bool)
        idx = equity.index
        # a position still open at the end is held at the close of its last bar too
        marked = (trades["exit_reason"].astype(str).eq("end_of_data").to_numpy()
                  if "exit_reason" in trades else np.zeros(len(trades), dtype=bool))
        for entry, exit_, open_end in zip(trades["entry_time"], trades["exit_time"], marked,
                                          strict=True):
            held |= (idx >= entry) & ((idx <= exit_) if open_end else (idx < exit_))
        expo = float(np.mean(held))
    elif trades is not None and len(trades) == 0:
        expo = 0.0  # no trades: never in the market
    else:
        expo = None  # no positions, and no trades with times on the bars: unknown, not zero
    if path is not None:
        mdd, mdd_bars = float(path[0]), int(path[1])
    else:
        peak = np.maximum.accumulate(e)
        mdd_bars = _max_drawdown_duration(e, peak)
        mdd = _max_drawdown(e, peak)
    head = _headline(e, periods_per_year, mdd, expo, _moments(e[1:] / e[:-1] - 1.0))
    n = len(e) - 1
    out: dict[str, Any] = {
        "start_equity": float(e[0]),
        "end_equity": float(e[-1]),
        **{k: v for k, v in head.items() if k != "exposure"},
        "max_drawdown_duration_bars": mdd_bars,
        "max_drawdown_duration_days": mdd_bars * 365.0 / periods_per_year,
        "exposure": expo,
        "n_bars": int(len(e)),
        "years": n / periods_per_year,
    }
    out.update(trade_metrics(trades, periods_per_year))
    return {k: (_none_if_bad(v) if isinstance(v, float) else v) for k, v in out.items()}
