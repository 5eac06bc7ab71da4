"""What a study evaluates: the :class:`Evaluator` protocol a backtest engine implements, the
scored part of one backtest (:class:`Evaluation`), the per-trial returns codec stored on each
trial (:func:`encode_returns`), and :class:`SpecEvaluator`, the evaluator that runs a backtest
spec through :mod:`flushback.backtests.run.runner` on a window that ends where the window ends
(no bar after it exists for the signals or the engine)."""

from __future__ import annotations

import dataclasses
import importlib
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pybase64

from flushback.backtests.optimize.space import SearchSpace, is_searchable
from flushback.signals.base import SignalCache

#: signal results kept per evaluation window (indicators and signals; LRU)
VIEW_SIGNAL_CACHE = 256


@dataclass
class Evaluation:
    """The scored part of one backtest: window ``[start, end]`` only."""

    metrics: dict[str, Any]
    returns: np.ndarray  # per-bar simple returns of the equity over the window (first = 0)
    timings: dict[str, float] = field(default_factory=dict)
    result: Any = None  # the full BacktestResult when the evaluator has one


class Evaluator(Protocol):
    """What a study needs from a backtest engine (``SpecEvaluator`` wraps the runner)."""

    periods_per_year: int
    index: pd.DatetimeIndex  # bars that can be scored

    def declared_space(self) -> dict[str, Any]: ...  # flat key -> Param

    def default_search_keys(self) -> list[str]: ...

    def search_table(self) -> dict[str, Any] | None: ...

    def current_values(self) -> dict[str, Any]: ...

    def evaluate(self, params: Mapping[str, Any], start: pd.Timestamp, end: pd.Timestamp,
                 *, keep: bool = False) -> Evaluation: ...

    def describe(self) -> dict[str, Any]: ...


def load_evaluator(factory: str, kwargs: Mapping[str, Any]) -> Evaluator:
    """Build an evaluator from ``"module:callable"`` (importable in worker processes)."""
    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)(**dict(kwargs))


#: the current encoding of :func:`encode_returns` ("m1:" strings, an uncompressed mask, and
#: strings without a prefix, float32 -> zlib -> base64, are earlier ones: still read)
_RETURNS_FORMAT = "m2:"
_RETURNS_FORMAT_M1 = "m1:"


def encode_returns(r: np.ndarray) -> str:
    """Per-bar returns as a compact, JSON-safe string for a trial's user attributes.

    A contrarian strategy is flat most of the time, so its returns are mostly exact zeros:
    the string holds the bit mask of the non-zero bars (``np.packbits``, then zlib: the flat
    stretches are long runs) and their values as float32, base64-encoded
    (``"m2:<n>:<mask>:<values>"``). Non-finite values are stored as 0. About as small as
    zlib on the float32 series and several times cheaper to write (hourly series are long,
    a study writes one per trial, and every byte is written, then read back, as JSON)."""
    a = np.asarray(r)
    nz = a != 0
    values = a[nz].astype(np.float32)  # (a value below float32's range is stored as 0)
    if not np.isfinite(values).all():  # stored as 0: left out of the mask
        nz &= np.isfinite(a.astype(np.float32))
        values = a[nz].astype(np.float32)
    b64 = pybase64.b64encode
    mask = zlib.compress(np.packbits(nz).tobytes(), 1)
    return (f"{_RETURNS_FORMAT}{len(a)}:{b64(mask).decode('ascii')}:"
            f"{b64(values.tobytes()).decode('ascii')}")


def decode_returns(s: str) -> np.ndarray:
    """The float64 series :func:`encode_returns` stored (any of its encodings)."""
    for prefix in (_RETURNS_FORMAT, _RETURNS_FORMAT_M1):
        if s.startswith(prefix):
            n, mask, values = s[len(prefix):].split(":")
            bits = pybase64.b64decode(mask)
            if prefix == _RETURNS_FORMAT:
                bits = zlib.decompress(bits)
            nz = np.unpackbits(np.frombuffer(bits, dtype=np.uint8), count=int(n)).astype(bool)
            out = np.zeros(int(n))
            out[nz] = np.frombuffer(pybase64.b64decode(values), dtype=np.float32)
            return out
    return np.frombuffer(zlib.decompress(pybase64.b64decode(s)), dtype=np.float32).astype(float)


def _flatten_search_table(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``[search]`` as flat keys; ``params`` and ``constraints`` stay lists at the top level."""
    out: dict[str, Any] = {}
    range_keys = {"low", "high", "step", "log", "choices"}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if not prefix and k in ("params", "constraints"):
            out[k] = v
        elif isinstance(v, Mapping) and not (v and set(v) <= range_keys):
            out.update(_flatten_search_table(v, key + "."))
        else:
            out[key] = v
    return out


class SpecEvaluator:
    """Runs a spec's backtest on a window ``[start, end]`` with trial parameters.

    The data is loaded once (``runner.prepare``). For each window the runner gets a view of
    the loaded frame that *ends at the window's end*: no bar after ``end`` exists for the
    signals or the engine, so a training window cannot see its test data. Bars before
    ``start`` are there as warm-up history only; equity, trades and metrics start at
    ``start``.
    """

    def __init__(self, spec: Any, overrides: Sequence[str] = (), data_dir: str | None = None,
                 since: str | None = None, until: str | None = None,
                 frame: pd.DataFrame | None = None, engine: str | None = None) -> None:
        from flushback.backtests.run import runner
        from flushback.backtests.run.metrics import periods_per_year_for
        from flushback.backtests.run.spec import load_spec
        from flushback.strategies.engines import check_engine, engine_supports

        self.spec = load_spec(spec, overrides=list(overrides) or None)
        #: the engine trials run on: the fast engine when it runs the strategy type, else
        #: backtrader (the end-of-study re-check compares the winners with backtrader)
        if engine is None:
            engine = "fast" if engine_supports("fast", self.spec.strategy.type) else "backtrader"
        self.engine = check_engine(engine)
        if frame is not None:  # a frame you already have (tests, notebooks)
            self.prepared = runner.prepare_frame(self.spec, frame, since=since, until=until)
        else:
            self.prepared = runner.prepare(self.spec, data_dir=data_dir, since=since,
                                           until=until)
        self.index = self.prepared.window.index
        self.periods_per_year = periods_per_year_for(self.spec.data.interval)
        self._views: dict[tuple[pd.Timestamp, pd.Timestamp], Any] = {}
        #: reuse signal work across trials (``run_backtest(reuse_signals=...)``); results are
        #: identical either way
        self.memoize_signals = True
        #: fast-engine trials take the array path (backtests.fast_trials) unless a result is
        #: kept; False runs them through run_backtest (identical metrics, tested)
        self.fast_trials = True
        self._fast_windows: dict[int, Any] = {}

    # -- search space ------------------------------------------------------------------
    def declared_space(self) -> dict[str, Any]:
        from flushback.signals import build_signal
        from flushback.strategies.config import strategy_param_specs

        out: dict[str, Any] = {}
        for name, cfg in self.spec.signals.items():
            for k, p in build_signal(cfg).search_space().items():
                out[f"signals.{name}.{k}"] = p
        for k, p in strategy_param_specs(self.spec.strategy.type).items():
            out[f"strategy.{k}"] = p
        return out

    def search_table(self) -> dict[str, Any] | None:
        return _flatten_search_table(self.spec.search) if self.spec.search else None

    def default_search_keys(self) -> list[str]:
        """The signal parameters the spec sets explicitly, plus the parameters ``[search]``
        gives a range (``[search] params = ["signals.*"]`` widens this to everything)."""
        declared = self.declared_space()
        keys = []
        for name, cfg in self.spec.signals.items():
            for k in _flat_signal_config(cfg):
                key = f"signals.{name}.{k}"
                # numeric only: a categorical (e.g. an RSI's timeframe) changes what the
                # signal *is*; name it in [search] to search it
                if (key in declared and getattr(declared[key], "choices", None) is None
                        and is_searchable(declared[key])):
                    keys.append(key)
        table = self.search_table() or {}
        keys += [k for k in table if k.startswith("strategy.") and isinstance(table[k], Mapping)]
        return keys

    def current_values(self) -> dict[str, Any]:
        values = {k: p.default for k, p in self.declared_space().items()}
        for k, v in self.spec.strategy.params.items():
            values[f"strategy.{k}"] = v
        for name, cfg in self.spec.signals.items():
            for k, v in _flat_signal_config(cfg).items():
                values[f"signals.{name}.{k}"] = v
        return values

    def _fast(self, start: pd.Timestamp, end: pd.Timestamp) -> Any:
        from flushback.backtests.optimize.fast_trials import FastTrials

        view = self.window_view(start, end)
        ft = self._fast_windows.get(id(view))
        if ft is None or ft.view is not view:
            if len(self._fast_windows) > 64:
                self._fast_windows.clear()
            ft = self._fast_windows[id(view)] = FastTrials(self.spec, view,
                                                            self.periods_per_year)
        return ft

    def default_embargo(self, space: SearchSpace) -> int:
        """The longest holding period the search allows (or the spec's, when not searched;
        0 when positions have no time exit) plus the signals' warm-up, in bars."""
        hold = int(self.spec.strategy.params.get("hold_bars") or 0)
        for p in space.params:
            if p.name == "strategy.hold_bars" and p.high is not None:
                hold = int(p.high)
        if "strategy.hold_bars" in space.fixed:
            hold = int(space.fixed["strategy.hold_bars"] or 0)
        return hold + int(self.prepared.warmup_bars)

    def warm(self, start: pd.Timestamp, end: pd.Timestamp) -> None:
        """Get ready for trials on ``[start, end]``: the window's arrays, the imports and the
        compiled engine loaded, by one backtest of the spec's own parameters (worker
        processes forked after this start warm)."""
        self.evaluate({}, start, end)

    def prepare(self, space: SearchSpace, windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]],
                limit: int) -> int:
        """Before a study's trials (and before its worker processes are forked from this
        one): the signal levels its trials will reuse, built on each training window
        (:meth:`FastTrials.prepare`), at most ``limit`` in all. Returns how many."""
        if not (self.engine == "fast" and self.fast_trials):
            return 0
        dists = space.distributions()
        built = 0
        for a, b in windows:
            built += self._fast(a, b).prepare(space.fixed, dists, limit - built)
        return built

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec.name, "interval": self.spec.data.interval,
                "symbol": self.spec.data.symbol, "bars": len(self.index),
                "engine": self.engine}

    # -- evaluation --------------------------------------------------------------------
    def window_view(self, start: pd.Timestamp, end: pd.Timestamp) -> Any:
        """The ``Prepared`` a backtest of ``[start, end]`` runs on: the loaded frame cut at
        ``end`` (bars before ``start`` are warm-up history), with its own signal cache;
        kept for the next trial on the same window."""
        key = (pd.Timestamp(start), pd.Timestamp(end))
        view = self._views.get(key)
        if view is None:
            full = self.prepared.frame
            frame = full.loc[full.index <= key[1]]
            frame.attrs = dict(full.attrs)
            view = dataclasses.replace(self.prepared, frame=frame, start=key[0], end=key[1],
                                       cache={})
            # a study revisits many indicator settings (each RSI period, each z-score
            # lookback): keep more of them than a single run needs
            view.signal_cache = SignalCache(frame, maxsize=VIEW_SIGNAL_CACHE)
            if len(self._views) > 64:
                self._views.clear()
            self._views[key] = view
        return view

    def evaluate(self, params: Mapping[str, Any], start: pd.Timestamp, end: pd.Timestamp,
                 *, keep: bool = False, engine: str | None = None) -> Evaluation:
        """Backtest ``params`` on ``[start, end]`` (``engine``: this evaluator's by default)."""
        from flushback.backtests.run.runner import run_backtest

        t0 = time.perf_counter()
        engine = engine or self.engine
        if engine == "fast" and not keep and self.fast_trials:
            # the per-trial path: arrays in, metrics out (no frames, no benchmark run)
            metrics, r = self._fast(start, end).evaluate(params)
            return Evaluation(metrics=metrics, returns=r,
                              timings={"backtest": time.perf_counter() - t0})
        # each window's Prepared carries a SignalCache: a signal (or composite child) whose
        # configuration an earlier trial already computed is not computed again, and a changed
        # threshold reuses the indicator behind it (the runner's reuse_signals hook)
        res = run_backtest(self.spec, prepared=self.window_view(start, end),
                           params=dict(params),
                           reuse_signals=self.memoize_signals, engine=engine)
        t1 = time.perf_counter()
        return Evaluation(metrics=dict(res.metrics), returns=bar_returns(res.equity["equity"]),
                          timings={"backtest": t1 - t0}, result=res if keep else None)

    def score(self, params: Mapping[str, Any],
              windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]]) -> Evaluation:
        """What a trial is scored and stored with: ``params`` on one window, or on several
        stitched into one account (:meth:`evaluate_windows`), with the metrics narrowed to
        :data:`~flushback.backtests.run.metrics.SCORE_METRICS` on the fast engine (the same
        values as :meth:`evaluate`'s, computed without the rest; the reference engine gives
        them all)."""
        if not (self.engine == "fast" and self.fast_trials):
            if len(windows) == 1:
                return self.evaluate(params, *windows[0])
            return self.evaluate_windows(params, windows)
        t0 = time.perf_counter()
        if len(windows) == 1:
            ft = self._fast(*windows[0])
            metrics, r = ft.scores(*ft.simulate(params, copy=False), path=ft.path)
        else:
            ft, eq, pos, rows, r = self._fast_stitched(params, windows)
            metrics = ft.scores(eq, pos, rows)[0]
        return Evaluation(metrics=metrics, returns=r,
                          timings={"backtest": time.perf_counter() - t0})

    def _fast_stitched(self, params: Mapping[str, Any],
                       windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]]) -> tuple[
            Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The fast engine's runs of ``params`` on ``windows`` stitched into one account:
        (a FastTrials, equity, position, trade rows, the windows' returns one after the
        other)."""
        from flushback.backtests.optimize.stitch import stitch_arrays
        from flushback.strategies import nb

        pieces, ft = [], None
        for a, b in windows:
            ft = self._fast(a, b)
            eq, pos, rows = ft.simulate(params)
            pieces.append((eq, pos.copy(), rows.copy()))
        assert ft is not None
        eq, pos, rows = stitch_arrays(pieces, self.spec.cash, nb.TRADE_FIELDS)
        return ft, eq, pos, rows, np.concatenate([bar_returns(p[0]) for p in pieces])

    def evaluate_windows(self, params: Mapping[str, Any],
                         windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]], *,
                         engine: str | None = None) -> Evaluation:
        """``params`` on several windows, each backtested on its own (flat at its start, the
        bars before it as warm-up history) and stitched into one account
        (:mod:`flushback.backtests.optimize.stitch`): the metrics of the stitched equity and
        trades, the windows' returns one after the other. A combinatorial purged k-fold split
        scores its training segments this way."""
        from flushback.backtests.optimize.stitch import combine

        t0 = time.perf_counter()
        engine = engine or self.engine
        if engine == "fast" and self.fast_trials:
            ft, eq, pos, rows, r = self._fast_stitched(params, windows)
            return Evaluation(metrics=ft.metrics(eq, pos, rows), returns=r,
                              timings={"backtest": time.perf_counter() - t0})
        parts = [self.evaluate(params, a, b, keep=True, engine=engine) for a, b in windows]
        out = combine(parts, self.spec.cash, self.periods_per_year)
        out.timings = {"backtest": time.perf_counter() - t0}
        return out


def bar_returns(equity: pd.Series | np.ndarray) -> np.ndarray:
    """Per-bar simple returns of an equity series, the first bar's 0 included (what a trial
    stores and the overfitting statistics read)."""
    eq = np.asarray(equity, dtype=float)
    r = np.zeros(len(eq))
    if len(eq) > 1:
        r[1:] = eq[1:] / eq[:-1] - 1.0
    return r


def _flat_signal_config(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if k == "type":
            continue
        if k == "of" and isinstance(v, list):
            for i, child in enumerate(v):
                if isinstance(child, Mapping):
                    out.update(_flat_signal_config(child, f"{prefix}of.{i}."))
        elif not isinstance(v, (Mapping, list)):
            out[f"{prefix}{k}"] = v
    return out
