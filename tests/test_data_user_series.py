"""The user's own series end to end: a CSV written here is imported with ``--as``, joined onto
the bars by the as-of rule on ``known_at`` (checked against a hand-made shift), used by a
generic signal in a backtest, and ``flushback audit`` passes on that spec. The same series
declared inline in the spec (a path next to it) gives the same frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.cli import main
from flushback.data import load_frame
from flushback.data.errors import ConfigError, DataError
from flushback.data.synthetic import write_sample_folder

DAYS = 260


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _series_csv(path, start="2024-01-01", days=DAYS, seed=3):
    """Daily 'ETF flows' (USD) with a few large outflow days (z well below -2)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=days, freq="1D")
    flows = rng.normal(2e8, 5e7, days)
    for d in (90, 140, 200, 230):
        if d < days:
            flows[d] = -6e8
    pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%d"), "flow_usd": flows}).to_csv(
        path, index=False)
    return pd.Series(flows, index=idx.tz_localize("UTC"))


SPEC = """
name = "etf_outflow"
description = "Buy a large ETF outflow day (user series), hold 10 days"
cash = 10000.0

[data]
symbol = "BTC-USD"
interval = "1d"
start = "2024-03-01"
externals = ["fng"]

[data.series]
{series}

[signals.entry]
type = "zscore"
column = "etf_flows"
window_days = 30
k = 4.0
direction = "below"

[strategy]
type = "contrarian"
fraction = 1.0
hold_bars = 10

[benchmark]
type = "buy_and_hold"

[costs]
commission = 0.001
slippage = 0.0
"""


@pytest.mark.slow
def test_user_series_imported_joined_traded_and_audited(tmp_path, capsys):
    root = write_sample_folder(tmp_path / "data", days=DAYS)
    csv = tmp_path / "etf.csv"
    values = _series_csv(csv)
    code, out, err = run(capsys, "data", "import", str(root))
    assert code == 0, err
    code, out, err = run(capsys, "data", "import", str(csv), "--as", "etf_flows",
                         "--interval", "1d", "--lag", "12h", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)["datasets"][0]
    assert doc["id"] == "series/etf_flows" and doc["rows"] == DAYS
    code, out, _ = run(capsys, "data", "list", "--format", "json")
    assert "series/etf_flows" in {d["id"] for d in json.loads(out)["datasets"]}

    # joined as of known_at: a row stamped D describes [D, D+1d) and is known at D+1d+12h, so
    # the daily bar D+1 (closing D+2 00:00) is the first to hold it -- a one-bar shift
    af = load_frame("BTC-USD", "1d", externals=["fng"], series=["etf_flows"])
    got = af.frame["etf_flows"]
    expected = values.shift(1).reindex(got.index)
    assert np.allclose(got.to_numpy(), expected.to_numpy(), equal_nan=True)
    assert np.isnan(got.iloc[0])
    known = af.known_at["etf_flows"].dropna()
    assert (known <= known.index + pd.Timedelta(days=1)).all()
    assert (known == known.index + pd.Timedelta(hours=12)).all()
    prov = af.sources["etf_flows"]["datasets"][0]
    assert (prov["id"], prov["publication_lag"], prov["label"]) == ("series/etf_flows", "12h",
                                                                    "start")

    spec_path = tmp_path / "etf_outflow.toml"
    spec_path.write_text(SPEC.format(series='etf_flows = "stored"'))
    code, out, err = run(capsys, "backtest", str(spec_path), "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    entries = [pd.Timestamp(t["entry_time"]) for t in result["trades"]]
    assert entries, "the spike days must trigger"
    # each entry fills at the open of the bar after a bar holding a planted outflow, i.e. two
    # bars after the outflow's own stamp (known one bar late, filled one bar later)
    spikes = {values.index[d] for d in (90, 140, 200, 230)}
    assert {e - pd.Timedelta(days=2) for e in entries} <= spikes
    report = json.loads((Path(result["run_dir"]) / "report.json").read_text())
    assert report["data"]["sources"]["series/etf_flows"]["named_source"] == "user"
    code, out, err = run(capsys, "audit", str(spec_path))
    assert code == 0, out + err

    # the same series declared inline (a path relative to the spec) gives the same frame
    inline = tmp_path / "inline.toml"
    inline.write_text(SPEC.format(series='etf_flows = { path = "etf.csv", interval = "1d", '
                                         'lag = "12h" }'))
    from flushback.backtests.run.runner import prepare

    prepared = prepare(inline)
    f = prepared.frame
    assert np.allclose(f["etf_flows"].to_numpy(),
                       got.reindex(f.index).to_numpy(), equal_nan=True)


def test_user_series_as_of_cut_never_sees_a_row_before_it_is_known(tmp_path):
    root = write_sample_folder(tmp_path / "data", days=80)
    csv = tmp_path / "etf.csv"
    values = _series_csv(csv, days=80)
    decl = {"etf_flows": {"path": str(csv), "interval": "1d", "lag": "12h"}}
    full = load_frame("BTC-USD", "1d", data_dir=root, externals=["fng"], series=decl).frame
    for cut in ("2024-02-10T00:00Z", "2024-02-10T12:00Z", "2024-02-10T12:00:01Z"):
        part = load_frame("BTC-USD", "1d", data_dir=root, externals=["fng"], series=decl,
                          as_of=cut).frame
        # every value present under the cut equals the full-history value on that bar
        common = part.index
        a = part["etf_flows"].to_numpy()
        b = full.loc[common, "etf_flows"].to_numpy()
        ok = ~np.isnan(a)
        assert np.array_equal(a[ok], b[ok])
        # only rows known by the cut (stamp + 1d + 12h <= cut) are visible
        visible = set(part["etf_flows"].dropna().to_numpy())
        known_rows = values[values.index + pd.Timedelta(hours=36) <= pd.Timestamp(cut)]
        assert visible <= set(known_rows.to_numpy())
        # and the last closed bar holds the newest row known by its close
        last = part.index[-1]
        newest = values[values.index + pd.Timedelta(hours=36) <= last + pd.Timedelta(days=1)]
        assert part.loc[last, "etf_flows"] == newest.iloc[-1]


def test_bad_series_declarations_are_refused(tmp_path):
    csv = tmp_path / "x.csv"
    pd.DataFrame({"timestamp": ["2024-01-01", "2024-01-02"], "a": [1, 2], "b": [3, 4]}).to_csv(
        csv, index=False)
    root = write_sample_folder(tmp_path / "data", days=10)
    with pytest.raises(ConfigError, match="lower-case identifier"):
        load_frame("BTC-USD", "1d", data_dir=root, series={"ETF": {"path": str(csv)}})
    with pytest.raises(ConfigError, match="taken by a built-in column"):
        load_frame("BTC-USD", "1d", data_dir=root, series={"fng": {"path": str(csv)}})
    with pytest.raises(ConfigError, match="lag"):
        load_frame("BTC-USD", "1d", data_dir=root,
                   series={"x": {"path": str(csv), "lag": "-1h"}})
    with pytest.raises(DataError, match="2 value columns") as ei:
        load_frame("BTC-USD", "1d", data_dir=root, series={"x": {"path": str(csv)}})
    assert ei.value.file == str(csv)
    with pytest.raises(DataError, match="user series 'nope' not found") as ei:
        load_frame("BTC-USD", "1d", data_dir=root, series=["nope"])
    assert "--as nope" in ei.value.hint


def test_import_as_needs_a_file_and_a_file_needs_as(tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    csv = tmp_path / "etf.csv"
    _series_csv(csv, days=10)
    code, _, err = run(capsys, "data", "import", str(tmp_path / "folder"), "--as", "etf")
    assert code == 2 and "one CSV file, not a folder" in err
    code, _, err = run(capsys, "data", "import", str(csv))
    assert code == 3 and str(csv) in err and "--as NAME" in err
