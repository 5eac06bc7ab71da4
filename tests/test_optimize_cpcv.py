"""Combinatorial purged k-fold (``--cpcv N --test-groups K``): the splits, the purge around
each test group, the backtest paths, training sets scored as one stitched account, and an
optimize run whose every path is recomputed here from separate backtrader runs."""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from flushback.backtests.optimize.folds import cpcv_paths, make_cpcv_folds
from flushback.backtests.run.metrics import SCORE_METRICS
from flushback.data.errors import ConfigError


def _index(n=600):
    return pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC", name="timestamp")


@pytest.mark.parametrize("n_groups,k", [(4, 1), (4, 2), (5, 2), (6, 2), (6, 3)])
@pytest.mark.parametrize("gap", [0, 7])
def test_splits_test_whole_groups_and_purge_around_them(n_groups, k, gap):
    idx = _index(601)
    folds = make_cpcv_folds(idx, n_groups, k, embargo_bars=gap, min_train_bars=5)
    assert len(folds) == math.comb(n_groups, k)
    bounds = [int(round(i * len(idx) / n_groups)) for i in range(n_groups + 1)]
    pos = {ts: i for i, ts in enumerate(idx)}
    for fold, test in zip(folds, itertools.combinations(range(n_groups), k), strict=True):
        assert fold.test_groups == test and fold.combinatorial
        # each test window is one whole group
        assert [(pos[a], pos[b]) for a, b in fold.test_windows] == [
            (bounds[g], bounds[g + 1] - 1) for g in test]
        # the bars a training segment may hold: not tested, and more than `gap` bars away
        # from every test group on either side
        allowed = np.ones(len(idx), dtype=bool)
        for g in test:
            allowed[max(bounds[g] - gap, 0):bounds[g + 1] + gap] = False
        covered = np.zeros(len(idx), dtype=bool)
        for a, b in fold.train_windows:
            assert pos[a] <= pos[b]
            seg = np.arange(pos[a], pos[b] + 1)
            assert allowed[seg].all(), (fold.index, a, b)
            assert not covered[seg].any()  # segments do not overlap
            covered[seg] = True
        # nothing else is left out: every allowed bar is in a segment (none shorter than 5)
        assert (covered == allowed).all()
        # segments are in time order, separated by at least one test group (+ purge)
        starts = [pos[a] for a, _ in fold.train_windows]
        assert starts == sorted(starts)
        assert fold.train_start == fold.train_windows[0][0]
        assert fold.train_end == fold.train_windows[-1][1]


def test_paths_of_four_groups_two_tested_by_hand():
    folds = make_cpcv_folds(_index(), 4, 2)
    # splits in order: (1,2) (1,3) (1,4) (2,3) (2,4) (3,4); group 1 is tested by splits
    # 1, 2, 3; group 2 by 1, 4, 5; group 3 by 2, 4, 6; group 4 by 3, 5, 6
    paths = cpcv_paths(folds)
    as_numbers = [[fi + 1 for _, fi in p] for p in paths]
    assert as_numbers == [[1, 1, 2, 3], [2, 4, 4, 5], [3, 5, 6, 6]]


@pytest.mark.parametrize("n_groups,k", [(3, 1), (4, 2), (5, 2), (6, 2), (6, 3), (7, 4)])
def test_every_path_covers_every_group_and_uses_each_result_once(n_groups, k):
    folds = make_cpcv_folds(_index(700), n_groups, k)
    paths = cpcv_paths(folds)
    assert len(paths) == math.comb(n_groups - 1, k - 1)
    used = []
    for path in paths:
        assert [g for g, _ in path] == list(range(n_groups))
        for g, fi in path:
            assert g in folds[fi].test_groups
            used.append((g, fi))
    # every (split, test group) backtest is in exactly one path
    assert sorted(used) == sorted((g, f.index) for f in folds for g in f.test_groups)


def test_fold_dicts_name_the_segments_and_walk_forward_ones_are_unchanged():
    from flushback.backtests.optimize.folds import make_folds

    wf = make_folds(_index(), walk_forward=2)[0].to_dict()
    assert list(wf) == ["index", "train_start", "train_end", "test_start", "test_end"]
    d = make_cpcv_folds(_index(), 4, 2, embargo_bars=3)[3].to_dict()
    assert d["test_groups"] == [1, 2]
    assert len(d["train_segments"]) == 2 and len(d["test_segments"]) == 2
    assert d["train_segments"][0][0] == "2020-01-01T00:00:00Z"


@pytest.mark.parametrize("args,message", [
    ((1, 1, 0), "at least 2 groups"),
    ((4, 4, 0), "between 1 and 3"),
    ((4, 0, 0), "between 1 and 3"),
    ((16, 8, 0), "12870 splits"),
    ((30, 1, 0), "too few"),
    ((4, 3, 130), "training bars"),
])
def test_bad_settings_are_config_errors(args, message):
    n, k, gap = args
    with pytest.raises(ConfigError, match=message):
        make_cpcv_folds(_index(), n, k, embargo_bars=gap)


def test_a_toy_study_only_ever_scores_training_segments(tmp_path):
    import optuna
    from test_optimize_toy import ToyEvaluator, toy_config

    from flushback.backtests.optimize.analysis import analyse_fold
    from flushback.backtests.optimize.evaluator import decode_returns
    from flushback.backtests.optimize.storage import open_storage
    from flushback.backtests.optimize.workers import run_study

    ev = ToyEvaluator()
    folds = make_cpcv_folds(ev.index, 5, 2, embargo_bars=10)
    cfg = toy_config(tmp_path, n_trials=12, seed=2, folds=folds)
    run_study(cfg, evaluator=ev)
    segments = {w for f in folds for w in f.train_windows}
    assert ev.windows and set(ev.windows) <= segments
    # split by split: the trials scored exactly that split's segments
    for f in folds:
        res = analyse_fold(cfg, ev, f)
        assert res["trial_counts"]["COMPLETE"] == 12
        # the stored training returns are the segments' bars, one after the other
        n_bars = sum(int(((ev.index >= a) & (ev.index <= b)).sum()) for a, b in f.train_windows)
        study = optuna.load_study(study_name=cfg.fold_study_name(f),
                                  storage=open_storage(cfg.storage_url, heartbeat=None))
        best = study.best_trial
        r = decode_returns(best.user_attrs["flushback"]["train_returns"])
        assert len(r) == n_bars
        # the objective is the Sharpe ratio of the stitched account: recompute it from the
        # toy's own per-window returns
        parts = [ev.evaluate(best.params, a, b).returns for a, b in f.train_windows]
        joined = np.concatenate(parts)
        np.testing.assert_allclose(r, joined.astype(np.float32), rtol=0, atol=0)
        # (the first bar has no return; the junction between segments is a flat bar)
        per_bar = joined[1:]
        assert best.value == pytest.approx(
            per_bar.mean() / per_bar.std(ddof=1) * math.sqrt(365), rel=1e-9)
        # out of sample: one backtest per test group
        assert len(res["_oos_windows"]) == 2


# ------------------------------------------------------------------ real data, both engines
@pytest.mark.realdata
def test_stitched_training_segments_agree_across_engines_and_by_hand(shared_data_dir):
    from flushback.backtests.optimize.evaluator import SpecEvaluator

    ev = SpecEvaluator("fear_flush_btc_daily", data_dir=str(shared_data_dir))
    fold = make_cpcv_folds(ev.index, 4, 2, embargo_bars=60)[3]  # trains on groups 1 and 4
    assert len(fold.train_windows) == 2
    params = {"strategy.hold_bars": 40, "strategy.take_profit": 0.3}
    fast = ev.evaluate_windows(params, fold.train_windows)
    ref = ev.evaluate_windows(params, fold.train_windows, engine="backtrader")
    for key in ("n_trades", "total_return", "sharpe", "sortino", "max_drawdown", "cagr",
                "win_rate", "profit_factor", "exposure", "end_equity"):
        assert fast.metrics[key] == pytest.approx(ref.metrics[key], rel=1e-9, abs=1e-12), key
    np.testing.assert_allclose(fast.returns, ref.returns, rtol=1e-9, atol=1e-15)
    # what a trial is scored with (the compiled scores): the stitched account's values
    scored = ev.score(params, fold.train_windows)
    assert scored.metrics == {k: fast.metrics[k] for k in scored.metrics}
    assert set(scored.metrics) == set(SCORE_METRICS)
    np.testing.assert_array_equal(scored.returns, fast.returns)
    # by hand, from the two segments' own backtrader runs: returns compound, trades add up,
    # the drawdown is the worst over the chained account
    parts = [ev.evaluate(params, a, b, keep=True, engine="backtrader") for a, b in
             fold.train_windows]
    growth = np.prod([1 + p.metrics["total_return"] for p in parts]) - 1
    assert ref.metrics["total_return"] == pytest.approx(growth, rel=1e-12)
    assert ref.metrics["n_trades"] == sum(p.metrics["n_trades"] for p in parts)
    assert ref.metrics["n_trades"] > 0
    equity = np.concatenate([parts[0].result.equity["equity"].to_numpy(),
                             parts[1].result.equity["equity"].to_numpy()
                             * parts[0].result.equity["equity"].iloc[-1] / ev.spec.cash])
    dd = (equity / np.maximum.accumulate(equity) - 1).min()
    assert ref.metrics["max_drawdown"] == pytest.approx(dd, rel=1e-12)
    r = np.concatenate([[0.0], parts[0].result.equity["equity"].pct_change().to_numpy()[1:],
                        [0.0], parts[1].result.equity["equity"].pct_change().to_numpy()[1:]])
    np.testing.assert_allclose(ref.returns, r, rtol=1e-12, atol=1e-15)


@pytest.mark.realdata
@pytest.mark.slow
def test_cpcv_optimize_reports_every_path_recomputed_on_backtrader(shared_data_dir, tmp_path,
                                                                  capsys):
    from flushback.backtests.cli import main
    from flushback.backtests.optimize.evaluator import SpecEvaluator
    from flushback.backtests.run.folders import load_report

    code = main(["--data-dir", str(shared_data_dir), "optimize", "fear_flush_btc_daily",
                 "--trials", "8", "--cpcv", "4", "--test-groups", "2", "--seed", "5",
                 "--min-trades", "0", "--format", "json",
                 "--storage", str(tmp_path / "s.log"), "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out)
    rep = load_report(doc["run_dir"])
    sec = rep["optimization"]
    cpcv = sec["cpcv"]
    assert sec["study"]["validation"] == "combinatorial_purged_kfold"
    assert (cpcv["n_groups"], cpcv["n_test_groups"], cpcv["n_splits"], cpcv["n_paths"]) == \
        (4, 2, 6, 3)
    assert len(sec["is_vs_oos"]) == 6 and len(sec["study"]["fold_studies"]) == 6
    # each path recomputed from separate backtrader runs of each group with its split's
    # chosen parameters: returns compound, trades add up
    ev = SpecEvaluator("fear_flush_btc_daily", data_dir=str(shared_data_dir))
    groups = [(pd.Timestamp(g["start"]), pd.Timestamp(g["end"])) for g in cpcv["groups"]]
    assert groups[0][0] == ev.index[0] and groups[-1][1] == ev.index[-1]
    chosen = {row["fold"]["index"] + 1: row["best_params"] for row in sec["folds"]}
    for path in cpcv["paths"]:
        growth, trades = 1.0, 0
        for (a, b), split in zip(groups, path["folds"], strict=True):
            one = ev.evaluate(chosen[split], a, b, engine="backtrader")
            growth *= 1 + one.metrics["total_return"]
            trades += one.metrics["n_trades"]
        assert path["metrics"]["total_return"] == pytest.approx(growth - 1, rel=1e-9)
        assert path["metrics"]["n_trades"] == trades
    # the report's own result is path 1; the spread over the paths is summarised
    assert rep["metrics"]["total_return"] == pytest.approx(
        cpcv["paths"][0]["metrics"]["total_return"], rel=1e-12)
    sharpes = [p["metrics"]["sharpe"] for p in cpcv["paths"]]
    assert cpcv["summary"]["sharpe"]["mean"] == pytest.approx(np.mean(sharpes), rel=1e-12)
    assert cpcv["summary"]["sharpe"]["min"] == min(sharpes)
    # every training segment, every test group and every path were re-run on backtrader
    check = sec["engine_check"]
    assert check["ok"]
    n_train = sum(len(r["train_windows"]) for r in sec["is_vs_oos"])
    whats = [r["what"] for r in check["rows"]]
    assert whats.count("train") == n_train and whats.count("test") == 12
    assert [r["path"] for r in check["rows"] if r["what"] == "path"] == [1, 2, 3]
    # the HTML report lists the paths; the markdown says it in words
    html = (Path(doc["run_dir"]) / "report.html").read_text()
    assert 'id="cpcv-paths"' in html and "Out-of-sample backtest paths" in html


def test_cpcv_and_walk_forward_together_are_refused(tmp_path, capsys):
    from flushback.backtests.cli import main

    code = main(["--offline", "optimize", "fear_flush_btc_daily", "--cpcv", "4",
                 "--walk-forward", "3", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--cpcv" in err


def test_a_pruner_hears_the_stitched_objective_after_each_segment(tmp_path):
    import optuna
    from test_optimize_toy import ToyEvaluator, toy_config

    from flushback.backtests.optimize.storage import open_storage
    from flushback.backtests.optimize.workers import run_study

    ev = ToyEvaluator()
    folds = make_cpcv_folds(ev.index, 4, 2, embargo_bars=5)
    split = folds[3]  # tests groups 2 and 3: trains on groups 1 and 4
    assert len(split.train_windows) == 2
    cfg = toy_config(tmp_path, n_trials=15, seed=4, folds=[split], pruner="median",
                     prune_chunks=3)
    run_study(cfg, evaluator=ev)
    study = optuna.load_study(study_name=cfg.fold_study_name(split),
                              storage=open_storage(cfg.storage_url, heartbeat=None))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert complete
    for t in complete:
        assert sorted(t.intermediate_values) == [0, 1]
        # step 0: the first segment alone; step 1: both stitched, which is the trial's value
        first = ev.evaluate(t.params, *split.train_windows[0]).metrics["sharpe"]
        assert t.intermediate_values[0] == pytest.approx(first, rel=1e-12)
        assert t.intermediate_values[1] == pytest.approx(t.value, rel=1e-12)
