"""Every script in benchmarks/ runs on a tiny size and writes the fields it promises.

The benchmarks are scripts nobody runs every day; these smoke runs keep them from rotting
(a renamed function, a moved module). No timing is asserted: the figures of a smoke run are
not meant to be quoted. Where a benchmark reports a count (bars, trades, configurations,
trials), it is checked against flushback's own public functions computed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
PEERS_PYTHON = os.environ.get("FLUSHBACK_PEERS_PYTHON", "/work/venv-peers/bin/python")


def _run(tmp_path: Path, script: str, *args: str, timeout: int = 900) -> str:
    env = {**os.environ, "FLUSHBACK_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{script} failed:\n{out.stderr[-3000:]}"
    return out.stdout


def _table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header line starts with ``header_start``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _number(cell: str) -> float:
    return float(cell.replace(",", "").split()[0])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_bench_backtest_quick(tmp_path, shared_data_dir):
    import flushback as fb

    md = tmp_path / "backtest.md"
    stdout = _run(tmp_path, "bench_backtest.py", "--data-dir", str(shared_data_dir), "--quick",
                  "--write", str(md))
    row, _ = json.JSONDecoder().raw_decode(stdout)
    promised = {"case", "overrides", "symbol", "interval", "start", "end", "bars", "trades",
                "load_s", "run_backtest_s", "write_run_s", "strategy_s_best",
                "strategy_bars_per_s", "empty_strategy_bars_per_s", "rss_before_mb",
                "rss_backtest_mb", "rss_peak_mb"}
    assert promised <= set(row)
    assert all(_is_number(row[k]) for k in promised - {"case", "overrides", "symbol",
                                                        "interval", "start", "end"})
    # the same case through the public API: the same window and trades
    res = fb.backtest(row["case"], set=row["overrides"], data_dir=str(shared_data_dir))
    assert row["bars"] == len(res.equity)
    assert row["trades"] == int(res.metrics["n_trades"]) == len(res.trades)
    assert row["start"] == str(res.equity.index[0]) and row["end"] == str(res.equity.index[-1])
    table = _table_rows(md.read_text(), "| case |")
    assert len(table) == 1 and table[0][0].startswith(row["case"])
    assert _number(table[0][2]) == row["bars"] and _number(table[0][3]) == row["trades"]


def test_bench_optimize_smoke(tmp_path, shared_data_dir):
    out = tmp_path / "optimize.json"
    _run(tmp_path, "bench_optimize.py", "--data-dir", str(shared_data_dir), "--smoke",
         "--out", str(out))
    doc = json.loads(out.read_text())
    assert {"machine", "ceiling_parameters", "runs", "split", "bookkeeping", "memory"} <= set(doc)
    (run,) = doc["runs"]
    assert {"spec", "workers", "trials", "complete", "wall_seconds", "trials_per_second",
            "trials_per_second_incl_startup", "train_bars", "mean_seconds_in_trial",
            "peak_rss_mb_main", "peak_rss_mb_workers", "ceiling_trials_per_second",
            "share_of_ceiling_median", "repeats"} <= set(run)
    assert run["workers"] == 1 and run["complete"] == run["trials"] == 6
    assert set(run["mean_seconds_in_trial"]) == {"sampling", "backtest", "trial"}
    split = doc["split"][run["spec"]]
    assert {"sampling", "spec_overrides", "signals", "signals_reused", "engine", "metrics",
            "run_backtest_total", "bars"} <= set(split)
    # the study and the per-stage split time the same training window
    assert split["bars"] == run["train_bars"] == _train_bars(run["spec"], shared_data_dir)
    assert [b["storage"] for b in doc["bookkeeping"]] == ["journal", "sqlite"]
    assert all(b["trials"] == 10 and _is_number(b["wall_ms_per_trial"])
               for b in doc["bookkeeping"])
    assert doc["memory"]["trials"] == 12
    assert sorted(int(k) for k in doc["memory"]["rss_mb_after_trials"]) == [3, 6, 10, 12]


def _train_bars(spec: str, data_dir: Path) -> int:
    """Bars of the default hold-out training window (the first 70 % of the backtest's)."""
    import flushback as fb

    n = len(fb.backtest(spec, data_dir=str(data_dir)).equity)
    return int(round(n * (1 - 0.3)))


def _peers_available() -> bool:
    if not Path(PEERS_PYTHON).exists():
        return False
    probe = subprocess.run([PEERS_PYTHON, "-c", "import vectorbt, backtesting"],
                           capture_output=True, timeout=300)
    return probe.returncode == 0


def test_bench_fast_engine_smoke(tmp_path, shared_data_dir):
    from flushback.data import load_frame

    out = tmp_path / "fast_engine.json"
    peers = _peers_available()
    _run(tmp_path, "bench_fast_engine.py", "--data-dir", str(shared_data_dir), "--smoke",
         "--out", str(out), "--peers-python",
         PEERS_PYTHON if peers else str(tmp_path / "no-peers-python"), timeout=1500)
    doc = json.loads(out.read_text())
    assert {"machine", "ratio", "started", "engine_alone", "grid"} <= set(doc)
    (row,) = doc["ratio"]
    assert (row["sampler"], row["trials"], row["workers"]) == ("tpe", 8, 1)
    assert {"finished", "wall_seconds", "load_seconds", "trials_per_second",
            "trials_per_second_incl_startup", "mean_seconds", "training_bars"} <= set(
        row["flushback"])
    assert row["flushback"]["finished"] == 8
    for ref in ("zero_cost", "zero_cost_own_sampler"):
        assert {"wall_seconds", "trials_per_second"} <= set(row[ref])
    assert _is_number(row["ratio"]) and _is_number(row["ratio_own_sampler"])
    # TPE: optuna's TPE replayed over the study's own history
    assert _is_number(row["flushback"]["replayed_sampler_trials_per_second"])
    assert _is_number(row["ratio_replayed"]) and len(row["ratios"]) == 1
    engine = doc["engine_alone"]
    assert {"bars", "configs", "seconds", "bars_per_second", "mean_trades"} <= set(engine)
    hourly = load_frame("BTCUSDT", "1h", externals=(), start="2026-01-01",
                        data_dir=shared_data_dir).frame
    assert engine["configs"] == 4 and engine["bars"] == len(hourly)
    grid = doc["grid"]
    assert {"configs", "seconds", "configs_per_second", "bars"} <= set(grid["flushback"])
    assert grid["flushback"]["configs"] == 4
    daily = load_frame("BTC-USD", "1d", externals=(), start="2014-09-17",
                       data_dir=shared_data_dir).frame
    assert grid["flushback"]["bars"] == len(daily)
    if peers:  # vectorbt and backtesting.py live in their own virtual environment
        assert grid["bars"] == len(daily)
        for name in ("vectorbt", "backtesting.py"):
            assert grid[name]["configs"] == 4, grid
            assert _is_number(grid[name]["configs_per_second"])
    else:
        assert "peers_error" in grid
    md = out.with_suffix(".md").read_text()
    assert "## The engine alone" in md and "## Against the targets" in md
    assert _table_rows(md, "| library |")[0][0] == "flushback"


def test_peers_grid_smoke(tmp_path, shared_data_dir):
    if not _peers_available():
        pytest.skip(f"no Python with vectorbt and backtesting.py at {PEERS_PYTHON} "
                    "(set FLUSHBACK_PEERS_PYTHON)")
    out = subprocess.run([PEERS_PYTHON, str(BENCH / "peers_grid.py"), str(shared_data_dir),
                          "--smoke"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert "vectorbt_error" not in doc and "backtesting_error" not in doc, doc
    assert doc["vectorbt"]["configs"] == doc["backtesting.py"]["configs"] == 4
    assert doc["vectorbt"]["finite_sharpes"] <= 4


def test_bench_structure_smoke(tmp_path, shared_data_dir):
    from flushback.data import load_frame

    stdout = _run(tmp_path, "bench_structure.py", "--data-dir", str(shared_data_dir), "--smoke")
    rows = _table_rows(stdout, "| data |")
    hourly = load_frame("BTCUSDT", "1h", externals=(), start="2026-01-01",
                        data_dir=shared_data_dir).frame
    assert [(r[0], _number(r[1]), r[2], r[3]) for r in rows] == [
        ("synthetic 1h", 2000, "3", "120"), ("synthetic 1h", 2000, "5", "500"),
        ("BTCUSDT 1h", len(hourly), "3", "120"), ("BTCUSDT 1h", len(hourly), "5", "500")]
    assert all(_number(r[4]) >= 0 and _number(r[5]) > 0 for r in rows)


def test_report_sizes_smoke(tmp_path, shared_data_dir):
    import flushback as fb

    md = tmp_path / "sizes.md"
    _run(tmp_path, "report_sizes.py", "--data-dir", str(shared_data_dir), "--spec",
         "fear_flush_btc_daily", "--write", str(md))
    (row,) = _table_rows(md.read_text(), "| spec |")
    assert row[0] == "fear_flush_btc_daily (1d)"
    res = fb.backtest("fear_flush_btc_daily", data_dir=str(shared_data_dir))
    assert _number(row[1]) == len(res.equity)
    # report.html, report.json, bars.parquet, the CSVs, then the html target and whether met
    assert all(cell.endswith(" MB") and _number(cell) > 0 for cell in row[2:6])
    assert row[6] == "2.5 MB"
    assert row[7] == ("yes" if _number(row[2]) <= 2.5 else "**no**")
