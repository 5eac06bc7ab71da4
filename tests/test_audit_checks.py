"""Unit tests of the three audit checks on a small, self-contained pipeline.

The toy pipeline below is written independently of the real one (its own as-of join, its own
next-open fill engine) and truncates its RAW inputs (bars by open time, Fear & Greed rows by
known_at) exactly as the Pipeline protocol requires. Planted biases: signals that peek one and
ten bars ahead, a float strength that peeks but never fires, a Fear & Greed join by calendar date
(the value dated D+1 on bar D) and an RSI whose declared warm-up is 14 bars.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.audit.base import (
    FAIL,
    PASS,
    PipelineOutput,
    compare_columns,
    relative_difference,
)
from flushback.backtests.audit.external_timing import check_external_timing
from flushback.backtests.audit.lookahead import check_lookahead
from flushback.backtests.audit.warmup import check_warmup

DAY = pd.Timedelta(days=1)


def make_raw(n: int = 400, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.005, n))
    bars = pd.DataFrame({"open": open_, "close": close,
                         "high": np.maximum(open_, close) * 1.01,
                         "low": np.minimum(open_, close) * 0.99}, index=idx)
    # Fear & Greed as the data layer declares it: value dated D describes the day ending D 00:00,
    # known at D 01:00. Rows cover the bars and one day beyond.
    fidx = pd.date_range(idx[0], idx[-1] + DAY, freq="D", tz="UTC")
    fng = pd.DataFrame({"fng": rng.integers(5, 95, len(fidx)).astype(float),
                        "period_end": fidx, "known_at": fidx + pd.Timedelta(hours=1)},
                       index=fidx)
    return bars, fng


def asof_join(bars: pd.DataFrame, fng: pd.DataFrame) -> pd.DataFrame:
    close = pd.DataFrame({"close_time": bars.index + DAY, "bar": bars.index})
    right = fng.sort_values("known_at")[["fng", "known_at", "period_end"]]
    m = pd.merge_asof(close, right, left_on="close_time", right_on="known_at",
                      direction="backward")
    return m.set_index(pd.DatetimeIndex(m["bar"], name="timestamp"))[
        ["fng", "known_at", "period_end"]]


def calendar_join(bars: pd.DataFrame, fng: pd.DataFrame) -> pd.DataFrame:
    """Planted bias: bar D gets the value dated D+1 (by calendar date, ignoring known_at)."""
    shifted = fng.reindex(bars.index + DAY)
    shifted.index = bars.index
    return shifted[["fng", "known_at", "period_end"]]


def simulate(frame: pd.DataFrame, entry: pd.Series, hold: int = 3,
             peeking_engine: bool = False) -> pd.DataFrame:
    """Enter at the next open after a trigger, exit at the open ``hold`` bars later.

    ``peeking_engine`` (planted bias in the ENGINE, not in a signal): only take the trigger when
    the fill bar will close above the signal bar's close."""
    opens = frame["open"].to_numpy()
    closes = frame["close"].to_numpy()
    sig = entry.to_numpy(dtype=bool)
    n = len(frame)
    rows = []
    s = 0
    while s < n:
        if sig[s] and s + 1 < n and (not peeking_engine or closes[s + 1] > closes[s]):
            e = s + 1
            x = e + hold
            rows.append({
                "trade_id": len(rows) + 1,
                "entry_time": frame.index[e], "entry_price": opens[e],
                "exit_time": frame.index[x] if x < n else pd.NaT,
                "exit_price": opens[x] if x < n else np.nan,
            })
            s = x
            continue
        s += 1
    return pd.DataFrame(rows, columns=["trade_id", "entry_time", "entry_price", "exit_time",
                                       "exit_price"])


class ToyPipeline:
    def __init__(self, signals: dict[str, Callable[[pd.DataFrame], pd.Series]],
                 entry: str, join=asof_join, n: int = 400, peeking_engine: bool = False):
        self.peeking_engine = peeking_engine
        self.bars, self.fng = make_raw(n)
        self.signals = signals
        self.entry = entry
        self.join = join
        self.runs: list[pd.Timestamp | None] = []
        self.modes: list[bool] = []

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.bars.index

    @property
    def interval(self) -> pd.Timedelta:
        return DAY

    def run(self, until=None, *, trades: bool = True, open_only: bool = False) -> PipelineOutput:
        self.runs.append(until)
        self.modes.append(open_only)
        bars, fng = self.bars, self.fng
        if until is not None:
            bars = bars[bars.index <= until]
            fng = fng[fng["known_at"] <= until + DAY]
        ext = self.join(bars, fng)
        frame = bars.copy()
        frame["fng"] = ext["fng"]
        if open_only:  # the last bar as known at its open
            last = frame.index[-1]
            frame.loc[last, ["high", "low", "close"]] = frame.at[last, "open"]
            frame.loc[last, "fng"] = frame["fng"].iloc[-2]
        frame.attrs["interval"] = "1d"
        sig = pd.DataFrame({k: f(frame) for k, f in self.signals.items()}, index=frame.index)
        tr = simulate(frame, sig[self.entry], peeking_engine=self.peeking_engine) if (
            trades) else None
        return PipelineOutput(frame, sig, tr, ext[["known_at"]].rename(
            columns={"known_at": "fng"}), ext[["period_end"]].rename(
            columns={"period_end": "fng"}))


def honest_dip(f: pd.DataFrame) -> pd.Series:
    return (f["close"] < 0.95 * f["close"].rolling(10, min_periods=10).max()).rename("dip")


def honest_fear(f: pd.DataFrame) -> pd.Series:
    return (f["fng"] <= 20).rename("fear")


def peek(k: int) -> Callable[[pd.DataFrame], pd.Series]:
    def fn(f: pd.DataFrame) -> pd.Series:
        # Planted: the close k bars AHEAD decides today's trigger.
        return (f["close"].shift(-k) < 0.97 * f["close"]).rename(f"peek{k}")
    return fn


def peek_strength_never_fires(f: pd.DataFrame) -> pd.Series:
    # Planted: a float strength that peeks one bar ahead but never drives a trade.
    return (f["close"].shift(-1) / f["close"]).rename("ratio")


def _findings(result, column):
    return [x for x in result.findings if x.column == column]


def test_honest_pipeline_passes_and_cuts_at_decision_and_fill_bars():
    p = ToyPipeline({"dip": honest_dip, "fear": honest_fear}, entry="dip")
    full = p.run(None)
    assert len(full.trades) > 20
    res = check_lookahead(p, full=full, max_trades=20, seed=1)
    assert res.verdict == PASS, res.summary
    assert res.params["trades_checked"] == 20
    # every sampled trade was cut at its entry decision bar (the bar before the fill)
    cuts = set(p.runs[1:])
    for _, tr in full.trades.iterrows():
        e = p.index.get_loc(tr.entry_time)
        if p.index[e] in cuts:
            assert p.index[e - 1] in cuts
    assert res.params["truncated_runs"] == len(set(zip(p.runs[1:], p.modes[1:], strict=True)))
    # each sampled entry is also re-run with its fill bar known at its open only
    assert sum(p.modes[1:]) == 20


@pytest.mark.parametrize("k", [1, 10])
def test_peeking_entry_signal_is_caught(k):
    p = ToyPipeline({"dip": honest_dip, f"peek{k}": peek(k)}, entry=f"peek{k}")
    full = p.run(None)
    res = check_lookahead(p, full=full, max_trades=20, seed=3)
    assert res.verdict == FAIL
    found = _findings(res, f"peek{k}")
    assert found, res.summary
    close = full.frame["close"]
    for fnd in found:
        t = p.index.get_loc(fnd.bar)
        cut = p.index.get_loc(fnd.cut)
        # independent recomputation: the full value peeks k bars ahead, the truncated run
        # cannot see past the cut
        assert bool(fnd.full) == bool(close.iloc[t + k] < 0.97 * close.iloc[t])
        assert fnd.full is not None and bool(fnd.full) is True and bool(fnd.truncated) is False
        assert cut - k <= t <= cut  # (cut - k: the fill bar known at its open only)
    # the honest column is never blamed
    assert not _findings(res, "dip")
    # the trades move too: ten bars ahead, even with the whole fill bar; one bar ahead, when
    # the fill bar is known at its open only (with the whole fill bar the trade reappears)
    assert any(x.kind == "trade_entry" for x in res.findings)
    if k == 1:
        blind = check_lookahead(p, full=full, max_trades=20, seed=3, open_only_cuts=False)
        assert not [x for x in blind.findings if x.kind.startswith("trade")]


def test_one_bar_peek_is_invisible_when_cutting_at_the_fill_bar():
    """Why the decision bar matters: cutting only at entry bars hides a one-bar peek."""
    p = ToyPipeline({"peek1": peek(1)}, entry="peek1")
    full = p.run(None)
    bad = []
    for _, tr in full.trades.iterrows():
        e = p.index.get_loc(tr.entry_time)
        out = p.run(p.index[e])
        # compare only the decision bar e-1, as a check cutting at the fill bar would
        upto = p.index[e - 1: e]
        bad += compare_columns(full.signals, out.signals, upto)
    assert bad == []
    assert check_lookahead(p, full=full).verdict == FAIL


def test_biased_signal_that_never_fires_is_caught_on_quiet_bars():
    p = ToyPipeline({"dip": honest_dip, "ratio": peek_strength_never_fires}, entry="dip")
    res = check_lookahead(p, max_trades=20, other_bars=5, seed=0)
    assert res.verdict == FAIL
    found = _findings(res, "ratio")
    assert found
    f0 = found[0]
    # at the cut bar the truncated run has no next close: NaN, the full run a real ratio
    assert f0.bar == f0.cut
    assert f0.truncated is None or np.isnan(f0.truncated)
    t = p.index.get_loc(f0.bar)
    close = p.bars["close"]
    assert f0.full == pytest.approx(close.iloc[t + 1] / close.iloc[t])


def test_fear_greed_calendar_join_is_caught_by_lookahead_and_timing():
    p = ToyPipeline({"dip": honest_dip, "fear": honest_fear}, entry="fear", join=calendar_join)
    full = p.run(None)
    res = check_lookahead(p, full=full, seed=0)
    assert res.verdict == FAIL
    fng = _findings(res, "fng")
    assert fng and all(f.kind == "frame_value" for f in fng)
    # the full run shows the value dated D+1 on bar D
    f0 = fng[0]
    assert f0.full == p.fng.loc[f0.bar + DAY, "fng"]
    timing = check_external_timing(p.index, DAY, full.known_at, full.period_end,
                                   frame=full.frame)
    assert timing.verdict == FAIL
    row = timing.rows[0]
    assert row["early_uses"] == len(p.index)
    assert row["lag_h_min"] == 0.0  # used at the close of the bar its period ends


def test_external_timing_passes_for_asof_join_with_hand_computed_lags():
    p = ToyPipeline({"dip": honest_dip}, entry="dip")
    full = p.run(None)
    timing = check_external_timing(p.index, DAY, full.known_at, full.period_end,
                                   frame=full.frame)
    assert timing.verdict == PASS
    row = timing.rows[0]
    # value dated D (period end D 00:00, known D 01:00) is first used at the close of bar D,
    # D+1 00:00: a 24 h lag, for every value
    assert row["lag_h_min"] == row["lag_h_max"] == 24.0
    assert row["publication_lag_h"] == 1.0
    assert row["values_used"] == len(p.index)
    assert row["early_uses"] == 0


def test_external_timing_flags_values_known_before_their_period_end():
    idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    ka = pd.DataFrame({"fng": idx - pd.Timedelta(hours=2)}, index=idx)
    pe = pd.DataFrame({"fng": idx}, index=idx)
    res = check_external_timing(idx, DAY, ka, pe)
    assert res.verdict == FAIL and res.rows[0]["known_before_end"] == 3
    ok = check_external_timing(idx, DAY, pe, pe)
    assert ok.verdict == PASS


class _RSI:
    """Wilder RSI written here independently (seed = mean of the first n changes)."""

    tolerance = 0.01

    def __init__(self, period: int, warmup: int):
        self.period = period
        self.warmup_bars = warmup

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return self.warmup_bars

    def compute(self, frame: pd.DataFrame) -> pd.Series:
        c = frame["close"].to_numpy()
        n = self.period
        out = np.full(len(c), np.nan)
        d = np.diff(c)
        if len(d) >= n:
            g = np.mean(np.clip(d[:n], 0, None))
            losses = np.mean(np.clip(-d[:n], 0, None))
            out[n] = 100 * g / (g + losses)
            for i in range(n, len(d)):
                g += (max(d[i], 0) - g) / n
                losses += (max(-d[i], 0) - losses) / n
                out[i + 1] = 100 * g / (g + losses)
        out[: self.warmup_bars] = np.nan
        return pd.Series(out, index=frame.index, name="rsi")


def test_rsi_with_14_bar_warmup_fails_and_with_enough_warmup_passes():
    bars, _ = make_raw(800)
    res = check_warmup(bars, {"short": _RSI(14, 14), "long": _RSI(14, 201)}, interval=DAY)
    by = {r["signal"]: r for r in res.rows}
    assert res.verdict == FAIL
    assert by["short"]["verdict"] == FAIL and by["long"]["verdict"] == PASS
    # independent: RSI seeded 14 bars before the last bar vs full history
    rsi = _RSI(14, 0)
    full_last = rsi.compute(bars).iloc[-1]
    short_last = rsi.compute(bars.iloc[-15:]).iloc[-1]
    assert by["short"]["max_abs_diff"] >= abs(full_last - short_last) > 0.01
    assert by["long"]["max_abs_diff"] <= 0.01
    # relative differences shrink with more history
    assert by["short"]["rel_diff_x1"] > by["short"]["rel_diff_x4"]
    assert res.findings and res.findings[0].column == "short"


def test_relative_difference_rules():
    assert relative_difference(50.0, 55.0) == pytest.approx(0.1)
    assert relative_difference(np.nan, np.nan) == 0.0
    assert relative_difference(1.0, np.nan) == np.inf
    assert relative_difference(True, False) == 1.0


def test_result_dicts_are_json_ready():
    import json

    p = ToyPipeline({"peek1": peek(1)}, entry="peek1", n=120)
    res = check_lookahead(p, max_trades=20)
    json.dumps(res.to_dict(), allow_nan=False)
    assert res.to_dict()["verdict"] == FAIL


def test_trade_comparison_handles_partial_exits_and_open_positions():
    from flushback.backtests.audit.lookahead import _compare_trades, _trades_frame

    t = pd.Timestamp
    a, x1, x2 = t("2024-01-02", tz="UTC"), t("2024-01-05", tz="UTC"), t("2024-01-09", tz="UTC")
    cut = t("2024-01-06", tz="UTC")
    full = _trades_frame(pd.DataFrame({
        "trade_id": [1, 1], "entry_time": [a, a], "entry_price": [100.0, 100.0],
        "exit_time": [x1, x2], "exit_price": [110.0, 120.0]}))
    # truncated at the cut: the first partial exit happened, the rest is still open
    same = _trades_frame(pd.DataFrame({
        "trade_id": [1, 1], "entry_time": [a, a], "entry_price": [100.0, 100.0],
        "exit_time": [x1, pd.NaT], "exit_price": [110.0, np.nan]}))
    assert _compare_trades(full, same, cut, 1e-9, 1e-12) == []
    # the partial exit at x1 vanished: reported with both sides
    moved = _trades_frame(same.assign(exit_time=[pd.NaT, pd.NaT], exit_price=[np.nan, np.nan]))
    bad = _compare_trades(full, moved, cut, 1e-9, 1e-12)
    assert [f.kind for f in bad] == ["trade_exit"] and bad[0].full == x1
    # a different exit price on a closed row
    priced = same.assign(exit_price=[111.0, np.nan])
    bad = _compare_trades(full, priced, cut, 1e-9, 1e-12)
    assert [(f.kind, f.full, f.truncated) for f in bad] == [("trade_exit_price", 110.0, 111.0)]
    # an entry only on the truncated data
    extra = pd.concat([same, pd.DataFrame({"trade_id": [2], "entry_time": [cut],
                                           "entry_price": [90.0], "exit_time": [pd.NaT],
                                           "exit_price": [np.nan]})], ignore_index=True)
    bad = _compare_trades(full, _trades_frame(extra), cut, 1e-9, 1e-12)
    assert [f.kind for f in bad] == ["trade_extra"]


def test_engine_peeking_at_the_fill_bar_is_caught_only_with_open_only_cuts():
    """A bias in the engine (not in any signal column): the decision at bar s looks at the
    close of the fill bar s+1. Cuts with the fill bar complete cannot see it; the cut where the
    fill bar is known at its open only (the moment of the fill) can."""
    p = ToyPipeline({"dip": honest_dip}, entry="dip", peeking_engine=True)
    full = p.run(None)
    blind = check_lookahead(p, full=full, max_trades=20, open_only_cuts=False)
    assert blind.verdict == PASS
    res = check_lookahead(p, full=full, max_trades=20)
    assert res.verdict == FAIL
    lost = [f for f in res.findings if f.kind == "trade_entry"]
    assert lost
    closes, opens = full.frame["close"], full.frame["open"]
    for f in lost:
        e = p.index.get_loc(f.bar)
        # independent: the full run took it because close[e] > close[e-1]; at the open of e
        # the engine saw close[e] = open[e], which is not above close[e-1]
        assert closes.iloc[e] > closes.iloc[e - 1] and not opens.iloc[e] > closes.iloc[e - 1]
    assert not [f for f in res.findings if f.kind == "signal_value"]


def test_iso_z_writes_utc_with_a_z_and_maps_missing_times_to_none():
    from flushback.backtests.run.timefmt import iso_z

    # 01:30 in Paris in February (UTC+1) is 00:30 UTC
    assert iso_z(pd.Timestamp("2026-02-05T01:30", tz="Europe/Paris")) == "2026-02-05T00:30:00Z"
    assert iso_z("2026-02-05") == "2026-02-05T00:00:00Z"  # naive: taken as UTC
    assert iso_z(np.datetime64("2026-02-05T12:00")) == "2026-02-05T12:00:00Z"
    for missing in (None, float("nan"), pd.NaT, np.datetime64("NaT"), "NaT"):
        assert iso_z(missing) is None
