"""Breadth signals and basket frames, against hand computations on tiny baskets and against a
separate computation on the real BTC/ETH/SOL history (the articles' "average crypto RSI below
30" around the February 2026 flush)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flushback.data.basket import attach_basket, load_basket, member_frame, members
from flushback.data.errors import ConfigError, DataError
from flushback.data.flush_events import load_catalog
from flushback.data.frames import AssembledFrame
from flushback.signals import build_signal, get_signal
from flushback.signals.testing import check_signal


def _basket(closes: dict[str, list[float]], start: str = "2026-01-01") -> pd.DataFrame:
    n = len(next(iter(closes.values())))
    idx = pd.date_range(start, periods=n, freq="1D", tz="UTC", name="timestamp")
    first = next(iter(closes))
    cols: dict[str, object] = {"close": closes[first]}
    for sym, values in closes.items():
        cols[f"close@{sym}"] = np.asarray(values, dtype="float64")
    frame = pd.DataFrame(cols, index=idx)
    frame.attrs = {"interval": "1d", "symbol": first, "basket": list(closes)}
    return frame


NAN = float("nan")


def test_breadth_rsi_by_hand_with_a_late_member():
    # cutler RSI(2): exact, warm-up 3 bars of the member's own history (its first value,
    # at its 3rd bar, is masked too: the contract's warm-up is period + 1 bars).
    # A: 10 11 10 12 9  -> changes +1 -1 +2 -3; RSI(2) at bar 3 = 2/3*100,
    #    bar 4: gains 2,0 losses 0,3 -> 40
    # B: 20 19 18 19 17 -> changes -1 -1 +1 -2; bar 3: 50, bar 4: 1/3*100
    # C starts at bar 1: 5 6 7 6 -> own bars 1..4; its warm-up ends at its 4th bar (bar 4):
    #    changes +1 +1 -1; at bar 4 gains 1,0 losses 0,1 -> 50
    frame = _basket({"A": [10, 11, 10, 12, 9], "B": [20, 19, 18, 19, 17],
                     "C": [NAN, 5, 6, 7, 6]})
    sig = build_signal({"type": "breadth_rsi", "period": 2, "smoothing": "cutler"})
    assert sig.warmup_for(pd.Timedelta(days=1)) == 3
    out = sig.compute(frame)
    ex = sig.explain(frame)
    assert np.isnan(out.iloc[:3]).all()  # the frame's warm-up
    assert ex["n_assets"].tolist() == [0, 0, 0, 2, 3]
    assert out.iloc[3] == pytest.approx((200 / 3 + 50) / 2, abs=1e-12)
    assert out.iloc[4] == pytest.approx((40 + 100 / 3 + 50) / 3, abs=1e-12)
    med = build_signal({"type": "breadth_rsi", "period": 2, "smoothing": "cutler",
                        "stat": "median"}).compute(frame)
    assert med.iloc[4] == pytest.approx(40.0, abs=1e-12)
    # min_assets=3: bar 3 has only A and B warm, so no value there
    three = build_signal({"type": "breadth_rsi", "period": 2, "smoothing": "cutler",
                          "min_assets": 3}).compute(frame)
    assert np.isnan(three.iloc[3]) and three.iloc[4] == pytest.approx(out.iloc[4])


def test_breadth_oversold_and_k_of_n_by_hand():
    frame = _basket({"A": [10, 11, 10, 12, 9], "B": [20, 19, 18, 19, 17],
                     "C": [NAN, 5, 6, 7, 6]})
    base = {"period": 2, "smoothing": "cutler"}
    # bar 4: A 40, B 33.3, C 50 -> mean 41.1
    assert build_signal({"type": "breadth_oversold", **base, "threshold": 42}).compute(
        frame).tolist() == [False, False, False, False, True]
    assert not build_signal({"type": "breadth_oversold", **base, "threshold": 41}).compute(
        frame).any()
    # k of n with RSI < 45 at bar 4: A and B -> 2 of 3
    k2 = build_signal({"type": "breadth_k_oversold", **base, "threshold": 45, "k": 2})
    k3 = build_signal({"type": "breadth_k_oversold", **base, "threshold": 45, "k": 3})
    assert k2.compute(frame).tolist() == [False, False, False, False, True]
    assert not k3.compute(frame).any()


def test_breadth_decline_by_hand():
    # over 2 days: A 100 -> 70 (-30 %), B 50 -> 45 (-10 %), C 10 -> 7 (-30 %), missing at t-2
    frame = _basket({"A": [100, 90, 70, 71], "B": [50, 48, 45, 50], "C": [NAN, 9, 7, 6.9]})
    sig = build_signal({"type": "breadth_decline", "days": 2, "drop": 0.25, "k": 2})
    ex = sig.explain(frame)
    assert ex["A"].iloc[2] == pytest.approx(-0.3) and np.isnan(ex["C"].iloc[2])
    # bar 2: only A is down > 25 % with both bars present; bar 3: A -21 %, C -23 % -> none
    assert not sig.compute(frame).any()
    sig1 = build_signal({"type": "breadth_decline", "days": 2, "drop": 0.2, "k": 2})
    # bar 3: A 71/90-1 = -21.1 %, B 50/48-1 > 0, C 6.9/9-1 = -23.3 % -> 2 members
    assert sig1.compute(frame).tolist() == [False, False, False, True]


def test_basket_drawdown_by_hand():
    # equal-weight returns: bar1 (A +10 %, B +10 %) = +10 %; bar2 (A -20 %, B -40 %) = -30 %;
    # bar3 (A +0 %, B +0 %) = 0 %. Over a 2-day window at bar 2 the basket went 1 -> 1.1 -> 0.77:
    # high 1.1, drawdown 0.77/1.1 - 1 = -30 %; at bar 3 the window's levels are 1.1, 0.77, 0.77
    frame = _basket({"A": [100, 110, 88, 88], "B": [50, 55, 33, 33]})
    sig = build_signal({"type": "basket_drawdown", "days": 2, "drop": 0.25})
    dd = sig.drawdown(frame)
    assert np.isnan(dd.iloc[:2]).all()
    assert dd.iloc[2] == pytest.approx(0.77 / 1.1 - 1, abs=1e-12)
    assert dd.iloc[3] == pytest.approx(0.77 / 1.1 - 1, abs=1e-12)
    assert sig.compute(frame).tolist() == [False, False, True, True]
    assert not build_signal({"type": "basket_drawdown", "days": 2, "drop": 0.31}).compute(
        frame).any()


def test_basket_long_share_by_hand():
    frame = _basket({"A": [1, 1, 1], "B": [1, 1, 1], "C": [1, 1, 1]})
    frame["liq_long_usd@A"] = [80.0, 10.0, 90.0]
    frame["liq_short_usd@A"] = [20.0, 10.0, 10.0]
    frame["liq_long_usd@B"] = [5.0, 1.0, 30.0]
    frame["liq_short_usd@B"] = [95.0, 1.0, 70.0]
    frame["liq_long_usd@C"] = [NAN, NAN, 1000.0]  # reports one side only: not counted
    frame["liq_short_usd@C"] = [NAN, NAN, NAN]
    sig = build_signal({"type": "basket_long_share", "window": "24h", "threshold": 0.6})
    share = sig.share(frame)
    assert share.tolist() == pytest.approx([85 / 200, 11 / 22, 120 / 200])
    assert sig.compute(frame).tolist() == [False, False, True]
    assert sig.explain(frame)["n_assets"].tolist() == [2, 2, 2]


def test_breadth_liquidation_spike_counts_members_in_their_own_spike():
    from flushback.signals.testing import synthetic_frame

    frame = synthetic_frame(500, "1d", seed=5, basket=2)
    sig = get_signal("breadth_liquidation_spike")(k=2, z=2.0)
    single = get_signal("liquidation_spike")(k=2.0)
    per = {m: single.compute(member_frame(frame, m)) for m in members(frame)}
    ex = sig.explain(frame)
    warm = sig.warmup_for(pd.Timedelta(days=1))
    for m in members(frame):
        valid = frame[f"liq_long_usd@{m}"].notna() & frame[f"liq_short_usd@{m}"].notna()
        ready = valid & (valid.cumsum() > warm)
        expect = per[m].astype(float).where(ready)
        pd.testing.assert_series_equal(ex[m], expect, check_names=False)
    hits = sum(per[m] & ex[m].notna() for m in members(frame))
    pd.testing.assert_series_equal(sig.compute(frame), (hits >= 2).rename(sig.name))
    assert sig.compute(frame).any()


def test_every_breadth_signal_keeps_the_contract_on_4h():
    for name in ("breadth_oversold", "breadth_decline", "basket_drawdown", "basket_long_share"):
        assert check_signal(get_signal(name)(), "4h", truncations=3) == {}, name


def test_a_frame_without_a_basket_is_a_clear_error():
    frame = _basket({"A": [1.0, 2.0, 3.0]}).drop(columns=["close@A"])
    frame.attrs.pop("basket")
    with pytest.raises(DataError, match="needs a basket") as err:
        build_signal("breadth_oversold").compute(frame)
    assert "data.basket" in str(err.value.hint)
    with pytest.raises(ConfigError, match="not a member"):
        member_frame(_basket({"A": [1.0], "B": [2.0]}), "SOLUSDT")


def test_attach_basket_aligns_on_bar_open_time_without_filling():
    idx = pd.date_range("2026-01-01", periods=4, freq="1D", tz="UTC", name="timestamp")
    a = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": [1.0, 2, 3, 4],
                      "volume": 1.0}, index=idx)
    a.attrs = {"interval": "1d", "symbol": "A"}
    b = a.iloc[[1, 3]].copy() * 10  # B has no bar on Jan 1 and Jan 3
    b.attrs = {"interval": "1d", "symbol": "B"}
    out = attach_basket(AssembledFrame(frame=a), ["A", "B"],
                        loaded={"B": AssembledFrame(frame=b)}).frame
    assert out["close@A"].tolist() == [1, 2, 3, 4]
    assert out["close@B"].fillna(-1).tolist() == [-1, 20, -1, 40]
    assert out.attrs["basket"] == ["A", "B"] and members(out) == ["A", "B"]
    assert out.attrs["basket_first_bar"]["B"].startswith("2026-01-02")
    with pytest.raises(ConfigError, match="more than once"):
        attach_basket(AssembledFrame(frame=a), ["A", "B", "B"], loaded={})


# --- the real history -------------------------------------------------------------------------


@pytest.mark.realdata
def test_breadth_rsi_below_30_at_the_catalogued_flushes(shared_data_dir, ewm_wilder_rsi):
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    af = load_basket("BTCUSDT", symbols[1:], "1d", data_dir=shared_data_dir)
    sig = build_signal({"type": "breadth_oversold", "threshold": 30})
    fired = sig.compute(af.frame)
    n = sig.explain(af.frame)["n_assets"]
    # the separate computation: the CSVs read by pandas, ewm RSI per asset, mean of the assets
    # warm at each day (at least two)
    raw = {s: pd.read_csv(shared_data_dir / "prices" / f"{s}_1d.csv", index_col=0,
                          parse_dates=True)["close"] for s in symbols}
    rsi = pd.DataFrame({s: ewm_wilder_rsi(c) for s, c in raw.items()})
    rsi.index = rsi.index.tz_localize("UTC")
    rsi = rsi.reindex(af.frame.index)
    counts = rsi.notna().sum(axis=1)
    mean = rsi.mean(axis=1).where(counts >= 2)
    independent = set(mean.index[mean < 30].strftime("%Y-%m-%d"))
    days = set(fired.index[fired].strftime("%Y-%m-%d"))
    assert days == independent
    assert (n == counts).all()
    assert {"2026-02-01", "2026-02-04", "2026-02-05"} <= days
    assert n.loc["2026-02-05"] == 3 and n.loc["2021-02-28"] == 2 and n.loc["2021-03-01"] == 3

    # the catalogued flushes where all three are warm (SOL from 2021-03-01): which had a
    # breadth RSI below 30 within two days of the event's window
    catalog = load_catalog()
    hit, missed = [], []
    for ev in catalog.events:
        lo = pd.Timestamp(ev.start) - pd.Timedelta(days=2)
        hi = pd.Timestamp(ev.end) + pd.Timedelta(days=2)
        if lo < pd.Timestamp("2021-03-01"):
            continue
        window = mean.loc[lo.tz_localize("UTC"):hi.tz_localize("UTC")]
        (hit if (window < 30).any() else missed).append(ev.id)
        assert bool(fired.loc[window.index].any()) == bool((window < 30).any()), ev.id
    assert hit == ["2022-01-21-january-selloff", "2022-05-09-terra-collapse",
                   "2022-06-13-celsius-3ac", "2022-11-08-ftx-collapse",
                   "2023-08-17-august-flash-crash", "2024-08-05-yen-carry-unwind",
                   "2026-02-02-february-flush", "2026-02-05-february-capitulation"]
    assert "2025-10-10-tariff-flash-crash" in missed  # an intraday wick: daily RSI stayed > 30


# --- a spec with a basket ----------------------------------------------------------------------

_BASKET_SPEC = {
    "name": "breadth_flush_btc_daily",
    "cash": 10_000,
    "data": {"symbol": "BTCUSDT", "interval": "1d", "start": "2021-03-01",
             "basket": ["ETHUSDT", "SOLUSDT"], "externals": ["fng", "liquidations"]},
    "signals": {"entry": {"type": "all", "window": 2, "of": [
        {"type": "breadth_oversold", "threshold": 30},
        {"type": "breadth_decline", "k": 2, "drop": 0.15, "days": 7}]}},
    "strategy": {"type": "contrarian", "hold_bars": 20, "stop_loss": 0.15},
}


def test_spec_basket_is_validated():
    from flushback.backtests.run.spec import parse_spec

    with pytest.raises(ConfigError, match="more than once"):
        parse_spec({**_BASKET_SPEC, "data": {**_BASKET_SPEC["data"],
                                             "basket": ["ETHUSDT", "ETHUSDT"]}})
    single = parse_spec({k: v for k, v in _BASKET_SPEC.items() if k != "data"})
    assert "basket" not in single.to_dict()["data"]  # single-asset run ids unchanged
    assert parse_spec(_BASKET_SPEC).to_dict()["data"]["basket"] == ["ETHUSDT", "SOLUSDT"]


@pytest.mark.realdata
def test_a_basket_spec_runs_in_both_engines_and_passes_the_audit(shared_data_dir):
    import flushback as fb
    from flushback.backtests.audit.run import audit_spec
    from flushback.backtests.run.spec import parse_spec
    from flushback.strategies.parity import compare_results

    ref = fb.backtest(_BASKET_SPEC, data_dir=shared_data_dir, engine="backtrader")
    fast = fb.backtest(_BASKET_SPEC, data_dir=shared_data_dir, engine="fast")
    parity = compare_results(ref.raw, fast.raw)
    assert parity.ok, parity
    entries = set(ref.trades["entry_time"].dt.strftime("%Y-%m-%d"))
    assert len(entries) >= 3 and "2026-02-01" in entries  # decided 2026-01-31, filled next open
    # a member's data is part of the run's identity
    assert ref.run_id != fb.backtest(
        {**_BASKET_SPEC, "data": {**_BASKET_SPEC["data"], "basket": ["ETHUSDT"]}},
        data_dir=shared_data_dir).run_id
    report = audit_spec(parse_spec(_BASKET_SPEC), data_dir=shared_data_dir, trades=0,
                        trigger_bars=2, quiet_bars=2, seed=0)
    assert report.passed, [(c.name, c.verdict, c.summary) for c in report.checks]
    cols = {r["column"] for r in report.check("external_timing").rows}
    assert {"liq_long_usd@ETHUSDT", "liq_long_usd@SOLUSDT"} <= cols


# --- cross-asset: trade ETH on a BTC flush ------------------------------------------------------

_BTC_FLUSH = {"type": "all", "window": 2, "of": [
    {"type": "extreme_fear", "threshold": 20},
    {"type": "any", "of": [{"type": "liquidation_spike"}, {"type": "capitulation"},
                           {"type": "oversold_rsi", "threshold": 25}]}]}


@pytest.mark.realdata
def test_on_asset_reads_the_other_members_bars(shared_data_dir):
    from flushback.data import load_frame

    eth = load_basket("ETHUSDT", ["BTCUSDT"], "1d", data_dir=shared_data_dir).frame
    on_btc = build_signal({"type": "on_asset", "symbol": "BTCUSDT", "of": [_BTC_FLUSH]})
    got = on_btc.compute(eth)
    # the same trigger on BTC's own frame, placed on ETH's bars
    btc = load_frame("BTCUSDT", "1d", data_dir=shared_data_dir).frame
    want = build_signal(_BTC_FLUSH).compute(btc).reindex(eth.index, fill_value=False)
    pd.testing.assert_series_equal(got, want.rename(got.name))
    assert got.loc["2026-01-30":"2026-02-06"].any()
    # truncated at any bar, the earlier values do not change (the as-of rule across assets)
    for cut in ("2022-05-10", "2026-02-03"):
        part = on_btc.compute(eth.loc[:cut])
        pd.testing.assert_series_equal(part, got.loc[:cut])
    # on ETH's own bars the plain signal differs: the child really read BTC
    assert not build_signal(_BTC_FLUSH).compute(eth).equals(got)


@pytest.mark.realdata
def test_a_spec_trades_eth_on_a_btc_flush(shared_data_dir):
    import flushback as fb

    spec = {"name": "eth_on_btc_flush", "data": {
        "symbol": "ETHUSDT", "interval": "1d", "start": "2021-01-01", "basket": ["BTCUSDT"],
        "externals": ["fng", "liquidations"]},
        "signals": {"entry": {"type": "on_asset", "symbol": "BTCUSDT", "of": [_BTC_FLUSH]}},
        "strategy": {"type": "contrarian", "hold_bars": 10}}
    ref = fb.backtest(spec, data_dir=shared_data_dir)
    fast = fb.backtest(spec, data_dir=shared_data_dir, engine="fast")
    from flushback.strategies.parity import compare_results

    assert compare_results(ref.raw, fast.raw).ok
    frame = ref.raw.frame
    t = ref.trades
    assert len(t) >= 3
    for _, row in t.iterrows():  # decided on a BTC trigger bar, filled at ETH's next open
        sig = row["signal_time"]
        assert bool(ref.raw.signals["entry"].loc[sig])
        nxt = frame.index[frame.index.get_loc(sig) + 1]
        assert row["entry_time"] == nxt
        assert row["entry_price"] == pytest.approx(frame.at[nxt, "open"] * 1.0005, rel=1e-12)


def test_a_threshold_change_reuses_the_members_rsi_inside_a_signal_cache(monkeypatch):
    from flushback.signals import breadth
    from flushback.signals.base import SignalCache
    from flushback.signals.testing import synthetic_frame

    frame = synthetic_frame(400, "1d", seed=2, basket=2)
    plain = {t: build_signal({"type": "breadth_oversold", "threshold": t}).compute(frame)
             for t in (30, 40)}
    calls = []
    original = breadth.member_rsi
    monkeypatch.setattr(breadth, "member_rsi",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    cache = SignalCache(frame)
    with cache.active():
        cached = {t: build_signal({"type": "breadth_oversold", "threshold": t}).compute(frame)
                  for t in (30, 40)}
    assert len(calls) == 3  # one RSI per member, shared by both thresholds
    for t in (30, 40):
        pd.testing.assert_series_equal(cached[t], plain[t])
