"""``flushback runs list|show|rm|gc`` and the run identity in ``compare``.

Two runs of one spec that differ only by ``--set`` must be told apart everywhere a run is
listed (created time, kind, spec, window and the overrides); ``runs gc`` removes the hidden
temporary folder a backtest killed mid-write leaves in runs/ (made here by SIGKILLing a real
backtest while it writes report.html), and nothing else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flushback.backtests.cli import main
from flushback.backtests.run.folders import TEMP_DIR_RE

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SPEC = "fear_flush_btc_daily"


def _backtest(capsys, data_dir, runs, *extra) -> dict:
    code = main(["--data-dir", str(data_dir), "backtest", SPEC, "--since", "2024-01-01",
                 "--format", "json", "--runs-dir", str(runs), *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_runs_of_one_spec_with_different_set_values_are_told_apart(
        shared_data_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    a = _backtest(capsys, shared_data_dir, runs, "--set", "strategy.stop_loss=0.1")
    b = _backtest(capsys, shared_data_dir, runs, "--set", "strategy.stop_loss=0.3",
                  "--set", "costs.commission=0.002")
    assert a["run_id"] != b["run_id"]

    code, out, _ = _cli(capsys, "runs", "list", "--runs-dir", str(runs), "--format", "json")
    listed = {r["run_id"]: r for r in json.loads(out)["runs"]}
    assert listed[a["run_id"]]["overrides"] == ["strategy.stop_loss=0.1"]
    assert listed[b["run_id"]]["overrides"] == ["strategy.stop_loss=0.3",
                                                "costs.commission=0.002"]
    for r in listed.values():
        assert r["kind"] == "backtest" and r["spec"] == SPEC
        assert r["start"].startswith("2024-01-01") and r["created_at"].endswith("Z")

    code, out, _ = _cli(capsys, "runs", "list", "--runs-dir", str(runs))
    assert code == 0
    for run_id in (a["run_id"], b["run_id"]):
        assert run_id in out
    assert "--set strategy.stop_loss=0.1" in out and "--set strategy.stop_loss=0.3" in out
    assert "2024-01-01→" in out and "backtest" in out

    code, out, _ = _cli(capsys, "compare", a["run_id"], b["run_id"], "--runs-dir", str(runs),
                        "--resamples", "50")
    assert code == 0
    assert f"{SPEC} [strategy.stop_loss=0.1]" in out
    assert f"{SPEC} [strategy.stop_loss=0.3 costs.commission=0.002]" in out
    code, out, _ = _cli(capsys, "compare", a["run_id"], b["run_id"], "--runs-dir", str(runs),
                        "--resamples", "50", "--format", "json")
    rows = json.loads(out)["runs"]
    assert [r["overrides"] for r in rows] == [["strategy.stop_loss=0.1"],
                                              ["strategy.stop_loss=0.3",
                                               "costs.commission=0.002"]]
    assert all(r["kind"] == "backtest" and r["created_at"] for r in rows)

    code, out, _ = _cli(capsys, "runs", "show", a["run_id"][:8], "--runs-dir", str(runs))
    assert code == 0
    for text in (a["run_id"], SPEC, "strategy.stop_loss=0.1", "2024-01-01", "report.html",
                 "trades.csv"):
        assert text in out

    # rm: an unknown name deletes nothing; known names delete their folders only
    code, _, err = _cli(capsys, "runs", "rm", a["run_id"], "ffffffffffff", "--runs-dir",
                        str(runs))
    assert code == 3 and "no run or report 'ffffffffffff'" in err
    assert (runs / a["run_id"]).is_dir()
    code, out, _ = _cli(capsys, "runs", "rm", a["run_id"], "--runs-dir", str(runs))
    assert code == 0 and f"removed {runs / a['run_id']}" in out
    assert not (runs / a["run_id"]).exists() and (runs / b["run_id"]).is_dir()


_KILLED_WRITER = """
import sys, time
from pathlib import Path
from flushback.backtests.reports import html as report_html
def stuck(doc, path):
    Path(sys.argv[1]).write_text(str(path))
    time.sleep(120)
report_html.render_report_html = stuck
from flushback.backtests.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_gc_removes_the_temporary_folder_of_a_killed_backtest(shared_data_dir, tmp_path,
                                                              capsys):
    runs = tmp_path / "runs"
    kept = _backtest(capsys, shared_data_dir, runs)
    marker = tmp_path / "writing"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(marker), "--data-dir", str(shared_data_dir),
         "backtest", SPEC, "--since", "2025-01-01", "--runs-dir", str(runs)],
        env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    orphans = [p for p in runs.iterdir() if TEMP_DIR_RE.match(p.name)]
    assert len(orphans) == 1 and Path(marker.read_text()).parent == orphans[0]
    assert (orphans[0] / "report.json").is_file()  # half a run: written up to the HTML

    # a broken run folder (its report.json damaged) is cleaned too; a fresh temp folder
    # (a write that may still be running) is kept within the grace period
    broken = runs / "0123456789abcdef"
    broken.mkdir()
    (broken / "report.json").write_text("{not json")
    young = runs / ".fedcba9876543210.x1y2z3"
    young.mkdir()

    code, out, _ = _cli(capsys, "runs", "gc", "--dry-run", "--grace", "0",
                        "--runs-dir", str(runs))
    assert code == 0 and f"would remove {orphans[0]}" in out and orphans[0].exists()
    old = time.time() - 3600
    for p in [orphans[0], *orphans[0].rglob("*")]:
        os.utime(p, (old, old))
    code, out, _ = _cli(capsys, "runs", "gc", "--runs-dir", str(runs))
    assert code == 0
    assert f"removed {orphans[0]}" in out and f"removed {broken}" in out
    assert not orphans[0].exists() and not broken.exists()
    assert young.exists() and (runs / kept["run_id"] / "report.json").is_file()
    code, out, _ = _cli(capsys, "runs", "list", "--runs-dir", str(runs), "--format", "json")
    assert [r["run_id"] for r in json.loads(out)["runs"]] == [kept["run_id"]]
