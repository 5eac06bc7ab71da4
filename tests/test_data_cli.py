"""``flushback data import|fetch|list|validate`` and every bad input through the CLI."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from flushback.backtests.cli import main
from flushback.data.store import Store
from flushback.data.synthetic import write_sample_folder

GOOD_HEADER = "timestamp,open,high,low,close,volume"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_list_and_second_import_noop(tmp_path, capsys):
    root = write_sample_folder(tmp_path / "data", days=20)
    code, out, err = run(capsys, "data", "import", str(root), "--format", "json")
    assert code == 0, err
    first = {d["id"]: d for d in json.loads(out)["datasets"]}
    assert {d["status"] for d in first.values()} == {"new"}
    assert first["prices/BTC-USD_1d"]["rows"] == 20
    code, out, _ = run(capsys, "data", "import", str(root), "--format", "json")
    second = {d["id"]: d for d in json.loads(out)["datasets"]}
    assert {d["status"] for d in second.values()} == {"unchanged"}
    assert {k: v["fingerprint"] for k, v in first.items()} == {
        k: v["fingerprint"] for k, v in second.items()}
    code, out, _ = run(capsys, "data", "list", "--format", "json")
    listed = {d["id"]: d for d in json.loads(out)["datasets"]}
    assert set(listed) == set(first)
    d = listed["prices/BTC-USD_1h"]
    assert (d["source"], d["interval"], d["rows"], d["gaps"]) == ("yahoo", "1h", 480, 0)
    assert d["first"] == "2024-01-01T00:00:00Z" and d["last"] == "2024-01-20T23:00:00Z"
    code, out, _ = run(capsys, "data", "list")
    assert code == 0 and "prices/BTC-USD_1d" in out and first["prices/BTC-USD_1d"][
        "fingerprint"][:12] in out


def test_list_empty_store(capsys):
    code, out, _ = run(capsys, "data", "list")
    assert code == 0 and "no datasets" in out


def test_validate_store_and_folder_ok(tmp_path, capsys):
    root = write_sample_folder(tmp_path / "data", days=20)
    assert run(capsys, "data", "import", str(root))[0] == 0
    code, out, err = run(capsys, "data", "validate", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["ok"] is True
    code, out, err = run(capsys, "data", "validate", str(root))
    assert code == 0 and err == ""


def test_fetch_unreachable_source_one_line_and_store_unchanged(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FLUSHBACK_OFFLINE")  # online: the source itself must fail
    root = write_sample_folder(tmp_path / "data", days=20)
    run(capsys, "data", "import", str(root))
    manifest = Store().manifest_path.read_bytes()
    import yfinance

    def offline_download(symbol, **kw):  # what yfinance does without a network
        logging.getLogger("yfinance").error(
            "['BTC-USD']: DNSError('Failed to perform, curl: (6) Could not resolve host: "
            "query2.finance.yahoo.com. See https://curl.se/ for more details.')")
        import pandas as pd
        return pd.DataFrame()

    monkeypatch.setattr(yfinance, "download", offline_download)
    code, out, err = run(capsys, "data", "fetch", "yfinance", "BTC-USD")
    assert code == 4
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Could not resolve host" in lines[0]
    assert "BTC-USD" in lines[0]
    assert Store().manifest_path.read_bytes() == manifest


def test_fetch_offline_flag_never_touches_network(capsys, monkeypatch):
    import yfinance

    def boom(*a, **k):
        raise AssertionError("network touched")

    monkeypatch.setattr(yfinance, "download", boom)
    code, _, err = run(capsys, "--offline", "data", "fetch", "yfinance", "BTC-USD")
    assert code == 4 and err.count("\n") == 1 and "offline" in err
    assert not Store().manifest_path.exists()


def test_fetch_unknown_source_is_config_error(capsys):
    code, _, err = run(capsys, "data", "fetch", "yahooo", "BTC-USD")
    assert code == 2 and "did you mean" in err


# ------------------------------------------------------------------ bad inputs

BAD_FILES = {
    # name: (content, expected column, expected timestamp text, message fragment)
    "malformed": (f"{GOOD_HEADER}\n2024-01-01,1,2,0.5,1.5,10,7\n", None, None, "malformed CSV"),
    "missing_column": ("timestamp,open,high,close,volume\n2024-01-01,1,2,1.5,10\n", "low",
                       None, "missing required column"),
    "empty": (f"{GOOD_HEADER}\n", None, None, "empty data"),
    "nan_ohlc": (f"{GOOD_HEADER}\n2024-01-01,1,2,0.5,1.5,1\n2024-01-02,1,2,,1.5,1\n", "low",
                 "2024-01-02", "NaN"),
    "duplicated": (f"{GOOD_HEADER}\n2024-01-01,1,2,0.5,1.5,1\n2024-01-01,1,2,0.5,1.5,1\n",
                   "timestamp", "2024-01-01", "duplicated"),
    "unsorted": (f"{GOOD_HEADER}\n2024-01-02,1,2,0.5,1.5,1\n2024-01-01,1,2,0.5,1.5,1\n",
                 "timestamp", "2024-01-01", "unsorted"),
    "gap": (f"{GOOD_HEADER}\n2024-01-01,1,2,0.5,1.5,1\n2024-01-09,1,2,0.5,1.5,1\n",
            "timestamp", "2024-01-02", "gaps"),
    "naive": (f"{GOOD_HEADER}\n2024-01-01 00:00:00,1,2,0.5,1.5,1\n", "timestamp",
              "2024-01-01 00:00:00", "naive"),
    "nonpositive": (f"{GOOD_HEADER}\n2024-01-01,1,2,0.5,1.5,1\n2024-01-02,0,2,0,1.5,1\n", "open",
                    "2024-01-02", "zero or negative"),
    "high_low": (f"{GOOD_HEADER}\n2024-01-01,1,0.4,0.5,0.45,1\n", "high", "2024-01-01",
                 "high < low"),
    "close_outside": (f"{GOOD_HEADER}\n2024-01-01,1,2,0.5,3,1\n", "close", "2024-01-01",
                      "close outside"),
}


def _write_bad(tmp_path: Path, name: str) -> Path:
    content = BAD_FILES[name][0]
    interval = "1h" if name == "naive" else "1d"
    p = tmp_path / name / f"BTC-USD_{interval}.csv"
    p.parent.mkdir(parents=True)
    p.write_text(content)
    return p


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_validate_bad_input_names_file_column_timestamp(tmp_path, capsys, name):
    _, column, stamp, fragment = BAD_FILES[name]
    p = _write_bad(tmp_path, name)
    code, _, err = run(capsys, "data", "validate", str(p))
    assert code == 3, err
    line = err.strip()
    assert len(line.splitlines()) == 1
    assert str(p) in line and fragment in line
    if column:
        assert f"column '{column}'" in line
    if stamp:
        assert stamp in line


@pytest.mark.parametrize("name", ["nan_ohlc", "high_low", "unsorted", "malformed"])
def test_import_bad_input_refused_and_nothing_imported(tmp_path, capsys, name):
    root = write_sample_folder(tmp_path / "data", days=10)
    content = BAD_FILES[name][0]
    bad = root / "prices" / "BTC-USD_1d.csv"
    bad.write_text(content)
    code, _, err = run(capsys, "data", "import", str(root))
    assert code == 3 and str(bad) in err and "nothing was imported" in err
    assert Store().ids() == []


def test_validate_unknown_interval_and_symbol(tmp_path, capsys):
    p = tmp_path / "prices" / "BTC-USD_15m.csv"
    p.parent.mkdir()
    p.write_text(f"{GOOD_HEADER}\n2024-01-01T00:00:00Z,1,2,0.5,1.5,1\n")
    code, _, err = run(capsys, "data", "validate", str(p))
    assert code == 3 and str(p) in err
    code, _, err = run(capsys, "data", "import", str(tmp_path))
    assert code == 3 and "BTC-USD_15m.csv" in err


def test_validate_stale_external_strict(tmp_path, capsys):
    p = tmp_path / "sentiment" / "crypto_fear_greed.csv"
    p.parent.mkdir()
    p.write_text("date,value\n2024-01-01,10\n2024-01-02,20\n2024-01-09,30\n")
    code, out, err = run(capsys, "data", "validate", str(p))
    assert code == 0 and "staleness" in out
    code, _, err = run(capsys, "data", "validate", "--strict", str(p))
    assert code == 3 and "column 'fng'" in err and "2024-01-03" in err and str(p) in err


def test_validate_missing_path(capsys, tmp_path):
    code, _, err = run(capsys, "data", "validate", str(tmp_path / "nope.csv"))
    assert code == 3 and "not found" in err


def test_console_script_help_and_offline_fetch(tmp_path):
    exe = Path(sys.executable).parent / "flushback"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    out = subprocess.run([str(exe), "data", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("import", "fetch", "list", "validate"):
        assert cmd in out.stdout
    env = {"FLUSHBACK_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(exe), "--offline", "data", "fetch", "yfinance", "BTC-USD"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 4 and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_fetch_yfinance_stores_then_updates_incrementally(capsys, monkeypatch):
    monkeypatch.delenv("FLUSHBACK_OFFLINE")  # online, against a simulated yfinance
    import pandas as pd
    import yfinance

    calls = []

    def download(symbol, start=None, **kw):
        calls.append(start)
        days = pd.date_range(start or "2025-01-01", "2025-01-10", freq="1D", name="Date")
        base = [100.0 + i for i in range((days - pd.Timestamp("2025-01-01")).days.max() + 1)]
        base = base[-len(days):]
        df = pd.DataFrame({"Open": base, "High": [b + 2 for b in base],
                           "Low": [b - 2 for b in base], "Close": base,
                           "Adj Close": base, "Volume": 1.0}, index=days)
        df.columns = pd.MultiIndex.from_product([df.columns, [symbol]])
        return df

    monkeypatch.setattr(yfinance, "download", download)
    code, out, err = run(capsys, "data", "fetch", "yfinance", "BTC-USD", "--start", "2025-01-01",
                         "--format", "json")
    assert code == 0, err
    first = json.loads(out)[0]
    assert first["status"] == "new" and first["rows"] == 10
    code, out, err = run(capsys, "data", "fetch", "yfinance", "BTC-USD", "--format", "json")
    assert code == 0, err
    # the second call re-fetches from two days before the last stored bar only
    assert calls == ["2025-01-01", "2025-01-08"]
    assert json.loads(out)[0]["status"] == "unchanged"
