"""Testing a signal against its contract: the conformance checks and a seeded frame generator
(numpy/pandas only), published so that users can check their own signals::

    from flushback.signals.testing import check_signal
    failures = check_signal(MySignal(window=5))      # {} when it keeps the contract
    assert not failures, failures

``check_signal`` runs every check of the contract in :class:`flushback.signals.base.Signal`'s
docstring: alignment, dtype and name; no mutation of the input; determinism; False/NaN during
the warm-up; NaN inputs never trigger; **truncation invariance** (the value at t does not change
when rows after t are dropped: this is what catches a peek at the future); and warm-up
convergence (given ``warmup_for(interval)`` bars of history, the last value is within the
declared tolerance). flushback's own test suite runs the same checks over every registered
signal (with Hypothesis drawing the truncation points) and proves them on planted bad signals.

``synthetic_frame(n, interval="1d", seed=0)`` returns a frame with every column of the data
contract (prices, fng, liquidations with a reporting-regime break, funding, open interest),
indexed by bar open time in UTC with ``attrs["interval"]`` set. It includes crashes with volume
and range spikes, liquidation spikes, a flat price stretch and missing external values, so that
every signal has something to fire on and every edge case is exercised. It is synthetic: never
use it to judge a strategy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.intervals import bar_interval, parse_interval

__all__ = [
    "CHECKS",
    "check_alignment_dtype_name",
    "check_at_a_trigger",
    "check_convergence",
    "check_determinism",
    "check_missing_inputs",
    "check_no_mutation",
    "check_signal",
    "check_truncation",
    "check_warmup",
    "conformance_frame",
    "same_values",
    "synthetic_frame",
]

def synthetic_frame(
    n: int = 600,
    interval: str = "1d",
    seed: int = 0,
    *,
    start: str = "2021-01-01",
    flat: bool = True,
    gaps: bool = True,
    basket: int = 0,
) -> pd.DataFrame:
    """A frame of ``n`` bars with all canonical columns (deterministic for a given seed).

    ``basket``: that many more synthetic assets as basket members (``close@SYNTH-B``...,
    see ``flushback.data.basket``), correlated with the primary, the last one starting a third
    of the way in (as SOL starts years after BTC); the primary's own ``@`` columns are added
    too. Drawn from their own random stream: the primary's columns do not change."""
    rng = np.random.default_rng(seed)
    step = parse_interval(interval)
    per_day = pd.Timedelta(days=1) / step
    idx = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq=step, name="timestamp")
    sigma = 0.03 / np.sqrt(per_day)
    ret = rng.standard_t(4, size=n) * sigma / np.sqrt(2.0)
    crash = rng.random(n) < 0.02
    ret[crash] -= rng.uniform(4, 8, crash.sum()) * sigma
    if flat and n > 80:
        s = n // 3
        ret[s : s + 25] = 0.0  # a flat stretch: RSI and z-scores must not divide by zero
    close = 100.0 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0, sigma, n)) * close + np.where(crash, 3 * sigma * close, 0.0)
    high = np.maximum(open_, close) + spread * rng.random(n)
    low = np.minimum(open_, close) - spread * rng.random(n)
    if flat and n > 80:
        high[s : s + 25] = close[s : s + 25]
        low[s : s + 25] = close[s : s + 25]
        open_[s + 1 : s + 25] = close[s : s + 24]
    volume = rng.lognormal(10, 0.4, n) * np.where(crash, rng.uniform(2, 5, n), 1.0)

    fng = np.empty(n)
    x = 50.0
    for i in range(n):
        x = x + 0.08 * (50 - x) / np.sqrt(per_day) + rng.normal(0, 9 / np.sqrt(per_day))
        if crash[i]:
            x -= rng.uniform(10, 30)
        x = min(100.0, max(0.0, x))
        fng[i] = round(x)

    regime = np.where(np.arange(n) < n // 4, "binance_full", "binance_throttled").astype(object)
    scale = np.where(regime == "binance_full", 8.0, 1.0) * 1e7 / per_day
    liq_long = rng.lognormal(0, 0.8, n) * scale * np.where(crash, rng.uniform(5, 20, n), 1.0)
    liq_short = rng.lognormal(0, 0.8, n) * scale * 0.7
    funding = 1e-4 + rng.normal(0, 1e-4, n) - np.where(crash, 4e-4, 0.0)
    oi = 1e10 * np.exp(np.cumsum(rng.normal(0, 0.01, n) - np.where(crash, 0.12, 0.0)))

    frame = pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "fng": fng,
            "liq_long_usd": liq_long,
            "liq_short_usd": liq_short,
            "liq_regime": regime,
            "funding_rate": funding,
            "oi_usd": oi,
        },
        index=idx,
    )
    if gaps and n > 40:
        # externals missing at the start (before the source begins) and in a short hole
        frame.loc[frame.index[:10], ["liq_long_usd", "liq_short_usd", "liq_regime"]] = np.nan
        hole = frame.index[n // 2 : n // 2 + 3]
        frame.loc[hole, ["fng", "funding_rate", "oi_usd"]] = np.nan
    frame.attrs["interval"] = interval
    frame.attrs["symbol"] = "SYNTH-USD"
    if basket:
        frame = _with_basket(frame, basket, seed, sigma, crash, per_day)
    return frame


def _with_basket(frame: pd.DataFrame, k: int, seed: int, sigma: float, crash: np.ndarray,
                 per_day: float) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 7919])
    n = len(frame)
    base = np.diff(np.log(frame["close"].to_numpy()), prepend=np.log(100.0))
    cols: dict[str, Any] = {}
    names = ["SYNTH-USD"] + [f"SYNTH-{chr(ord('B') + i)}" for i in range(k)]
    for field in ("open", "high", "low", "close", "volume", "liq_long_usd", "liq_short_usd",
                  "liq_regime"):
        cols[f"{field}@SYNTH-USD"] = frame[field]
    for j, name in enumerate(names[1:]):
        beta = 1.2 + 0.3 * j
        ret = beta * base + rng.standard_t(4, size=n) * sigma / np.sqrt(2.0)
        close = 50.0 * np.exp(np.cumsum(ret))
        open_ = np.r_[50.0, close[:-1]]
        spread = np.abs(rng.normal(0, sigma, n)) * close
        high = np.maximum(open_, close) + spread * rng.random(n)
        low = np.minimum(open_, close) - spread * rng.random(n)
        scale = 2e6 / per_day
        liq_long = rng.lognormal(0, 0.8, n) * scale * np.where(crash, rng.uniform(4, 15, n), 1.0)
        liq_short = rng.lognormal(0, 0.8, n) * scale * 0.7
        block = {"open": open_, "high": high, "low": low, "close": close,
                 "volume": rng.lognormal(9, 0.4, n), "liq_long_usd": liq_long,
                 "liq_short_usd": liq_short}
        late = n // 3 if j == len(names) - 2 and n > 60 else 0
        for field, values in block.items():
            v = np.asarray(values, dtype="float64").copy()
            v[:late] = np.nan
            cols[f"{field}@{name}"] = v
        regime = np.full(n, "binance_throttled", dtype=object)
        regime[:late] = np.nan
        cols[f"liq_regime@{name}"] = regime
    out = pd.concat([frame, pd.DataFrame(cols, index=frame.index)], axis=1)
    out.attrs = {**frame.attrs, "basket": names}
    return out


# --------------------------------------------------------------------------- conformance


def conformance_frame(sig: Any, interval: str = "1d", seed: int = 0,
                      extra: int = 300) -> pd.DataFrame:
    """A synthetic frame long enough for ``sig``: its warm-up plus ``extra`` bars, with a
    basket of three assets for the breadth signals."""
    n = int(sig.warmup_for(parse_interval(interval))) + extra
    return synthetic_frame(n, interval, seed=seed, basket=2)


def same_values(a: pd.Series, b: pd.Series, atol: float = 0.0) -> bool:
    """Equal values (bool exactly; floats within ``atol``, NaN equal to NaN)."""
    if a.dtype == bool or b.dtype == bool:
        return bool((a.to_numpy() == b.to_numpy()).all())
    x, y = a.to_numpy(dtype="float64"), b.to_numpy(dtype="float64")
    both_nan = np.isnan(x) & np.isnan(y)
    close = np.isclose(x, y, rtol=0.0, atol=max(atol, 1e-12))
    return bool((both_nan | close).all())


def check_alignment_dtype_name(sig: Any, frame: pd.DataFrame) -> None:
    out = sig.compute(frame)
    assert isinstance(out, pd.Series), f"{sig.name}: compute must return a Series"
    assert out.index.equals(frame.index), f"{sig.name}: result not aligned to frame.index"
    want = "bool" if sig.kind == "bool" else "float64"
    assert str(out.dtype) == want, f"{sig.name}: dtype {out.dtype}, contract says {want}"
    assert out.name == sig.name, f"{sig.name}: series named {out.name!r}"


def check_no_mutation(sig: Any, frame: pd.DataFrame) -> None:
    before = frame.copy(deep=True)
    attrs = copy.deepcopy(frame.attrs)
    sig.compute(frame)
    pd.testing.assert_frame_equal(frame, before, check_exact=True)
    assert frame.attrs == attrs, f"{sig.name}: frame.attrs mutated"


def check_determinism(sig: Any, frame: pd.DataFrame) -> None:
    a = sig.compute(frame)
    b = sig.compute(frame.copy(deep=True))
    cls = type(sig)
    c = cls.from_config(sig.to_config()) if hasattr(cls, "from_config") else cls(**sig.params)
    assert same_values(a, b), f"{sig.name}: two runs on the same frame differ"
    assert same_values(a, c.compute(frame)), (
        f"{sig.name}: a rebuilt equal signal gives other values")


def check_warmup(sig: Any, frame: pd.DataFrame) -> None:
    out = sig.compute(frame)
    w = sig.warmup_for(bar_interval(frame))
    head = out.iloc[:w]
    if sig.kind == "bool":
        assert not head.any(), f"{sig.name}: True inside the {w}-bar warm-up"
    else:
        assert head.isna().all(), f"{sig.name}: values inside the {w}-bar warm-up"


def check_missing_inputs(sig: Any, frame: pd.DataFrame) -> None:
    """NaN never triggers: with every input column missing, a bool signal is all False and a
    float signal all NaN."""
    blank = frame.copy()
    columns = sig.columns_in(frame) if hasattr(sig, "columns_in") else sig.required_columns()
    for col in columns:
        blank[col] = np.nan
    out = sig.compute(blank)
    if sig.kind == "bool":
        assert not out.any(), f"{sig.name}: fires on missing inputs"
    else:
        assert out.isna().all(), f"{sig.name}: values from missing inputs"


def check_truncation(sig: Any, frame: pd.DataFrame, cut: int,
                     full: pd.Series | None = None) -> None:
    """Values at t < cut are unchanged when the rows from cut onward are dropped (``full``:
    the signal on the whole frame, when already computed)."""
    full = (sig.compute(frame) if full is None else full).iloc[:cut]
    part = sig.compute(frame.iloc[:cut])
    if not same_values(full, part):
        diff = full.index[~((full.to_numpy() == part.to_numpy()) | (full.isna() & part.isna()))]
        raise AssertionError(
            f"{sig.name}: look-ahead - values before the cut at {frame.index[cut - 1]} change "
            f"when later rows are dropped (first at {diff[:3].tolist()})"
        )


def check_convergence(sig: Any, frame: pd.DataFrame) -> None:
    """Given warmup_for(interval) bars of history, the last value is within the tolerance."""
    w = sig.warmup_for(bar_interval(frame))
    assert len(frame) > w + 1, "test frame too short for this signal"
    full = sig.compute(frame).iloc[-1]
    short = sig.compute(frame.iloc[-(w + 1):]).iloc[-1]
    tol = sig.tolerance
    if sig.kind == "bool":
        assert tol >= 1 or bool(full) == bool(short), (
            f"{sig.name}: last value {short} with {w} bars of history, {full} with all of it"
        )
    else:
        assert not np.isnan(full), f"{sig.name}: NaN at the last bar after warm-up"
        assert not np.isnan(short), f"{sig.name}: NaN at the last bar with {w} bars of history"
        assert abs(full - short) <= tol, (
            f"{sig.name}: last value {short} with {w} bars of history vs {full} with all of it "
            f"(declared tolerance {tol})"
        )


def _truncation_sweep(sig: Any, interval: str, examples: int, seed: int) -> None:
    """Truncation at seeded random cuts of seeded random frames (numpy only)."""
    rng = np.random.default_rng(seed)
    for _ in range(examples):
        frame = conformance_frame(sig, interval, seed=int(rng.integers(0, 10_000)), extra=120)
        full = sig.compute(frame)
        check_truncation(sig, frame, max(1, int(rng.uniform(0.05, 1.0) * len(frame))), full)
        check_at_a_trigger(sig, frame, full, int(rng.integers(0, 1 << 30)))


def check_at_a_trigger(sig: Any, frame: pd.DataFrame, full: pd.Series, pick: int) -> None:
    """Truncation with the frame ending AT a trigger bar (freqtrade's lookahead-analysis cut):
    a sparse trigger that needs later bars -- a swing low used at its own bar -- is rarely hit
    by a random cut, always by this one."""
    if sig.kind != "bool":
        return
    fired = np.flatnonzero(full.to_numpy())
    if len(fired):
        check_truncation(sig, frame, int(fired[pick % len(fired)]) + 1, full)


CHECKS: dict[str, Callable[[Any, pd.DataFrame], None]] = {
    "alignment_dtype_name": check_alignment_dtype_name,
    "no_mutation": check_no_mutation,
    "determinism": check_determinism,
    "warmup": check_warmup,
    "missing_inputs": check_missing_inputs,
    "warmup_convergence": check_convergence,
}


def check_signal(sig: Any, interval: str = "1d", *, frame: pd.DataFrame | None = None,
                 truncations: int = 10, seed: int = 0,
                 truncation: Callable[[], None] | None = None) -> dict[str, str]:
    """Run every contract check on ``sig``; return {check: failure message} for those that
    fail (empty when the signal keeps the contract).

    ``frame``: your own frame (default: :func:`conformance_frame` for ``interval``), used for
    every check but truncation, which draws ``truncations`` seeded random frames and cuts (or
    runs ``truncation``, e.g. a Hypothesis property, instead).
    """
    frame = conformance_frame(sig, interval) if frame is None else frame
    failures: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check(sig, frame)
        except AssertionError as exc:
            failures[name] = str(exc)
    try:
        if truncation is not None:
            truncation()
        else:
            _truncation_sweep(sig, interval, truncations, seed)
    except AssertionError as exc:
        failures["truncation_invariance"] = str(exc)
    return failures
