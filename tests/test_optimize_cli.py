"""``flushback optimize`` end to end: errors, the search space, and a small real-data study
whose report is out-of-sample, with IS vs OOS per fold, DSR and PBO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.cli import main


def test_unknown_objective_is_a_config_error(capsys, shared_data_dir):
    code = main(["--data-dir", str(shared_data_dir), "optimize", "fear_flush_btc_daily",
                 "--objective", "sharpee", "--trials", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean 'sharpe'" in err


def test_show_space_lists_declared_ranges_narrowed_by_the_spec(capsys, shared_data_dir):
    code = main(["--data-dir", str(shared_data_dir), "optimize", "fear_flush_btc_daily",
                 "--show-space", "--format", "json"])
    assert code == 0
    space = json.loads(capsys.readouterr().out)
    by = {p["name"]: p for p in space["params"]}
    # narrowed by the spec's [search] table
    assert (by["strategy.hold_bars"]["low"], by["strategy.hold_bars"]["high"]) == (5, 180)
    # declared by the signal (extreme_fear threshold range)
    from flushback.signals import get_signal

    decl = get_signal("extreme_fear").search_space()["threshold"]
    assert by["signals.entry.of.0.threshold"]["low"] == decl.low
    assert by["signals.entry.of.0.threshold"]["high"] == decl.high


@pytest.mark.realdata
@pytest.mark.slow
def test_walk_forward_study_on_real_data_reports_out_of_sample(capsys, shared_data_dir,
                                                               tmp_path):
    from flushback.backtests.run.folders import load_report
    from flushback.backtests.run.metrics import compute_metrics

    storage = str(tmp_path / "study.log")
    args = ["--data-dir", str(shared_data_dir), "optimize", "fear_flush_btc_daily",
            "--trials", "10", "--walk-forward", "2", "--seed", "4", "--storage", storage,
            "--format", "json", "--min-trades", "0"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    rep = load_report(out["run_dir"])
    assert rep["kind"] == "optimization"
    sec = rep["optimization"]
    from flushback.backtests.optimize.study import validate_optimization_section
    from flushback.data.errors import ConfigError

    validate_optimization_section(sec)  # the section's own model, read back from disk
    with pytest.raises(ConfigError, match="result_is_out_of_sample"):
        validate_optimization_section({**sec, "result_is_out_of_sample": False})
    assert sec["result_is_out_of_sample"] is True
    assert len(sec["is_vs_oos"]) == 2
    for row in sec["is_vs_oos"]:
        assert row["in_sample"]["sharpe"] is not None
        assert "sharpe" in row["out_of_sample"]
        assert 0.0 <= row["pbo"] <= 1.0
        assert 0.0 <= row["dsr"] <= 1.0
        assert row["train"][1] < row["test"][0]
    # the DSR's N: the last fold's 10 trials, less those that never traded (no Sharpe ratio)
    last_fold = [t for t in sec["trials"] if t["fold"] == 2 and t["state"] == "COMPLETE"]
    no_trades = sum(1 for t in last_fold if t["train_metrics"].get("sharpe") is None)
    assert sec["dsr"]["n_trials"] == 10 - no_trades
    assert sec["dsr"]["n_excluded_no_trades"] == no_trades
    assert sum(1 for t in sec["trials"] if t["state"] == "COMPLETE") == 20
    # the report's equity is the stitched test windows only: it starts at fold 1's test start
    first_test = sec["fold_boundaries"][0]["test_start"]
    assert rep["equity"][0]["timestamp"] == first_test
    assert rep["equity"][-1]["timestamp"] == sec["fold_boundaries"][-1]["test_end"]
    # ...and its headline metrics are recomputed from that equity, not in-sample numbers
    eq = pd.Series([p["equity"] for p in rep["equity"]],
                   index=pd.to_datetime([p["timestamp"] for p in rep["equity"]]))
    m = compute_metrics(eq, None, 365)
    assert rep["metrics"]["total_return"] == pytest.approx(m["total_return"], rel=1e-9)
    assert rep["metrics"]["sharpe"] == pytest.approx(m["sharpe"], rel=1e-9)
    # stitching: fold 2's test equity continues where fold 1's ended (returns compound)
    f2 = pd.Timestamp(sec["fold_boundaries"][1]["test_start"])
    pos = eq.index.get_loc(f2.tz_localize(None) if eq.index.tz is None else f2)
    assert np.isfinite(eq.iloc[pos]) and eq.iloc[pos - 1] > 0
    # the same command again resumes the finished studies: nothing new is run
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["best_params"] == out["best_params"]
    assert again["run_id"] == out["run_id"]


@pytest.mark.realdata
def test_reusing_a_study_name_with_other_settings_is_refused(capsys, shared_data_dir,
                                                              tmp_path):
    storage = str(tmp_path / "s.log")
    base = ["--data-dir", str(shared_data_dir), "optimize", "fear_flush_btc_daily",
            "--storage", storage, "--study", "mine", "--trials", "1",
            "--train-until", "2024-01-01", "--format", "json"]
    assert main(base + ["--seed", "1"]) == 0
    capsys.readouterr()
    assert main(base + ["--seed", "2"]) == 2
    assert "created with other settings" in capsys.readouterr().err


@pytest.mark.realdata
@pytest.mark.slow
def test_same_seed_same_trials_in_fresh_cli_processes(shared_data_dir, tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    import optuna

    from flushback.backtests.optimize.storage import open_storage

    exe = shutil.which("flushback") or str(Path(sys.executable).with_name("flushback"))
    runs = []
    for name in ("a", "b"):
        storage = str(tmp_path / f"{name}.log")
        subprocess.run([exe, "--data-dir", str(shared_data_dir), "optimize",
                        "fear_flush_btc_daily", "--trials", "14", "--seed", "21",
                        "--train-until", "2023-06-30", "--storage", storage, "--study", "s",
                        "--format", "json"], check=True, capture_output=True, timeout=600,
                       env={**os.environ, "FLUSHBACK_HOME": str(tmp_path / name)})
        study = optuna.load_study(study_name="s", storage=open_storage(storage))
        runs.append([(t.params, t.value) for t in study.trials])
    assert len(runs[0]) == 14
    assert runs[0] == runs[1]


@pytest.mark.realdata
@pytest.mark.slow
def test_sigkilled_cli_study_on_real_data_resumes_to_the_uninterrupted_trials(shared_data_dir,
                                                                             tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import optuna

    from flushback.backtests.optimize.storage import open_storage

    exe = str(Path(sys.executable).with_name("flushback"))
    n = 240
    # written 8 at a time (a fast-engine study writes ~a second of trials at once: all of
    # them here), so that the kill lands mid-study with trials run but not yet written

    def cmd(storage):
        return [exe, "--data-dir", str(shared_data_dir), "optimize", "fear_flush_btc_daily",
                "--trials", str(n), "--seed", "8", "--train-until", "2023-06-30",
                "--storage", storage, "--study", "s", "--format", "json", "--min-trades", "0",
                "--batch", "8"]

    def trials(storage):
        return optuna.load_study(study_name="s", storage=open_storage(storage)).trials

    env = {**os.environ, "FLUSHBACK_HOME": str(tmp_path / "home")}
    ref, killed = str(tmp_path / "ref.log"), str(tmp_path / "killed.log")
    subprocess.run(cmd(ref), check=True, capture_output=True, env=env, timeout=600)
    proc = subprocess.Popen(cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    t0 = time.time()
    while time.time() - t0 < 300:
        try:
            if sum(t.state.name == "COMPLETE" for t in trials(killed)) >= 8:
                break
        except Exception:  # not created yet
            pass
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert sum(t.state.name == "COMPLETE" for t in trials(killed)) < n
    subprocess.run(cmd(killed), check=True, capture_output=True, env=env, timeout=600)
    after = trials(killed)
    states = [t.state.name for t in after]
    assert states.count("COMPLETE") == n and "RUNNING" not in states
    assert states.count("FAIL") <= 1  # the trial running at the kill, if any, failed...
    n_params = len(trials(ref)[0].params)
    for f in (t for t in after if t.state.name == "FAIL"):
        retries = sum(t.system_attrs.get("failed_trial") == f.number for t in after)
        # ...and was re-run once with its parameters -- unless the kill came inside `ask`,
        # before all were sampled: then the next ask samples the whole point afresh
        assert retries == (1 if len(f.params) == n_params else 0)
    sig = [(t.params, t.value) for t in after if t.state.name == "COMPLETE"]
    assert sig == [(t.params, t.value) for t in trials(ref)]
