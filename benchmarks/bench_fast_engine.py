"""Benchmark the fast engine and ``flushback optimize`` on it, everything side by side in one run.

    python benchmarks/bench_fast_engine.py --data-dir ../shared/data \
        [--peers-python /work/venv-peers/bin/python] [--out benchmarks/fast_engine.json]

Writes ``benchmarks/fast_engine.json`` (raw figures) and ``benchmarks/fast_engine.md`` (tables).
``--smoke`` runs every part on a tiny size (the daily data set, TPE, a few trials, 1 worker, a
short hourly window, a 2 x 2 grid) to check the script still runs; its figures are not quoted.

1. **optimize vs optuna itself.** For each data set (BTC-USD daily 2014-2026 with a daily RSI
   spec; BTCUSDT hourly 2020-2026 with the 4h-RSI spec), each sampler (TPE 200 trials, QMC 2000
   trials) and 1 and 2 workers: a fresh ``run_study`` (fast engine, the default journal
   storage, batched writes, default hold-out fold) in its own process, and, right after it,
   the same sampler over the same search space with a zero-cost objective (an in-memory
   optuna study, ask/tell, a random value) in W processes of n/W trials each: what optuna
   alone does on this machine (optuna's own ``TPESampler`` / ``QMCSampler``; and, as a
   second reference, the sampler flushback builds). For TPE also optuna's TPE asked over the
   study's own history (``_replay``). ``--repeat`` pairs (3 by default) per configuration.
   ratio = flushback trials/s / zero-cost trials/s, the median of the paired ratios. Both
   rates are the steady state, computed the same way from the trials' completion times (from
   the W-th finished trial to the last, i.e. once every worker is running; the zero-cost
   workers import scipy.stats, which optuna's QMC sampler loads at its first Sobol point,
   before they start); the rates including start-up are reported too.
2. **the engine alone**: the compiled kernel over the hourly bars, a batch of configurations in
   one call (``nb.simulate_returns``): bars x configurations per second.
3. **the same grid in vectorbt and backtesting.py** (run by ``--peers-python``, a virtual
   environment with both, as their pins clash with flushback's): RSI(14) < threshold entries,
   exit after N bars, on BTC-USD daily 2014-2026, 0.1 % fees, all-in; 10 thresholds x 10
   holding periods; configurations per second, each library its own idiomatic way (vectorbt:
   one ``Portfolio.from_signals`` over all 100 columns; backtesting.py: one ``Backtest.run``
   per configuration; flushback: the optimizer's trial path, ``FastTrials.evaluate``, per
   configuration, signals memoised per threshold).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASETS = {
    "BTC-USD daily 2014-2026": (str(HERE / "specs" / "rsi_btc_daily_2014.toml"), []),
    "BTCUSDT hourly 2020-2026": ("rsi4h_btc_hourly", ["data.symbol=BTCUSDT",
                                                      "data.start=2020-01-01",
                                                      "data.externals=[]"]),
}
RUNS = (("tpe", 200), ("qmc", 2000))


def _study(spec: str, overrides: list[str], sampler: str, n: int, workers: int,
           data_dir: str, home: str) -> dict:
    """One flushback study, in a fresh process."""
    warnings.simplefilter("ignore")
    os.environ["FLUSHBACK_HOME"] = home
    import optuna

    from flushback.backtests.optimize.config import StudyConfig
    from flushback.backtests.optimize.evaluator import SpecEvaluator
    from flushback.backtests.optimize.folds import make_folds
    from flushback.backtests.optimize.objectives import parse_objectives
    from flushback.backtests.optimize.space import build_search_space
    from flushback.backtests.optimize.storage import open_storage
    from flushback.backtests.optimize.workers import run_study

    t_load = time.perf_counter()
    ev = SpecEvaluator(spec, overrides=overrides, data_dir=data_dir)
    load = time.perf_counter() - t_load
    space = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys())
    folds = make_folds(ev.index)
    url = str(Path(home) / "optuna-journal.log")  # the default storage's kind
    cfg = StudyConfig(
        evaluator_factory="flushback.backtests.optimize.study:spec_evaluator",
        evaluator_kwargs={"spec": spec, "overrides": overrides, "data_dir": data_dir},
        objectives=parse_objectives("sharpe"), space=space, folds=tuple(folds),
        n_trials=n, storage_url=url, study_name="bench", seed=1, workers=workers,
        sampler=sampler)
    t0 = time.perf_counter()
    run_study(cfg, evaluator=ev)
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name="bench", storage=open_storage(url))
    fin = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    done = sorted(t.datetime_complete.timestamp() for t in fin)
    steady = _steady(done, workers)
    timings = [t.user_attrs.get("flushback", {}).get("timings", {}) for t in fin]
    mean = {k: sum(t.get(k, 0.0) for t in timings) / max(len(timings), 1)
            for k in ("sampling", "backtest", "trial")}
    out = {"finished": len(fin), "wall_seconds": wall, "load_seconds": load,
           "trials_per_second": steady, "trials_per_second_incl_startup": n / wall,
           "mean_seconds": mean,
           "training_bars": int((ev.index <= folds[0].train_end).sum())}
    if sampler == "tpe":
        out["replayed_sampler_trials_per_second"] = workers * _replay(
            fin, space.distributions())
    return out


def _replay(trials: list, dists: dict) -> float:
    """optuna's own TPE (seed 1) asked at each step of this study's own history, with a
    zero-cost objective: before the k-th ask the study holds the study's first k finished
    trials (their parameters and real objective values). TPE's cost depends on the values
    it models, not only on their number, so this is optuna alone on the same landscape.
    Each ask is told FAIL (TPE ignores it) and the real trial added; asks + tells per
    second of one process."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    spent = 0.0
    for t in sorted(trials, key=lambda t: t.number):
        t0 = time.perf_counter()
        asked = study.ask(dists)
        study.tell(asked, state=optuna.trial.TrialState.FAIL)
        spent += time.perf_counter() - t0
        study.add_trial(t)
    return len(trials) / spent


def _paired(spec: str, overrides: list[str], sampler: str, n: int, workers: int,
            data_dir: str) -> dict:
    """One flushback study and, right after it, the zero-cost references (fresh processes)."""
    with tempfile.TemporaryDirectory() as home:
        fb = _in_subprocess("_study", spec, overrides, sampler, n, workers, data_dir, home)
    zc = _in_subprocess("_zero_cost", spec, overrides, sampler, n, workers, data_dir)
    own = _in_subprocess("_zero_cost", spec, overrides, sampler, n, workers, data_dir, True)
    return {"flushback": fb, "zero_cost": zc, "zero_cost_own_sampler": own}


def _summary(label: str, sampler: str, n: int, workers: int, pairs: list[dict]) -> dict:
    """The median over the repeats (each ratio is taken within its own pair, then the
    median of the ratios; the figures shown are those of the median pair)."""
    import statistics

    def rate(p: dict, key: str) -> float:
        return float(p[key]["trials_per_second"])

    ratios = [rate(p, "flushback") / rate(p, "zero_cost") for p in pairs]
    order = sorted(range(len(pairs)), key=lambda i: ratios[i])
    mid = pairs[order[len(order) // 2]]
    row = {"data": label, "sampler": sampler, "trials": n, "workers": workers, **mid,
           "ratio": statistics.median(ratios), "ratios": [round(r, 3) for r in ratios],
           "ratio_own_sampler": statistics.median(
               rate(p, "flushback") / rate(p, "zero_cost_own_sampler") for p in pairs),
           "repeats": pairs}
    replayed = [p["flushback"].get("replayed_sampler_trials_per_second") for p in pairs]
    if all(replayed):
        row["ratio_replayed"] = statistics.median(
            rate(p, "flushback") / float(r) for p, r in zip(pairs, replayed, strict=True))
    return row


def _reference_sampler(sampler: str, dists: dict, own: bool):
    """optuna's own sampler (``own=False``: ``TPESampler`` / ``QMCSampler``, seed 1, as a
    user of optuna writes it), or the one flushback's optimizer builds (``own=True``)."""
    import optuna

    from flushback.backtests.optimize.samplers import make_sampler

    if own:
        return make_sampler(sampler, 1, False, dists)
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=1)
    if sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=1, warn_independent_sampling=False)
    raise ValueError(sampler)


def _zero_cost_worker(space_dists: dict, sampler: str, n: int, queue: mp.Queue,
                      own: bool = False) -> None:
    warnings.simplefilter("ignore")
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # the one-time import optuna's QMC sampler does at its first Sobol point (a process cost,
    # not a trial's: flushback's steady rate leaves its own out too)
    import scipy.stats  # noqa: F401
    study = optuna.create_study(sampler=_reference_sampler(sampler, space_dists, own))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    done = []
    for _ in range(n):
        trial = study.ask(space_dists)
        study.tell(trial, float(rng.normal()))
        done.append(time.monotonic())
    queue.put((time.perf_counter() - t0, done))


def _zero_cost(spec: str, overrides: list[str], sampler: str, n: int, workers: int,
               data_dir: str, own: bool = False) -> dict:
    """The same sampler and search space with a zero-cost objective (an in-memory study,
    ask/tell, a random value) in W processes of n/W trials each: optuna's own sampler, or
    with ``own`` flushback's (its QMC draws its points in blocks)."""
    warnings.simplefilter("ignore")
    from flushback.backtests.optimize.evaluator import SpecEvaluator
    from flushback.backtests.optimize.space import build_search_space

    ev = SpecEvaluator(spec, overrides=overrides, data_dir=data_dir)
    dists = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys()).distributions()
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_zero_cost_worker, args=(dists, sampler, n // workers, q, own))
             for _ in range(workers)]
    for p in procs:
        p.start()
    got = [q.get() for _ in procs]
    for p in procs:
        p.join()
    walls = [w for w, _ in got]
    done = sorted(t for _, ts in got for t in ts)
    return {"wall_seconds": max(walls), "trials_per_second": _steady(done, workers),
            "trials_per_second_incl_startup": (n // workers) * workers / max(walls)}


def _steady(done: list[float], workers: int) -> float:
    """Trials per second between the first trial of each worker and the last, from sorted
    completion times: the rate flushback's study is measured at too."""
    span = done[-1] - done[workers - 1]
    return (len(done) - workers) / span if span > 0 else float("nan")


def _in_subprocess(fn: str, *args: object) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); "
            f"import bench_fast_engine as b; print(json.dumps(b.{fn}(*json.loads(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(list(args))],
                         capture_output=True, text=True, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def engine_alone(data_dir: str, n_configs: int = 64, start: str = "2020-01-01") -> dict:
    """Bars x configurations per second of the kernel over the hourly bars from ``start``."""
    import numpy as np

    from flushback.data import load_frame
    from flushback.strategies import nb
    from flushback.strategies.fast import config_vector

    frame = load_frame("BTCUSDT", "1h", externals=(), start=start, data_dir=data_dir).frame
    ohlc = np.ascontiguousarray(frame[["open", "high", "low", "close"]].to_numpy(float))
    n = len(ohlc)
    rng = np.random.default_rng(1)
    entry = (rng.random(n) < 0.02).astype(float)
    exit_ = (rng.random(n) < 0.01).astype(float)
    e = np.empty(0)
    cfgs = np.stack([config_vector("contrarian", {
        "hold_bars": int(rng.integers(5, 500)), "stop_loss": float(rng.uniform(0, 0.2)),
        "take_profit": float(rng.uniform(0, 0.5)), "trailing_stop": float(rng.uniform(0, 0.2)),
        "exit_mode": ["close", "intrabar"][i % 2], "max_tranches": int(rng.integers(1, 4))},
        cash=10_000.0, commission=0.001, slippage=0.0005, funding=False, bar_hours=1.0)
        for i in range(n_configs)])
    eq = np.empty((n_configs, n))
    nt, st = np.empty(n_configs, np.int64), np.empty(n_configs, np.int64)
    # the first call compiles
    nb.simulate_returns(ohlc, entry, exit_, e, e, e, e, e, cfgs[:1], eq[:1], nt[:1], st[:1])
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        nb.simulate_returns(ohlc, entry, exit_, e, e, e, e, e, cfgs, eq, nt, st)
        best = min(best, time.perf_counter() - t0)
    return {"bars": n, "configs": n_configs, "seconds": best,
            "bars_per_second": n * n_configs / best, "mean_trades": float(nt.mean())}


GRID_THRESHOLDS = [10.0, 14.0, 18.0, 22.0, 26.0, 30.0, 34.0, 38.0, 42.0, 46.0]
GRID_HOLDS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]


def flushback_grid(data_dir: str, smoke: bool = False) -> dict:
    """The grid on flushback's optimizer trial path (fast engine); ``smoke``: 2 x 2."""
    warnings.simplefilter("ignore")
    from flushback.backtests.optimize.evaluator import SpecEvaluator

    spec = {"name": "grid", "data": {"symbol": "BTC-USD", "interval": "1d",
                                     "start": "2014-09-17", "externals": []},
            "signals": {"entry": {"type": "oversold_rsi", "period": 14, "threshold": 30.0}},
            "strategy": {"type": "contrarian", "hold_bars": 5},
            "costs": {"commission": 0.001, "slippage": 0.0}}
    ev = SpecEvaluator(spec, data_dir=data_dir)
    start, end = ev.index[0], ev.index[-1]
    ev.evaluate({}, start, end)  # compile + warm the window
    t0 = time.perf_counter()
    sharpes = []
    thresholds, holds = _grid_axes(smoke)
    for thr in thresholds:
        for hold in holds:
            m = ev.evaluate({"signals.entry.threshold": thr, "strategy.hold_bars": hold},
                            start, end).metrics
            sharpes.append(m["sharpe"])
    dt = time.perf_counter() - t0
    n = len(thresholds) * len(holds)
    return {"configs": n, "seconds": dt, "configs_per_second": n / dt, "bars": len(ev.index)}


def _grid_axes(smoke: bool) -> tuple[list[float], list[int]]:
    return (GRID_THRESHOLDS[4:6], GRID_HOLDS[2:4]) if smoke else (GRID_THRESHOLDS, GRID_HOLDS)


def grid(data_dir: str, peers_python: str, smoke: bool = False) -> dict:
    out = {"flushback": _in_subprocess("flushback_grid", data_dir, smoke)}
    if not Path(peers_python).exists():
        out["peers_error"] = f"no Python with vectorbt and backtesting.py at {peers_python}"
        print("grid:", out, flush=True)
        return out
    peers = subprocess.run([peers_python, str(HERE / "peers_grid.py"), data_dir,
                            *(["--smoke"] if smoke else [])],
                           capture_output=True, text=True, timeout=3600)
    if peers.returncode == 0:
        out.update(json.loads(peers.stdout.strip().splitlines()[-1]))
    else:
        out["peers_error"] = peers.stderr[-2000:]
    print("grid:", out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--peers-python", default="/work/venv-peers/bin/python")
    ap.add_argument("--out", default=str(HERE / "fast_engine.json"))
    ap.add_argument("--quick", action="store_true", help="a tenth of the trials")
    ap.add_argument("--smoke", action="store_true",
                    help="every part on a tiny size, to check the script runs (not to quote)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="paired runs per configuration; the median ratio is reported")
    ap.add_argument("--only-grid", action="store_true",
                    help="re-run the grid comparison only, into the existing --out")
    args = ap.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    if args.only_grid:
        results = json.loads(Path(args.out).read_text())
        results["grid"] = grid(data_dir, args.peers_python, args.smoke)
        Path(args.out).write_text(json.dumps(results, indent=2))
        Path(args.out).with_suffix(".md").write_text(render(results))
        return
    datasets = dict(list(DATASETS.items())[:1]) if args.smoke else DATASETS
    runs = (("tpe", 8),) if args.smoke else RUNS
    worker_counts = (1,) if args.smoke else (1, 2)
    repeat = 1 if args.smoke else args.repeat
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                     "repeat": repeat, "ratio": [],
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for label, (spec, overrides) in datasets.items():
        for sampler, n in runs:
            n = max(20, n // 10) if args.quick else n
            for workers in worker_counts:
                pairs = [_paired(spec, overrides, sampler, n, workers, data_dir)
                         for _ in range(repeat)]
                row = _summary(label, sampler, n, workers, pairs)
                results["ratio"].append(row)
                fb, zc, own = row["flushback"], row["zero_cost"], row["zero_cost_own_sampler"]
                print(f"{label:26s} {sampler:4s} {n:5d} W={workers}: flushback "
                      f"{fb['trials_per_second']:8.1f}/s (incl. start-up "
                      f"{fb['trials_per_second_incl_startup']:7.1f}/s), optuna zero-cost "
                      f"{zc['trials_per_second']:8.1f}/s, ratio {row['ratio']:.2f} "
                      f"{row['ratios']}; flushback's sampler zero-cost "
                      f"{own['trials_per_second']:8.1f}/s, ratio "
                      f"{row['ratio_own_sampler']:.2f}", flush=True)
    results["engine_alone"] = (engine_alone(data_dir, 4, start="2026-01-01") if args.smoke
                               else engine_alone(data_dir))
    print("engine alone:", results["engine_alone"], flush=True)
    results["grid"] = grid(data_dir, args.peers_python, args.smoke)
    Path(args.out).write_text(json.dumps(results, indent=2))
    Path(args.out).with_suffix(".md").write_text(render(results))


def render(r: dict) -> str:
    lines = ["# The fast engine and `flushback optimize` on it", "",
             "Produced by `python benchmarks/bench_fast_engine.py --data-dir ../shared/data"
             f"{'' if r.get('repeat', 3) == 3 else ' --repeat ' + str(r.get('repeat'))}` "
             f"(started {r['started']}; {r['machine']['cpus']} CPUs, shared with other "
             "jobs: figures move by 10-40 % between runs). Raw figures: "
             "[`fast_engine.json`](fast_engine.json).", "",
             "## `flushback optimize` vs optuna with a zero-cost objective", "",
             "\"optuna zero-cost\": optuna's own sampler (`TPESampler(seed=1)`, "
             "`QMCSampler(seed=1)`) over the same search space with an objective that costs "
             "nothing, in-memory, W processes of n/W trials: what optuna alone does here. "
             "Both sides are steady-state rates from the trials' completion times (the first "
             "trial of each worker left out; the zero-cost workers load scipy.stats, which "
             "optuna's QMC loads at its first Sobol point, before they start). With 2 workers "
             "each zero-cost process runs its own study of n/2 trials, the cheapest optuna "
             "can do: TPE there models half the history a shared study's TPE does. "
             "\"flushback's sampler, zero-cost\": the same with the sampler flushback's "
             "optimizer builds (its QMC draws the same Sobol points in blocks of 256 instead "
             "of building a new engine per trial), through optuna's ask/tell. A QMC study "
             "without a pruner does not go through ask/tell at all (its trials are built as "
             "tell builds them, the same trials: docs/optimize.md), which is why its ratio "
             "can exceed 1 where a trial costs less than optuna's own ask and tell. "
             "\"TPE on the study's history\": optuna's TPE asked at each step of "
             "the flushback study's own trials (real objective values; x W for W workers): "
             "TPE's cost grows with how concentrated the values it models are, so a random "
             "zero-cost objective understates what TPE itself costs on a real study.", "",
             f"Each configuration ran {r.get('repeat', 1)} times, each flushback study paired "
             "with its references measured right after it; the ratio is the median of the "
             "paired ratios (all of them in brackets), the rates those of the median pair.", "",
             "| data | sampler | trials | workers | flushback trials/s (steady) | incl. start-up "
             "| optuna zero-cost trials/s | **ratio** (paired runs) "
             "| flushback's sampler, zero-cost | ratio | TPE on the study's history | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["ratio"]:
        fb, zc = row["flushback"], row["zero_cost"]
        own = row.get("zero_cost_own_sampler")
        tail = (f" | {own['trials_per_second']:.1f} | {row['ratio_own_sampler']:.2f}"
                if own else " | |")
        rep = fb.get("replayed_sampler_trials_per_second")
        tail += (f" | {rep:.1f} | {row['ratio_replayed']:.2f} |"
                 if rep and "ratio_replayed" in row else " | | |")
        runs = ", ".join(f"{x:.2f}" for x in row.get("ratios", []))
        lines.append(f"| {row['data']} | {row['sampler']} | {row['trials']} | {row['workers']} "
                     f"| {fb['trials_per_second']:.1f} | {fb['trials_per_second_incl_startup']:.1f}"
                     f" | {zc['trials_per_second']:.1f} | **{row['ratio']:.2f}** ({runs}){tail}")
    e = r["engine_alone"]
    lines += ["", "## The engine alone", "",
              f"{e['configs']} configurations over {e['bars']:,} hourly bars in one compiled "
              f"call: **{e['bars_per_second'] / 1e6:.1f} M bars/s** "
              f"({e['mean_trades']:.0f} trades per run on average).", "",
              "## The same grid: flushback, vectorbt, backtesting.py", "",
              "RSI(14) < threshold entries, exit after N bars, BTC-USD daily 2014-2026 "
              f"({r['grid'].get('bars', '?')} bars), 0.1 % fees, 10 thresholds x 10 holding "
              "periods, measured warm (compiled kernels reused).", "",
              "| library | configurations/s | seconds for the grid |", "|---|---|---|"]
    for name in ("flushback", "vectorbt", "backtesting.py"):
        g = r["grid"].get(name)
        if g:
            extra = (f" (first call incl. compiling: {g['seconds_first_call_incl_compile']:.1f} s)"
                     if "seconds_first_call_incl_compile" in g else "")
            lines.append(f"| {name} | {g['configs_per_second']:.1f} | {g['seconds']:.2f}{extra} |")
    lines += ["", "## Against the targets", ""]
    for row in r["ratio"]:
        ok = row["ratio"] >= 0.5
        lines.append(f"- ratio >= 0.5, {row['data']}, {row['sampler']} {row['trials']}, "
                     f"{row['workers']} worker(s): {row['ratio']:.3f} -- "
                     f"{'met' if ok else 'NOT met'}")
    guides = [
        ("daily TPE, 2 workers >= 250 trials/s", "BTC-USD daily 2014-2026", "tpe", 2, 250),
        ("daily QMC >= 1,000 trials/s", "BTC-USD daily 2014-2026", "qmc", 1, 1000),
        ("hourly TPE >= 100 trials/s", "BTCUSDT hourly 2020-2026", "tpe", 1, 100),
    ]
    for text, data, sampler, w, goal in guides:
        got = [x["flushback"]["trials_per_second"] for x in r["ratio"]
               if x["data"] == data and x["sampler"] == sampler and x["workers"] == w]
        if got:
            lines.append(f"- {text}: {got[0]:.1f} -- {'met' if got[0] >= goal else 'NOT met'}")
    lines.append(f"- engine alone >= 10 M bars/s: {e['bars_per_second'] / 1e6:.1f} M -- "
                 f"{'met' if e['bars_per_second'] >= 1e7 else 'NOT met'}")
    fb, vb = r["grid"].get("flushback"), r["grid"].get("vectorbt")
    if fb and vb:
        a, b = fb["configs_per_second"], vb["configs_per_second"]
        lines.append(f"- flushback at least as fast as vectorbt on the grid: {a:.0f} vs "
                     f"{b:.0f} configurations/s -- {'met' if a >= b else 'NOT met'}")
    if "peers_error" in r["grid"]:
        lines.append(f"\n(peers failed: {r['grid']['peers_error'][-300:]})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
