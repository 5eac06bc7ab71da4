"""``flushback optimize SPEC``: an optuna study over the spec's parameters, out-of-sample.

Running the same command again resumes the study (same storage, same study name); several
processes -- on one machine or many, with ``--storage postgresql://...`` -- share one study.
"""

from __future__ import annotations

from typing import Any

import typer

from flushback.backtests.cli._common import (
    STATE,
    Engine,
    OutputFormat,
    console,
    console_err,
    print_json,
)


def optimize(
    spec: str = typer.Argument(..., help="A spec file (.toml) or a shipped spec name."),
    trials: int = typer.Option(100, "--trials", "-n", help="Finished trials per fold study."),
    objective: str = typer.Option(
        None, "--objective",
        help="Metric to optimize: sharpe (default), sortino, calmar, cagr, total_return, "
             "profit_factor, win_rate, expectancy, max_drawdown (minimized).",
    ),
    directions: str = typer.Option(
        None, "--directions",
        help="Multi-objective, e.g. max_sharpe,min_max_drawdown (reports the Pareto front).",
    ),
    sampler: str = typer.Option(
        None, "--sampler",
        help="tpe (default), nsga2 (default multi-objective), cmaes, random, qmc, qmc-tpe "
             "(a Sobol warm start, then TPE).",
    ),
    walk_forward: int = typer.Option(
        None, "--walk-forward", help="K walk-forward folds (K+1 equal blocks of bars)."
    ),
    anchored: bool = typer.Option(
        True, "--anchored/--rolling", help="Walk-forward training windows: anchored or rolling."
    ),
    train_until: str = typer.Option(
        None, "--train-until", help="One split: train up to this date, test after it."
    ),
    cpcv: int = typer.Option(
        None, "--cpcv",
        help="Combinatorial purged k-fold: N equal groups of bars; every choice of "
             "--test-groups of them is tested by a study trained on the others (purged by "
             "--embargo around each test group). Reports every out-of-sample backtest path.",
    ),
    test_groups: int = typer.Option(
        2, "--test-groups", help="Groups tested per CPCV split (with --cpcv; default 2)."
    ),
    storage: str = typer.Option(
        None, "--storage", envvar="FLUSHBACK_OPTUNA_STORAGE",
        help="optuna storage (default: the journal file optuna-journal.log in the runs folder): "
             "a *.log journal, sqlite:///study.db, or postgresql://user@host/db (psycopg2).",
    ),
    study: str = typer.Option(
        None, "--study", help="Study name (default: spec name + hash of the settings)."
    ),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes on this machine."),
    seed: int = typer.Option(None, "--seed", help="Sampler seed (reproducible with 1 worker)."),
    pruner: str = typer.Option(
        "none", "--pruner", help="none, median, hyperband or sha (with --prune-chunks)."
    ),
    prune_chunks: int = typer.Option(
        None, "--prune-chunks",
        help="Split each training window into C parts reported to the pruner (default 3 "
             "when a pruner is on).",
    ),
    set_: list[str] = typer.Option(
        None, "--set", help="Override a spec value: --set costs.commission=0.002 (repeatable)."
    ),
    heartbeat: int = typer.Option(
        5, "--heartbeat", hidden=True,
        help="Seconds between trial heartbeats (a dead worker's trial is retried after ~2x).",
    ),
    show_space: bool = typer.Option(
        False, "--show-space", help="Print the search space and exit."
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    runs_dir: str = typer.Option(
        None, "--runs-dir", envvar="FLUSHBACK_RUNS_DIR", help="Where run folders are written."
    ),
    embargo: int = typer.Option(
        None, "--embargo",
        help="Bars between each training window and its test window (default: the longest "
             "holding period searched plus the signals' warm-up).",
    ),
    min_trades: int = typer.Option(
        None, "--min-trades",
        help="A configuration trading fewer times on a training window is infeasible "
             "(default 5; 0 turns the constraint off).",
    ),
    batch: int = typer.Option(
        256, "--batch", min=1,
        help="Trials a worker runs in memory before writing them to the storage, at most "
             "(batches are sized to about a second of work; 1 writes each trial as it "
             "finishes). Unwritten trials of a killed run are run again on resume.",
    ),
    engine: Engine = typer.Option(
        None, "--engine",
        help="Engine of the trials: fast (default for the built-in strategies) or backtrader. "
             "The winners are always re-run on backtrader and compared.",
    ),
) -> None:
    """Optimize a spec's parameters with optuna; report out-of-sample results, DSR and PBO."""
    from flushback.backtests.optimize.analysis import jsonable_metrics
    from flushback.backtests.optimize.evaluator import SpecEvaluator
    from flushback.backtests.optimize.space import build_search_space
    from flushback.backtests.optimize.study import StudyInterrupted, optimize_spec

    if show_space:
        ev = SpecEvaluator(spec, overrides=list(set_ or []), data_dir=STATE.data_dir)
        space = build_search_space(ev.declared_space(), ev.search_table(),
                                   default_keys=ev.default_search_keys())
        if fmt == OutputFormat.json:
            print_json(space.to_dict())
        else:
            _print_space(space)
        return
    # a bar on a terminal; plain lines (per fold, every ~5 % of the trials) when piped
    progress: bool | str = False
    if fmt == OutputFormat.table:
        progress = True if console_err.is_terminal else "lines"
    try:
        run = optimize_spec(
            spec, n_trials=trials, objective=objective, directions=directions,
            sampler=sampler, walk_forward=walk_forward, anchored=anchored,
            train_until=train_until, storage=storage, study=study, workers=workers, seed=seed,
            pruner=pruner, prune_chunks=prune_chunks, overrides=list(set_ or []),
            data_dir=STATE.data_dir, heartbeat=heartbeat, runs_dir=runs_dir,
            progress=progress, console=console_err, engine=engine.value if engine else None,
            embargo=embargo, min_trades=min_trades, batch=batch, cpcv=cpcv,
            test_groups=test_groups,
        )
    except StudyInterrupted as stop:
        _say_interrupted(stop)
        raise typer.Exit(130) from None
    sec = run.section
    for warning in sec.get("warnings") or []:
        console_err.print(f"warning: {warning}", markup=False)
    if fmt == OutputFormat.json:
        print_json({
            "run_id": run.result.run_id,
            "run_dir": str(run.run_dir),
            "study": sec["study"],
            "best_params": sec["best_params"],
            "out_of_sample_metrics": sec["out_of_sample_metrics"],
            "benchmark_metrics": jsonable_metrics(run.result.benchmark_metrics),
            "is_vs_oos": sec["is_vs_oos"],
            "dsr": sec["dsr"],
            "pbo": sec["pbo"],
            "param_importances": sec["param_importances"],
            "pareto_front": sec["pareto_front"],
            "engine_check": sec.get("engine_check"),
            "warnings": sec.get("warnings"),
            **({"cpcv": sec["cpcv"]} if sec.get("cpcv") else {}),
        })
        return
    _print_summary(run)


def _say_interrupted(stop: Any) -> None:
    """What Ctrl-C left behind and the exact command that resumes (the same command)."""
    import shlex

    done = "the finished trials are" if stop.finished is None else \
        f"{stop.finished} of {stop.total} trials finished and are"
    command = shlex.join(["flushback", *(STATE.argv or [])])
    console_err.print(
        f"interrupted: {done} saved in the study storage {stop.storage} (studies "
        f"{', '.join(stop.studies)}); a trial that was running is not counted and runs again. "
        f"Resume with the same command:\n  {command}", markup=False, highlight=False,
        soft_wrap=True)


def _num(v: Any, pct: bool = False, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if pct:
        return f"{v * 100:.1f}%"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _span(window: list[str]) -> str:
    """A fold window as dates: ``2018-02-01..2020-11-11``."""
    return "..".join(w[:10] for w in window)


def _print_space(space: Any) -> None:
    from rich.table import Table

    t = Table(title="search space")
    for col in ("parameter", "kind", "range"):
        t.add_column(col)
    for p in space.params:
        rng = str(list(p.choices)) if p.choices is not None else f"[{p.low}, {p.high}]" + (
            " log" if p.log else f" step {p.step}" if p.step else "")
        t.add_row(p.name, p.kind, rng)
    for k, v in space.fixed.items():
        t.add_row(k, "fixed", repr(v))
    console.print(t)
    for c in space.constraints:
        console.print(f"constraint: {c.expr}", markup=False)


#: one sentence each, printed under the numbers (the report's longer text is in report.html)
DSR_EXPLAINED = (
    "the probability that the best trial's Sharpe ratio is real skill rather than the luck of "
    "trying N parameter sets (near 1: likely real; below 0.95: not significant).")
PBO_EXPLAINED = (
    "the share of train/test splits in which the parameters that won in-sample ranked in the "
    "bottom half out-of-sample (near 0: the choice generalises; 0.5 or more: overfit).")


def _wide(con: Any) -> Any:
    """Piped or captured output: print a table whole instead of squeezing it to 80 columns."""
    if con.is_terminal:
        return con
    from rich.console import Console

    return Console(width=max(con.width, 120), highlight=False, color_system=None)


def _print_paths(cpcv: dict[str, Any], bench: Any) -> None:
    """The CPCV backtest paths, one row each, and their spread."""
    from rich.table import Table

    t = Table(title=f"combinatorial purged k-fold: {cpcv['n_paths']} out-of-sample paths "
                    f"({cpcv['n_splits']} splits of {cpcv['n_groups']} groups, "
                    f"{cpcv['n_test_groups']} tested)")
    for col in ("path", "folds per group", "total_return", "sharpe", "max_drawdown", "trades"):
        t.add_column(col, justify="left" if col == "folds per group" else "right")
    for row in cpcv["paths"]:
        m = row["metrics"]
        t.add_row(str(row["path"]), ",".join(str(f) for f in row["folds"]),
                  _num(m.get("total_return"), True), _num(m.get("sharpe")),
                  _num(m.get("max_drawdown"), True), _num(m.get("n_trades")))
    _wide(console).print(t)
    summ = cpcv.get("summary") or {}
    sh = summ.get("sharpe") or {}
    line = (f"paths: Sharpe mean {_num(sh.get('mean'))}, std {_num(sh.get('std'))}, "
            f"min {_num(sh.get('min'))}, max {_num(sh.get('max'))}; "
            f"{_num(summ.get('share_positive_sharpe'), True)} of paths with a positive Sharpe")
    if "share_beating_benchmark" in summ:
        line += (f", {_num(summ['share_beating_benchmark'], True)} beating buy & hold "
                 f"({_num(bench.get('total_return'), True)})")
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _print_summary(run: Any) -> None:
    from rich.table import Table

    sec = run.section
    label = sec["study"]["objectives"][0]
    metric = label.split("_", 1)[1]
    pct = metric in ("cagr", "total_return", "max_drawdown", "win_rate")
    from rich import box

    t = Table(title=f"{metric}: in-sample vs out-of-sample ({sec['study']['validation']}, "
                    f"{sec['study']['n_trials']} trials per fold)", box=box.SIMPLE_HEAD)
    for col in ("fold", "train", "test", "IS", "OOS", "trades", "DSR", "PBO"):
        t.add_column(col, justify="left" if col in ("train", "test") else "right",
                     no_wrap=True, min_width=2 if col == "fold" else None)
    for row in sec["is_vs_oos"]:
        train, test = _span(row["train"]), _span(row["test"])
        if row.get("test_groups"):  # a CPCV split
            if len(row["train_windows"]) > 1:
                train += f" ({len(row['train_windows'])} pieces)"
            test = "groups " + "+".join(str(g) for g in row["test_groups"])
        t.add_row(
            str(row["fold"]), train, test,
            _num(row["in_sample"].get(metric), pct), _num(row["out_of_sample"].get(metric), pct),
            _num(row["out_of_sample"].get("n_trades")), _num(row["dsr"], digits=2),
            _num(row["pbo"], digits=2),
        )
    _wide(console).print(t)
    m, b = sec["out_of_sample_metrics"], run.result.benchmark_metrics
    cpcv = sec.get("cpcv")
    r = Table(title="result: stitched out-of-sample test windows (not in-sample)" if not cpcv
              else f"result: backtest path 1 of {cpcv['n_paths']} (out-of-sample)")
    for col in ("metric", "strategy", "buy & hold"):
        r.add_column(col, justify="right" if col != "metric" else "left")
    for key, is_pct in (("total_return", True), ("cagr", True), ("sharpe", False),
                        ("sortino", False), ("max_drawdown", True), ("n_trades", False)):
        r.add_row(key, _num(m.get(key), is_pct), _num(b.get(key), is_pct))
    console.print(r)
    if cpcv:
        _print_paths(cpcv, b)
    p = Table(title=f"best parameters (fold {sec['best_params_fold']} training window)")
    p.add_column("parameter")
    p.add_column("value", justify="right")
    p.add_column("importance", justify="right")
    imp = sec.get("param_importances") or {}
    for k, v in (sec["best_params"] or {}).items():
        p.add_row(k, _num(v), _num(imp.get(k)))
    console.print(p)
    if sec.get("pareto_front"):
        console.print(f"Pareto front: {len(sec['pareto_front'])} trials (in report.json)")
    dsr, pbo = sec.get("dsr") or {}, sec.get("pbo") or {}
    spread = ""
    if pbo.get("rows_left_over"):
        spread = (f", {_num(pbo.get('pbo_min'), digits=2)}-{_num(pbo.get('pbo_max'), digits=2)}"
                  f" over the {pbo['rows_left_over'] + 1} ways to drop the "
                  f"{pbo['rows_left_over']} rows no block holds")
    console.print(
        f"Deflated Sharpe Ratio {_num(dsr.get('dsr'))} (N={dsr.get('n_trials')} trials that "
        f"traded, SR0/bar={_num(dsr.get('expected_max_sharpe'))}): {DSR_EXPLAINED}",
        markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"PBO {_num(pbo.get('pbo'), digits=2)} by {pbo.get('metric', '-')} over "
        f"{pbo.get('n_combinations', '-')} CSCV splits{spread}: {PBO_EXPLAINED}",
        markup=False, highlight=False, soft_wrap=True)
    _print_engine_check(sec.get("engine_check") or {})
    console.print(f"study: {', '.join(sec['study']['fold_studies'])} in {sec['study']['storage']}",
                  markup=False)
    console.print(f"run: {run.run_dir}", markup=False)


def _print_engine_check(check: dict) -> None:
    """The winners on both engines, side by side (trades, final equity, Sharpe)."""
    from rich.table import Table

    if not check.get("rows"):
        if check.get("note"):
            console.print(f"engine check: {check['note']}", markup=False)
        return
    t = Table(title=f"engine check: {check['engine']} vs {check['reference']} (the reference)")
    for col in ("run", "trades fast", "bt", "end equity fast", "bt ", "sharpe fast", "bt  ",
                "agree"):
        t.add_column(col, justify="left" if col == "run" else "right", no_wrap=True)
    for row in check["rows"]:
        if row.get("path"):
            label = f"path {row['path']}"
        elif row["fold"] is None:
            label = "stitched OOS"
        else:
            label = f"fold {row['fold']} {row['what']}"
            if row.get("window"):
                label += f" {_span(row['window'])}"
        f, r = row["fast"], row["reference"]
        t.add_row(label, _num(f.get("n_trades")), _num(r.get("n_trades")),
                  _num(f.get("end_equity"), digits=2), _num(r.get("end_equity"), digits=2),
                  _num(f.get("sharpe")), _num(r.get("sharpe")),
                  "yes" if row["ok"] else "NO")
    _wide(console).print(t)
