"""The generic column signals (``threshold``, ``zscore``, ``crossing``, ``change``) on
hand-computed tiny frames and against straightforward loops written here, their NaN policy,
errors, truncation invariance on a user-named column, and that the optimizer never samples a
free-text parameter (a column name) or an open level without a range."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.optimize.config import StudyConfig
from flushback.backtests.optimize.evaluator import SpecEvaluator
from flushback.backtests.optimize.folds import make_folds
from flushback.backtests.optimize.objectives import parse_objectives
from flushback.backtests.optimize.space import build_search_space
from flushback.backtests.optimize.storage import open_storage
from flushback.backtests.optimize.workers import run_study
from flushback.data.errors import ConfigError, DataError
from flushback.signals import build_signal
from flushback.signals.base import Param
from flushback.signals.testing import synthetic_frame

NAN = float("nan")


def _frame(values, interval: str = "1d", **more) -> pd.DataFrame:
    step = {"1d": "D", "4h": "4h", "1h": "h"}[interval]
    idx = pd.date_range("2024-01-01", periods=len(values), freq=step, tz="UTC", name="timestamp")
    frame = pd.DataFrame({"x": np.asarray(values, dtype="float64"), **more}, index=idx)
    frame.attrs["interval"] = interval
    return frame


def _fires(cfg: dict, frame: pd.DataFrame) -> list[bool]:
    out = build_signal(cfg).compute(frame)
    assert out.dtype == bool and out.name == cfg["type"]
    return out.tolist()


def _user_frame(n: int, interval: str, seed: int = 0) -> pd.DataFrame:
    """The synthetic frame plus a user series ``etf_flows``: daily flows of both signs (USD),
    published daily and repeated on intraday bars by the as-of join, with holes."""
    frame = synthetic_frame(n, interval, seed=seed)
    rng = np.random.default_rng(seed + 100)
    per_day = max(1, int(pd.Timedelta(days=1) / (frame.index[1] - frame.index[0])))
    days = math.ceil(n / per_day)
    daily = rng.normal(2e8, 3e8, days)
    daily[rng.random(days) < 0.03] -= 1.5e9  # heavy outflow days
    flows = np.repeat(daily, per_day)[:n]
    flows[n // 3 : n // 3 + 2 * per_day] = np.nan  # a two-day hole
    flows[:5] = np.nan  # the series starts after the prices
    frame["etf_flows"] = flows
    return frame


# --- threshold ---------------------------------------------------------------------------


def test_threshold_each_operator_by_hand():
    f = _frame([1.0, 5.0, NAN, 3.0, 5.0])
    base = {"type": "threshold", "column": "x", "level": 3.0}
    assert _fires({**base, "op": ">="}, f) == [False, True, False, True, True]
    assert _fires({**base, "op": ">"}, f) == [False, True, False, False, True]
    assert _fires({**base, "op": "<="}, f) == [True, False, False, True, False]
    assert _fires({**base, "op": "<"}, f) == [True, False, False, False, False]


def test_threshold_explain_names_the_column():
    f = _frame([1.0, 5.0, NAN])
    ex = build_signal({"type": "threshold", "column": "x", "level": 2}).explain(f)
    assert list(ex.columns) == ["x"]
    # a user series called like an intermediate keeps a distinct column per value
    g = f.rename(columns={"x": "value"})
    ex = build_signal({"type": "zscore", "column": "value", "window_days": 2}).explain(g)
    assert list(ex.columns) == ["value", "centre", "scale", "z"]


# --- zscore ------------------------------------------------------------------------------


def test_zscore_by_hand_mean_and_robust():
    f = _frame([1.0, 2.0, 3.0, 4.0, 10.0])
    # t=4: baseline 1..4 (bar t excluded): mean 2.5, sd sqrt(5/3), z = 7.5 / 1.2910 = 5.809
    z_mean = 7.5 / math.sqrt(5.0 / 3.0)
    # median 2.5, MAD median(1.5, .5, .5, 1.5) = 1, scale 1.4826: z = 5.0587
    z_rob = 7.5 / 1.4826
    sig = build_signal({"type": "zscore", "column": "x", "window_days": 4, "k": 5.5})
    assert sig.explain(f)["z"].iloc[4] == pytest.approx(z_mean, rel=1e-12)
    assert _fires({"type": "zscore", "column": "x", "window_days": 4, "k": 5.75}, f) == [
        False] * 4 + [True]
    assert not any(_fires({"type": "zscore", "column": "x", "window_days": 4, "k": 6.0}, f))
    rob = {"type": "zscore", "column": "x", "window_days": 4, "method": "robust"}
    assert build_signal(rob).explain(f)["z"].iloc[4] == pytest.approx(z_rob, rel=1e-12)
    assert _fires({**rob, "k": 5.0}, f)[4] is True
    assert _fires({**rob, "k": 5.25}, f)[4] is False
    # below: the mirror image
    g = _frame([1.0, 2.0, 3.0, 4.0, -5.0])  # z = (-5 - 2.5) / sd = -5.809
    below = {"type": "zscore", "column": "x", "window_days": 4, "direction": "below"}
    assert _fires({**below, "k": 5.75}, g)[4] is True
    assert _fires({**below, "k": 6.0}, g)[4] is False
    assert not any(_fires({**below, "k": 0.5}, f))  # f only rises


def _loop_z(x: np.ndarray, w: int, method: str) -> np.ndarray:
    """An independent straightforward loop: the w values before t, NaN skipped, at least
    max(2, ceil(w/2)) of them."""
    out = np.full(len(x), np.nan)
    for t in range(len(x)):
        if t < w or np.isnan(x[t]):
            continue
        win = [v for v in x[t - w : t] if not np.isnan(v)]
        if len(win) < max(2, (w + 1) // 2):
            continue
        if method == "mean":
            centre, scale = statistics.fmean(win), statistics.stdev(win)
        else:
            centre = statistics.median(win)
            scale = 1.4826 * statistics.median([abs(v - centre) for v in win])
        if scale > 0:
            out[t] = (x[t] - centre) / scale
    return out


@pytest.mark.parametrize("method", ["mean", "robust"])
@pytest.mark.parametrize("interval,window_days", [("1d", 10), ("4h", 3), ("1h", 2)])
def test_zscore_matches_a_loop_on_a_user_series(method, interval, window_days):
    frame = _user_frame(260, interval, seed=3)
    w = {"1d": 1, "4h": 6, "1h": 24}[interval] * window_days
    x = frame["etf_flows"].to_numpy()
    want = _loop_z(x, w, method)
    for direction, k in (("below", 1.5), ("above", 1.0)):
        sig = build_signal({"type": "zscore", "column": "etf_flows", "window_days": window_days,
                            "method": method, "k": k, "direction": direction})
        assert sig.warmup_for(frame.index[1] - frame.index[0]) == w
        z = sig.explain(frame)["z"].to_numpy(copy=True)
        z[:w] = np.nan  # explain is not masked by the warm-up; the loop starts at w
        both = ~np.isnan(want)
        assert (np.isnan(z) == ~both).all()
        np.testing.assert_allclose(z[both], want[both], rtol=1e-9, atol=1e-12)
        hit = want >= k if direction == "above" else want <= -k
        hit[:w] = False
        got = sig.compute(frame).to_numpy()
        assert (got == np.where(np.isnan(want), False, hit)).all()
        assert got.any()  # not vacuous


def test_zscore_flat_baseline_and_sparse_window_never_fire():
    flat = _frame([5.0, 5.0, 5.0, 5.0, 9.0])
    sig = build_signal({"type": "zscore", "column": "x", "window_days": 4, "k": 0.5})
    assert np.isnan(sig.explain(flat)["z"].iloc[4])  # scale 0: no z
    assert not sig.compute(flat).any()
    # window of 4 needs 2 values present: with 1, no z; with 2, a z
    sparse = _frame([NAN, NAN, NAN, 1.0, 9.0, 9.0])
    z = sig.explain(sparse)["z"]
    assert np.isnan(z.iloc[4])  # only 1.0 in the window
    assert z.iloc[5] == pytest.approx((9.0 - 5.0) / math.sqrt(32.0))  # window {1, 9}


def test_zscore_a_repeated_daily_value_has_no_scale():
    """A daily value repeated on hourly bars is a flat baseline: no z, although the float mean
    of 48 copies of 0.7 misses 0.7 by an ulp (a naive std is then 1e-16, not 0)."""
    assert np.mean(np.full(48, 0.7)) != 0.7  # the trap this guards against
    f = _frame([0.7] * 48 + [0.7, 0.7001], "1h")
    sig = build_signal({"type": "zscore", "column": "x", "window_days": 2, "k": 0.5})
    ex = sig.explain(f)
    assert ex["scale"].iloc[48] == 0.0 and ex["centre"].iloc[48] == 0.7
    assert ex["z"].iloc[48:].isna().all()
    assert not sig.compute(f).any()
    both = build_signal({"type": "zscore", "column": "x", "window_days": 2, "k": 0.5,
                         "direction": "below"})
    assert not both.compute(f).any()


# --- crossing ----------------------------------------------------------------------------


def test_crossing_level_by_hand():
    f = _frame([1.0, 3.0, 3.0, 2.0, NAN, 4.0, 1.0, 2.5, 2.5, 3.0])
    up = {"type": "crossing", "column": "x", "level": 2.5, "direction": "up"}
    down = {**up, "direction": "down"}
    # up: 1->3 at t1; 2->NaN->4 is no cross (a gap); 1->2.5 touches at t7; 2.5->3 does not
    assert _fires(up, f) == [False, True, False, False, False, False, False, True, False, False]
    # down: 3->2 at t3; 4->1 at t6; 2.5 -> 2.5 -> 3 never
    assert _fires(down, f) == [False, False, False, True, False, False, True, False, False,
                               False]


def test_crossing_another_column():
    f = _frame([1.0, 3.0, 3.0, 1.0, 2.0], y=[2.0, 2.0, 4.0, 4.0, NAN])
    cfg = {"type": "crossing", "column": "x", "other": "y", "direction": "up"}
    # x - y: -1, 1, -1, -3, NaN -> up at t1 only; down at t2 (y rose above x)
    assert _fires(cfg, f) == [False, True, False, False, False]
    assert _fires({**cfg, "direction": "down"}, f) == [False, False, True, False, False]
    sig = build_signal(cfg)
    assert sig.required_columns() == ("x", "y")
    with pytest.raises(DataError, match="'crossing' needs column.*mvrv") as exc:
        build_signal({**cfg, "other": "mvrv"}).compute(f)
    assert exc.value.column == "mvrv"


# --- change ------------------------------------------------------------------------------


def test_change_relative_and_absolute_by_hand():
    f = _frame([100.0, 110.0, 89.0, 99.0, NAN, 120.0, 0.0, 50.0, 60.0])
    rel = {"type": "change", "column": "x", "days": 2, "mode": "relative"}
    ch = build_signal({**rel, "threshold": -0.1}).explain(f)["change"]
    # t2: 89/100-1 = -0.11; t3: 99/110-1 = -0.1 (float: -0.0999..); t4: NaN; t5: 120/99-1;
    # t6: NaN (x_{t-2} NaN); t7: 50/120-1; t8: NaN (reference 0 is not > 0)
    want = [NAN, NAN, -0.11, 99 / 110 - 1, NAN, 120 / 99 - 1, NAN, 50 / 120 - 1, NAN]
    np.testing.assert_allclose(ch.to_numpy(), want, rtol=1e-12)
    assert _fires({**rel, "threshold": -0.105, "direction": "below"}, f) == [
        False, False, True, False, False, False, False, True, False]
    assert _fires({**rel, "threshold": 0.2, "direction": "above"}, f) == [
        False] * 5 + [True, False, False, False]
    ab = {"type": "change", "column": "x", "days": 2, "mode": "absolute"}
    # absolute: -11, -11, NaN, 21, NaN, -70, 60
    diff = build_signal(ab).explain(f)["difference"]  # in the column's units, not a fraction
    np.testing.assert_array_equal(diff.to_numpy(), [NAN, NAN, -11, -11, NAN, 21, NAN, -70, 60])
    assert _fires({**ab, "threshold": -11.0, "direction": "below"}, f) == [
        False, False, True, True, False, False, False, True, False]
    assert _fires({**ab, "threshold": 21.0, "direction": "above"}, f) == [
        False] * 5 + [True, False, False, True]


def test_change_days_are_converted_to_bars():
    # 4h bars: 1 day = 6 bars back
    x = np.arange(1.0, 15.0)
    x[13] = 1.0  # 1 vs 8 six bars before: -7
    f = _frame(x, "4h")
    sig = build_signal({"type": "change", "column": "x", "days": 1, "mode": "absolute",
                        "threshold": -7.0, "direction": "below"})
    assert sig.warmup_for(pd.Timedelta(hours=4)) == 6
    assert sig.explain(f)["reference"].iloc[13] == 8.0
    assert sig.compute(f).tolist() == [False] * 13 + [True]


# --- NaN, errors -------------------------------------------------------------------------

ALL = [
    {"type": "threshold", "column": "etf_flows", "op": "<", "level": -5e8},
    {"type": "zscore", "column": "etf_flows", "window_days": 20, "k": 2.0,
     "direction": "below"},
    {"type": "zscore", "column": "etf_flows", "window_days": 20, "method": "robust"},
    {"type": "crossing", "column": "etf_flows", "level": 0.0, "direction": "down"},
    {"type": "crossing", "column": "etf_flows", "other": "fng", "direction": "up"},
    {"type": "change", "column": "etf_flows", "days": 5, "mode": "absolute",
     "threshold": -1e9},
]


@pytest.mark.parametrize("cfg", ALL, ids=lambda c: c["type"])
def test_nan_never_triggers(cfg):
    frame = _user_frame(200, "1d")
    out = build_signal(cfg).compute(frame)
    assert out.any()
    nan_bars = frame["etf_flows"].isna().to_numpy()
    assert not out.to_numpy()[nan_bars].any()
    frame["etf_flows"] = np.nan
    assert not build_signal(cfg).compute(frame).any()


@pytest.mark.parametrize("kind", ["threshold", "zscore", "crossing", "change"])
def test_missing_column_is_a_data_error_naming_it(kind):
    frame = synthetic_frame(50)
    with pytest.raises(DataError, match="etf_flows") as exc:
        build_signal({"type": kind, "column": "etf_flows"}).compute(frame)
    assert exc.value.column == "etf_flows"
    frame["etf_flows"] = "n/a"
    with pytest.raises(DataError, match="numeric column 'etf_flows'"):
        build_signal({"type": kind, "column": "etf_flows"}).compute(frame)


def test_bad_params_are_config_errors():
    with pytest.raises(ConfigError, match="needs column="):
        build_signal({"type": "threshold", "level": 1.0})
    with pytest.raises(ConfigError, match="needs column="):
        build_signal("zscore")
    with pytest.raises(ConfigError, match=r"does not match \[a-z_\]"):
        build_signal({"type": "threshold", "column": "ETF flows"})
    with pytest.raises(ConfigError, match="did you mean 'window_days'"):
        build_signal({"type": "zscore", "column": "mvrv", "windw_days": 30})
    with pytest.raises(ConfigError, match="did you mean 'above'"):
        build_signal({"type": "change", "column": "mvrv", "direction": "abov"})
    with pytest.raises(ConfigError, match="did you mean 'robust'"):
        build_signal({"type": "zscore", "column": "mvrv", "method": "robus"})
    with pytest.raises(ConfigError, match="did you mean 'threshold'"):
        build_signal({"type": "treshold", "column": "mvrv"})
    with pytest.raises(ConfigError, match="outside its range"):
        build_signal({"type": "zscore", "column": "mvrv", "window_days": 1})
    with pytest.raises(ConfigError, match="finite"):
        build_signal({"type": "threshold", "column": "mvrv", "level": float("inf")})
    with pytest.raises(ConfigError, match="the column itself"):
        build_signal({"type": "crossing", "column": "mvrv", "other": "mvrv"})
    # open levels take any finite value, from the CLI's strings too
    sig = build_signal({"type": "threshold", "column": "mvrv", "level": "-2.5e9"})
    assert sig.params["level"] == -2.5e9


# --- the contract on a user-named column ---------------------------------------------------


@pytest.mark.parametrize("interval", ["1d", "1h"])
@pytest.mark.parametrize("cfg", ALL, ids=lambda c: c["type"])
def test_truncation_and_convergence_on_a_user_column(cfg, interval):
    sig = build_signal(cfg)
    step = pd.Timedelta(days=1) if interval == "1d" else pd.Timedelta(hours=1)
    w = sig.warmup_for(step)
    frame = _user_frame(w + (250 if interval == "1d" else 24 * 60), interval, seed=7)
    full = sig.compute(frame)
    assert full.any()
    for cut in range(1, len(frame) + 1, max(1, len(frame) // 40)):
        part = sig.compute(frame.iloc[:cut])
        assert (part.to_numpy() == full.to_numpy()[:cut]).all(), (cfg, cut)
    # exact after the warm-up: every bar's value from only w bars of history
    for t in range(w, len(frame), max(1, len(frame) // 25)):
        assert sig.compute(frame.iloc[t - w : t + 1]).iloc[-1] == full.iloc[t], (cfg, t)


# --- the optimizer never samples a free-text parameter ------------------------------------


def _declared(cfg: dict) -> dict[str, Param]:
    return {f"signals.entry.{k}": p for k, p in build_signal(cfg).search_space().items()}


def test_param_kinds():
    space = build_signal({"type": "crossing", "column": "mvrv"}).search_space()
    assert space["column"].kind == "text" and not space["column"].searchable
    assert space["other"].kind == "text"
    assert space["level"].kind == "float" and not space["level"].searchable
    assert space["direction"].searchable
    assert space["column"].to_dict()["pattern"] == "[a-z_][a-z0-9_]*"
    with pytest.raises(ValueError):
        Param(str, "x")  # neither choices nor a pattern
    with pytest.raises(ValueError):
        Param(float, 0.0, low=1.0)  # half a range


def test_search_space_skips_free_text_and_open_levels():
    decl = _declared({"type": "zscore", "column": "etf_flows"})
    decl.update(_declared({"type": "threshold", "column": "etf_flows"}))  # + op, level
    space = build_search_space(decl, {"params": ["signals.*"]})
    names = {p.name for p in space.params}
    assert "signals.entry.column" not in names and "signals.entry.level" not in names
    assert {"signals.entry.k", "signals.entry.window_days", "signals.entry.op"} <= names
    # default keys naming them (a spec that sets column and level) pass over them too
    space = build_search_space(decl, None, default_keys=list(decl))
    assert "signals.entry.column" not in {p.name for p in space.params}
    # named exactly without a range: an error that says what to write
    with pytest.raises(ConfigError, match="free text"):
        build_search_space(decl, {"params": ["signals.entry.column"]})
    with pytest.raises(ConfigError, match="no declared range"):
        build_search_space(decl, {"params": ["signals.entry.level"]})
    with pytest.raises(ConfigError, match="free text"):
        build_search_space(decl, {"signals.entry.column": {"choices": ["a", "b"]}})
    with pytest.raises(ConfigError, match="does not match"):
        build_search_space(decl, {"signals.entry.column": "Not A Name"})
    # fixing the column is fine; an open level gets its range from [search]
    space = build_search_space(decl, {
        "signals.entry.column": "mvrv",
        "signals.entry.level": {"low": -1e9, "high": 1e9},
    }, default_keys=["signals.entry.k"])
    assert space.fixed == {"signals.entry.column": "mvrv"}
    by = {p.name: p for p in space.params}
    assert set(by) == {"signals.entry.k", "signals.entry.level"}
    assert (by["signals.entry.level"].kind, by["signals.entry.level"].low,
            by["signals.entry.level"].high) == ("float", -1e9, 1e9)
    with pytest.raises(ConfigError, match="low > high"):
        build_search_space(decl, {"signals.entry.level": {"low": 1.0, "high": 0.0}})


def test_a_study_never_samples_the_column(tmp_path):
    """A real optimisation of a spec on a user series: every trial keeps the column."""
    frame = _user_frame(400, "1d", seed=5)
    frame = frame.drop(columns=["liq_regime"])
    spec = {
        "name": "flows",
        "data": {"symbol": "SYNTH-USD", "interval": "1d"},
        "signals": {"entry": {"type": "zscore", "column": "etf_flows", "window_days": 20,
                              "k": 2.0, "direction": "below"}},
        "strategy": {"type": "contrarian", "hold_bars": 3},
        "search": {"params": ["signals.*"]},
    }
    ev = SpecEvaluator(spec, frame=frame)
    assert "signals.entry.column" not in ev.default_search_keys()
    space = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys())
    sampled = {p.name for p in space.params}
    assert "signals.entry.column" not in sampled and "signals.entry.k" in sampled
    cfg = StudyConfig(
        evaluator_factory="unused:unused", evaluator_kwargs={},
        objectives=parse_objectives("sharpe"), space=space,
        folds=tuple(make_folds(ev.index)), n_trials=6,
        storage_url=str(tmp_path / "flows.log"), study_name="flows", seed=1)
    run_study(cfg, evaluator=ev)
    import optuna

    study = optuna.load_study(study_name=cfg.fold_study_name(cfg.folds[0]),
                              storage=open_storage(cfg.storage_url))
    trials = study.get_trials(deepcopy=False)
    assert trials and all("signals.entry.column" not in t.params for t in trials)
    assert all("signals.entry.k" in t.params for t in trials if t.params)
