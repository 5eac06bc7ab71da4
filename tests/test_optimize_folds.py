"""Walk-forward folds never leak test data into training (asserted on the fold boundaries and
on what a study can see), and the test windows get warm-up history that is never scored."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.optimize.evaluator import SpecEvaluator
from flushback.backtests.optimize.folds import make_folds
from flushback.backtests.optimize.space import build_search_space
from flushback.backtests.optimize.storage import open_storage
from flushback.backtests.optimize.workers import run_study
from flushback.data.errors import ConfigError


def _index(n=500, freq="D"):
    return pd.date_range("2020-01-01", periods=n, freq=freq, tz="UTC", name="timestamp")


@pytest.mark.parametrize("anchored", [True, False])
@pytest.mark.parametrize("k", [1, 3, 4])
def test_walk_forward_boundaries(anchored, k):
    idx = _index(503)
    folds = make_folds(idx, walk_forward=k, anchored=anchored)
    assert len(folds) == k
    pos = {ts: i for i, ts in enumerate(idx)}
    blocks = [int(round(i * len(idx) / (k + 1))) for i in range(k + 2)]
    for i, f in enumerate(folds):
        # training ends strictly before testing starts, with no gap and no overlap
        assert f.train_start <= f.train_end < f.test_start <= f.test_end
        assert pos[f.test_start] == pos[f.train_end] + 1
        # the fold's test window is block i+1; training is blocks 0..i or block i
        assert pos[f.test_start] == blocks[i + 1]
        assert pos[f.test_end] == blocks[i + 2] - 1
        assert pos[f.train_start] == (0 if anchored else blocks[i])
        # no test bar of this fold lies inside its training window
        test_bars = idx[(idx >= f.test_start) & (idx <= f.test_end)]
        assert not ((test_bars >= f.train_start) & (test_bars <= f.train_end)).any()
    # test windows tile the out-of-sample span without overlap
    for a, b in zip(folds, folds[1:], strict=False):
        assert pos[b.test_start] == pos[a.test_end] + 1
    assert folds[-1].test_end == idx[-1]


def test_train_until_and_default_holdout():
    idx = _index(400)
    (f,) = make_folds(idx, train_until="2020-06-30")
    assert f.train_end == pd.Timestamp("2020-06-30", tz="UTC")
    assert f.test_start == pd.Timestamp("2020-07-01", tz="UTC")
    assert f.test_end == idx[-1] and f.train_start == idx[0]
    (h,) = make_folds(idx)
    assert h.test_start == idx[280] and h.train_end == idx[279]
    with pytest.raises(ConfigError):
        make_folds(idx, train_until="2019-01-01")
    with pytest.raises(ConfigError):
        make_folds(idx, walk_forward=2, train_until="2020-06-30")
    with pytest.raises(ConfigError):
        make_folds(_index(50), walk_forward=4)


def test_study_cannot_see_data_after_its_training_window(tmp_path):
    """Replace every bar after fold 1's training end by garbage: fold 1's study is unchanged."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_optimize_toy import ToyEvaluator, toy_config

    clean = ToyEvaluator()
    folds = make_folds(clean.index, walk_forward=2)
    f1 = folds[0]
    dirty = ToyEvaluator(corrupt_after=str(f1.train_end))
    runs = []
    for name, ev in (("clean", clean), ("dirty", dirty)):
        cfg = toy_config(tmp_path / name, n_trials=12, seed=9, folds=folds[:1])
        (tmp_path / name).mkdir()
        run_study(cfg, evaluator=ev)
        import optuna

        study = optuna.load_study(study_name=cfg.study_name,
                                  storage=open_storage(cfg.storage_url))
        runs.append([(t.params, t.value) for t in study.trials])
        assert all(end <= f1.train_end for _, end in ev.windows)
    assert runs[0] == runs[1]
    # ...while the test window does see the corruption (the check can fail)
    a = clean.evaluate({}, f1.test_start, f1.test_end).returns
    b = dirty.evaluate({}, f1.test_start, f1.test_end).returns
    assert not np.allclose(a, b)


@pytest.mark.realdata
def test_spec_evaluator_windows_on_real_data(shared_data_dir):
    ev = SpecEvaluator("rsi4h_btc_hourly", data_dir=str(shared_data_dir),
                       overrides=["data.start=2025-01-01", "data.end=2025-12-31"])
    (fold,) = make_folds(ev.index, train_until="2025-09-30")
    train = ev.evaluate({}, fold.train_start, fold.train_end, keep=True).result
    test = ev.evaluate({}, fold.test_start, fold.test_end, keep=True).result
    # scored windows are exactly the fold's windows
    assert train.equity.index[0] == fold.train_start
    assert train.equity.index[-1] == fold.train_end
    assert test.equity.index[0] == fold.test_start
    assert test.equity.index[-1] == fold.test_end
    assert (test.trades["entry_time"] >= fold.test_start).all() if len(test.trades) else True
    # the test window's signals had warm-up history: the 4h RSI is defined at its first bar
    # and equals the value computed on the whole period (no cold start at the fold boundary)
    from flushback.signals import build_signal

    rsi = build_signal({"type": "rsi", "period": 14, "timeframe": "4h"})
    full = rsi.compute(ev.prepared.frame)
    cut = rsi.compute(ev.prepared.frame.loc[:fold.test_end])
    assert np.isfinite(cut.loc[fold.test_start])
    assert cut.loc[fold.test_start] == pytest.approx(full.loc[fold.test_start])
    # the training run cannot see the test period: corrupting it leaves the training run
    # identical, and changes the test run
    frame = ev.prepared.frame.copy()
    after = frame.index > fold.train_end
    for col in ("open", "high", "low", "close"):
        frame.loc[after, col] = frame.loc[after, col] * 3.0
    ev.prepared.frame = frame
    ev._views.clear()
    train2 = ev.evaluate({}, fold.train_start, fold.train_end).metrics
    test2 = ev.evaluate({}, fold.test_start, fold.test_end).metrics
    assert train2 == train.metrics
    assert test2 != test.metrics


@pytest.mark.realdata
def test_signal_memo_gives_identical_backtests(shared_data_dir):
    """Signals computed once per worker (memoized leaves) change nothing in the results."""
    memo = SpecEvaluator("fear_flush_btc_daily", data_dir=str(shared_data_dir))
    plain = SpecEvaluator("fear_flush_btc_daily", data_dir=str(shared_data_dir))
    plain.memoize_signals = False
    (fold,) = make_folds(memo.index)
    rng = np.random.default_rng(0)
    for _ in range(3):
        p = {"signals.entry.of.0.threshold": float(rng.integers(5, 40)),
             "signals.entry.window": int(rng.integers(1, 5)),
             "signals.exit.threshold": float(rng.integers(60, 95)),
             "strategy.take_profit": float(rng.uniform(0.1, 0.9))}
        a = memo.evaluate(p, fold.train_start, fold.train_end, keep=True)
        b = plain.evaluate(p, fold.train_start, fold.train_end, keep=True)
        assert a.metrics == b.metrics
        assert np.array_equal(a.returns, b.returns)
        pd.testing.assert_frame_equal(a.result.signals, b.result.signals)
    view = memo.window_view(fold.train_start, fold.train_end)
    assert len(view.signal_cache) > 0 and view.signal_cache.hits > 0
    assert len(plain.window_view(fold.train_start, fold.train_end).signal_cache) == 0
    from flushback.signals.base import Signal

    # the runner's hook, not a wrapped method
    assert Signal.compute.__qualname__ == "Signal.compute"


@pytest.mark.parametrize("anchored", [True, False])
def test_embargo_leaves_a_gap_between_training_and_test(anchored):
    idx = _index(503)
    plain = make_folds(idx, walk_forward=3, anchored=anchored)
    gapped = make_folds(idx, walk_forward=3, anchored=anchored, embargo_bars=17)
    pos = {ts: i for i, ts in enumerate(idx)}
    for a, b in zip(plain, gapped, strict=True):
        # the test windows do not move; training loses its last 17 bars
        assert (b.test_start, b.test_end, b.train_start) == (a.test_start, a.test_end,
                                                             a.train_start)
        assert pos[b.test_start] - pos[b.train_end] - 1 == 17
    (h,) = make_folds(idx, embargo_bars=5)
    assert pos[h.train_end] == int(round(503 * 0.7)) - 1 - 5
    with pytest.raises(ConfigError, match="embargo of 400 bars"):
        make_folds(idx, walk_forward=3, embargo_bars=400)


def test_default_embargo_is_longest_hold_plus_warmup():
    from flushback.data.synthetic import synthetic_bars

    frame = synthetic_bars(periods=400, seed=3)
    frame.attrs.update({"interval": "1d", "symbol": "SYN-USD"})
    spec = {"name": "e", "data": {"symbol": "SYN-USD", "interval": "1d", "externals": []},
            "signals": {"entry": {"type": "oversold_rsi", "threshold": 30.0}},
            "strategy": {"type": "contrarian", "hold_bars": 10},
            "search": {"strategy.hold_bars": {"low": 5, "high": 40}}}
    ev = SpecEvaluator(spec, frame=frame)
    space = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys())
    from flushback.signals import build_signal

    warmup = build_signal({"type": "oversold_rsi", "threshold": 30.0}).warmup_for(
        pd.Timedelta(days=1))
    assert warmup > 0 and ev.prepared.warmup_bars == warmup
    assert ev.default_embargo(space) == 40 + warmup
