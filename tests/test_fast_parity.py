"""The fast engine is the reference engine: property tests (Hypothesis) and real data.

- random strategy configurations x random price paths x random signals and costs: the fast
  engine's trades equal backtrader's exactly (times, prices, sizes, fees, reasons, ...) and
  its equity agrees to 1e-9 relative (in practice it is bit-identical);
- the same on slices of the real BTC daily and hourly bars;
- every shipped spec on the real data, through ``run_backtest(engine=...)``;
- a planted engine bug (a stop-loss filled at the signal bar's close instead of the next open)
  is caught by the parity check, which names the first differing trade.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from engine_testkit import plant_stop_at_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flushback.strategies.adapter import run_engine
from flushback.strategies.config import get_strategy, validate_strategy_params
from flushback.strategies.fast import run_fast
from flushback.strategies.parity import compare_results

# --- inputs -------------------------------------------------------------------------------


def random_bars(seed: int, n: int, vol: float, gap: float, interval: str = "1d"):
    """A positive OHLC path: log-normal closes, gapped opens, highs/lows around them."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0.0, gap, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    freq = {"1d": "D", "1h": "h"}[interval]
    idx = pd.date_range("2021-01-01", periods=n, freq=freq, tz="UTC", name="timestamp")
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                          "volume": 1.0}, index=idx)
    frame.attrs["interval"] = interval
    return frame


def random_extra(seed: int, index: pd.DatetimeIndex, p_entry: float, p_exit: float,
                 with_exit: bool, nan_entry: bool):
    rng = np.random.default_rng(seed + 7)
    n = len(index)
    cols: dict = {"entry": rng.random(n) < p_entry}
    if nan_entry:  # a warm-up stretch of missing values, as signals have
        e = cols["entry"].astype(float)
        e[: rng.integers(0, max(n // 4, 1))] = np.nan
        cols["entry"] = e
    if with_exit:
        cols["exit"] = rng.random(n) < p_exit
    cols["funding_rate"] = rng.normal(0.0001, 0.0003, n)
    cols["vol"] = np.where(rng.random(n) < 0.05, np.nan, rng.uniform(0.1, 2.0, n))
    cols["fng"] = np.where(rng.random(n) < 0.05, np.nan, rng.uniform(0, 100, n).round())
    return pd.DataFrame(cols, index=index)


contrarian_cfg = st.fixed_dictionaries({
    "sizing": st.sampled_from(["fraction", "volatility"]),
    "fraction": st.floats(0.05, 1.0),
    "vol_target": st.floats(0.1, 2.0),
    "hold_bars": st.sampled_from([0, 1, 2, 5, 20]),
    "take_profit": st.sampled_from([0.0, 0.02, 0.05, 0.15]),
    "stop_loss": st.sampled_from([0.0, 0.02, 0.05, 0.2]),
    "trailing_stop": st.sampled_from([0.0, 0.03, 0.1]),
    "exit_mode": st.sampled_from(["close", "intrabar"]),
    "exit_on_signal": st.booleans(),
    "cooldown_bars": st.sampled_from([0, 1, 3]),
    "max_tranches": st.sampled_from([1, 1, 2, 3]),
    "tranche_spacing_bars": st.sampled_from([1, 2]),
})
costs = st.fixed_dictionaries({
    "commission": st.sampled_from([0.0, 0.0004, 0.001, 0.0075]),
    "slippage": st.sampled_from([0.0, 0.0005, 0.01]),
    "funding": st.booleans(),
    "cash": st.sampled_from([1000.0, 10_000.0, 1234.56]),
})
paths = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31),
    "n": st.integers(2, 160),
    "vol": st.sampled_from([0.005, 0.03, 0.08]),
    "gap": st.sampled_from([0.0, 0.01, 0.05]),
    "p_entry": st.sampled_from([0.02, 0.1, 0.4]),
    "p_exit": st.sampled_from([0.02, 0.1]),
    "with_exit": st.booleans(),
    "nan_entry": st.booleans(),
    "interval": st.sampled_from(["1d", "1h"]),
})


def both(strategy_type: str, frame, extra, cfg, cost):
    params = validate_strategy_params(strategy_type, cfg)
    kw = dict(cash=cost["cash"], commission=cost["commission"], slippage=cost["slippage"],
              funding=cost["funding"], strategy_params={"cfg": params})
    ref = run_engine(get_strategy(strategy_type), frame, extra, **kw)
    fast = run_fast(strategy_type, frame, extra, **kw)
    return ref, fast


def assert_same(ref, fast):
    report = compare_results(ref, fast)
    assert report.ok, report.describe()
    # stronger than the contract: frames identical, dtypes included
    pd.testing.assert_frame_equal(ref.trades, fast.trades, check_exact=True)
    pd.testing.assert_frame_equal(ref.equity, fast.equity, check_exact=False, rtol=1e-9)
    assert list(ref.fills["reason"]) == list(fast.fills["reason"])
    np.testing.assert_array_equal(ref.fills[["bar", "size", "price", "fee"]].to_numpy(),
                                  fast.fills[["bar", "size", "price", "fee"]].to_numpy())


_SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(cfg=contrarian_cfg, cost=costs, path=paths)
def test_contrarian_parity_on_random_paths(cfg, cost, path):
    frame = random_bars(path["seed"], path["n"], path["vol"], path["gap"], path["interval"])
    extra = random_extra(path["seed"], frame.index, path["p_entry"], path["p_exit"],
                         path["with_exit"], path["nan_entry"])
    if cfg["sizing"] != "volatility":
        extra = extra.drop(columns=["vol"])
    assert_same(*both("contrarian", frame, extra, cfg, cost))


def random_levels(seed: int, frame: pd.DataFrame, p_nan: float) -> pd.DataFrame:
    """Structure levels around the close, with NaN stretches (no level known), as
    ``flushback.strategies.levels`` feeds them: a target above and a stop below."""
    rng = np.random.default_rng(seed + 11)
    n = len(frame)
    close = frame["close"].to_numpy()
    tp = close * np.exp(rng.normal(0.03, 0.04, n))
    sl = close * np.exp(-np.abs(rng.normal(0.03, 0.03, n)))
    tp[rng.random(n) < p_nan] = np.nan
    sl[rng.random(n) < p_nan] = np.nan
    return pd.DataFrame({"level_tp": tp, "level_sl": sl}, index=frame.index)


@_SETTINGS
@given(cfg=contrarian_cfg, cost=costs, path=paths,
       levels=st.fixed_dictionaries({
           "level_take_profit": st.sampled_from(["off", "retracement", "gap", "swing_high"]),
           "level_stop": st.sampled_from(["off", "swing_low", "next_level"]),
           "level_update": st.sampled_from(["fixed", "moving"]),
           "p_nan": st.sampled_from([0.0, 0.3]),
       }))
def test_contrarian_level_exits_parity_on_random_paths(cfg, cost, path, levels):
    """The structure-level exits (fixed at the entry signal bar or moving with the previous
    bar, close-based in both exit modes, a target at or below the entry ignored) agree."""
    frame = random_bars(path["seed"], path["n"], path["vol"], path["gap"], path["interval"])
    extra = random_extra(path["seed"], frame.index, path["p_entry"], path["p_exit"],
                         path["with_exit"], path["nan_entry"])
    if cfg["sizing"] != "volatility":
        extra = extra.drop(columns=["vol"])
    lv = random_levels(path["seed"], frame, levels["p_nan"])
    if levels["level_take_profit"] != "off":
        extra["level_tp"] = lv["level_tp"]
    if levels["level_stop"] != "off":
        extra["level_sl"] = lv["level_sl"]
    cfg = {**cfg, **{k: v for k, v in levels.items() if k != "p_nan"}}
    ref, fast = both("contrarian", frame, extra, cfg, cost)
    assert_same(ref, fast)


def test_level_exits_are_exercised():
    """Guard against a vacuous level property: both level reasons occur on these paths."""
    seen = set()
    for seed in range(30):
        frame = random_bars(seed, 120, 0.03, 0.01)
        extra = random_extra(seed, frame.index, 0.1, 0.05, False, False).drop(columns=["vol"])
        extra = extra.join(random_levels(seed, frame, 0.1))
        for update in ("fixed", "moving"):
            cfg = {"level_take_profit": "retracement", "level_stop": "swing_low",
                   "level_update": update}
            ref, fast = both("contrarian", frame, extra, cfg,
                             {"commission": 0.001, "slippage": 0.0, "funding": False,
                              "cash": 1000.0})
            assert_same(ref, fast)
            seen |= set(ref.trades["exit_reason"])
    assert {"level_stop", "level_take_profit"} <= seen


perp = st.fixed_dictionaries({
    "side": st.sampled_from(["long", "short"]),
    "leverage": st.sampled_from([1.0, 2.0, 3.0, 5.0, 10.0, 20.0]),
    "maintenance_margin": st.sampled_from([0.0, 0.004, 0.02]),
})
perp_costs = st.fixed_dictionaries({
    "commission": st.sampled_from([0.0, 0.0004, 0.001]),
    "slippage": st.sampled_from([0.0, 0.0005, 0.01]),
    "funding": st.sampled_from([False, True, "settlements"]),
    "cash": st.sampled_from([1000.0, 10_000.0, 1234.56]),
})


def settlement_rates(seed: int, index: pd.DatetimeIndex) -> np.ndarray:
    """A settled-funding line: a rate on some bars (the bars a settlement falls in), NaN on
    the others."""
    rng = np.random.default_rng(seed + 13)
    rates = rng.normal(0.0001, 0.0004, len(index))
    rates[rng.random(len(index)) < 0.5] = np.nan
    return rates


@_SETTINGS
@given(cfg=contrarian_cfg, cost=perp_costs, path=paths, perp=perp)
def test_perpetual_parity_on_random_paths(cfg, cost, path, perp):
    """Shorts, leverage, liquidations and funding (accrued or at the settlements): the
    engines agree trade for trade."""
    frame = random_bars(path["seed"], path["n"], path["vol"], path["gap"], path["interval"])
    extra = random_extra(path["seed"], frame.index, path["p_entry"], path["p_exit"],
                         path["with_exit"], path["nan_entry"])
    if cfg["sizing"] != "volatility":
        extra = extra.drop(columns=["vol"])
    if cost["funding"] == "settlements":
        extra["funding_rate"] = settlement_rates(path["seed"], frame.index)
    assert_same(*both("contrarian", frame, extra, {**cfg, **perp}, cost))


def test_perpetual_cases_are_exercised():
    """Guard against a vacuous perpetual property: liquidations of longs and shorts, and the
    mirrored exits of shorts, occur on these paths, and both engines agree on them."""
    seen = set()
    for seed in range(12):
        frame = random_bars(seed, 150, 0.05, 0.02)
        extra = random_extra(seed, frame.index, 0.15, 0.05, True, False).drop(columns=["vol"])
        extra["funding_rate"] = settlement_rates(seed, frame.index)
        for side in ("long", "short"):
            for mode in ("close", "intrabar"):
                cfg = {"side": side, "leverage": 10.0, "maintenance_margin": 0.004,
                       "stop_loss": 0.05, "take_profit": 0.04, "trailing_stop": 0.06,
                       "exit_mode": mode, "max_tranches": 2}
                ref, fast = both("contrarian", frame, extra, cfg,
                                 {"commission": 0.0005, "slippage": 0.0005,
                                  "funding": "settlements", "cash": 1000.0})
                assert_same(ref, fast)
                seen |= {(side, r) for r in ref.trades["exit_reason"]}
    for side in ("long", "short"):
        assert {(side, "liquidation"), (side, "stop_loss"), (side, "take_profit")} <= seen


@settings(max_examples=40, deadline=None, derandomize=True)
@given(cost=costs, path=paths, fraction=st.floats(0.01, 1.0),
       buy_below=st.floats(0, 100), sell_above=st.floats(0, 100),
       buy_fraction=st.floats(0.001, 1.0), sell_fraction=st.floats(0.001, 1.0))
def test_benchmark_parity_on_random_paths(cost, path, fraction, buy_below, sell_above,
                                          buy_fraction, sell_fraction):
    frame = random_bars(path["seed"], path["n"], path["vol"], path["gap"], path["interval"])
    extra = random_extra(path["seed"], frame.index, 0.1, 0.1, False, False)
    assert_same(*both("buy_and_hold", frame, extra[["funding_rate"]], {"fraction": fraction},
                      cost))
    fg = {"buy_below": buy_below, "sell_above": sell_above, "buy_fraction": buy_fraction,
          "sell_fraction": sell_fraction}
    assert_same(*both("fear_greed_accumulation", frame, extra[["fng", "funding_rate"]], fg,
                      cost))


def test_parity_of_hand_picked_edge_cases():
    """Intrabar scale-in (the resting exits are replaced at the open of a tranche), a stop
    exactly at the low, a bar opening through both levels, a signal on the last bar."""
    frame = random_bars(3, 120, 0.04, 0.03)
    extra = random_extra(3, frame.index, 0.3, 0.05, True, False)
    cost = {"commission": 0.001, "slippage": 0.0005, "funding": True, "cash": 10_000.0}
    for cfg in (
        {"exit_mode": "intrabar", "max_tranches": 3, "stop_loss": 0.03, "take_profit": 0.04},
        {"exit_mode": "intrabar", "max_tranches": 2, "trailing_stop": 0.02},
        {"exit_mode": "close", "max_tranches": 4, "hold_bars": 3, "cooldown_bars": 2},
        {"exit_mode": "intrabar", "stop_loss": 0.9, "take_profit": 3.0, "hold_bars": 1},
    ):
        ref, fast = both("contrarian", frame, extra, cfg, cost)
        assert len(ref.trades) > 3
        assert_same(ref, fast)


# --- real prices --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_btc(shared_data_dir):
    from flushback.data import load_frame

    daily = load_frame("BTC-USD", "1d", externals=(), data_dir=shared_data_dir).frame
    hourly = load_frame("BTCUSDT", "1h", externals=(), start="2024-01-01",
                        end="2024-03-01", data_dir=shared_data_dir).frame
    return {"1d": daily, "1h": hourly}


@pytest.mark.realdata
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cfg=contrarian_cfg, cost=costs, seed=st.integers(0, 2**31),
       interval=st.sampled_from(["1d", "1h"]), length=st.integers(50, 400))
def test_contrarian_parity_on_real_price_paths(real_btc, cfg, cost, seed, interval, length):
    bars = real_btc[interval]
    start = np.random.default_rng(seed).integers(0, len(bars) - length)
    frame = bars.iloc[start: start + length][["open", "high", "low", "close", "volume"]].copy()
    frame.attrs["interval"] = interval
    extra = random_extra(seed, frame.index, 0.08, 0.03, True, True)
    assert_same(*both("contrarian", frame, extra, cfg, cost))


# --- the shipped specs on the real data ---------------------------------------------------


def _shipped_specs():
    from importlib.resources import files

    return sorted(p.name.removesuffix(".toml")
                  for p in files("flushback.backtests").joinpath("specs").iterdir()
                  if p.name.endswith(".toml"))


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("spec", _shipped_specs())
def test_every_shipped_spec_is_identical_on_both_engines(shared_data_dir, spec):
    from flushback.backtests.run.runner import prepare, run_backtest

    prepared = prepare(spec, data_dir=shared_data_dir)
    ref = run_backtest(spec, prepared=prepared, engine="backtrader")
    fast = run_backtest(spec, prepared=prepared, engine="fast")
    report = compare_results(ref, fast)
    assert report.ok, report.describe()
    assert len(ref.trades) > 0
    pd.testing.assert_frame_equal(ref.trades, fast.trades, check_exact=True)
    np.testing.assert_allclose(fast.equity["benchmark_equity"], ref.equity["benchmark_equity"],
                               rtol=1e-9)
    assert ref.metrics == fast.metrics and ref.run_id == fast.run_id


# --- a planted bug is caught --------------------------------------------------------------


def test_planted_stop_loss_bug_is_caught(monkeypatch):
    frame = random_bars(11, 200, 0.04, 0.02)
    extra = random_extra(11, frame.index, 0.2, 0.05, False, False)
    cost = {"commission": 0.001, "slippage": 0.0, "funding": False, "cash": 10_000.0}
    cfg = {"stop_loss": 0.03}
    ref, fast = both("contrarian", frame, extra, cfg, cost)
    assert compare_results(ref, fast).ok
    plant_stop_at_close(monkeypatch)
    _, buggy = both("contrarian", frame, extra, cfg, cost)
    report = compare_results(ref, buggy)
    assert not report.ok
    first_stop = int(np.flatnonzero(ref.trades["exit_reason"].to_numpy() == "stop_loss")[0])
    assert report.first_difference["trade"] == first_stop + 1
    assert report.first_difference["field"] == "exit_time"
    assert f"trade #{first_stop + 1}" in report.describe()


@pytest.mark.realdata
def test_cli_backtest_engine_fast_writes_the_reference_numbers(shared_data_dir, tmp_path,
                                                               capsys):
    import json

    from flushback.backtests.cli import main

    docs = {}
    for engine in ("backtrader", "fast"):
        code = main(["--data-dir", str(shared_data_dir), "backtest", "liquidation_spike_btc_daily",
                     "--format", "json", "--runs-dir", str(tmp_path / engine),
                     "--engine", engine])
        out = capsys.readouterr().out
        assert code == 0, out
        docs[engine] = json.loads(out)
    ref, fast = docs["backtrader"], docs["fast"]
    assert fast["engine"] == "fast" and ref["engine"] == "backtrader"
    assert ref["trades"] and fast["trades"] == ref["trades"]
    assert fast["metrics"] == ref["metrics"] and fast["run_id"] == ref["run_id"]
    assert main(["backtest", "liquidation_spike_btc_daily", "--engine", "numba"]) != 0
