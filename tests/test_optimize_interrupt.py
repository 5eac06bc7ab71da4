"""``flushback optimize`` without a terminal, and interrupted with Ctrl-C.

Piped, it prints a plain progress line per fold and every ~5 % of the trials on stderr (a rich
bar prints nothing there). SIGINT ends it with exit code 130 and a message that says how many
trials are saved, in which storage and study, and the exact command that resumes; running that
command finishes the study without repeating the saved trials (counted in the journal storage
with optuna directly). The summary prints fold windows as dates and explains DSR and PBO.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SPEC = "fear_flush_btc_daily"
TRIALS = 40


def _finished(storage: Path) -> tuple[int, list[str]]:
    import optuna

    st = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage)))
    done, names = 0, []
    for s in optuna.get_all_study_summaries(st):
        names.append(s.study_name)
        study = optuna.load_study(study_name=s.study_name, storage=st)
        done += sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    return done, names


def test_piped_progress_ctrl_c_and_resume(shared_data_dir, tmp_path):
    exe = Path(sys.executable).with_name("flushback")
    env = {**os.environ, "FLUSHBACK_HOME": str(tmp_path / "home"), "FLUSHBACK_OFFLINE": "1"}
    # backtrader trials (~20/s) written 4 at a time leave time to interrupt mid-study; the
    # fast engine would finish the study before the signal arrives
    argv = ["--data-dir", str(shared_data_dir), "optimize", SPEC, "--trials", str(TRIALS),
            "--walk-forward", "2", "--seed", "3", "--engine", "backtrader", "--batch", "4"]
    proc = subprocess.Popen([str(exe), *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 300
        while True:  # wait for a progress line showing some finished trials of fold 1
            line = proc.stderr.readline()
            assert line, "optimize ended before printing progress: " + "".join(lines)
            lines.append(line)
            m = re.match(r"optimize \(fold 1/2\): (\d+)/(\d+) trials", line)
            if m and int(m.group(1)) >= 4:
                break
            assert time.monotonic() < deadline
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert int(lines[-1].split(": ")[1].split("/")[1].split()[0]) == 2 * TRIALS
    storage = tmp_path / "home" / "runs" / "optuna-journal.log"
    done, names = _finished(storage)
    assert 4 <= done < 2 * TRIALS
    msg = err.strip()
    assert "Traceback" not in msg
    assert f"interrupted: {done} of {2 * TRIALS} trials finished and are saved" in msg
    assert str(storage) in msg and all(n in msg for n in names)
    command = msg.splitlines()[-1].strip()
    assert command == shlex.join(["flushback", *argv])

    # the printed command resumes: the study ends with exactly the budget, nothing repeated
    resumed = subprocess.run([str(exe), *shlex.split(command)[1:]], env=env,
                             capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert _finished(storage)[0] == 2 * TRIALS
    progress = [x for x in resumed.stderr.splitlines() if x.startswith("optimize")]
    assert progress and "fold 2/2" in "".join(progress)
    assert progress[-1].startswith(f"optimize: {2 * TRIALS}/{2 * TRIALS} trials")

    out = resumed.stdout
    spans = re.findall(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", out)
    assert len(spans) == 4  # train and test of each fold, as dates
    assert spans[0][0] == "2018-02-01"  # the spec's data.start: anchored training windows
    assert not re.search(r"\b\d{6}-\d{6}\b", out)  # no yymmdd-yymmdd
    assert "Deflated Sharpe Ratio" in out and "luck of trying N parameter sets" in out
    assert "PBO" in out and "bottom half out-of-sample" in out


def test_ctrl_c_with_worker_processes_is_one_message(shared_data_dir, tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: the worker processes stop without
    a traceback each and the command reports once."""
    exe = Path(sys.executable).with_name("flushback")
    env = {**os.environ, "FLUSHBACK_HOME": str(tmp_path / "home"), "FLUSHBACK_OFFLINE": "1"}
    proc = subprocess.Popen(
        [str(exe), "--data-dir", str(shared_data_dir), "optimize", SPEC, "--trials", "400",
         "--workers", "2", "--engine", "backtrader"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    try:
        while True:
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
            m = re.match(r"optimize \(fold 1/1\): (\d+)/400 trials", line)
            if m and int(m.group(1)) >= 4:
                break
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    done, _ = _finished(tmp_path / "home" / "runs" / "optuna-journal.log")
    assert err.count("interrupted: ") == 1
    assert f"interrupted: {done} of 400 trials finished and are saved" in err
