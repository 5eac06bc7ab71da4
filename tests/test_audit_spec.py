"""Planted biases caught by the real audit path: spec -> data layer -> signals -> runner.

Every test here calls :func:`flushback.backtests.audit.run.audit_spec` (what ``flushback audit``
runs) on a spec written to a temporary TOML file, over a seeded sample data folder laid out like
``../shared/data`` (``flushback.data.synthetic.write_sample_folder``). The planted signals are
registered only inside each test (``temporary_registration``); the Fear & Greed calendar-date
join is planted in the data layer's join for the duration of one test (monkeypatch).

Expected values are recomputed independently from the CSV files of the sample folder.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.audit.base import FAIL, PASS
from flushback.backtests.audit.run import audit_spec, raise_if_biased
from flushback.data.errors import BiasDetected
from flushback.signals.base import Param, Signal
from flushback.signals.registry import temporary_registration
from flushback.signals.rsi import RSI

DAY = pd.Timedelta(days=1)


# --------------------------------------------------------------------------- planted signals
class PeekAhead(Signal):
    """PLANTED BIAS: fires when the close ``bars`` bars AHEAD is ``drop`` below today's."""

    kind = "bool"
    inputs = ("close",)
    param_specs = {
        "bars": Param(int, 1, 1, 50, step=1),
        "drop": Param(float, 0.03, 0.0, 0.5),
    }

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return 0

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        c = frame["close"]
        return c.shift(-self.params["bars"]) < c * (1.0 - self.params["drop"])


class HonestDip(Signal):
    """Control: today's close ``drop`` below yesterday's (uses rows <= t only)."""

    kind = "bool"
    inputs = ("close",)
    param_specs = {"drop": Param(float, 0.05, 0.0, 0.5)}

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return 1

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        c = frame["close"]
        return c < c.shift(1) * (1.0 - self.params["drop"])


class ShortWarmupRSI(RSI):
    """PLANTED BIAS: Wilder RSI(14) declaring a warm-up of 14 bars (it needs ~200)."""

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return int(self.params["period"])


@pytest.fixture
def planted():
    with temporary_registration("planted_peek", PeekAhead), \
            temporary_registration("planted_honest_dip", HonestDip), \
            temporary_registration("planted_rsi_short_warmup", ShortWarmupRSI):
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from flushback.data.synthetic import write_sample_folder

    return write_sample_folder(tmp_path_factory.mktemp("sample_data"), days=300, seed=11)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    from flushback.data.synthetic import write_sample_folder

    return write_sample_folder(tmp_path_factory.mktemp("small_data"), days=60, seed=5)


def _csv_close(folder, interval: str = "1d") -> pd.Series:
    df = pd.read_csv(folder / "prices" / f"BTC-USD_{interval}.csv")
    idx = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True))
    return pd.Series(df["close"].to_numpy(), index=idx)


def write_spec(tmp_path, entry: str, *, interval: str = "1d", extra: str = "",
               externals: str = '["fng"]', hold: int = 3) -> str:
    text = f"""
name = "planted"
cash = 10000.0

[data]
symbol = "BTC-USD"
interval = "{interval}"
externals = {externals}

[signals.entry]
{entry}
{extra}

[strategy]
type = "contrarian"
fraction = 1.0
hold_bars = {hold}

[costs]
commission = 0.001
slippage = 0.0
"""
    path = tmp_path / "planted.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- look-ahead
def test_honest_spec_passes_every_check(planted, folder, tmp_path):
    spec = write_spec(tmp_path, 'type = "planted_honest_dip"\ndrop = 0.02')
    report = audit_spec(spec, data_dir=folder, trades=20)
    assert report.passed, [c.summary for c in report.checks]
    la = report.check("lookahead")
    assert la.params["trades_total"] > 20 and la.params["trades_checked"] == 20
    assert la.params["truncated_runs"] >= 40
    raise_if_biased(report)  # no exception
    # the audited run is the run `flushback backtest` makes: same run_id, same trades
    from flushback.backtests.run.runner import run_backtest

    plain = run_backtest(spec, data_dir=folder)
    assert report.run_id == plain.run_id
    pd.testing.assert_frame_equal(report.result.trades, plain.trades)


@pytest.mark.parametrize(("bars", "drop"), [(1, 0.05), (10, 0.15)])
def test_signal_peeking_ahead_is_caught(planted, folder, tmp_path, bars, drop):
    spec = write_spec(tmp_path, f'type = "planted_peek"\nbars = {bars}\ndrop = {drop}')
    report = audit_spec(spec, data_dir=folder, trades=20)
    la = report.check("lookahead")
    assert la.verdict == FAIL
    # (the warm-up check may flag it too: a value recomputed on history ending at the bar
    # cannot see the future either)
    assert report.check("external_timing").verdict == PASS
    close = _csv_close(folder)
    found = [f for f in la.findings if f.column == "entry" and f.kind == "signal_value"]
    assert found
    for f in found:
        t = close.index.get_loc(f.bar)
        # independent recomputation from the CSV: the full run's True is the future close
        assert bool(f.full) is True
        assert close.iloc[t + bars] < close.iloc[t] * (1 - drop)
        assert bool(f.truncated) is False
        # the cut is at or just after the bar, no farther than the peek distance (a cut at the
        # peeked bar itself counts when that bar is known at its open only)
        assert 0 <= close.index.get_loc(f.cut) - t <= bars
    # the one-bar peek is exposed at an entry DECISION bar (the bar before the fill)
    trades = report.result.trades
    decision_bars = {close.index[close.index.get_loc(e) - 1] for e in trades["entry_time"]}
    assert any(f.bar in decision_bars and f.cut == f.bar for f in found)
    if bars == 10:
        assert any(f.kind == "trade_entry" for f in la.findings)
    with pytest.raises(BiasDetected) as exc:
        raise_if_biased(report)
    assert exc.value.exit_code == 6 and exc.value.column == "entry"


def test_bias_inside_a_composite_child_that_never_fires_is_caught(planted, folder, tmp_path):
    # entry = honest AND (peek OR never-true peek): the child with drop=0.5 never fires, yet
    # its values are compared on quiet bars; the peeking child is compared on its own triggers
    entry = ('type = "all"\nwindow = 1\nof = [ { type = "planted_honest_dip" }, '
             '{ type = "planted_peek", bars = 2, drop = 0.04 } ]')
    spec = write_spec(tmp_path, entry)
    report = audit_spec(spec, data_dir=folder, trades=20)
    la = report.check("lookahead")
    assert la.verdict == FAIL
    cols = {f.column for f in la.findings}
    assert "entry.of.1" in cols
    assert "entry.of.0" not in cols


def test_explicit_external_that_begins_after_the_first_cuts(planted, tmp_path):
    # an explicitly named finer dataset (4h liquidations on daily bars) that begins on day 30:
    # cuts before it begins see an all-NaN column, as the data was then (no error)
    from flushback.data.synthetic import write_sample_folder

    folder = write_sample_folder(tmp_path / "late_liq", days=60, seed=5)
    path = folder / "liquidations" / "coinglass_binance_BTC_4h.csv"
    raw = pd.read_csv(path)
    begins = pd.Timestamp("2024-01-31", tz="UTC")
    raw[pd.to_datetime(raw["timestamp"], utc=True) >= begins].to_csv(path, index=False)
    externals = '{ liquidations = "liquidations/coinglass_binance_BTC_4h" }'
    spec = write_spec(tmp_path, 'type = "planted_honest_dip"\ndrop = 0.02',
                      externals=externals)
    report = audit_spec(spec, data_dir=folder, trades=0)
    assert report.passed, [c.summary for c in report.checks]
    trades = report.result.trades
    assert (pd.to_datetime(trades["entry_time"], utc=True) < begins).any()
    frame = report.result.frame
    assert frame.loc[:begins - DAY, "liq_long_usd"].isna().all()
    # independent: the first bar with a value is the first day with all six 4h buckets
    first = frame["liq_long_usd"].first_valid_index()
    assert first == begins
    day = raw[pd.to_datetime(raw["timestamp"], utc=True).dt.floor("D") == begins]
    assert frame.at[first, "liq_long_usd"] == pytest.approx(day["long_usd"].sum())


def test_audited_frame_honours_the_specs_max_staleness(planted, small_folder, tmp_path):
    # F&G is 23 h old at every daily close: a 12 h limit leaves the column all NaN, in the
    # audited run exactly as in `flushback backtest`
    from flushback.backtests.run.runner import run_backtest

    spec = write_spec(tmp_path, 'type = "planted_honest_dip"\ndrop = 0.02')
    report = audit_spec(spec, data_dir=small_folder, overrides=["data.max_staleness=12h"])
    assert report.passed, [c.summary for c in report.checks]
    plain = run_backtest(spec, data_dir=small_folder, params={"data.max_staleness": "12h"})
    assert report.run_id == plain.run_id
    assert report.result.frame["fng"].isna().all() and plain.frame["fng"].isna().all()
    pd.testing.assert_frame_equal(report.result.frame, plain.frame)


# --------------------------------------------------------------------------- F&G calendar join
def _calendar_join_fng(monkeypatch):
    """Plant the bias in the data layer: bar D gets the Fear & Greed value DATED D+1 (the one
    describing day D, published D+1 01:00), by calendar date instead of known_at. On hourly
    bars this is the daily value applied from the start of the day it describes."""
    from flushback.data import assemble as load_mod

    original = load_mod.asof_join

    def calendar_join(bar_open, bar_iv, ext, columns):
        if "fng" not in columns or ext is None or len(ext) == 0:
            return original(bar_open, bar_iv, ext, columns)
        by_date = ext.set_index(pd.DatetimeIndex(ext["period_end"]))
        target = pd.DatetimeIndex(bar_open).floor("D") + DAY
        rows = by_date.reindex(target)
        nat = np.iinfo(np.int64).min
        ka = pd.DatetimeIndex(rows["known_at"]).as_unit("ns").asi8
        pe = pd.DatetimeIndex(rows["period_end"]).as_unit("ns").asi8
        ok = rows["fng"].notna().to_numpy()
        return ({"fng": rows["fng"].to_numpy(dtype="float64")},
                np.where(ok, ka, nat), np.where(ok, pe, nat))

    monkeypatch.setattr(load_mod, "asof_join", calendar_join)


@pytest.mark.parametrize("interval", ["1d", "1h"])
def test_fear_greed_join_by_calendar_date_is_caught(planted, folder, small_folder, tmp_path,
                                                    monkeypatch, interval):
    folder = folder if interval == "1d" else small_folder
    spec = write_spec(tmp_path, 'type = "extreme_fear"\nthreshold = 10.0', interval=interval,
                      hold=3 if interval == "1d" else 48)
    honest = audit_spec(spec, data_dir=folder, trades=20)
    assert honest.passed, [c.summary for c in honest.checks]

    _calendar_join_fng(monkeypatch)
    report = audit_spec(spec, data_dir=folder, trades=20)
    assert not report.passed
    timing = report.check("external_timing")
    assert timing.verdict == FAIL
    row = next(r for r in timing.rows if r["column"] == "fng")
    assert row["early_uses"] > 0
    la = report.check("lookahead")
    assert la.verdict == FAIL
    fng = [f for f in la.findings if f.column == "fng" and f.kind == "frame_value"]
    assert fng
    raw = pd.read_csv(folder / "sentiment" / "crypto_fear_greed.csv")
    by_date = pd.Series(raw["value"].to_numpy(dtype=float),
                        index=pd.DatetimeIndex(pd.to_datetime(raw["date"], utc=True)))
    for f in fng[:20]:
        # independent: the full run shows the value dated (bar's day + 1); the truncated run,
        # which cannot have it yet, shows none
        assert f.full == by_date[f.bar.floor("D") + DAY]
        assert f.truncated is None or np.isnan(f.truncated)


# --------------------------------------------------------------------------- warm-up
def _wilder_rsi(close: np.ndarray, n: int = 14) -> float:
    """Independent Wilder RSI of the last bar (seed = mean of the first n changes)."""
    d = np.diff(close)
    g = np.mean(np.clip(d[:n], 0, None))
    lo = np.mean(np.clip(-d[:n], 0, None))
    for x in d[n:]:
        g += (max(x, 0.0) - g) / n
        lo += (max(-x, 0.0) - lo) / n
    return 100.0 * g / (g + lo)


def test_rsi_declaring_14_bars_of_warmup_is_caught(planted, folder, tmp_path):
    extra = '[signals.strength]\ntype = "planted_rsi_short_warmup"\nperiod = 14'
    spec = write_spec(tmp_path, 'type = "planted_honest_dip"', extra=extra)
    report = audit_spec(spec, data_dir=folder, trades=20)
    wu = report.check("warmup")
    assert wu.verdict == FAIL
    by = {r["signal"]: r for r in wu.rows}
    assert by["strength"]["verdict"] == FAIL and by["strength"]["warmup_bars"] == 14
    assert by["entry"]["verdict"] == PASS
    # independent: RSI from 14 bars of history vs the full history at the last bar
    close = _csv_close(folder).to_numpy()
    full_last = _wilder_rsi(close)
    short_last = _wilder_rsi(close[-15:])
    assert by["strength"]["max_abs_diff"] >= abs(full_last - short_last)
    assert abs(full_last - short_last) > 0.01  # the declared tolerance, in RSI points
    # the same RSI is honest about time: look-ahead and timing pass
    assert report.check("lookahead").verdict == PASS
    assert report.check("external_timing").verdict == PASS
    f = next(x for x in wu.findings if x.column == "strength")
    assert "declare a longer warm-up" in f.message


# --------------------------------------------------------------------------- CLI
def test_cli_prints_tables_stores_audit_and_exits_6_on_bias(planted, folder, tmp_path, capsys):
    from flushback.backtests.cli import main
    from flushback.backtests.run.folders import load_report

    spec = write_spec(tmp_path, 'type = "planted_peek"\nbars = 1\ndrop = 0.05')
    code = main(["--data-dir", str(folder), "audit", spec, "--trades", "20"])
    out, err = capsys.readouterr()
    assert code == 6
    assert "Look-ahead" in out and "FAIL" in out and "Warm-up" in out
    assert "External data timing" in out
    assert "error:" in err and "audit failed" in err
    from flushback.data.paths import runs_dir

    runs = list(runs_dir().glob("*/report.json"))
    assert len(runs) == 1
    doc = load_report(runs[0].parent)
    audit = doc["audit"]
    assert audit["verdict"] == "fail"
    assert [c["name"] for c in audit["checks"]] == ["lookahead", "warmup", "external_timing"]


def test_cli_json_and_exit_0_when_clean(planted, folder, tmp_path, capsys):
    from flushback.backtests.cli import main

    spec = write_spec(tmp_path, 'type = "planted_honest_dip"')
    code = main(["--data-dir", str(folder), "audit", spec, "--format", "json", "--no-save"])
    out, _ = capsys.readouterr()
    assert code == 0
    doc = json.loads(out)
    assert doc["verdict"] == "pass" and doc["passed"] is True
    assert {c["name"]: c["verdict"] for c in doc["checks"]} == {
        "lookahead": "pass", "warmup": "pass", "external_timing": "pass"}
    assert doc["run_dir"] is None


def test_cli_refuses_a_sample_smaller_than_20(planted, folder, tmp_path, capsys):
    from flushback.backtests.cli import main

    spec = write_spec(tmp_path, 'type = "planted_honest_dip"')
    code = main(["--data-dir", str(folder), "audit", spec, "--trades", "5"])
    _, err = capsys.readouterr()
    assert code == 2 and "at least 20" in err


# --------------------------------------------------------------------------- raw truncation
def test_as_of_inputs_cut_bars_by_close_and_externals_by_known_at(folder):
    from flushback.data import load_frame

    cutoff = pd.Timestamp("2024-03-01T05:00:00Z")
    hourly = load_frame("BTC-USD", "1h", externals=("fng",), data_dir=folder, as_of=cutoff)
    daily = load_frame("BTC-USD", "1d", externals=("fng",), data_dir=folder, as_of=cutoff)
    four = load_frame("BTC-USD", "4h", externals=("fng",), data_dir=folder, as_of=cutoff)
    # hand-derived: the last bar whose close is <= 05:00
    assert hourly.frame.index[-1] == pd.Timestamp("2024-03-01T04:00:00Z")
    assert daily.frame.index[-1] == pd.Timestamp("2024-02-29T00:00:00Z")
    # 4h bars resampled from 1h: 00:00-04:00 closes at 04:00, the 04:00 bucket is incomplete
    assert four.frame.index[-1] == pd.Timestamp("2024-03-01T00:00:00Z")
    # the F&G value dated 2024-03-01 is known at 01:00, so the 00:00 hourly bar (closing 01:00)
    # is the first to use it; nothing known later exists in the truncated data
    assert (hourly.known_at["fng"].dropna() <= cutoff).all()
    raw = pd.read_csv(folder / "sentiment" / "crypto_fear_greed.csv", index_col=0)
    assert hourly.frame.loc["2024-03-01T00:00:00Z", "fng"] == raw.loc["2024-03-01", "value"]
    assert hourly.frame.loc["2024-02-29T23:00:00Z", "fng"] == raw.loc["2024-02-29", "value"]
    # without as_of, the data is read whole (the cut is not remembered)
    full = load_frame("BTC-USD", "1h", externals=("fng",), data_dir=folder)
    assert full.frame.index[-1] > cutoff


def test_cli_set_override_reaches_the_audited_spec(planted, folder, tmp_path, capsys):
    from flushback.backtests.cli import main

    spec = write_spec(tmp_path, 'type = "planted_honest_dip"')
    code = main(["--data-dir", str(folder), "audit", spec, "--format", "json", "--no-save",
                 "--set", "signals.entry.type=planted_peek", "--set", "signals.entry.drop=0.05"])
    out, _ = capsys.readouterr()
    assert code == 6
    doc = json.loads(out)
    assert {c["name"]: c["verdict"] for c in doc["checks"]}["lookahead"] == "fail"


def test_warmup_check_tells_a_peek_from_a_short_warmup(planted, folder, tmp_path):
    spec = write_spec(tmp_path, 'type = "planted_peek"\nbars = 1\ndrop = 0.05')
    report = audit_spec(spec, data_dir=folder, trades=20, trigger_bars=1, quiet_bars=1)
    wu = report.check("warmup")
    row = next(r for r in wu.rows if r["signal"] == "entry")
    # a boolean that flips at its triggers whatever the history: 4x "warm-up" does not help
    assert row["verdict"] == FAIL and row["rel_diff_x4"] == row["rel_diff_x1"] == 1.0
    assert "no better" in row["note"]
    assert all("look-ahead" in f.message for f in wu.findings if f.column == "entry")
