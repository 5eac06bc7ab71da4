"""Specs (typed, frozen, did-you-mean, overrides), the runner on synthetic data, run folders
and the CLI's error handling. Real-data runs are in test_backtest_realdata.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from flushback.backtests.cli import main
from flushback.backtests.run.folders import load_report, write_run
from flushback.backtests.run.metrics import compute_metrics
from flushback.backtests.run.runner import prepare, prepare_frame, run_backtest, validate_bars
from flushback.backtests.run.spec import (
    apply_overrides,
    list_specs,
    load_spec,
    parse_override,
    search_space,
)
from flushback.data.errors import ConfigError, DataError
from flushback.data.synthetic import synthetic_bars, write_sample_folder

SHIPPED = {
    "fear_flush_btc_daily",
    "rsi4h_btc_hourly",
    "liquidation_spike_btc_daily",
    "fear_greed_accumulation_btc_daily",
}


def test_shipped_specs_load_and_are_addressable_by_name():
    assert SHIPPED <= set(list_specs())
    for name in SHIPPED:
        spec = load_spec(name)
        assert spec.name == name
        assert spec.benchmark.type == "buy_and_hold"
        assert spec.costs.commission == 0.001


def test_spec_is_frozen():
    spec = load_spec("fear_flush_btc_daily")
    with pytest.raises(ValidationError):
        spec.cash = 5.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("strategy.take_proft=0.2", "did you mean 'take_profit'"),
        ("costs.comission=0.001", "did you mean 'commission'"),
        ("dta.symbol=ETH-USD", "did you mean 'data'"),
        ("data.intervall=1h", "did you mean 'interval'"),
        ("signals.entry.of.0.treshold=10", "did you mean 'threshold'"),
    ],
)
def test_unknown_keys_are_refused_with_did_you_mean(override, needle):
    with pytest.raises(ConfigError) as exc:
        load_spec("fear_flush_btc_daily", overrides=[override])
    assert needle in str(exc.value)


def test_unknown_key_in_toml_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[strategy]\ntype = "buy_and_hold"\n\n[costs]\nslipage = 0.01\n')
    with pytest.raises(ConfigError) as exc:
        load_spec(p)
    assert "costs.slipage" in str(exc.value) and "slippage" in str(exc.value)
    assert str(p) in str(exc.value)


def test_overrides_reach_every_value():
    spec = load_spec(
        "fear_flush_btc_daily",
        overrides=[
            "strategy.take_profit=0.2",
            "signals.entry.of.0.threshold=15",
            "costs.funding=true",
            "data.start=2020-01-01",
            "cash=500",
            "data.symbol=ETH-USD",
            "benchmark.fraction=0.5",
        ],
    )
    assert spec.strategy.params["take_profit"] == 0.2
    assert spec.signals["entry"]["of"][0]["threshold"] == 15
    assert spec.costs.funding is True
    assert spec.data.start == "2020-01-01" and spec.cash == 500.0
    assert spec.data.symbol == "ETH-USD" and spec.benchmark.params["fraction"] == 0.5


def test_out_of_range_and_bad_types_are_config_errors():
    with pytest.raises(ConfigError, match="outside its range"):
        load_spec("fear_flush_btc_daily", overrides=["strategy.stop_loss=2"])
    with pytest.raises(ConfigError):
        load_spec("fear_flush_btc_daily", overrides=["costs.commission=-1"])
    with pytest.raises(ConfigError, match="unknown strategy type"):
        load_spec("fear_flush_btc_daily", overrides=["strategy.type=contrarain"])


def test_environment_layer(monkeypatch):
    monkeypatch.setenv("FLUSHBACK_SET", "strategy.hold_bars=7;cash=123")
    spec = load_spec("fear_flush_btc_daily", overrides=["cash=456"])
    assert spec.strategy.params["hold_bars"] == 7 and spec.cash == 456.0  # CLI wins


def test_parse_override_values():
    assert parse_override("a.b=0.2") == ("a.b", 0.2)
    assert parse_override("a=true") == ("a", True)
    assert parse_override("a=BTC-USD") == ("a", "BTC-USD")
    assert parse_override("a=2024-01-01") == ("a", "2024-01-01")
    assert apply_overrides({"x": {"y": [1, 2]}}, {"x.y.1": 5}) == {"x": {"y": [1, 5]}}
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_contrarian_needs_an_entry_signal():
    with pytest.raises(ConfigError, match=r"signals\.entry"):
        load_spec({"strategy": {"type": "contrarian"}})


def test_a_contrarian_benchmark_needs_an_entry_signal_too():
    # without the check the benchmark ran with no entry line and silently never traded
    with pytest.raises(ConfigError, match=r"benchmark type 'contrarian' needs \[signals\.entry"):
        load_spec({"strategy": {"type": "buy_and_hold"}, "benchmark": {"type": "contrarian"}})


def test_search_space_uses_declared_params_and_narrowing():
    spec = load_spec("fear_flush_btc_daily")
    space, fixed = search_space(spec)
    assert space["strategy.take_profit"].low == 0.05 and space["strategy.take_profit"].high == 1.0
    assert "signals.entry.of.0.threshold" in space
    assert "strategy.cooldown_bars" in space and fixed == {}
    spec2 = spec.with_overrides({"search": {"strategy.hold_bars": 30}})
    space2, fixed2 = search_space(spec2)
    assert fixed2 == {"strategy.hold_bars": 30} and "strategy.hold_bars" not in space2


def test_validate_bars_refuses_bad_input():
    bars = synthetic_bars(periods=10)
    bad = bars.copy()
    bad.iloc[3, bad.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match="missing, zero or negative"):
        validate_bars(bad)
    hl = bars.copy()
    hl.iloc[2, hl.columns.get_loc("high")] = hl["low"].iloc[2] * 0.5
    with pytest.raises(DataError, match="high < low"):
        validate_bars(hl)
    with pytest.raises(DataError, match="unsorted or duplicated"):
        validate_bars(bars.iloc[[0, 2, 1]])


def _rsi_spec():
    return load_spec(
        {
            "name": "synthetic_rsi",
            "data": {"symbol": "BTC-USD", "interval": "1d", "externals": ["fng"]},
            "signals": {"entry": {"type": "oversold_rsi", "threshold": 35.0},
                        "exit": {"type": "overbought_rsi", "threshold": 60.0}},
            "strategy": {"type": "contrarian", "hold_bars": 10, "stop_loss": 0.1},
        }
    )


def test_runner_on_a_synthetic_frame_is_deterministic_and_consistent():
    bars = synthetic_bars(periods=700, seed=3)
    bars.attrs["interval"] = "1d"
    spec = _rsi_spec()
    p = prepare_frame(spec, bars, since="2024-08-01")
    a = run_backtest(spec, prepared=p)
    b = run_backtest(spec, prepared=prepare_frame(spec, bars, since="2024-08-01"))
    assert a.run_id == b.run_id
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_frame_equal(a.equity, b.equity)
    assert len(a.trades) > 0
    # the window starts at `since`; warm-up bars before it only fed the signals
    assert a.equity.index[0] == pd.Timestamp("2024-08-01", tz="UTC")
    # P&L bookkeeping: the trades' P&L add up to the equity change exactly
    assert a.trades["pnl"].sum() == pytest.approx(a.equity["equity"].iloc[-1] - spec.cash,
                                                  abs=1e-6)
    # every entry fills on the bar after its signal
    idx = a.equity.index
    for s, e in zip(a.trades["signal_time"], a.trades["entry_time"], strict=True):
        assert idx.get_loc(e) == idx.get_loc(s) + 1
    assert a.metrics == compute_metrics(a.equity["equity"], a.trades, 365,
                                        position=a.equity["position"])
    # a parameter change changes the id; params= is the optimizer's path
    c = run_backtest(spec, prepared=p, params={"strategy.hold_bars": 5})
    assert c.run_id != a.run_id and c.spec.strategy.params["hold_bars"] == 5
    # the benchmark is cached on the Prepared object and identical
    np.testing.assert_array_equal(a.equity["benchmark_equity"], c.equity["benchmark_equity"])


def test_run_without_benchmark_has_the_same_run_id_and_strategy_numbers():
    bars = synthetic_bars(periods=600, seed=4)
    bars.attrs["interval"] = "1d"
    spec = _rsi_spec()
    p = prepare_frame(spec, bars, since="2024-07-01")
    lean = run_backtest(spec, prepared=p, benchmark=False)
    assert not p.cache  # the benchmark was never run
    full = run_backtest(spec, prepared=p)
    assert lean.run_id == full.run_id and len(full.trades) > 0
    pd.testing.assert_frame_equal(lean.trades, full.trades)
    pd.testing.assert_frame_equal(lean.equity, full.equity.drop(columns=["benchmark_equity"]))
    assert lean.metrics == full.metrics
    assert "benchmark_equity" not in lean.equity.columns
    assert lean.benchmark_metrics == {} and lean.benchmark_trades is None
    assert full.benchmark_metrics["exposure"] > 0.99


def test_progress_names_each_stage_and_counts_each_engines_bars():
    bars = synthetic_bars(periods=300, seed=4)
    bars.attrs["interval"] = "1d"
    spec = _rsi_spec()
    calls: list[tuple] = []
    run_backtest(spec, prepared=prepare_frame(spec, bars), progress=lambda *a: calls.append(a))
    assert [c for c in calls if len(c) == 1] == [
        ("computing signals",), ("running contrarian on 300 bars",),
        ("running benchmark buy_and_hold",)]
    # fewer than 1000 bars: each engine reports once, when its last bar is done
    assert [c for c in calls if len(c) == 3] == [("contrarian", 300, 300),
                                                 ("buy_and_hold", 300, 300)]
    assert calls.index(("contrarian", 300, 300)) < calls.index(
        ("running benchmark buy_and_hold",))


def test_write_run_and_load_report(tmp_path):
    bars = synthetic_bars(periods=500, seed=5)
    bars.attrs["interval"] = "1d"
    spec = _rsi_spec()
    res = run_backtest(spec, prepared=prepare_frame(spec, bars, since="2024-06-01"))
    path = write_run(res, runs_dir=tmp_path)
    assert path == tmp_path / res.run_id
    assert {"report.json", "trades.csv", "equity.csv"} <= {p.name for p in path.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    rep = load_report(res.run_id, runs_dir=tmp_path)
    assert rep == load_report(path)
    assert rep["run_id"] == res.run_id and rep["schema_version"] == "1.2"
    assert rep["benchmark"]["name"] == "buy_and_hold"
    assert rep["metrics"]["n_trades"] == len(res.trades)
    assert rep["config"]["strategy"]["hold_bars"] == 10
    assert len(rep["equity"]) == len(res.equity)
    assert "NaN" not in (path / "report.json").read_text()
    trades = pd.read_csv(path / "trades.csv")
    np.testing.assert_array_equal(trades["pnl"].to_numpy(), res.trades["pnl"].to_numpy())
    # rewriting the same run replaces the folder in place
    assert write_run(res, runs_dir=tmp_path) == path


def test_prepare_reads_a_data_folder(tmp_path):
    root = write_sample_folder(tmp_path / "data", days=300)
    spec = load_spec({"data": {"symbol": "BTC-USD", "interval": "1d", "externals": ["fng"]},
                      "strategy": {"type": "fear_greed_accumulation"}})
    res = run_backtest(spec, data_dir=root)
    assert len(res.equity) == 300 and res.fingerprints
    assert res.metrics["n_bars"] == 300
    assert res.benchmark_metrics["exposure"] > 0.99


def test_cli_backtest_json_and_errors(tmp_path, capsys):
    root = write_sample_folder(tmp_path / "data", days=200)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        'name = "acc"\n[data]\nsymbol = "BTC-USD"\ninterval = "1d"\nexternals = ["fng"]\n'
        '[strategy]\ntype = "fear_greed_accumulation"\nbuy_below = 30.0\n'
    )
    code = main(["--data-dir", str(root), "backtest", str(spec_file), "--format", "json",
                 "--runs-dir", str(tmp_path / "runs"), "--set", "strategy.buy_fraction=0.2"])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out)
    assert (tmp_path / "runs" / doc["run_id"] / "report.json").exists()
    assert doc["benchmark"]["name"] == "buy_and_hold"
    code = main(["--data-dir", str(root), "backtest", str(spec_file), "--runs-dir",
                 str(tmp_path / "runs"), "--set", "strategy.buy_fraction=0.2"])
    out = capsys.readouterr().out
    assert code == 0 and "buy_and_hold" in out and doc["run_id"] in out
    code = main(["backtest", str(spec_file), "--set", "strategy.buy_fractoin=0.2"])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'buy_fraction'" in err
    assert main(["backtest", "no_such_spec"]) == 2
    assert "shipped specs" in capsys.readouterr().err


def test_prepare_refuses_an_inverted_window(tmp_path):
    root = write_sample_folder(tmp_path / "data", days=50)
    spec = load_spec({"data": {"externals": ["fng"]},
                      "strategy": {"type": "buy_and_hold"}})
    with pytest.raises(ConfigError):
        prepare(spec, data_dir=root, since="2024-02-01", until="2024-01-15")


@pytest.mark.parametrize("end, last", [
    ("2024-01-03", "2024-01-03T23:00:00Z"),  # a date: that whole day
    ("2024-01-03T00:00:00", "2024-01-03T00:00:00Z"),  # an explicit midnight: that bar only
    ("2024-01-03 05:00", "2024-01-03T05:00:00Z"),
])
def test_an_explicit_midnight_end_is_not_widened_to_the_whole_day(end, last):
    idx = pd.date_range("2024-01-01", periods=120, freq="h", tz="UTC", name="timestamp")
    close = 100.0 + np.arange(120.0)
    frame = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                          "volume": 1.0}, index=idx)
    frame.attrs["interval"] = "1h"
    for spec in (load_spec({"strategy": {"type": "buy_and_hold"},
                            "data": {"interval": "1h", "end": end}}),
                 load_spec({"strategy": {"type": "buy_and_hold"}, "data": {"interval": "1h"}},
                           overrides=[f"data.end={end}"])):
        assert prepare_frame(spec, frame).window.index[-1] == pd.Timestamp(last)


def test_prepare_frame_fingerprint_sees_column_names_and_symbol():
    idx = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC", name="timestamp")
    close = 100.0 + np.arange(30.0)
    frame = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                          "volume": 1.0, "liq_long_usd": np.arange(30.0),
                          "liq_short_usd": np.arange(30.0) * 2}, index=idx)
    spec = load_spec({"strategy": {"type": "buy_and_hold"}})
    swapped = frame.rename(columns={"liq_long_usd": "liq_short_usd",
                                    "liq_short_usd": "liq_long_usd"})
    other = frame.copy()
    other.attrs["symbol"] = "ETH-USD"
    prints = {prepare_frame(spec, f).fingerprints["frame"] for f in (frame, swapped, other)}
    assert len(prints) == 3
    assert prepare_frame(spec, frame.copy()).fingerprints == prepare_frame(spec, frame).fingerprints


def test_a_float_strength_is_refused_where_a_trigger_is_read():
    # a strength such as the raw RSI is > 0 on every bar: as an entry it would buy every day
    from flushback.backtests.run.spec import parse_spec

    base = {
        "name": "t",
        "data": {"symbol": "BTC-USD", "interval": "1d"},
        "signals": {"entry": {"type": "rsi"}},
        "strategy": {"type": "contrarian"},
    }
    with pytest.raises(ConfigError, match=r"signals\.entry is a float strength \('rsi'\)"):
        parse_spec(base)
    ok = dict(base, signals={"entry": {"type": "oversold_rsi"}})
    assert parse_spec(ok).signals["entry"]["type"] == "oversold_rsi"
