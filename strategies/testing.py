"""Testing a strategy against its contract: the conformance checks, published so that users
can check their own strategies the way flushback checks its built-in ones::

    from flushback.strategies.testing import check_strategy
    failures = check_strategy(MyStrategy, cfg={"take_profit": 0.2})  # {} when it keeps it
    assert not failures, failures

The contract is :class:`flushback.strategies.adapter.FlushbackStrategy`'s docstring.
:func:`check_strategy` runs the strategy on the reference engine over a seeded synthetic frame
(:func:`conformance_bars`: every open gaps away from the previous close, so a fill at the
signal bar's close cannot pass for one at the next open) with commission and slippage on, and
feed lines from :func:`conformance_feed`: each signal the strategy declares
(``required_signals`` / ``optional_signals``) as seeded triggers that are NaN during a
warm-up, plus the strategy's own ``feed_columns``. Then every check recomputes what the run
must look like from the price frame and the costs -- never from what the engine says about
itself:

- ``trades``: the strategy traded (otherwise the other checks prove nothing);
- ``fills_at_next_open``: every buy at its bar's open * (1 + slippage), every sell at the open
  * (1 - slippage) or, for a resting stop/limit exit, inside its bar's range; none on bar 0;
- ``fractional_sizes``: sizes are not rounded to whole units;
- ``costs``: each fill's fee is commission * notional, and replaying the fills from the
  initial cash gives the recorded cash and position at every bar close;
- ``no_order_before_warmup``: no fill before the bar after the first bar on which every signal
  line the strategy declares is defined (a decision on a warm-up bar is a decision on missing
  data; its own feed columns may stay NaN longer: a missing structure level is "no level");
- ``deterministic``: a second run gives identical fills, trades and equity;
- ``equity_is_cash_plus_position``: recorded equity == cash + position * the frame's close at
  every bar.

flushback's test suite runs :func:`check_strategy` over every registered strategy and proves
the checks on planted bad strategies (one orders during the warm-up, one fills at the signal
bar's close through backtrader's cheat-on-close).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from flushback.data.intervals import bar_interval, periods_per_year
from flushback.signals.testing import synthetic_frame
from flushback.strategies.adapter import FlushbackStrategy, run_engine
from flushback.strategies.config import get_strategy
from flushback.strategies.results import EngineResult

__all__ = [
    "CHECKS",
    "ConformanceRun",
    "check_costs",
    "check_deterministic",
    "check_equity_is_cash_plus_position",
    "check_fills_at_next_open",
    "check_fractional_sizes",
    "check_no_order_before_warmup",
    "check_strategy",
    "check_trades",
    "conformance_bars",
    "conformance_feed",
    "run_conformance",
]

CASH = 10_000.0
COMMISSION = 0.001
SLIPPAGE = 0.0005
_RTOL = 1e-9


def conformance_bars(n: int = 500, interval: str = "1d", seed: int = 0) -> pd.DataFrame:
    """:func:`~flushback.signals.testing.synthetic_frame` bars whose every open gaps away
    from the previous close (0.2-1 %, either way), high/low widened to hold it."""
    frame = synthetic_frame(n, interval, seed=seed, flat=False, gaps=False)
    rng = np.random.default_rng(seed + 1)
    gap = rng.uniform(0.002, 0.01, n) * rng.choice([-1.0, 1.0], n)
    open_ = frame["open"].to_numpy() * (1.0 + gap)
    frame["open"] = open_
    frame["high"] = np.maximum(frame["high"].to_numpy(), open_)
    frame["low"] = np.minimum(frame["low"].to_numpy(), open_)
    return frame


def conformance_feed(strategy: type[FlushbackStrategy], frame: pd.DataFrame,
                     cfg: Mapping[str, Any], *, warmup: int = 60,
                     seed: int = 0) -> tuple[pd.DataFrame, int]:
    """(feed lines, first bar on which every signal line is defined) for ``strategy`` on
    ``frame``.

    Each declared signal is a seeded 0/1 trigger line (the first ~10 % of bars, others ~4 %),
    NaN on the first ``warmup`` bars, as a signal is during its warm-up; the strategy's own
    ``feed_columns`` follow (with their own warm-ups)."""
    rng = np.random.default_rng(seed)
    n = len(frame)
    names = [*getattr(strategy, "required_signals", ()),
             *getattr(strategy, "optional_signals", ())]
    lines: dict[str, Any] = {}
    for k, name in enumerate(names):
        p = 0.10 if k == 0 else 0.04
        values = (rng.random(n) < p).astype(np.float64)
        values[:warmup] = np.nan
        lines[name] = values
    ready = min(warmup, n) if names else 0
    ppy = periods_per_year(bar_interval(frame))
    for name, values in strategy.feed_columns(frame, dict(cfg), ppy).items():
        lines[name] = pd.Series(values, index=frame.index).to_numpy(dtype=np.float64)
    return pd.DataFrame(lines, index=frame.index), ready


@dataclass
class ConformanceRun:
    """One conformance run: the inputs, the result, and how to run it again."""

    strategy: type[FlushbackStrategy]
    cfg: dict[str, Any]
    frame: pd.DataFrame
    extra: pd.DataFrame
    ready: int  # first bar on which every signal line the strategy declares is defined
    result: EngineResult
    cash: float
    commission: float
    slippage: float

    def rerun(self) -> EngineResult:
        return _run(self.strategy, self.frame, self.extra, self.cfg, self.cash,
                    self.commission, self.slippage)


def _run(strategy: type, frame: pd.DataFrame, extra: pd.DataFrame, cfg: dict[str, Any],
         cash: float, commission: float, slippage: float) -> EngineResult:
    return run_engine(strategy, frame, extra, cash=cash, commission=commission,
                      slippage=slippage, strategy_params={"cfg": dict(cfg)})


def run_conformance(strategy: type | str, cfg: Mapping[str, Any] | None = None, *,
                    frame: pd.DataFrame | None = None, warmup: int = 60, seed: int = 0,
                    cash: float = CASH, commission: float = COMMISSION,
                    slippage: float = SLIPPAGE) -> ConformanceRun:
    """Run ``strategy`` (a class or a registered type name) for the checks."""
    cls = cast(type[FlushbackStrategy],
               get_strategy(strategy) if isinstance(strategy, str) else strategy)
    frame = conformance_bars(seed=seed) if frame is None else frame
    cfg = dict(cfg or {})
    extra, ready = conformance_feed(cls, frame, cfg, warmup=warmup, seed=seed)
    result = _run(cls, frame, extra, cfg, cash, commission, slippage)
    return ConformanceRun(cls, cfg, frame, extra, ready, result, cash, commission, slippage)


def _close(a: Any, b: Any, scale: float = 1.0) -> np.ndarray:
    return np.isclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                      rtol=_RTOL, atol=_RTOL * scale)


def _fills(run: ConformanceRun) -> pd.DataFrame:
    return run.result.fills


def _where(run: ConformanceRun, bar: int) -> str:
    return f"bar {bar} ({run.frame.index[bar]})"


def check_trades(run: ConformanceRun) -> None:
    assert len(_fills(run)), (
        f"{run.strategy.__name__}: no fill on the conformance frame; pass a cfg or frame on "
        "which it trades, or the other checks prove nothing")


def check_fills_at_next_open(run: ConformanceRun) -> None:
    """Buys at the open * (1 + slippage); sells at the open * (1 - slippage), or inside the
    bar's range for a resting stop/limit; nothing on the first bar (no decision before it)."""
    o = run.frame["open"].to_numpy()
    lo, hi = run.frame["low"].to_numpy(), run.frame["high"].to_numpy()
    s = run.slippage
    for f in _fills(run).itertuples(index=False):
        b, size, px = int(f.bar), float(f.size), float(f.price)
        assert b >= 1, f"{run.strategy.__name__}: a fill on the first bar, before any close"
        if size > 0:
            want = o[b] * (1.0 + s)
            assert _close(px, want, want), (
                f"{run.strategy.__name__}: buy at {px!r} on {_where(run, b)}, the open * "
                f"(1 + slippage) is {float(want)!r} (close of the bar before: "
                f"{float(run.frame['close'].iloc[b - 1])!r})")
        else:
            want = o[b] * (1.0 - s)
            inside = lo[b] * (1.0 - s) * (1 - _RTOL) <= px <= hi[b] * (1 + _RTOL)
            assert _close(px, want, want) or inside, (
                f"{run.strategy.__name__}: sell at {px!r} on {_where(run, b)}, neither the "
                f"open * (1 - slippage) = {float(want)!r} nor inside the bar's range")


def check_fractional_sizes(run: ConformanceRun) -> None:
    sizes = _fills(run)["size"].to_numpy(dtype=np.float64)
    assert len(sizes) == 0 or np.any(np.abs(sizes - np.round(sizes)) > 1e-9), (
        f"{run.strategy.__name__}: every fill size is a whole number of units: "
        f"{sizes[:5].tolist()}")


def _replay(run: ConformanceRun) -> tuple[np.ndarray, np.ndarray]:
    """(cash, position) at each bar close from the initial cash and the fills, fees
    recomputed as commission * notional."""
    n = len(run.frame)
    dcash, dpos = np.zeros(n), np.zeros(n)
    for f in _fills(run).itertuples(index=False):
        size, px = float(f.size), float(f.price)
        dcash[int(f.bar)] -= size * px + abs(size) * px * run.commission
        dpos[int(f.bar)] += size
    return run.cash + np.cumsum(dcash), np.cumsum(dpos)


def check_costs(run: ConformanceRun) -> None:
    """Fees are commission * notional on every fill, and the fills with their fees account
    for the recorded cash and position at every bar close (slippage: in the fill prices)."""
    fills = _fills(run)
    fee = np.abs(fills["size"].to_numpy(dtype=np.float64)) * fills["price"].to_numpy(
        dtype=np.float64) * run.commission
    bad = ~_close(fills["fee"].to_numpy(dtype=np.float64), fee, run.cash)
    assert not bad.any(), (
        f"{run.strategy.__name__}: fee {fills['fee'][bad].iloc[0]!r} on "
        f"{_where(run, int(fills['bar'][bad].iloc[0]))}, commission * notional is "
        f"{fee[bad][0]!r}")
    cash, pos = _replay(run)
    eq = run.result.equity
    for name, want, scale in (("cash", cash, run.cash), ("position", pos, 1.0)):
        off = np.flatnonzero(~_close(eq[name].to_numpy(), want, scale))
        assert not len(off), (
            f"{run.strategy.__name__}: recorded {name} {eq[name].iloc[off[0]]!r} at "
            f"{_where(run, int(off[0]))}; the fills and their fees give {want[off[0]]!r}")


def check_no_order_before_warmup(run: ConformanceRun) -> None:
    bars = _fills(run)["bar"].to_numpy(dtype=np.int64)
    early = bars[bars <= run.ready]
    assert not len(early), (
        f"{run.strategy.__name__}: a fill on {_where(run, int(early[0]))}, decided before "
        f"{_where(run, run.ready)}, the first bar on which every signal it reads is defined")


def check_deterministic(run: ConformanceRun) -> None:
    again = run.rerun()
    for name in ("fills", "trades", "equity"):
        a, b = getattr(run.result, name), getattr(again, name)
        assert a.equals(b), f"{run.strategy.__name__}: two runs give different {name}"


def check_equity_is_cash_plus_position(run: ConformanceRun) -> None:
    eq = run.result.equity
    close = run.frame["close"].to_numpy()
    assert len(eq) == len(close), (
        f"{run.strategy.__name__}: {len(eq)} equity rows for {len(close)} bars")
    want = eq["cash"].to_numpy() + eq["position"].to_numpy() * close
    off = np.flatnonzero(~_close(eq["equity"].to_numpy(), want, run.cash))
    assert not len(off), (
        f"{run.strategy.__name__}: equity {eq['equity'].iloc[off[0]]!r} at "
        f"{_where(run, int(off[0]))}, cash + position * close is {want[off[0]]!r}")


CHECKS: dict[str, Callable[[ConformanceRun], None]] = {
    "trades": check_trades,
    "fills_at_next_open": check_fills_at_next_open,
    "fractional_sizes": check_fractional_sizes,
    "costs": check_costs,
    "no_order_before_warmup": check_no_order_before_warmup,
    "deterministic": check_deterministic,
    "equity_is_cash_plus_position": check_equity_is_cash_plus_position,
}


def check_strategy(strategy: type | str, cfg: Mapping[str, Any] | None = None, *,
                   frame: pd.DataFrame | None = None, warmup: int = 60,
                   seed: int = 0) -> dict[str, str]:
    """Run every contract check on ``strategy`` (a class or a registered type name) with
    ``cfg``; return {check: failure message} for those that fail (empty when it keeps the
    contract). ``frame``: your own bars (default: :func:`conformance_bars`); ``warmup``: the
    bars its signal lines stay NaN."""
    run = run_conformance(strategy, cfg, frame=frame, warmup=warmup, seed=seed)
    failures: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check(run)
        except AssertionError as exc:
            failures[name] = str(exc)
    return failures
