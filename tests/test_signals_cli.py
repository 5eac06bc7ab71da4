"""``flushback signals list`` and ``flushback signals scan`` (scan tests read ../shared/data)."""

from __future__ import annotations

import json

from flushback.backtests.cli import main
from flushback.signals import list_signals


def _json(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_list_json_has_every_signal_with_ranges(capsys):
    payload = _json(capsys, ["signals", "list", "--format", "json"])
    names = [s["name"] for s in payload["signals"]]
    assert names == list_signals()
    rsi = next(s for s in payload["signals"] if s["name"] == "oversold_rsi")
    assert rsi["inputs"] == ["close"]
    assert rsi["warmup_bars"]["1d"] >= 195
    assert rsi["params"]["period"]["low"] == 2 and rsi["params"]["period"]["high"] == 50
    assert rsi["params"]["smoothing"]["choices"] == ["wilder", "cutler", "ema"]
    liq = next(s for s in payload["signals"] if s["name"] == "liquidation_spike")
    assert liq["params"]["usd_threshold"]["log"] is True
    assert liq["warmup_bars"] == {"1d": 90, "4h": 545, "1h": 2183}


def test_list_table(capsys):
    assert main(["signals", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("extreme_fear", "liquidation_spike", "first_of_cluster"):
        assert name in out


def test_scan_errors_are_one_line_with_exit_code(capsys):
    assert main(["signals", "scan", "oversold_rs"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'oversold_rsi'" in err and err.count("\n") == 1
    assert main(["signals", "scan", "rsi"]) == 2
    assert main(["signals", "scan", "extreme_fear", "--set", "treshold=3"]) == 2
    assert "did you mean 'threshold'" in capsys.readouterr().err


def _scan(capsys, data_dir, *args):
    return _json(capsys, ["--data-dir", str(data_dir), "signals", "scan", *args,
                          "--format", "json"])


def _days(payload):
    return {t["timestamp"][:10] for t in payload["triggers"]}


def test_scan_extreme_fear_real(capsys, shared_data_dir):
    p = _scan(capsys, shared_data_dir, "extreme_fear", "--set", "extreme_fear.threshold=10")
    assert {"2026-02-06", "2020-03-13", "2022-06-18"} <= _days(p)
    first = next(t for t in p["triggers"] if t["timestamp"].startswith("2026-02-06"))
    assert first["values"]["fng"] == 9.0  # PROVENANCE spot check
    assert all(t["values"]["fng"] <= 10 for t in p["triggers"])


def test_scan_oversold_rsi_real(capsys, shared_data_dir):
    p = _scan(capsys, shared_data_dir, "oversold_rsi", "--set", "threshold=25")
    assert {"2020-03-12", "2022-06-13", "2022-11-09", "2026-02-05"} <= _days(p)
    assert all(t["values"]["rsi"] < 25 for t in p["triggers"])


def test_scan_since_until_limits_the_report_but_keeps_warmup(capsys, shared_data_dir):
    p = _scan(capsys, shared_data_dir, "oversold_rsi", "--set", "threshold=25",
              "--since", "2022-06-01", "--until", "2022-06-30")
    assert "2022-06-13" in _days(p)
    assert all("2022-06-01" <= d <= "2022-06-30" for d in _days(p))
    full = _scan(capsys, shared_data_dir, "oversold_rsi", "--set", "threshold=25")
    june = {d for d in _days(full) if "2022-06-01" <= d <= "2022-06-30"}
    assert _days(p) == june  # same triggers as on the full history: warm-up was loaded


def test_scan_composite_json_config(capsys, shared_data_dir):
    cfg = json.dumps({"type": "all", "window": 2, "of": [
        {"type": "extreme_fear", "threshold": 15},
        {"type": "any", "of": [{"type": "liquidation_spike"},
                               {"type": "oversold_rsi", "threshold": 25}]}]})
    p = _scan(capsys, shared_data_dir, cfg, "--set", "of.0.threshold=12",
              "--since", "2026-02-01", "--until", "2026-02-10")
    assert p["signal"]["of"][0]["threshold"] == 12.0
    assert "2026-02-05" in _days(p)
    t = next(t for t in p["triggers"] if t["timestamp"].startswith("2026-02-05"))
    assert t["values"]["of.0.fng"] == 12.0 and t["values"]["of.1.of.1.rsi"] < 25


def test_scan_structure_signals_at_the_feb_2026_flush(capsys, shared_data_dir):
    """The swing, its 0.618 level and the gap the structure signals print for BTCUSDT-PERP 4h
    on Feb 1-6 2026, checked against the price CSV itself."""
    import pandas as pd

    csv = pd.read_csv(shared_data_dir / "prices" / "BTCUSDT-PERP_4h.csv",
                      parse_dates=["timestamp"]).set_index("timestamp")
    window = ["--symbol", "BTCUSDT-PERP", "--interval", "4h", "--since", "2026-02-01",
              "--until", "2026-02-06T23:59", "--format", "json"]
    brk = _json(capsys, ["--data-dir", str(shared_data_dir), "signals", "scan",
                         "swing_low_break", *window])
    assert [t["timestamp"] for t in brk["triggers"]] == ["2026-02-05T00:00:00Z"]
    v = brk["triggers"][0]["values"]
    assert v["swing_low_at"] == "2026-02-03T16:00:00Z"
    # a 3-bar pivot: the lowest low of the seven bars around it
    around = csv.loc["2026-02-03T04:00Z":"2026-02-04T04:00Z", "low"]
    assert len(around) == 7 and v["swing_low"] == around.min() == around.iloc[3]
    assert csv.loc["2026-02-05T00:00Z", "close"] < v["swing_low"] <= csv.loc[
        "2026-02-04T20:00Z", "close"]
    fib = _json(capsys, ["--data-dir", str(shared_data_dir), "signals", "scan",
                         "fib_retracement", *window])
    bar = next(t["values"] for t in fib["triggers"] if t["timestamp"] == "2026-02-04T20:00:00Z")
    assert bar["swing_high_at"] == "2026-02-02T12:00:00Z"
    assert bar["leg_low_at"] == "2026-02-02T00:00:00Z"
    h = csv.loc["2026-02-02T12:00Z", "high"]
    lo = csv.loc["2026-02-02T00:00Z", "low"]
    assert bar["fib_618"] == bar["level"] == h - 0.618 * (h - lo)
    # the bearish gap left by the Feb 4 16:00 bar: its high under the low two bars before
    assert bar["gap_above_at"] == "2026-02-04T16:00:00Z"
    assert bar["gap_above"] == csv.loc["2026-02-04T16:00Z", "high"]
    assert bar["gap_above_top"] == csv.loc["2026-02-04T08:00Z", "low"]
    # the table prints the dates as bar times
    assert main(["--data-dir", str(shared_data_dir), "signals", "scan", "swing_low_break",
                 *window[:-2]]) == 0
    out = capsys.readouterr().out
    assert "2026-02-03 16:00" in out and "+00:00" not in out
