"""Refusals and flags of the data layer's second pass: unknown files are skipped (not fatal),
bars from the future are refused, outliers and unit slips are flagged (and refused unless
accepted, then recorded), a moved store names where it is now, a signal window finer than
its data is refused, and "no data" is told apart from "no".

Every error is checked for the file, the column and the timestamp it names.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.cli import main
from flushback.data import load_frame
from flushback.data.errors import ConfigError, DataError
from flushback.data.importer import import_folder, scan_folder
from flushback.data.store import Store
from flushback.data.suspicious import find_suspicious
from flushback.data.synthetic import write_sample_folder
from flushback.signals import build_signal


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _rewrite(path, edit) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(df)
    df.to_csv(path, index=False)


# --- unknown files ---------------------------------------------------------------------------


def test_unknown_csv_is_skipped_and_listed_while_the_rest_imports(tmp_path, capsys):
    root = write_sample_folder(tmp_path / "d", days=30)
    stray = root / "derivatives" / "my_notes.csv"
    stray.write_text("timestamp,x\n2024-01-01,1\n")
    code, out, err = run(capsys, "data", "import", str(root), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert {d["id"] for d in doc["datasets"]} >= {"prices/BTC-USD_1d",
                                                  "sentiment/crypto_fear_greed"}
    assert [s["path"] for s in doc["skipped"]] == [str(stray)]
    assert "--as NAME" in doc["skipped"][0]["hint"]
    # the table output lists it too
    code, out, _ = run(capsys, "data", "import", str(root))
    assert code == 0 and "skipped 1 file(s)" in out and "my_notes.csv" in out
    # --strict makes it an error that names the file
    code, _, err = run(capsys, "data", "import", str(root), "--strict")
    assert code == 3 and str(stray) in err and "--strict" in err


def test_known_file_with_bad_content_refuses_the_whole_import(tmp_path):
    root = write_sample_folder(tmp_path / "d", days=30)
    store = Store(tmp_path / "store")
    import_folder(root, store)
    before = store.manifest()
    fng = root / "sentiment" / "crypto_fear_greed.csv"
    _rewrite(fng, lambda df: df.__setitem__("value", df["value"].where(df.index != 3, "140")))
    with pytest.raises(DataError) as ei:
        import_folder(root, store)
    assert ei.value.file == str(fng) and ei.value.column == "value"
    assert "2024-01-04" in str(ei.value) and "nothing was imported" in str(ei.value)
    assert store.manifest() == before


# --- the future ------------------------------------------------------------------------------


@pytest.mark.parametrize("rel,row,days", [
    ("prices/BTC-USD_1d.csv", "{d},40000,41000,39000,40500,10", 3),
    ("sentiment/crypto_fear_greed.csv", "{d},50,Neutral", 40),
])
def test_rows_stamped_in_the_future_are_refused(tmp_path, rel, row, days):
    root = write_sample_folder(tmp_path / "d", days=30)
    path = root / rel
    future = (pd.Timestamp.now(tz="UTC").normalize() + pd.Timedelta(days=days)).strftime(
        "%Y-%m-%d")
    with open(path, "a") as fh:
        fh.write(row.format(d=future) + "\n")
    with pytest.raises(DataError, match="stamped in the future") as ei:
        import_folder(root, Store(tmp_path / "s"))
    assert ei.value.file == str(path) and ei.value.column == "timestamp"
    assert future in str(ei.value)


# --- flags: outliers and unit slips ------------------------------------------------------------


def test_a_50x_bad_tick_is_flagged_refused_then_accepted_and_recorded(tmp_path, capsys):
    root = write_sample_folder(tmp_path / "d", days=40)
    path = root / "prices" / "BTC-USD_1d.csv"
    df = pd.read_csv(path)
    i = 20
    when = df.loc[i, "timestamp"]
    df.loc[i, ["open", "high", "low", "close"]] = df.loc[i, ["open", "high", "low",
                                                             "close"]] * 50
    df.to_csv(path, index=False)
    store_dir = tmp_path / "store"
    code, _, err = run(capsys, "data", "import", str(root), "--store", str(store_dir))
    assert code == 3
    assert str(path) in err and "suspicious" in err and when in err and "close" in err
    assert "--accept-flagged" in err
    assert not (store_dir / "manifest.json").exists()  # nothing was written
    code, out, err = run(capsys, "data", "import", str(root), "--store", str(store_dir),
                         "--accept-flagged", "--format", "json")
    assert code == 0, err
    flags = Store(store_dir).flags("prices/BTC-USD_1d")
    assert {f["column"] for f in flags} == {"open", "high", "low", "close"}
    assert {f["timestamp"][:10] for f in flags} == {when}
    # the bar is kept (accepted), and a second import without the flag changes nothing
    code, out, err = run(capsys, "data", "import", str(root), "--store", str(store_dir),
                         "--format", "json")
    assert code == 0, err
    assert {d["status"] for d in json.loads(out)["datasets"]} == {"unchanged"}


def test_ten_funding_rows_in_percent_are_flagged_with_their_timestamps(tmp_path):
    root = write_sample_folder(tmp_path / "d", days=80)
    path = root / "derivatives" / "binance_btcusdt_funding_1d.csv"
    df = pd.read_csv(path)
    col = "funding_rate_mean_8h_fraction"
    df[col] = 1e-4 + 2e-5 * np.sin(np.arange(len(df)))  # a calm, realistic fraction series
    bad = list(range(30, 40))
    df.loc[bad, col] = df.loc[bad, col] * 100  # written in percent (0.01 = 0.01 %)
    df.to_csv(path, index=False)
    with pytest.raises(DataError) as ei:
        import_folder(root, Store(tmp_path / "s"))
    err = ei.value
    assert err.file == str(path) and err.column == "funding_rate"
    assert "10 suspicious value(s)" in str(err) and "percent" in str(err)
    assert df.loc[bad[0], "timestamp"] in str(err)
    # every slipped row, and only those, is flagged
    from flushback.data.datasets import spec_for
    from flushback.data.parsers import parse_file

    spec = spec_for("derivatives/binance_btcusdt_funding_1d")
    flags = find_suspicious(parse_file(path, spec), spec)
    assert sorted(f.timestamp[:10] for f in flags) == sorted(df.loc[bad, "timestamp"])


def test_open_interest_outlier_is_flagged(tmp_path):
    root = write_sample_folder(tmp_path / "d", days=20)
    path = root / "derivatives" / "coinglass_btc_open_interest_aggregated_4h.csv"
    df = pd.read_csv(path)
    df.loc[50, "oi_usd_close"] = df.loc[50, "oi_usd_close"] * 40
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="suspicious") as ei:
        import_folder(root, Store(tmp_path / "s"))
    assert ei.value.file == str(path) and ei.value.column == "oi_usd"
    assert df.loc[50, "timestamp"].replace("Z", "") in str(ei.value).replace(" ", "T")


def test_real_crashes_are_not_flagged():
    """A -40 % day whose neighbours move with it (March 2020) is a crash, not a bad tick."""
    idx = pd.date_range("2020-03-01", periods=30, freq="1D", tz="UTC")
    close = np.r_[np.full(11, 7900.0), 4970.0, 5563.0, np.full(17, 5500.0)]
    bars = pd.DataFrame({"open": close, "high": close * 1.02, "low": close * 0.8,
                         "close": close, "volume": 1.0}, index=idx)
    from flushback.data.datasets import spec_for

    assert find_suspicious(bars, spec_for("prices/BTC-USD_1d")) == []


# --- the store names where it is now --------------------------------------------------------


def test_a_moved_store_names_its_new_location(tmp_path):
    root = write_sample_folder(tmp_path / "d", days=20)
    old = tmp_path / "old"
    import_folder(root, Store(old))
    new = tmp_path / "moved"
    shutil.move(str(old), str(new))
    st = Store(new)
    info = st.info("prices/BTC-USD_1d")
    assert info.location.startswith(str(new))
    st.parquet_path("prices/BTC-USD_1d").unlink()
    with pytest.raises(Exception) as ei:
        st.read("prices/BTC-USD_1d")
    assert str(new) in str(ei.value) and str(old) not in str(ei.value)


# --- granularity and "no data" ----------------------------------------------------------------


def test_a_liquidation_window_finer_than_its_data_is_refused(tmp_path):
    root = write_sample_folder(tmp_path / "d", days=60)
    af = load_frame("BTC-USD", "1h", data_dir=root, externals={
        "liquidations": "liquidations/coinglass_binance_BTC_4h"})
    assert af.frame.attrs["column_intervals"]["liq_long_usd"] == "4h"
    with pytest.raises(ConfigError) as ei:
        build_signal({"type": "liquidation_spike", "window": "1h"}).compute(af.frame)
    msg = str(ei.value)
    assert "liquidation_spike.window = 1h" in msg and "coinglass_binance_BTC_4h" in msg
    assert "4h" in msg
    # a window as coarse as the data is fine
    build_signal({"type": "liquidation_spike", "window": "4h"}).compute(af.frame)
    # daily totals behind the column: a 4h window is refused as well
    daily = load_frame("BTC-USD", "1h", data_dir=root, externals={
        "liquidations": "liquidations/coinglass_binance_BTC_1d"})
    with pytest.raises(ConfigError, match="coinglass_binance_BTC_1d holds 1d totals"):
        build_signal({"type": "liquidation_spike", "window": "4h"}).compute(daily.frame)


def test_scan_says_no_data_where_an_input_is_missing(tmp_path, capsys, monkeypatch):
    from flushback.backtests.cli._common import console

    monkeypatch.setattr(console, "width", 250)  # one table row per line
    root = write_sample_folder(tmp_path / "d", days=120)
    # liquidations stop after 60 days (like the real series after 2025-11-13)
    for name in ("coinglass_binance_BTC_1d.csv", "coinglass_binance_BTC_4h.csv"):
        p = root / "liquidations" / name
        df = pd.read_csv(p)
        df[pd.to_datetime(df["timestamp"], utc=True) < pd.Timestamp("2024-03-01", tz="UTC")
           ].to_csv(p, index=False)
    config = json.dumps({"type": "any", "of": [
        {"type": "extreme_fear", "threshold": 30},
        {"type": "liquidation_spike", "method": "absolute", "usd_threshold": 1e5}]})
    code, out, err = run(capsys, "--data-dir", str(root), "signals", "scan", config,
                         "--since", "2024-03-10", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["count"] > 0
    for trig in doc["triggers"]:
        assert trig["values"]["of.0:extreme_fear"] is True
        assert trig["values"]["of.1:liquidation_spike"] is None  # no data, not "no"
    code, out, _ = run(capsys, "--data-dir", str(root), "signals", "scan", config,
                       "--since", "2024-03-10")
    assert "no data" in out
    # where liquidations exist the child reads yes/no as before
    af = load_frame("BTC-USD", "1d", data_dir=root)
    sig = build_signal(json.loads(config))
    ex = sig.explain(af.frame)
    col = ex["of.1:liquidation_spike"]
    assert col.loc["2024-02-01":"2024-02-28"].isin([True, False]).all()
    assert col.loc["2024-03-10":].isna().all()


def test_scan_folder_reports_skips_and_refuses_a_folder_of_only_unknown_files(tmp_path):
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="no file flushback can identify") as ei:
        scan_folder(tmp_path)
    assert "notes.csv" in str(ei.value)
