"""The signal contract: :class:`Param` declarations and the :class:`Signal` base class.

Every signal in flushback is a subclass of :class:`Signal`; its docstring below *is* the
contract, and ``tests/test_signals_conformance.py`` checks every registered signal against it.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from flushback.data.errors import ConfigError, DataError
from flushback.data.intervals import bar_interval, bars_for, days_to_bars, duration, td_label
from flushback.data.suggest import did_you_mean

__all__ = [
    "IDENTIFIER",
    "Param",
    "Signal",
    "SignalCache",
    "cached_part",
    "bar_interval",
    "bars_for",
    "check_granularity",
    "days_to_bars",
    "duration",
    "did_you_mean",
    "validate_params",
]

#: a frame column a user names (``etf_flows``, ``mvrv``): a lower-case identifier
IDENTIFIER = r"[a-z_][a-z0-9_]*"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One declared parameter: its type, default, valid/search range and documentation.

    The declaration is the single source of truth for validation *and* for the search space
    the optimizer samples (``Signal.search_space()``); no signal declares its ranges twice.

    - ``type``: ``int``, ``float``, ``str`` or ``bool``.
    - numeric parameters: ``low``/``high`` (inclusive, both the valid range and the search
      range), and either ``step`` (a grid) or ``log=True`` (sample on a log scale). A level on
      a scale only the user knows (a threshold on a user series) leaves ``low``/``high`` out:
      any finite value is valid, and the optimizer searches it only inside a range the spec's
      ``[search]`` table gives (``searchable`` is False).
    - categorical parameters: ``choices`` (a tuple of allowed values; ``bool`` parameters are
      categorical over ``(False, True)``).
    - free-text parameters (``str`` without choices, e.g. the name of a frame column):
      ``pattern``, a regular expression the whole value must match (``IDENTIFIER`` for column
      names). Their ``kind`` is ``"text"``: never sampled by the optimizer, only fixed.
    - ``doc`` and ``units`` are shown by ``flushback signals list`` and in docs/signals.md.
    """

    type: type
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    units: str = ""
    pattern: str | None = None

    def __post_init__(self) -> None:
        if self.type is bool and self.choices is None:
            object.__setattr__(self, "choices", (False, True))
        if self.pattern is not None and (self.type is not str or self.choices is not None):
            raise ValueError("pattern is for str Params without choices")
        if self.type in (int, float) and self.choices is None:
            if (self.low is None) != (self.high is None):
                raise ValueError("numeric Param needs both low and high, or neither")
            if self.low is not None and self.low > self.high:  # type: ignore[operator]
                raise ValueError("numeric Param needs low <= high")
            if self.log and (self.step is not None or self.low is None or self.low <= 0):
                raise ValueError("log-scale Param needs low > 0 and no step")
        if self.type is str and not self.choices and self.pattern is None:
            raise ValueError("str Param needs choices or a pattern")

    @property
    def kind(self) -> str:
        """``"int"``, ``"float"``, ``"categorical"`` (what the optimizer samples) or ``"text"``
        (free text: never sampled)."""
        if self.choices is not None:
            return "categorical"
        if self.type is str:
            return "text"
        return "int" if self.type is int else "float"

    @property
    def searchable(self) -> bool:
        """Whether the optimizer may sample this parameter from its declaration alone: not
        free text, and a numeric range is declared (an open level needs a ``[search]``
        range)."""
        return self.kind == "categorical" or (self.kind != "text" and self.low is not None)

    def describe_range(self) -> str:
        if self.choices is not None:
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        if self.kind == "text":
            return f"text matching {self.pattern}"
        if self.low is None:
            return "any finite value (search range from [search])"
        text = f"[{_fmt(self.low)}, {_fmt(self.high)}]"
        if self.log:
            text += " log"
        elif self.step is not None:
            text += f" step {_fmt(self.step)}"
        return text

    def validate(self, value: Any, name: str, owner: str = "") -> Any:
        """Coerce ``value`` (strings from the CLI are parsed) and check it; ConfigError if bad."""
        where = f"{owner}.{name}" if owner else name
        try:
            value = self._coerce(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"parameter '{where}' must be {self.type.__name__}, got {value!r}",
                hint=f"allowed: {self.describe_range()}",
            ) from None
        if self.choices is not None:
            if value not in self.choices:
                raise ConfigError(
                    f"parameter '{where}' = {value!r} is not one of {self.describe_range()}"
                    + did_you_mean(value, self.choices),
                    hint="pick one of the listed values",
                )
            return value
        if self.kind == "text":
            if not re.fullmatch(self.pattern or "", value):
                raise ConfigError(
                    f"parameter '{where}' = {value!r} does not match {self.pattern}",
                    hint=self.doc or "see `flushback signals list`",
                )
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"parameter '{where}' must be finite, got {value!r}")
        if self.low is None:
            return value
        if value < self.low or value > self.high:  # type: ignore[operator]
            raise ConfigError(
                f"parameter '{where}' = {value!r} is outside its range {self.describe_range()}",
                hint="choose a value inside the declared range (see `flushback signals list`)",
            )
        return value

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError(value)
        if self.type is int:
            if isinstance(value, bool):
                raise TypeError(value)
            if isinstance(value, str):
                value = float(value.strip())
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(value)
                return int(value)
            if isinstance(value, int):
                return value
            raise TypeError(value)
        if self.type is float:
            if isinstance(value, bool):
                raise TypeError(value)
            if isinstance(value, str):
                return float(value.strip())
            if isinstance(value, int | float):
                return float(value)
            raise TypeError(value)
        if self.type is str:
            if not isinstance(value, str):
                raise TypeError(value)
            return value.strip()
        raise TypeError(value)  # pragma: no cover

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type.__name__,
            "kind": self.kind,
            "default": self.default,
        }
        if self.choices is not None:
            out["choices"] = list(self.choices)
        elif self.kind == "text":
            out["pattern"] = self.pattern
        else:
            out.update(low=self.low, high=self.high, step=self.step, log=self.log)
        out["units"] = self.units
        out["doc"] = self.doc
        return out


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:g}" if isinstance(x, float) else str(x)


def check_granularity(frame: pd.DataFrame, column: str, window: pd.Timedelta, *,
                      what: str) -> None:
    """Refuse a window finer than the data behind ``column``: summing a "1h" window over 4h or
    daily totals would count a coarser figure as if it were the window's. The assembled
    frame names each external column's coarsest dataset interval in
    ``attrs["column_intervals"]`` (and the datasets in ``attrs["column_datasets"]``)."""
    src = (frame.attrs.get("column_intervals") or {}).get(column)
    if not src:
        return
    src_td = duration(src)
    if window < src_td:
        used = ", ".join((frame.attrs.get("column_datasets") or {}).get(column, [])) or column
        raise ConfigError(
            f"{what} = {td_label(window)} is finer than the data behind {column}: {used} "
            f"holds {src} totals",
            hint=f"use a window of at least {src}, or load a finer dataset for these bars",
        )





def validate_params(specs: Mapping[str, Param], values: Mapping[str, Any], *, owner: str,
                    unknown: Callable[[str], str], hint: str,
                    known: Sequence[str] = ()) -> dict[str, Any]:
    """``values`` checked against their ``Param`` declarations, the defaults filled in.

    An undeclared key is a ConfigError: ``unknown(key)`` plus a did-you-mean among the declared
    names (and ``known``, other accepted keys), with ``hint``; ``owner`` names the parameters'
    owner in the messages of :meth:`Param.validate`.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in specs:
            raise ConfigError(unknown(key) + did_you_mean(key, [*specs, *known]), hint=hint)
        out[key] = specs[key].validate(value, key, owner)
    for key, spec in specs.items():
        out.setdefault(key, spec.default)
    return out


def _freeze(obj: Any) -> Hashable:
    if isinstance(obj, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in obj.items()))
    if isinstance(obj, list | tuple):
        return tuple(_freeze(v) for v in obj)
    hash(obj)
    return obj  # type: ignore[no-any-return]


_ACTIVE_CACHE: contextvars.ContextVar[SignalCache | None] = contextvars.ContextVar(
    "flushback_signal_cache", default=None)


class SignalCache:
    """Reuse of signal work on ONE frame across many computations (e.g. optimizer trials).

    A signal is a pure function of its parameters and the frame (the :class:`Signal`
    contract), so while a cache is active::

        cache = SignalCache(frame)
        with cache.active():
            a = build_signal(cfg_a).compute(frame)
            b = build_signal(cfg_b).compute(frame)   # shared children are not recomputed

    - ``Signal.compute`` returns the stored series for a signal already computed on this
      frame with the same configuration (type and every parameter, children included): the
      children of a composite whose parameters did not change are computed once;
    - signals store their parameter-dependent intermediates with :func:`cached_part` under
      the parameters that affect them (an RSI's values under period/smoothing/timeframe, a
      liquidation z-score under window/measure/lookback/...), so a signal whose only changed
      parameter is a threshold compares the stored series with the new threshold.

    The cache serves only the frame object it was made for (any other frame is computed as
    usual) and that frame must not be mutated while the cache is in use. Stored series are
    shared: treat them as read-only. Bounded: the least recently used entries beyond
    ``maxsize`` (indicators and signals counted apart) are dropped. Results are identical
    with and without the cache (tested).
    """

    def __init__(self, frame: pd.DataFrame, maxsize: int = 64) -> None:
        self.frame = frame
        self.maxsize = int(maxsize)
        self._store: OrderedDict[Hashable, Any] = OrderedDict()
        # indicators (``cached_part``) have their own LRU: an optimizer trying thousands of
        # thresholds stores thousands of signal results, and they must not push out the
        # few dozen indicator settings every new threshold is compared against
        self._parts: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()  # several threads may share one cache
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store) + len(self._parts)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self._parts.clear()

    @contextlib.contextmanager
    def active(self) -> Iterator[SignalCache]:
        """Make this cache the one ``Signal.compute`` and :func:`cached_part` use (per
        thread / context; nests)."""
        token = _ACTIVE_CACHE.set(self)
        try:
            yield self
        finally:
            _ACTIVE_CACHE.reset(token)

    def get_or_compute(self, key: Hashable, fn: Callable[[], Any]) -> Any:
        """The value stored under ``key``, else ``fn()`` (stored)."""
        store = self._parts if isinstance(key, tuple) and key and key[0] == "part" \
            else self._store
        with self._lock:
            hit = store.get(key)
            if hit is not None:
                store.move_to_end(key)
                self.hits += 1
                return hit
            self.misses += 1
        value = fn()  # outside the lock: composites compute their children through the cache
        with self._lock:
            store[key] = value
            while len(store) > self.maxsize:
                store.popitem(last=False)
        return value


def _cache_for(frame: pd.DataFrame) -> SignalCache | None:
    cache = _ACTIVE_CACHE.get()
    return cache if cache is not None and cache.frame is frame else None


def cached_part(frame: pd.DataFrame, key: tuple[Any, ...], fn: Callable[[], Any]) -> Any:
    """``fn()`` -- an intermediate that depends on ``frame`` and on the values in ``key`` only
    -- memoized in the active :class:`SignalCache` when it serves ``frame``. ``key`` starts
    with a name unique to the computation (``("rsi", "close", 14, "wilder", "bar")``)."""
    cache = _cache_for(frame)
    if cache is None:
        return fn()
    try:
        k = ("part", *_freeze(key))  # type: ignore[misc]
    except TypeError:
        return fn()
    return cache.get_or_compute(k, fn)


class Signal(abc.ABC):
    """Base class of every signal. **This docstring is the contract.**

    A signal turns an assembled frame (see ``flushback.data``: index = bar OPEN time, UTC; a
    bar's values are known at its close; ``frame.attrs["interval"]``) into one value per bar:

    ``compute(frame) -> pd.Series``
        - aligned: the result's index *is* ``frame.index`` (same length, same order);
        - typed: ``dtype bool`` for a trigger (``kind = "bool"``) or ``float64`` for a strength
          (``kind = "float"``);
        - named: ``series.name == self.name``;
        - warm-up: the first ``warmup_for(interval)`` values (``interval``: the frame's bar
          interval) are ``False`` (bool) / ``NaN`` (float), and a bool signal is ``False``
          wherever its inputs are missing (NaN never triggers);
        - point-in-time: the value at bar ``t`` depends only on rows ``<= t``; dropping rows after
          ``t`` never changes it (no ``shift(-k)``, no centred windows, no full-sample statistics);
        - pure: the input frame (values, index, attrs) is never mutated; the same frame and
          parameters give the same result (no randomness, no clock, no I/O);
        - convergent: given ``warmup_for(interval)`` bars of history, the value at the last bar
          differs from the full-history value by at most ``tolerance`` (0 for exact,
          finite-memory signals; a recursive smoother declares the error it accepts).

    Metadata
        ``name`` (the registry name, set by ``@register``), ``params`` (a frozen mapping of the
        validated parameter values), ``warmup_for(interval)`` (bars, from the parameters and
        the bar interval: the one warm-up of the contract), ``inputs``
        (the frame columns required), ``tolerance`` (float) and ``kind`` ("bool" | "float").

    Parameters are declared once, as :class:`Param` objects in the class attribute
    ``param_specs``; the constructor validates keyword arguments against them (unknown names and
    out-of-range values raise :class:`ConfigError` with a did-you-mean). ``search_space()``
    returns the declarations: that is what the optimizer samples.

    ``Signal`` is an abstract base: subclasses implement ``_compute(frame) -> pd.Series`` and,
    when they need history, ``warmup_for(interval)``; the base class checks the inputs, applies
    the warm-up mask and the dtype, and names the result. ``explain(frame)`` returns the
    intermediate values (a DataFrame on the frame's index) that a trigger is made of; the CLI's
    ``signals scan`` prints them.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "bool"
    inputs: ClassVar[tuple[str, ...]] = ()
    optional_inputs: ClassVar[tuple[str, ...]] = ()
    param_specs: ClassVar[Mapping[str, Param]] = {}
    summary: ClassVar[str] = ""
    tolerance: float = 0.0

    def __init__(self, **params: Any) -> None:
        specs = self.param_specs
        values = validate_params(
            specs, params, owner=self.name,
            unknown=lambda key: f"unknown parameter '{key}' for signal '{self.name}'",
            hint=f"parameters of {self.name}: {', '.join(specs) or '(none)'}",
        )
        self._validate(values)
        self.params: Mapping[str, Any] = MappingProxyType(values)

    # --- hooks -------------------------------------------------------------------------
    def _validate(self, values: dict[str, Any]) -> None:
        """Cross-parameter checks (raise ConfigError). Default: none."""
        return None

    @abc.abstractmethod
    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        """The raw per-bar values (the base masks the warm-up, types and names them)."""

    def warmup_for(self, interval: pd.Timedelta) -> int:
        """Warm-up in bars for frames of ``interval`` (default 0: no history needed). The one
        warm-up of the contract: a count of bars means nothing without the bar interval."""
        return 0

    # --- public API ----------------------------------------------------------------------
    @classmethod
    def search_space(cls) -> dict[str, Param]:
        """The declared parameters (name -> :class:`Param`): what the optimizer samples."""
        return dict(cls.param_specs)

    @classmethod
    def example(cls) -> Signal:
        """An instance with default parameters (composites override this with children)."""
        return cls()

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    def to_config(self) -> dict[str, Any]:
        """The config dict that ``build_signal`` turns back into an equal signal."""
        return {"type": self.name, **self.params}

    def with_params(self, overrides: Mapping[str, Any]) -> Signal:
        """A new signal with some parameters replaced (flat names, as in ``search_space``)."""
        return type(self)(**{**self.params, **dict(overrides)})

    def required_columns(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def columns_in(self, frame: pd.DataFrame) -> tuple[str, ...]:
        """The columns of ``frame`` this signal reads: ``required_columns()``, plus whatever
        depends on the frame (a breadth signal reads every basket member's columns)."""
        return self.required_columns()

    def compute(self, frame: pd.DataFrame) -> pd.Series:
        """Compute the signal on ``frame`` (see the class docstring for the contract).

        Inside an active :class:`SignalCache` for ``frame`` the result is memoized under the
        signal's type and full configuration."""
        cache = _cache_for(frame)
        if cache is not None:
            try:
                key = ("signal", type(self), _freeze(self.to_config()))
            except TypeError:  # an unhashable parameter: compute as usual
                return self._compute_checked(frame)
            return cache.get_or_compute(key, lambda: self._compute_checked(frame))  # type: ignore[no-any-return]
        return self._compute_checked(frame)

    def _compute_checked(self, frame: pd.DataFrame) -> pd.Series:
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"signal '{self.name}' needs a pandas DataFrame, got {type(frame)}")
        missing = [c for c in self.required_columns() if c not in frame.columns]
        if missing:
            raise DataError(
                f"signal '{self.name}' needs column(s) {', '.join(missing)}",
                column=missing[0],
                hint="load the frame with the externals this signal uses "
                "(flushback.data.load_frame(..., externals=...))",
            )
        if len(frame) == 0:
            return self._finish(pd.Series([], index=frame.index, dtype="float64"), frame, 0)
        warmup = self.warmup_for(bar_interval(frame))
        raw = self._compute(frame)
        return self._finish(raw, frame, warmup)

    def _finish(self, raw: pd.Series, frame: pd.DataFrame, warmup: int) -> pd.Series:
        arr = np.asarray(raw)
        if self.kind == "bool" and arr.dtype == bool:  # already a clean trigger: no NaN
            arr = arr.copy()
            if warmup:
                arr[:warmup] = False
            out = pd.Series(arr, index=frame.index, name=self.name)
            return out
        values = pd.Series(arr, index=frame.index)
        if self.kind == "bool":
            out = values.astype("float64").fillna(0.0).astype(bool)
            if warmup:
                out.iloc[:warmup] = False
        else:
            out = values.astype("float64")
            if warmup:
                out.iloc[:warmup] = np.nan
        out.name = self.name
        return out

    def threshold_form(self) -> tuple[str, str] | None:
        """``(parameter, op)`` when this trigger is a level against a threshold:
        ``compute(frame)`` equals ``self.level(frame) <op> params[parameter]`` (``op`` one of
        ``<``, ``<=``, ``>``, ``>=``; NaN never triggers), then the warm-up bars False;
        neither the level nor the warm-up depends on that parameter. A study that moves only
        the threshold compares the same level again instead of computing the signal. None
        (the default): no such form."""
        return None

    def level(self, frame: pd.DataFrame) -> pd.Series:
        """The level a :meth:`threshold_form` trigger compares (float per bar)."""
        raise NotImplementedError(f"signal '{self.name}' has no threshold form")

    def evaluable(self, frame: pd.DataFrame) -> pd.Series:
        """Bars where the signal's inputs are present (bool on ``frame.index``): where this is
        False a False trigger means "no data", not "no". Composites combine their children
        (all: every child; any/k_of_n: at least one)."""
        cols = [c for c in self.columns_in(frame) if c in frame.columns]
        if not cols:
            return pd.Series(True, index=frame.index)
        return frame[cols].notna().all(axis=1)

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Intermediate values per bar (the inputs by default) for ``signals scan``."""
        cols = [c for c in (*self.required_columns(), *self.optional_inputs) if c in frame.columns]
        return frame[cols].copy()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_config() == other.to_config()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash(repr(self.to_config()))
