"""Benchmark ``flushback optimize``: trials/s, peak memory, time per trial by stage, and the
ceiling backtrader itself sets for the same strategy.

    python benchmarks/bench_optimize.py --data-dir ../shared/data [--daily-trials 60]
        [--hourly-trials 12] [--out benchmarks/optimize.json]
    python benchmarks/bench_optimize.py --data-dir ../shared/data --smoke --out /tmp/o.json

``--smoke``: the daily spec only, 1 worker, a handful of trials, one repeat, short timings --
the same figures on a tiny size, to check the script still runs (not to quote).

For each spec (BTC daily fear+flush, BTC hourly 4h-RSI) and 1 and 2 workers, a fresh study on
the default hold-out split (training window = first 70 % of the bars) is run in its own
process; wall time of the study and peak RSS (the process and its workers) are recorded.

Time split per trial (measured in-process on the same training window, same sampled
parameters): sampling (optuna ask), signals (pandas; from scratch, and reusing earlier trials'
work through the runner's ``Prepared.signal_cache`` as a study does), engine (backtrader through
the adapter, signals precomputed), metrics, and the whole ``run_backtest`` as a study runs it.

The ceiling is backtrader alone: W processes at the same time, each running the engine on
the same window with the parameter sets the study just ran (the engine's cost depends on them:
parameters that trade more cost more) and the signals computed beforehand, outside the timing
(the bars validated once, as the runner does) -- what backtrader allows on this machine for
this strategy with the signals handed to it for free. flushback's share =
steady-state trials/s of ``run_study`` / ceiling, each flushback run paired with a ceiling
measurement right after it, median over the repeats (steady state: from the W-th completed
trial, i.e. after every worker has loaded its data, to the last; the rate including process
start-up and data loading is reported too).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

SPECS = ("fear_flush_btc_daily", "rsi4h_btc_hourly")


def _one(spec: str, workers: int, trials: int, data_dir: str, home: str) -> dict:
    """Run one study (called in a fresh process)."""
    warnings.simplefilter("ignore")
    os.environ["FLUSHBACK_HOME"] = home
    from flushback.backtests.optimize.config import StudyConfig
    from flushback.backtests.optimize.evaluator import SpecEvaluator
    from flushback.backtests.optimize.folds import make_folds
    from flushback.backtests.optimize.objectives import parse_objectives
    from flushback.backtests.optimize.space import build_search_space
    from flushback.backtests.optimize.storage import open_storage
    from flushback.backtests.optimize.workers import run_study

    ev = SpecEvaluator(spec, data_dir=data_dir)
    space = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys())
    folds = make_folds(ev.index)
    cfg = StudyConfig(
        evaluator_factory="flushback.backtests.optimize.study:spec_evaluator",
        evaluator_kwargs={"spec": spec, "overrides": [], "data_dir": data_dir},
        objectives=parse_objectives("sharpe"), space=space, folds=tuple(folds),
        n_trials=trials, storage_url=str(Path(home) / "bench.log"), study_name="bench",
        seed=1, workers=workers,
    )
    t0 = time.perf_counter()
    run_study(cfg, evaluator=ev)
    wall = time.perf_counter() - t0
    import optuna

    study = optuna.load_study(study_name="bench", storage=open_storage(cfg.storage_url))
    timings = [t.user_attrs.get("flushback", {}).get("timings", {}) for t in study.trials
               if t.state.name == "COMPLETE"]
    # the parameters the study ran: the ceiling runs the engine on exactly these
    (Path(home) / "params.json").write_text(json.dumps(
        [{**space.fixed, **t.params} for t in study.trials if t.state.name == "COMPLETE"]))
    done = sorted(t.datetime_complete for t in study.trials if t.state.name == "COMPLETE")
    # steady state: from the W-th completion (every worker has loaded its data) to the last
    span = (done[-1] - done[workers - 1]).total_seconds()
    steady = (len(done) - workers) / span if span > 0 else float("nan")
    mean = {k: sum(t.get(k, 0.0) for t in timings) / max(len(timings), 1)
            for k in ("sampling", "backtest", "trial")}
    return {
        "spec": spec, "workers": workers, "trials": trials,
        "complete": sum(1 for t in study.trials if t.state.name == "COMPLETE"),
        "wall_seconds": wall, "trials_per_second_incl_startup": trials / wall,
        "trials_per_second": steady,
        "train_bars": int(((ev.index >= folds[0].train_start)
                           & (ev.index <= folds[0].train_end)).sum()),
        "mean_seconds_in_trial": mean,
        "peak_rss_mb_main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_mb_workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _training_setup(spec: str, data_dir: str) -> tuple:
    """The evaluator, search space, hold-out fold and training-window view of a spec."""
    import optuna

    from flushback.backtests.optimize.evaluator import SpecEvaluator
    from flushback.backtests.optimize.folds import make_folds
    from flushback.backtests.optimize.space import build_search_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ev = SpecEvaluator(spec, data_dir=data_dir)
    space = build_search_space(ev.declared_space(), ev.search_table(),
                                   default_keys=ev.default_search_keys())
    (fold,) = make_folds(ev.index)
    return ev, space, fold, ev.window_view(fold.train_start, fold.train_end)


def _split(spec: str, data_dir: str, n: int) -> dict:
    """Per-stage seconds per trial on the training window, parameters sampled at random."""
    warnings.simplefilter("ignore")
    import optuna

    from flushback.backtests.run import runner
    from flushback.backtests.run.metrics import compute_metrics

    ev, space, fold, view = _training_setup(spec, data_dir)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3))
    ev.evaluate({}, fold.train_start, fold.train_end)  # warm caches (benchmark run)
    rows = []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask(space.distributions())
        t1 = time.perf_counter()
        sp = ev.spec.with_overrides(dict(trial.params))
        t2 = time.perf_counter()
        sig = runner.compute_signals(sp, view.frame)
        t3 = time.perf_counter()
        runner.compute_signals(sp, view.frame, view.signal_cache)
        t3c = time.perf_counter()
        window = view.window
        res = runner.run_strategy_window(sp.strategy, view.frame, window, sig, sp,
                                         ev.periods_per_year, validate=False)
        t4 = time.perf_counter()
        m = compute_metrics(res.equity["equity"], res.trades, ev.periods_per_year,
                            position=res.equity["position"])
        t5 = time.perf_counter()
        full = ev.evaluate(dict(trial.params), fold.train_start, fold.train_end)
        t6 = time.perf_counter()
        assert abs((full.metrics.get("sharpe") or 0) - (m.get("sharpe") or 0)) < 1e-9
        study.tell(trial, m.get("sharpe") or 0.0)
        rows.append({"sampling": t1 - t0, "spec_overrides": t2 - t1, "signals": t3 - t2,
                     "signals_reused": t3c - t3, "engine": t4 - t3c, "metrics": t5 - t4,
                     "run_backtest_total": t6 - t5})
    mean = {k: sum(r[k] for r in rows) / n for k in rows[0]}
    mean["bars"] = len(view.window)
    return mean


class _NoopEvaluator:
    """Returns flat equity at once: what is left is optuna + storage + flushback's loop."""

    periods_per_year = 365

    def __init__(self) -> None:
        import pandas as pd

        self.index = pd.date_range("2020-01-01", periods=1000, freq="D", tz="UTC")

    def evaluate(self, params, start, end, *, keep=False):
        import numpy as np

        from flushback.backtests.optimize.evaluator import Evaluation

        x = sum(float(v) for v in params.values())
        return Evaluation(metrics={"sharpe": -abs(x - 1.0)}, returns=np.zeros(700))

    def current_values(self) -> dict:
        return {}


def _bookkeeping(storage_kind: str, n: int, home: str) -> dict:
    """Per-trial cost of the study machinery alone (no backtest), journal vs SQLite."""
    warnings.simplefilter("ignore")
    from flushback.backtests.optimize.config import StudyConfig
    from flushback.backtests.optimize.folds import make_folds
    from flushback.backtests.optimize.objectives import parse_objectives
    from flushback.backtests.optimize.space import build_search_space
    from flushback.backtests.optimize.workers import run_study
    from flushback.signals.base import Param

    ev = _NoopEvaluator()
    declared = {f"p{i}": Param(float, 0.5, 0.0, 1.0) for i in range(5)}
    space = build_search_space(declared, None)
    url = (str(Path(home) / "b.log") if storage_kind == "journal"
           else f"sqlite:///{Path(home) / 'b.db'}")
    cfg = StudyConfig(
        evaluator_factory="x:y", evaluator_kwargs={}, objectives=parse_objectives("sharpe"),
        space=space, folds=tuple(make_folds(ev.index)), n_trials=n, storage_url=url,
        study_name="b", seed=1)
    t0, c0 = time.perf_counter(), time.process_time()
    run_study(cfg, evaluator=ev)
    return {"storage": storage_kind, "trials": n,
            "wall_ms_per_trial": (time.perf_counter() - t0) / n * 1000,
            "cpu_ms_per_trial": (time.process_time() - c0) / n * 1000}


def _engine_only(spec: str, data_dir: str, n: int, duration: float = 8.0,
                 params_file: str | None = None, offset: int = 0) -> dict:
    """Bare backtrader throughput for this strategy: signals precomputed outside the timing,
    only the engine (cerebro build + run through the adapter) is timed. With ``params_file``
    (a study's trials) the engine runs exactly those parameter sets, in order from
    ``offset``; otherwise ``n`` sets sampled at random."""
    warnings.simplefilter("ignore")
    import optuna

    from flushback.backtests.run import runner

    ev, space, fold, view = _training_setup(spec, data_dir)
    sampler = optuna.samplers.RandomSampler(seed=5)
    study = optuna.create_study(sampler=sampler)
    jobs = []
    if params_file:
        for params in json.loads(Path(params_file).read_text()):
            sp = ev.spec.with_overrides(params)
            jobs.append((sp, runner.compute_signals(sp, view.frame)))
        jobs = jobs[offset % len(jobs):] + jobs[:offset % len(jobs)]
    for _ in range(0 if params_file else n):
        trial = study.ask(space.distributions())
        sp = ev.spec.with_overrides(dict(trial.params))
        jobs.append((sp, runner.compute_signals(sp, view.frame)))
        study.tell(trial, 0.0)
    window = view.window
    runner.run_strategy_window(jobs[0][0].strategy, view.frame, window, jobs[0][1], jobs[0][0],
                               ev.periods_per_year, validate=False)  # warm-up
    print("ready", flush=True)
    sys.stdin.readline()  # all processes start timing together
    t0 = time.perf_counter()
    runs = 0
    while time.perf_counter() - t0 < duration:
        sp, sig = jobs[runs % len(jobs)]
        runner.run_strategy_window(sp.strategy, view.frame, window, sig, sp,
                                   ev.periods_per_year, validate=False)
        runs += 1
    dt = time.perf_counter() - t0
    return {"runs": runs, "seconds": dt, "trials_per_second": runs / dt}


def _ceiling(spec: str, data_dir: str, workers: int, n: int,
             params_file: str | None = None, duration: float = 8.0) -> float:
    """Engine-only trials/s with ``workers`` processes timing over the same 8 seconds (on the
    study's own parameter sets when ``params_file`` is given, each process from its own
    offset)."""
    extra = ["--params", params_file] if params_file else []
    procs = [subprocess.Popen([sys.executable, __file__, "--data-dir", data_dir, "--engine",
                               spec, str(min(n, 40)), "--offset", str(k * n // workers),
                               "--duration", str(duration), *extra], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
             for k in range(workers)]
    for p in procs:  # wait until every process has its data and signals ready
        while p.stdout.readline().strip() != "ready":
            pass
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    rates = []
    for p in procs:
        out, _ = p.communicate()
        rates.append(json.loads(out.strip().splitlines()[-1])["trials_per_second"])
    return float(sum(rates))


def _memory(spec: str, data_dir: str, n: int, home: str) -> dict:
    """RSS of one worker after k trials: flat means nothing of a trial is kept."""
    warnings.simplefilter("ignore")
    from flushback.backtests.optimize.config import StudyConfig
    from flushback.backtests.optimize.evaluator import SpecEvaluator
    from flushback.backtests.optimize.folds import make_folds
    from flushback.backtests.optimize.objectives import parse_objectives
    from flushback.backtests.optimize.space import build_search_space
    from flushback.backtests.optimize.workers import run_worker

    ev = SpecEvaluator(spec, data_dir=data_dir)
    space = build_search_space(ev.declared_space(), ev.search_table(),
                                   default_keys=ev.default_search_keys())
    cfg = StudyConfig(
        evaluator_factory="x:y", evaluator_kwargs={}, objectives=parse_objectives("sharpe"),
        space=space, folds=tuple(make_folds(ev.index)), n_trials=n,
        storage_url=str(Path(home) / "m.log"), study_name="m", seed=2)
    page = os.sysconf("SC_PAGE_SIZE")
    rss: dict[int, float] = {}
    count = [0]

    def on_trial(fold, outcome) -> None:
        count[0] += 1
        if count[0] in (10, n // 4, n // 2, n):
            with open("/proc/self/statm") as fh:
                rss[count[0]] = int(fh.read().split()[1]) * page / 2**20
    run_worker(cfg, evaluator=ev, on_trial=on_trial)
    return {"spec": spec, "trials": n, "rss_mb_after_trials": rss}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("FLUSHBACK_SHARED_DATA",
                                                         "../shared/data"))
    ap.add_argument("--daily-trials", type=int, default=60)
    ap.add_argument("--hourly-trials", type=int, default=12)
    ap.add_argument("--split-trials", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).with_name("optimize.json")))
    ap.add_argument("--one", nargs=3, metavar=("SPEC", "WORKERS", "TRIALS"))
    ap.add_argument("--split", metavar="SPEC")
    ap.add_argument("--home")
    ap.add_argument("--bookkeeping", metavar="STORAGE")
    ap.add_argument("--engine", nargs=2, metavar=("SPEC", "N"))
    ap.add_argument("--params", help="with --engine: a JSON list of a study's parameter sets")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--memory", nargs=2, metavar=("SPEC", "N"))
    ap.add_argument("--duration", type=float, default=8.0,
                    help="seconds each engine-only (ceiling) process times")
    ap.add_argument("--bookkeeping-trials", type=int, default=200)
    ap.add_argument("--memory-trials", type=int, default=400)
    ap.add_argument("--smoke", action="store_true",
                    help="the daily spec, 1 worker, a few trials, one repeat (a smoke run)")
    args = ap.parse_args()
    specs, worker_counts = SPECS, (1, 2)
    if args.smoke:
        specs, worker_counts = SPECS[:1], (1,)
        args.daily_trials, args.split_trials, args.repeat = 6, 2, 1
        args.duration, args.bookkeeping_trials, args.memory_trials = 0.5, 10, 12
    if args.memory:
        with tempfile.TemporaryDirectory() as home:
            print(json.dumps(_memory(args.memory[0], str(Path(args.data_dir).resolve()),
                                     int(args.memory[1]), home)))
        return
    if args.engine:
        print(json.dumps(_engine_only(args.engine[0], str(Path(args.data_dir).resolve()),
                                      int(args.engine[1]), duration=args.duration,
                                      params_file=args.params, offset=args.offset)))
        return
    if args.bookkeeping:
        with tempfile.TemporaryDirectory() as home:
            print(json.dumps(_bookkeeping(args.bookkeeping, args.bookkeeping_trials, home)))
        return
    data_dir = str(Path(args.data_dir).resolve())
    if args.one:
        spec, w, n = args.one
        print(json.dumps(_one(spec, int(w), int(n), data_dir, args.home)))
        return
    if args.split:
        print(json.dumps(_split(args.split, data_dir, args.split_trials)))
        return
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                 "ceiling_parameters": "the parameter sets each study ran",
                 "runs": [], "split": {}, "bookkeeping": []}
    for kind in ("journal", "sqlite"):
        res = subprocess.run([sys.executable, __file__, "--bookkeeping", kind,
                              "--bookkeeping-trials", str(args.bookkeeping_trials)],
                             check=True, capture_output=True, text=True)
        out["bookkeeping"].append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(out["bookkeeping"][-1], flush=True)
    for spec in specs:
        res = subprocess.run([sys.executable, __file__, "--data-dir", data_dir, "--split", spec,
                              "--split-trials", str(args.split_trials)],
                             check=True, capture_output=True, text=True)
        out["split"][spec] = json.loads(res.stdout.strip().splitlines()[-1])
        print(spec, out["split"][spec], flush=True)
        n = args.daily_trials if "daily" in spec else args.hourly_trials
        for workers in worker_counts:
            # the machine is shared and noisy: alternate flushback and the ceiling, repeat,
            # keep every figure and report the best of each (least disturbed) run
            reps = []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as home:
                    res = subprocess.run([sys.executable, __file__, "--data-dir", data_dir,
                                          "--one", spec, str(workers), str(n), "--home", home],
                                         check=True, capture_output=True, text=True)
                    row = json.loads(res.stdout.strip().splitlines()[-1])
                    # the same parameter sets the study ran (their engine cost differs from
                    # randomly sampled ones: TPE moves to parameters that trade more)
                    row["ceiling_trials_per_second"] = _ceiling(
                        spec, data_dir, workers, n, str(Path(home) / "params.json"),
                        args.duration)
                reps.append(row)
                print(json.dumps(row), flush=True)
            # each flushback run is paired with the ceiling measured right after it; the
            # median of the paired shares is the figure least moved by a noisy neighbour
            shares = sorted(r["trials_per_second"] / r["ceiling_trials_per_second"]
                            for r in reps)
            summary = dict(max(reps, key=lambda r: r["trials_per_second"]))
            summary["ceiling_trials_per_second"] = max(r["ceiling_trials_per_second"]
                                                       for r in reps)
            summary["share_of_ceiling_median"] = shares[len(shares) // 2]
            summary["repeats"] = [{k: r[k] for k in ("trials_per_second",
                                                     "trials_per_second_incl_startup",
                                                     "ceiling_trials_per_second")}
                                  for r in reps]
            out["runs"].append(summary)
    res = subprocess.run([sys.executable, __file__, "--data-dir", data_dir, "--memory",
                          SPECS[0], str(args.memory_trials)], check=True, capture_output=True,
                         text=True)
    out["memory"] = json.loads(res.stdout.strip().splitlines()[-1])
    print(out["memory"], flush=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
