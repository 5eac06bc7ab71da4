"""Optuna studies over signal and strategy parameters: out-of-sample, resumable, distributable.

The pieces, in the order a study uses them:

- **Search space** (:func:`build_search_space`): the ranges the signals and the strategy declare
  (``Param``), narrowed, fixed or restricted by the spec's ``[search]`` table, plus constraints
  such as ``"strategy.take_profit > strategy.stop_loss"`` (:class:`Constraint`).
- **Folds** (:func:`make_folds`): one train/test split (``train_until``, default 70/30) or ``K``
  walk-forward folds, anchored or rolling. A study only ever sees its fold's training window;
  the test window is scored once, for the chosen parameters, with earlier bars given to the
  signals as warm-up history only (never scored).
- **Storage** (:func:`open_storage`): optuna's own storages. The local default is optuna's
  journal file (``runs/optuna-journal.log``, see :func:`default_storage_url`); ``*.log``
  paths open a journal. Any SQLAlchemy URL works: ``sqlite:///path.db`` (optuna's RDB storage
  with *heartbeats*: a trial left RUNNING by a killed process is detected as stale, marked
  FAIL and re-queued with the same parameters; SQLite commits are atomic, so a SIGKILL never
  corrupts the file) or ``postgresql://user@host/db`` for several machines (a bare
  ``postgresql://`` is opened with the psycopg2 driver flushback installs, see
  :func:`normalize_storage_url`).
- **Workers** (:func:`run_worker`): each process prepares the data once, then loops ask ->
  evaluate -> tell. A gate (an advisory lock: ``fcntl`` for SQLite/journal files, PostgreSQL
  ``pg_advisory_lock``) makes "count the finished + running trials, then ask" atomic, so W
  processes on one or many machines finish *exactly* N trials. The sampler is rebuilt before
  every trial with a seed derived from (seed, fold, number of finished trials): its state is a
  function of the storage, so a resumed seeded study continues exactly as an uninterrupted one.
  By default (``StudyConfig.batch`` > 1) a worker holds the study in memory and writes its
  trials in batches (:mod:`flushback.backtests.optimize.batches`): the same exactly-N, resume and
  sharing guarantees, without a storage round trip per trial.
- **Analysis** (:func:`analyse_fold`): best trial on the training window, DSR and PBO over the
  stored per-trial training returns (:mod:`flushback.backtests.optimize.overfitting`), parameter
  importances (``optuna.importance``), and the out-of-sample backtest of the chosen parameters.

The finished-trial budget N counts COMPLETE and PRUNED trials (pruned = stopped early by the
pruner, or infeasible under a constraint); FAIL trials do not count and are retried.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import copy
import dataclasses
import fnmatch
import hashlib
import importlib
import json
import math
import os
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from flushback.backtests.run.timefmt import iso_z
from flushback.data.errors import ConfigError, StoreError
from flushback.signals.base import SignalCache

__all__ = [
    "SearchParam",
    "Constraint",
    "SearchSpace",
    "build_search_space",
    "Objective",
    "parse_objectives",
    "Fold",
    "make_folds",
    "Evaluation",
    "Evaluator",
    "StudyConfig",
    "default_storage_url",
    "normalize_storage_url",
    "StudyInterrupted",
    "open_storage",
    "run_worker",
    "run_study",
    "analyse_fold",
    "encode_returns",
    "decode_returns",
    "OBJECTIVE_METRICS",
]

#: signal results kept per evaluation window (indicators and signals; LRU)
VIEW_SIGNAL_CACHE = 256

#: a trial trading fewer times on its training window is infeasible (``--min-trades``)
DEFAULT_MIN_TRADES = 5

# metric name -> default direction ("max_drawdown" is scored by its magnitude, so "min" is the
# sensible direction whatever sign convention the metrics module uses)
OBJECTIVE_METRICS: dict[str, str] = {
    "sharpe": "maximize",
    "sortino": "maximize",
    "calmar": "maximize",
    "cagr": "maximize",
    "total_return": "maximize",
    "profit_factor": "maximize",
    "win_rate": "maximize",
    "expectancy": "maximize",
    "max_drawdown": "minimize",
    "volatility": "minimize",
    "exposure": "minimize",
}


# --------------------------------------------------------------------------------------------
# search space


@dataclass(frozen=True)
class SearchParam:
    """One sampled parameter (flat key such as ``signals.entry.threshold``)."""

    name: str
    kind: str  # "int" | "float" | "categorical"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def distribution(self) -> Any:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices or ()))
        assert self.low is not None and self.high is not None  # numeric: set by the spec
        if self.kind == "int":
            step = int(self.step) if self.step else 1
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=step)
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["choices"] is not None:
            d["choices"] = list(d["choices"])
        return d


_ALLOWED_NODES = (
    ast.Expression, ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant,
    ast.Load, ast.And, ast.Or, ast.Not, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub,
    ast.Gt, ast.GtE, ast.Lt, ast.LtE, ast.Eq, ast.NotEq,
)


@dataclass(frozen=True)
class Constraint:
    """A feasibility rule, e.g. ``"strategy.take_profit > 1.5 * strategy.stop_loss"``.

    Only comparisons, arithmetic (+ - * /), ``and``/``or``/``not``, numbers and parameter keys
    are allowed; it is parsed once and evaluated without ``eval``.
    """

    expr: str

    def _parsed(self) -> tuple[ast.Expression, dict[str, str]]:
        import re

        names: dict[str, str] = {}

        def sub(m: re.Match[str]) -> str:
            key = m.group(0)
            if key in ("and", "or", "not"):
                return key
            alias = f"_v{len(names)}"
            for a, k in names.items():
                if k == key:
                    return a
            names[alias] = key
            return alias

        text = re.sub(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*", sub, self.expr)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise ConfigError(
                f"cannot parse constraint {self.expr!r}: {exc.msg}",
                hint="write e.g. 'strategy.take_profit > strategy.stop_loss'",
            ) from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise ConfigError(f"constraint {self.expr!r} uses {type(node).__name__}",
                                  hint="only comparisons, + - * /, and/or/not are allowed")
        return tree, names

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(self._parsed()[1].values())

    def check(self, values: Mapping[str, Any]) -> bool:
        tree, names = self._parsed()
        env = {}
        for alias, key in names.items():
            if key not in values:
                raise ConfigError(
                    f"constraint {self.expr!r} names unknown parameter '{key}'",
                    hint="use the flat keys shown by `flushback optimize SPEC --show-space`",
                )
            env[alias] = values[key]
        return bool(_eval_node(tree.body, env))


def _eval_node(node: ast.AST, env: dict[str, Any]) -> Any:
    import operator as op

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        v = _eval_node(node.operand, env)
        return (not v) if isinstance(node.op, ast.Not) else -v
    if isinstance(node, ast.BinOp):
        ops = {ast.Add: op.add, ast.Sub: op.sub, ast.Mult: op.mul, ast.Div: op.truediv}
        return ops[type(node.op)](_eval_node(node.left, env), _eval_node(node.right, env))
    if isinstance(node, ast.BoolOp):
        vals = [_eval_node(v, env) for v in node.values]
        return all(vals) if isinstance(node.op, ast.And) else any(vals)
    if isinstance(node, ast.Compare):
        cmp = {ast.Gt: op.gt, ast.GtE: op.ge, ast.Lt: op.lt, ast.LtE: op.le,
               ast.Eq: op.eq, ast.NotEq: op.ne}
        left = _eval_node(node.left, env)
        for o, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval_node(right_node, env)
            if not cmp[type(o)](left, right):
                return False
            left = right
        return True
    raise ConfigError(f"unsupported expression {type(node).__name__}")  # pragma: no cover


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[SearchParam, ...]
    fixed: dict[str, Any]  # parameters pinned by [search] (passed as overrides)
    constraints: tuple[Constraint, ...]

    def distributions(self) -> dict[str, Any]:
        return {p.name: p.distribution() for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": [p.to_dict() for p in self.params],
            "fixed": dict(self.fixed),
            "constraints": [c.expr for c in self.constraints],
        }


def _param_from_declared(name: str, decl: Any) -> SearchParam:
    choices = getattr(decl, "choices", None)
    if choices is not None:
        return SearchParam(name, "categorical", choices=tuple(choices))
    kind = getattr(decl, "kind", None)
    if kind is None:
        kind = "int" if getattr(decl, "type", float) is int else "float"
    return SearchParam(name, kind, low=decl.low, high=decl.high, step=decl.step,
                       log=bool(getattr(decl, "log", False)))


def build_search_space(
    declared: Mapping[str, Any],
    search: Mapping[str, Any] | None = None,
    *,
    default_keys: Sequence[str] | None = None,
) -> SearchSpace:
    """The sampled space from the declared ``Param`` ranges and the spec's ``[search]`` table.

    ``declared``: flat key -> ``Param`` (e.g. ``"signals.entry.threshold"``).
    ``search`` keys:

    - ``params``: list of keys or glob patterns to search (default: ``default_keys``, or all);
    - ``constraints``: list of expressions (see :class:`Constraint`);
    - ``"<key>" = value``: fix the parameter to ``value`` (not searched);
    - ``"<key>" = {low=.., high=.., step=.., log=..}`` or ``{choices=[..]}``: narrow it (it must
      stay inside the declared range).

    Declarations that are not ``searchable`` are never sampled from the declaration alone: a
    free-text parameter (a column name) can only be fixed, and an open level (declared
    without a range, on a user series' own scale) is searched only inside the range given
    here; globs in ``params`` and ``default_keys`` pass over both, and naming one exactly in
    ``params`` without a range is a ConfigError.
    """
    search = dict(search or {})
    patterns = search.pop("params", None)
    constraints = tuple(Constraint(str(c)) for c in (search.pop("constraints", None) or ()))
    fixed: dict[str, Any] = {}
    narrowed: dict[str, Mapping[str, Any]] = {}
    from flushback.signals.base import did_you_mean

    for key, value in search.items():
        if key not in declared:
            raise ConfigError(
                f"[search] names unknown parameter '{key}'" + did_you_mean(key, declared),
                hint="use a flat key such as 'signals.entry.threshold' or 'strategy.take_profit'",
            )
        if isinstance(value, Mapping):
            narrowed[key] = value
        else:
            fixed[key] = declared[key].validate(value, key) if hasattr(
                declared[key], "validate") else value
    if patterns is None:
        keys = list(default_keys) if default_keys is not None else list(declared)
    else:
        if isinstance(patterns, str):
            patterns = [patterns]
        keys = []
        for pat in patterns:
            hits = [k for k in declared if fnmatch.fnmatchcase(k, pat)]
            if not hits:
                raise ConfigError(f"[search] params pattern '{pat}' matches no parameter"
                                  + did_you_mean(pat, declared))
            keys += [k for k in hits if k not in keys]
    explicit = set(patterns or ()) & set(declared)  # keys named exactly, not by a glob
    keys += [k for k in narrowed if k not in keys]
    params = []
    for key in keys:
        if key in fixed:
            continue
        if not _searchable(declared[key]) and key not in narrowed:
            if key in explicit:
                raise _unsearchable(key, declared[key])
            continue  # a free-text name or an open level: only searched when given a range
        if not _searchable(declared[key]):
            base = _narrow(None, narrowed[key], declared[key], key=key)
        else:
            base = _param_from_declared(key, declared[key])
            if key in narrowed:
                base = _narrow(base, narrowed[key], declared[key])
        params.append(base)
    space = SearchSpace(tuple(params), fixed, constraints)
    for c in constraints:
        for v in c.variables:
            if v not in declared:
                raise ConfigError(f"constraint {c.expr!r} names unknown parameter '{v}'"
                                  + did_you_mean(v, declared))
    return space


def _searchable(decl: Any) -> bool:
    """Whether a declaration can be sampled without a ``[search]`` range (``Param.searchable``:
    False for free text such as a column name, and for a level without a declared range)."""
    return bool(getattr(decl, "searchable", True))


def _unsearchable(key: str, decl: Any) -> ConfigError:
    if getattr(decl, "kind", None) == "text":
        return ConfigError(
            f"[search] '{key}' is free text ({decl.describe_range()}) and cannot be searched",
            hint=f"fix it instead: '{key}' = \"...\" in [search], or set it in the signal",
        )
    return ConfigError(
        f"[search] '{key}' has no declared range (its scale is the data's): give one",
        hint=f"e.g. '{key}' = {{low = ..., high = ...}} in [search]",
    )


def _narrow(p: SearchParam | None, spec: Mapping[str, Any], decl: Any, *,
            key: str = "") -> SearchParam:
    unknown = set(spec) - {"low", "high", "step", "log", "choices"}
    name = p.name if p is not None else key
    if unknown:
        raise ConfigError(f"[search] '{name}' has unknown keys {sorted(unknown)}",
                          hint="use low/high/step/log or choices")
    if p is None:  # an open level: the range comes from [search] alone
        if getattr(decl, "kind", None) == "text":
            raise _unsearchable(name, decl)
        if "choices" in spec:
            return SearchParam(name, "categorical",
                               choices=tuple(decl.validate(c, name) for c in spec["choices"]))
        if "low" not in spec or "high" not in spec:
            raise _unsearchable(name, decl)
        low, high = decl.validate(spec["low"], name), decl.validate(spec["high"], name)
        if low > high:
            raise ConfigError(f"[search] '{name}' range [{low}, {high}] has low > high")
        log = bool(spec.get("log", False))
        if log and (low <= 0 or spec.get("step") is not None):
            raise ConfigError(f"[search] '{name}' log range needs low > 0 and no step")
        return SearchParam(name, decl.kind, low=low, high=high, step=spec.get("step"),
                           log=log)
    if "choices" in spec:
        allowed = set(p.choices) if p.choices is not None else None
        choices = tuple(spec["choices"])
        for c in choices:
            if allowed is not None and c not in allowed:
                raise ConfigError(f"[search] '{p.name}' choice {c!r} is not a declared choice")
            if allowed is None and hasattr(decl, "validate"):
                decl.validate(c, p.name)
        return SearchParam(p.name, "categorical", choices=choices)
    if p.kind == "categorical":
        raise ConfigError(f"[search] '{p.name}' is categorical: narrow it with choices=[...]")
    low = spec.get("low", p.low)
    high = spec.get("high", p.high)
    if low < p.low or high > p.high or low > high:
        raise ConfigError(
            f"[search] '{p.name}' range [{low}, {high}] is not inside the declared "
            f"[{p.low}, {p.high}]",
            hint="narrow the declared range, never widen it",
        )
    step = spec.get("step", p.step)
    log = bool(spec.get("log", p.log and "step" not in spec))
    if log and step is not None:
        step = None if "step" not in spec else step
    return SearchParam(p.name, p.kind, low=low, high=high, step=step, log=log)


# --------------------------------------------------------------------------------------------
# objectives


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "maximize" | "minimize"

    @property
    def label(self) -> str:
        return f"{'max' if self.direction == 'maximize' else 'min'}_{self.metric}"


def parse_objectives(objective: str | None = None, directions: str | None = None) -> tuple[
        Objective, ...]:
    """``--objective sharpe`` or ``--directions max_sharpe,min_max_drawdown``."""
    from flushback.signals.base import did_you_mean

    out: list[Objective] = []
    if directions:
        for item in [s.strip() for s in directions.split(",") if s.strip()]:
            head, _, metric = item.partition("_")
            if head not in ("max", "min") or not metric:
                raise ConfigError(f"direction '{item}' must look like max_<metric> or min_<metric>",
                                  hint="e.g. --directions max_sharpe,min_max_drawdown")
            if metric not in OBJECTIVE_METRICS:
                raise ConfigError(f"unknown objective metric '{metric}'"
                                  + did_you_mean(metric, OBJECTIVE_METRICS),
                                  hint=f"choose from {', '.join(OBJECTIVE_METRICS)}")
            out.append(Objective(metric, "maximize" if head == "max" else "minimize"))
        if objective and objective != out[0].metric:
            raise ConfigError("give either --objective or --directions, not both")
        return tuple(out)
    metric = objective or "sharpe"
    if metric not in OBJECTIVE_METRICS:
        raise ConfigError(f"unknown objective '{metric}'" + did_you_mean(metric, OBJECTIVE_METRICS),
                          hint=f"choose from {', '.join(OBJECTIVE_METRICS)}")
    return (Objective(metric, OBJECTIVE_METRICS[metric]),)


def objective_value(metrics: Mapping[str, Any], metric: str) -> float:
    """The value optuna sees; undefined metrics (no trades, flat equity) become 0.0."""
    v = metrics.get(metric)
    try:
        v = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(v):
        return 0.0
    return abs(v) if metric == "max_drawdown" else v


# --------------------------------------------------------------------------------------------
# folds


@dataclass(frozen=True)
class Fold:
    """One train/test split; windows are inclusive bar-open timestamps.

    ``train_end < test_start`` always; the test window's backtest may read bars before
    ``test_start`` as signal warm-up, but scores (equity, trades, metrics) start at
    ``test_start``.
    """

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def to_dict(self) -> dict[str, Any]:
        return {k: (iso_z(v) if isinstance(v, pd.Timestamp) else v)
                for k, v in dataclasses.asdict(self).items()}


def make_folds(
    index: pd.DatetimeIndex,
    *,
    walk_forward: int | None = None,
    anchored: bool = True,
    train_until: Any = None,
    test_fraction: float = 0.3,
    min_train_bars: int = 30,
    embargo_bars: int = 0,
) -> list[Fold]:
    """Train/test windows over ``index`` (the bars a backtest can score).

    - ``train_until``: one fold, train ``[start, train_until]``, test the bars after it.
    - ``walk_forward=K``: the bars are cut into ``K + 1`` equal blocks; fold ``k`` tests block
      ``k + 1`` and trains on blocks ``0..k`` (anchored) or on block ``k`` only (rolling).
    - neither: one fold with the last ``test_fraction`` of the bars as the test window.

    ``embargo_bars``: a gap between each training window's end and its test window's start
    (the last ``embargo_bars`` bars before the test window are in neither window), so that no
    training trade or signal window reaches into the test period.
    """
    idx = pd.DatetimeIndex(index)
    folds = _make_folds(idx, walk_forward, anchored, train_until, test_fraction,
                        min_train_bars)
    gap = int(embargo_bars)
    if gap <= 0:
        return folds
    out = []
    for f in folds:
        t0 = int(idx.searchsorted(f.train_start))
        end = int(idx.searchsorted(f.test_start)) - 1 - gap
        if end - t0 + 1 < min_train_bars:
            raise ConfigError(
                f"an embargo of {gap} bars leaves fold {f.index + 1} {max(end - t0 + 1, 0)} "
                f"training bars (at least {min_train_bars} needed)",
                hint="pass a smaller --embargo, fewer --walk-forward folds or a longer period")
        out.append(dataclasses.replace(f, train_end=idx[end]))
    return out


def _make_folds(idx: pd.DatetimeIndex, walk_forward: int | None, anchored: bool,
                train_until: Any, test_fraction: float, min_train_bars: int) -> list[Fold]:
    n = len(idx)
    if n < 2 * min_train_bars:
        raise ConfigError(f"{n} bars are too few to split into training and test windows",
                          hint="use a longer [data] period")
    if walk_forward is not None and train_until is not None:
        raise ConfigError("give either --walk-forward or --train-until, not both")
    if train_until is not None:
        cut = pd.Timestamp(train_until)
        if cut.tzinfo is None and idx.tz is not None:
            cut = cut.tz_localize(idx.tz)
        pos = int(idx.searchsorted(cut, side="right"))  # bars <= cut are training
        if pos < min_train_bars or pos >= n - 1:
            raise ConfigError(
                f"--train-until {train_until} leaves {pos} training and {n - pos} test bars",
                hint=f"pick a date between {idx[min_train_bars].date()} and {idx[-2].date()}",
            )
        return [Fold(0, idx[0], idx[pos - 1], idx[pos], idx[-1])]
    if walk_forward is None:
        pos = int(round(n * (1 - test_fraction)))
        return [Fold(0, idx[0], idx[pos - 1], idx[pos], idx[-1])]
    k = int(walk_forward)
    if k < 1:
        raise ConfigError("--walk-forward needs K >= 1")
    bounds = [int(round(i * n / (k + 1))) for i in range(k + 2)]
    if min(np.diff(bounds)) < min_train_bars:
        raise ConfigError(f"{n} bars are too few for {k} walk-forward folds",
                          hint="use fewer folds or a longer period")
    folds = []
    for i in range(k):
        tr0 = 0 if anchored else bounds[i]
        folds.append(Fold(i, idx[tr0], idx[bounds[i + 1] - 1], idx[bounds[i + 1]],
                          idx[bounds[i + 2] - 1]))
    return folds


def _chunks(index: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp,
            n: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    sub = index[(index >= start) & (index <= end)]
    if n <= 1 or len(sub) < 2 * n:
        return [(start, end)]
    b = [int(round(i * len(sub) / n)) for i in range(n + 1)]
    return [(sub[b[i]], sub[b[i + 1] - 1]) for i in range(n)]


# --------------------------------------------------------------------------------------------
# evaluation


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


def encode_returns(r: np.ndarray) -> str:
    """float32 -> zlib -> base64: a compact, JSON-safe string for trial user attributes.
    zlib level 1: ~3x faster than the default for ~10 % more bytes (hourly series are long)."""
    a = np.nan_to_num(np.asarray(r, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return base64.b64encode(zlib.compress(a.tobytes(), 1)).decode("ascii")


def decode_returns(s: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(s)), dtype=np.float32).astype(float)


# --------------------------------------------------------------------------------------------
# storage


def default_storage_url() -> str:
    """``<runs>/optuna-journal.log``: optuna's journal file storage (see the module docstring)."""
    from flushback.data.paths import runs_dir

    d = runs_dir().resolve()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable_storage(d, exc) from None
    return str(d / "optuna-journal.log")


def normalize_storage_url(url: str) -> str:
    """A bare ``postgresql://`` / ``postgres://`` URL names the psycopg2 driver flushback
    installs (SQLAlchemy 2.1 reads a bare URL as ``psycopg``, version 3, which flushback does not
    install); explicit drivers (``postgresql+psycopg://``) and other URLs are kept."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare):]
    return url


def _unwritable_storage(path: Any, exc: OSError) -> StoreError:
    return StoreError(f"cannot write the optuna storage: {exc.strerror or exc}",
                      file=str(path),
                      hint="give a writable --storage path (or FLUSHBACK_OPTUNA_STORAGE), or "
                      "a writable FLUSHBACK_HOME / --runs-dir")


def _is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith((".log", ".journal", ".jsonl"))


def _journal_path(url: str) -> str:
    return url[len("journal:"):] if url.startswith("journal:") else url


def _journal_backend(path: str) -> Any:
    from optuna.storages.journal import JournalFileBackend

    class _PageCacheJournal(JournalFileBackend):
        """optuna's journal file, minus the ``fsync`` after every append.

        A write that returned is in the kernel's page cache and survives the writer being
        SIGKILLed; ``fsync`` only adds durability against a power cut, at ~6 ms per append
        here (8+ appends per trial). A power cut can lose the last trials; they are re-run.
        """

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            from optuna.storages.journal._file import get_lock_file

            with get_lock_file(self._lock):
                text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
                with open(self._file_path, "ab") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()

    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return _PageCacheJournal(str(Path(path).expanduser()))


def open_storage(url: str, *, heartbeat: int | None = 5) -> Any:
    """An optuna storage for ``url`` (SQLAlchemy URL, or a ``*.log`` journal file path)."""
    import optuna

    url = normalize_storage_url(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if _is_journal(url):
            try:
                return optuna.storages.JournalStorage(_journal_backend(_journal_path(url)))
            except OSError as exc:
                raise _unwritable_storage(_journal_path(url), exc) from None
        if "://" not in url:
            raise ConfigError(f"storage '{url}' is neither a SQLAlchemy URL nor a *.log journal",
                              hint="e.g. sqlite:///runs/optuna.db or postgresql://user@host/db")
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 60}}
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                try:
                    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise _unwritable_storage(path, exc) from None
        else:
            engine_kwargs = {"pool_pre_ping": True}
        kwargs: dict[str, Any] = {}
        if heartbeat:
            kwargs = {
                "heartbeat_interval": int(heartbeat),
                "grace_period": int(heartbeat) * 2 + 1,
                "heartbeat_stale_trial_callback": _retry_if_fully_sampled,
            }
        try:
            with _init_lock(url):  # concurrent first use would race on CREATE TABLE
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except Exception as exc:  # sqlalchemy OperationalError, missing driver, ...
            raise StoreError(
                f"cannot open optuna storage {_redact(url)}: {exc}".splitlines()[0],
                hint="check the URL, that the server is up and the database exists",
            ) from None
        if url.startswith("sqlite"):
            _sqlite_wal(storage.engine)
        return storage


@contextlib.contextmanager
def _init_lock(url: str) -> Iterator[None]:
    """PostgreSQL: serialize optuna's schema creation across processes and machines."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    key = int.from_bytes(hashlib.sha256(b"flushback-optuna-schema").digest()[:8], "big",
                         signed=True)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


def _sqlite_wal(engine: Any) -> None:
    """WAL journal + synchronous=NORMAL: every commit is still atomic (a killed process never
    leaves a torn database; readers never block the writer), but commits no longer wait for
    an fsync, which cost ~10 ms each -- about 20 per trial -- with the default settings."""
    import sqlalchemy

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    sqlalchemy.event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener get replaced


def _redact(url: str) -> str:
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


class _Gate:
    """Cross-process mutex around "count trials, then ask" (see the module docstring)."""

    def __init__(self, url: str, study_name: str) -> None:
        url = normalize_storage_url(url)
        self._url = url
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big",
                                   signed=True)
        self._file = None
        self._conn = None
        if _is_journal(url):
            self._file = _journal_path(url) + ".gate"
        elif url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                self._file = str(Path(path).expanduser()) + ".gate"
        elif url.startswith("postgresql"):
            import sqlalchemy

            self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            self._conn = self._engine.connect()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self._file is not None:
            import fcntl

            with open(self._file, "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        elif self._conn is not None:
            import sqlalchemy

            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            try:
                yield
            finally:
                self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                   {"k": self._key})
                self._conn.commit()
        else:
            yield

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._engine.dispose()


class _Lease:
    """A file this worker process holds an exclusive ``flock`` on for its whole life.

    The kernel drops the lock when the process dies, however it dies (SIGKILL included), so
    another worker on the same machine can tell at once that a RUNNING trial tagged with this
    lease belongs to a dead process. (Across machines optuna's RDB heartbeats do that job.)
    """

    def __init__(self, directory: Path) -> None:
        import fcntl
        import socket
        import uuid

        directory.mkdir(parents=True, exist_ok=True)
        self.host = socket.gethostname()
        self.name = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.directory = directory
        self.path = directory / (self.name.replace(":", "_") + ".lease")
        self._fh = open(self.path, "w")
        fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def owner_is_dead(self, owner: str) -> bool | None:
        """True/False for owners on this machine; None when it cannot tell (another host)."""
        import fcntl

        host = owner.split(":", 1)[0]
        if host != self.host:
            return None
        if owner == self.name:
            return False
        path = self.directory / (owner.replace(":", "_") + ".lease")
        try:
            fh = open(path)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held: the owner is alive
        else:
            fcntl.flock(fh, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                path.unlink()
            return True
        finally:
            fh.close()

    def close(self) -> None:
        import fcntl

        with contextlib.suppress(Exception):
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self.path.unlink()


def _lease_dir(url: str) -> Path:
    from flushback.data.paths import runs_dir

    if _is_journal(url):
        return Path(_journal_path(url) + ".workers").expanduser()
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            return Path(str(Path(path).expanduser()) + ".workers")
    tag = hashlib.sha256(_redact(url).encode()).hexdigest()[:12]
    return runs_dir().resolve() / ".optuna-workers" / tag


def _retry_if_fully_sampled(study: Any, trial: Any) -> None:
    """Re-queue a dead process's trial with its parameters (optuna's
    ``RetryHeartbeatStaleTrialCallback``) -- but only if all of them had been sampled.

    A process killed inside ``ask`` leaves a trial with some parameters set. Re-queuing those
    as fixed values would make the sampler draw the rest from a different random stream; not
    re-queuing it lets the next ``ask`` sample the whole point again from the same state
    (seed, finished trials), i.e. exactly the parameters the dead trial was getting.
    """
    import optuna

    names = study.user_attrs.get("flushback_param_names")
    if names is not None and set(trial.params) != set(names):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)(study, trial)


def _reap_dead_trials(study: Any, lease: _Lease) -> int:
    """Fail RUNNING trials whose process is dead and re-queue them with the same parameters.

    Called under the gate: a live worker tags its trial inside the gate, so an untagged
    RUNNING trial seen under the gate was left by a process killed between ask and tag.
    """
    import optuna

    TS = optuna.trial.TrialState
    reaped = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
            owner = t.user_attrs.get("flushback_owner")
            dead = True if owner is None else lease.owner_is_dead(owner)
            if not dead:
                continue
            try:
                if not study._storage.set_trial_state_values(t._trial_id, state=TS.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker got there first
            failed = study._storage.get_trial(t._trial_id)
            _retry_if_fully_sampled(study, copy.deepcopy(failed))
            reaped += 1
    return reaped


# --------------------------------------------------------------------------------------------
# samplers


def _make_sampler(name: str, seed: int | None, multi: bool) -> Any:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        if name == "cmaes":
            import importlib.util

            if importlib.util.find_spec("cmaes") is None:
                raise ConfigError("the cmaes sampler needs the 'cmaes' package",
                                  hint="pip install cmaes, or use --sampler tpe")
            if multi:
                raise ConfigError("the cmaes sampler is single-objective",
                                  hint="use --sampler nsga2 or tpe with --directions")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
        if name == "qmc-tpe":
            return _qmc_then_tpe(seed, multi)
    raise ConfigError(f"unknown sampler '{name}'",
                      hint="tpe, nsga2, cmaes, random, qmc or qmc-tpe")


#: ``qmc-tpe``: this many quasi-random (Sobol) points first, then TPE on what they found
QMC_WARM_START = 32


def _qmc_then_tpe(seed: int | None, multi: bool) -> Any:
    """A QMC warm start followed by TPE, as one sampler: the first :data:`QMC_WARM_START`
    finished trials are a scrambled Sobol sequence (space-filling, a better start than
    TPE's random start-up), every later one is TPE's (without its own random start-up)."""
    import optuna

    class QmcThenTpe(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self.qmc = optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
            self.tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=0,
                                                  multivariate=False)

        def _active(self, study: Any) -> Any:
            states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            done = len(study._get_trials(deepcopy=False, states=states, use_cache=True))
            return self.qmc if done < QMC_WARM_START else self.tpe

        def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
            return self._active(study).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
            return self._active(study).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, name, dist):  # type: ignore[no-untyped-def]
            return self._active(study).sample_independent(study, trial, name, dist)

        def before_trial(self, study, trial):  # type: ignore[no-untyped-def]
            self._active(study).before_trial(study, trial)

        def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
            self._active(study).after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.tpe.reseed_rng()

    if multi:
        raise ConfigError("the qmc-tpe sampler is single-objective",
                          hint="use --sampler nsga2 or tpe with --directions")
    return QmcThenTpe()


_FINISHED = ("COMPLETE", "PRUNED")


class _ReseededSampler:
    """Delegate to a sampler rebuilt before each trial from (seed, fold, finished trials).

    optuna's samplers keep their history in the storage but their random state in memory; a
    process that dies loses that state. Deriving the seed from what the storage holds makes a
    resumed seeded study sample exactly what the uninterrupted one would have.
    """

    def __init__(self, name: str, seed: int | None, fold: int, multi: bool):
        self._args = (name, multi)
        self._seed = seed
        self._fold = fold
        self._stable = name == "qmc"  # QMC's scramble seed must stay fixed for the sequence
        self._inner = _make_sampler(name, seed, multi)

    n_done: int | None = None  # set by the worker under the gate, just before ask()

    def _reseed(self, study: Any) -> None:
        if self._seed is None or self._stable:
            return
        n_done = self.n_done
        if n_done is None:
            import optuna

            states = tuple(getattr(optuna.trial.TrialState, s) for s in _FINISHED)
            n_done = len(study.get_trials(deepcopy=False, states=states))
        seed = int(np.random.SeedSequence([self._seed, self._fold, n_done]).generate_state(1)[0])
        name, multi = self._args
        if name == "qmc-tpe":  # the Sobol sequence keeps its scramble; TPE is reseeded
            import optuna

            self._inner.tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=0)
            return
        old, self._inner = self._inner, _make_sampler(name, seed, multi)
        # Keep the incremental intersection-search-space cache of the previous instance (it
        # is a pure function of the study's trials, which optuna's own long-lived sampler
        # also caches): a fresh one re-scans every trial at each ask, O(N) per trial.
        cached = getattr(old, "_search_space", None)
        if (isinstance(cached, _intersection_space_cls())
                and isinstance(getattr(self._inner, "_search_space", None), type(cached))):
            self._inner._search_space = cached

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return self._inner.sample_independent(study, trial, name, dist)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._reseed(study)
        self._inner.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def _intersection_space_cls() -> type:
    from optuna.search_space import IntersectionSearchSpace

    return IntersectionSearchSpace


def _as_optuna_sampler(s: _ReseededSampler) -> Any:
    import optuna

    class ReseededSampler(optuna.samplers.BaseSampler):  # thin optuna-typed shell
        def __init__(self, inner: _ReseededSampler) -> None:
            self._w = inner

        def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
            return self._w.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
            return self._w.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, name, dist):  # type: ignore[no-untyped-def]
            return self._w.sample_independent(study, trial, name, dist)

        def before_trial(self, study, trial):  # type: ignore[no-untyped-def]
            self._w.before_trial(study, trial)

        def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
            self._w.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._w.reseed_rng()

    return ReseededSampler(s)


def _make_pruner(name: str) -> Any:
    import optuna

    if name in ("none", "", None):
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner()
    raise ConfigError(f"unknown pruner '{name}'", hint="none, median, hyperband or sha")


# --------------------------------------------------------------------------------------------
# study configuration (picklable: sent to worker processes)


@dataclass(frozen=True)
class StudyConfig:
    evaluator_factory: str
    evaluator_kwargs: dict[str, Any]
    objectives: tuple[Objective, ...]
    space: SearchSpace
    folds: tuple[Fold, ...]
    n_trials: int
    storage_url: str
    study_name: str
    sampler: str = "tpe"
    seed: int | None = None
    pruner: str = "none"
    prune_chunks: int = 1
    heartbeat: int = 5
    workers: int = 1
    # set when evaluator_kwargs hold machine-specific paths that must not change the identity
    fingerprint_override: str | None = None
    #: a trial trading fewer times on its training window is infeasible (0 = no constraint)
    min_trades: int = 0
    #: trials per storage write at most (1: the per-trial loop; see backtests.optimize.batches)
    batch: int = 256
    #: a batch is sized to about this much work, so slow trials are still written promptly
    flush_seconds: float = 1.0

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def fold_study_name(self, fold: Fold) -> str:
        if len(self.folds) == 1:
            return self.study_name
        return f"{self.study_name}.fold{fold.index + 1}of{len(self.folds)}"

    def settings(self) -> dict[str, Any]:
        """What must match for two commands to share (resume) a study."""
        return {
            "evaluator": self.evaluator_factory,
            "evaluator_kwargs": _jsonable(self.evaluator_kwargs),
            "objectives": [o.label for o in self.objectives],
            "space": self.space.to_dict(),
            "folds": [f.to_dict() for f in self.folds],
            "sampler": self.sampler,
            "seed": self.seed,
            "pruner": self.pruner,
            "prune_chunks": self.prune_chunks,
            **({"min_trades": self.min_trades} if self.min_trades else {}),
        }

    def fingerprint(self) -> str:
        if self.fingerprint_override:
            return self.fingerprint_override
        blob = json.dumps(self.settings(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


def _ensure_study(cfg: StudyConfig, storage: Any, fold: Fold) -> Any:
    """Create or load the fold's study; refuse one created with other settings."""
    import optuna

    name = cfg.fold_study_name(fold)
    directions: list[Any] = [o.direction for o in cfg.objectives]
    for attempt in range(5):
        try:
            study = optuna.create_study(storage=storage, study_name=name, directions=directions,
                                        load_if_exists=True)
            break
        except optuna.exceptions.DuplicatedStudyError:  # pragma: no cover - creation race
            time.sleep(0.2 * (attempt + 1))
    else:  # pragma: no cover
        study = optuna.load_study(study_name=name, storage=storage)
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(
            f"study '{name}' exists with directions "
            f"{[d.name.lower() for d in study.directions]}, not {directions}",
            hint="use another --study name",
        )
    fp = cfg.fingerprint()
    have = study.user_attrs.get("flushback_fingerprint")
    if have is None:
        study.set_user_attr("flushback_fingerprint", fp)
        study.set_user_attr("flushback_settings", cfg.settings())
        study.set_user_attr("fold", fold.to_dict())
        study.set_user_attr("flushback_param_names", [p.name for p in cfg.space.params])
    elif have != fp:
        raise ConfigError(
            f"study '{name}' in {_redact(cfg.storage_url)} was created with other settings "
            "(spec, search space, objectives, folds, sampler or seed differ)",
            hint="run the same command as before to resume it, or pass a new --study name",
        )
    return study


# --------------------------------------------------------------------------------------------
# the worker loop


class _Heartbeat:
    def __init__(self, storage: Any, trial_id: int, interval: float) -> None:
        from optuna.storages._heartbeat import BaseHeartbeat

        self._on = isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval()
        self._storage, self._id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self._on:
            self._storage.record_heartbeat(self._id)
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):
                self._storage.record_heartbeat(self._id)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class TrialOutcome:
    number: int
    state: str
    values: list[float] | None
    seconds: float


def _fail_stale(study: Any) -> None:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _counts(study: Any) -> tuple[int, int]:
    import optuna

    TS = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False, states=(TS.COMPLETE, TS.PRUNED, TS.RUNNING))
    done = sum(1 for t in trials if t.state in (TS.COMPLETE, TS.PRUNED))
    return done, len(trials) - done


def run_worker(
    cfg: StudyConfig,
    *,
    evaluator: Evaluator | None = None,
    on_trial: Callable[[Fold, TrialOutcome], None] | None = None,
    poll: float = 0.5,
    max_consecutive_failures: int = 20,
) -> dict[str, int]:
    """Run trials until every fold's study has ``cfg.n_trials`` finished trials.

    Data and signals are prepared once (the evaluator); memory stays flat because nothing of
    a trial is kept in the process after ``tell``. Returns trials run per fold by this worker.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ev = evaluator or load_evaluator(cfg.evaluator_factory, cfg.evaluator_kwargs)
    storage = open_storage(cfg.storage_url, heartbeat=cfg.heartbeat)
    lease = _Lease(_lease_dir(cfg.storage_url))
    try:
        return _worker_folds(cfg, ev, storage, lease, on_trial, poll, max_consecutive_failures)
    finally:
        lease.close()


def _worker_folds(cfg: StudyConfig, ev: Evaluator, storage: Any, lease: _Lease,
                  on_trial: Callable[[Fold, TrialOutcome], None] | None, poll: float,
                  max_consecutive_failures: int) -> dict[str, int]:
    ran: dict[str, int] = {}
    for fold in cfg.folds:
        name = cfg.fold_study_name(fold)
        study = _ensure_study(cfg, storage, fold)
        reseeded = _ReseededSampler(cfg.sampler, cfg.seed, fold.index, cfg.multi)
        study.sampler = _as_optuna_sampler(reseeded)
        study.pruner = _make_pruner(cfg.pruner if not cfg.multi else "none")
        gate = _Gate(cfg.storage_url, name)
        ran[name] = 0
        failures = 0

        def step(fold: Fold = fold, study: Any = study, gate: _Gate = gate,
                 reseeded: _ReseededSampler = reseeded) -> TrialOutcome | None:
            """One trial through the storage (None: nothing left to start)."""
            _fail_stale(study)
            with gate.hold():
                _reap_dead_trials(study, lease)
                done, running = _counts(study)
                if not (done < cfg.n_trials and done + running < cfg.n_trials):
                    return None
                t0 = time.perf_counter()
                reseeded.n_done = done
                with warnings.catch_warnings():  # "heartbeat is for Study.optimize":
                    warnings.simplefilter("ignore", UserWarning)  # we beat it ourselves
                    trial = study.ask(cfg.space.distributions())
                trial.set_user_attr("flushback_owner", lease.name)
                t_sample = time.perf_counter() - t0
            outcome = _run_trial(cfg, ev, study, storage, fold, trial, t_sample)
            if on_trial is not None:
                on_trial(fold, outcome)
            return outcome

        try:
            if cfg.batch > 1:
                from flushback.backtests.optimize.batches import run_batched_fold

                ran[name] = run_batched_fold(cfg, ev, storage, lease, fold, on_trial, poll,
                                             max_consecutive_failures,
                                             lambda step=step: step() is not None)
                continue
            while True:
                outcome = step()
                if outcome is None:
                    if _counts(study)[0] >= cfg.n_trials:
                        break
                    time.sleep(poll)  # others are running the last trials; wait for them
                    continue
                ran[name] += 1
                failures = failures + 1 if outcome.state == "FAIL" else 0
                if failures >= max_consecutive_failures:
                    raise StoreError(f"{failures} trials in a row failed in study '{name}'",
                                     hint="run `flushback backtest` on the spec to see the error")
        finally:
            gate.close()
    return ran


def _run_trial(cfg: StudyConfig, ev: Evaluator, study: Any, storage: Any, fold: Fold,
               trial: Any, t_sample: float) -> TrialOutcome:
    t_start = time.perf_counter()
    with _Heartbeat(storage, trial._trial_id, max(1, cfg.heartbeat)):
        state, values = _score_trial(cfg, ev, study, fold, trial, t_sample)
    return TrialOutcome(trial.number, state, values, time.perf_counter() - t_start)


def _score_trial(cfg: StudyConfig, ev: Evaluator, study: Any, fold: Fold, trial: Any,
                 t_sample: float) -> tuple[str, list[float] | None]:
    """Evaluate an asked trial and tell the study (COMPLETE, PRUNED or FAIL): constraints,
    training chunks reported to the pruner, ``min_trades``, one ``flushback`` user attribute
    (training returns, metrics, timings). Shared by the per-trial and the batched loops."""
    import optuna

    TS = optuna.trial.TrialState
    t_start = time.perf_counter()
    params = {**cfg.space.fixed, **trial.params}
    if cfg.space.constraints:
        current = {**ev.current_values(), **params}
        bad = [c.expr for c in cfg.space.constraints if not c.check(current)]
        if bad:
            trial.set_user_attr("infeasible", bad)
            study.tell(trial, state=TS.PRUNED)
            return "PRUNED", None
    try:
        chunks = _chunks(ev.index, fold.train_start, fold.train_end,
                         cfg.prune_chunks if not cfg.multi else 1)
        per_chunk: list[list[float]] = []
        returns: list[np.ndarray] = []
        timings: dict[str, float] = {"sampling": t_sample}
        metrics: dict[str, Any] = {}
        n_trades = 0
        for step, (cs, ce) in enumerate(chunks):
            res = ev.evaluate(params, cs, ce)
            n_trades += int(res.metrics.get("n_trades") or 0)
            for k, v in res.timings.items():
                timings[k] = timings.get(k, 0.0) + v
            per_chunk.append([objective_value(res.metrics, o.metric) for o in cfg.objectives])
            returns.append(res.returns)
            metrics = res.metrics
            if len(chunks) > 1 and not cfg.multi:
                trial.report(float(np.mean([v[0] for v in per_chunk])), step)
                if trial.should_prune():
                    trial.set_user_attr("pruned_after_chunks", step + 1)
                    study.tell(trial, state=TS.PRUNED)
                    return "PRUNED", None
        values = [float(np.mean([v[i] for v in per_chunk])) for i in range(len(cfg.objectives))]
        if cfg.min_trades and n_trades < cfg.min_trades:
            # a configuration that (almost) never trades cannot win by doing nothing
            trial.set_user_attr("infeasible", f"{n_trades} trades < min_trades "
                                f"{cfg.min_trades} on the training window")
            study.tell(trial, state=TS.PRUNED)
            return "PRUNED", None
        timings["trial"] = time.perf_counter() - t_start
        # one user attribute (one storage write) per trial
        trial.set_user_attr("flushback", {
            "train_returns": encode_returns(np.concatenate(returns)),
            "train_metrics": _small_metrics(metrics) if len(chunks) == 1
            else {"chunks": len(chunks)},
            "timings": {k: round(v, 6) for k, v in timings.items()},
        })
        study.tell(trial, values if cfg.multi else values[0])
        return "COMPLETE", values
    except ConfigError as exc:
        # parameters the engine rejects (an invalid combination): infeasible, not a crash
        trial.set_user_attr("infeasible", str(exc))
        study.tell(trial, state=TS.PRUNED)
        return "PRUNED", None
    except Exception as exc:
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
        study.tell(trial, state=TS.FAIL)
        return "FAIL", None


_SMALL_METRICS = ("sharpe", "sortino", "calmar", "cagr", "total_return", "max_drawdown",
                  "profit_factor", "win_rate", "n_trades", "exposure", "volatility")


def _small_metrics(m: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k in _SMALL_METRICS:
        v = m.get(k)
        if isinstance(v, (int, float)) and (not isinstance(v, float) or math.isfinite(v)):
            out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# running a study: W workers + progress


def _worker_entry(cfg: StudyConfig, parent: int) -> None:  # pragma: no cover - subprocess
    import signal

    # Ctrl-C reaches the whole process group: the parent reports it and stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    run_worker(cfg)


def _die_with_parent(parent: int) -> None:
    """Exit when the parent dies (SIGKILLed ``flushback optimize`` must not leave workers)."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run_study(
    cfg: StudyConfig,
    *,
    evaluator: Evaluator | None = None,
    progress: bool = False,
    console: Any = None,
) -> None:
    """Run ``cfg.workers`` workers until all fold studies have ``cfg.n_trials`` finished trials.

    One worker runs in this process; more are spawned processes (each prepares its own data).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(cfg.storage_url, heartbeat=cfg.heartbeat)
    for fold in cfg.folds:  # create the studies once, before the workers race to
        _ensure_study(cfg, storage, fold)
    total = cfg.n_trials * len(cfg.folds)
    # progress=True: a rich bar (a terminal); "lines": one plain line per fold and every
    # ~5 % of the trials (piped or logged stderr, where a bar would print nothing)
    bar = _Progress(cfg, storage, total, console, plain=progress == "lines") \
        if progress else None
    try:
        if cfg.workers <= 1:
            if bar is not None:
                bar.start()
            run_worker(cfg, evaluator=evaluator,
                       on_trial=(lambda f, o: bar.refresh()) if bar is not None else None)
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=_worker_entry, args=(cfg, os.getpid()), daemon=False)
                     for _ in range(cfg.workers)]
            for p in procs:
                p.start()
            if bar is not None:
                bar.start()
            try:
                while any(p.is_alive() for p in procs):
                    if bar is not None:
                        bar.refresh()
                    time.sleep(0.5)
            finally:
                for p in procs:
                    p.join(timeout=0.1)
                    if p.is_alive():
                        p.terminate()
                for p in procs:  # gone before anyone counts the saved trials
                    p.join(timeout=5)
            bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
            if bad:
                raise StoreError(f"{len(bad)} of {cfg.workers} worker processes exited with "
                                 f"codes {bad}", hint="rerun the same command to resume")
    finally:
        if bar is not None:
            bar.refresh(force=True)
            bar.stop()


class _Progress:
    """rich progress: trials done (all workers, all folds), trials/s, best so far, ETA."""

    def __init__(self, cfg: StudyConfig, storage: Any, total: int, console: Any,
                 plain: bool = False) -> None:
        self._plain, self._console, self._total = plain, console, total
        self._said: tuple[str, int] | None = None
        self._said_at = time.perf_counter()
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._cfg, self._storage = cfg, storage
        self._p = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} trials/s"), TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self._task = self._p.add_task("optimize", total=total, rate="-", best="-")
        self._t0 = time.perf_counter()
        self._start_done: int | None = None
        self._last = 0.0

    def start(self) -> None:
        if not self._plain:
            self._p.start()
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        import optuna

        now = time.perf_counter()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        done, best, fold_label = 0, None, ""
        for fold in self._cfg.folds:
            try:
                study = optuna.load_study(study_name=self._cfg.fold_study_name(fold),
                                          storage=self._storage)
                d, _ = _counts(study)
            except Exception:
                continue
            done += min(d, self._cfg.n_trials)
            current = d < self._cfg.n_trials and not fold_label
            if current or (fold is self._cfg.folds[-1] and not fold_label):
                # best so far of the fold in progress (of the last fold once all are done)
                if current:
                    fold_label = f"fold {fold.index + 1}/{len(self._cfg.folds)}"
                if not self._cfg.multi:
                    with contextlib.suppress(Exception):
                        best = study.best_value
        if self._start_done is None:
            self._start_done = done
        rate = (done - self._start_done) / max(now - self._t0, 1e-9)
        label = self._cfg.objectives[0].label
        if self._plain:
            self._line(done, rate, "-" if best is None else f"{label}={best:.3f}", fold_label,
                       now, force)
            return
        self._p.update(
            self._task, completed=done, rate=f"{rate:.1f}",
            best="-" if best is None else f"{label}={best:.3f}",
            description=f"optimize {fold_label}".strip(),
        )

    def _line(self, done: int, rate: float, best: str, fold: str, now: float,
              force: bool) -> None:
        """A line when the fold changes, every ~5 % of the trials, or after 60 s of quiet."""
        step = max(1, self._total // 20)
        said_fold, said_done = self._said or ("", -step)
        if not (force or fold != said_fold or done - said_done >= step
                or now - self._said_at >= 60):
            return
        if self._said is not None and (fold, done) == self._said:
            return
        self._said, self._said_at = (fold, done), now
        elapsed = now - self._t0
        left = (self._total - done) / rate if rate > 0 else None
        eta = "" if left is None or done >= self._total else f", ETA {_clock(left)}"
        where = f" ({fold})" if fold else ""
        self._console.print(
            f"optimize{where}: {done}/{self._total} trials, {rate:.1f} trials/s, best {best}, "
            f"elapsed {_clock(elapsed)}{eta}", markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if not self._plain:
            self._p.stop()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"


# --------------------------------------------------------------------------------------------
# analysis


def _select(study: Any, cfg: StudyConfig) -> Any:
    """The chosen trial: best on the training window (Pareto: best first objective)."""
    if cfg.multi:
        front = study.best_trials
        if not front:
            return None
        sign = 1 if cfg.objectives[0].direction == "maximize" else -1
        return max(front, key=lambda t: (sign * t.values[0], -t.number))
    try:
        return study.best_trial
    except ValueError:
        return None


def _fb(trial: Any) -> dict[str, Any]:
    return trial.user_attrs.get("flushback") or {}


def _pbo_splits(n_rows: int) -> int:
    for s in (16, 12, 10, 8, 6, 4, 2):
        if n_rows // s >= 10:
            return s
    return 2


#: the population of the Deflated Sharpe Ratio (N and the variance of the Sharpe ratios)
DSR_POPULATION = ("completed trials whose training returns have a Sharpe ratio (they traded); "
                  "trials that never traded and trials stopped by the pruner are in neither N "
                  "nor the variance")


def _dsr_over_population(study: Any, series: Sequence[np.ndarray],
                         best_r: np.ndarray) -> dict[str, Any]:
    """DSR of the chosen trial; N and the Sharpe variance over one population of trials.

    The population is :data:`DSR_POPULATION`: the trials the winner was actually picked from
    among those with a Sharpe ratio. A trial that never traded has no Sharpe ratio (0 / 0) and
    could not be the maximum of positive Sharpe ratios; a pruned trial's full-window Sharpe was
    never measured. Counting either in N but not in the variance mixes two populations.
    """
    import optuna

    from flushback.backtests.optimize import overfitting as of

    TS = optuna.trial.TrialState
    # the first return of every series is the 0 of the starting bar: drop it everywhere,
    # so the trials' Sharpe variance and the selected Sharpe use the same returns
    sharpes = np.array([of.sharpe_per_period(s[1:]) for s in series])
    traded = sharpes[np.isfinite(sharpes)]
    pruned = sum(1 for t in study.get_trials(deepcopy=False, states=(TS.PRUNED,))
                 if "infeasible" not in t.user_attrs)
    d = of.deflated_sharpe_ratio(
        best_r[1:], n_trials=max(len(traded), 1),
        sharpe_variance=float(traded.var(ddof=1)) if len(traded) > 1 else 0.0)
    out = {**d.to_dict(), "population": DSR_POPULATION,
           "n_excluded_no_trades": int(len(sharpes) - len(traded)),
           "n_excluded_pruned": int(pruned)}
    if pruned:
        out["note"] = (f"N leaves out the {pruned} trials the pruner stopped (their Sharpe ratio "
                       "over the training window was never measured): the DSR is optimistic; "
                       "run without a pruner for a DSR over every configuration")
    return out


def _pbo_measure(objective: Objective) -> tuple[str, str | None]:
    """The measure CSCV selects and ranks by: the study's (first) objective when the stored
    per-bar returns can recompute it on any set of rows, else Sharpe (with the reason)."""
    from flushback.backtests.optimize.overfitting import PBO_MEASURES

    if objective.metric in PBO_MEASURES and objective.direction == OBJECTIVE_METRICS.get(
            objective.metric):
        return objective.metric, None
    why = ("is a trade statistic the stored per-bar returns cannot recompute on a subset of bars"
           if objective.metric not in PBO_MEASURES else "is optimized in an unusual direction")
    return "sharpe", f"the objective {objective.label} {why}; CSCV ranks the trials by Sharpe"


def analyse_fold(cfg: StudyConfig, ev: Evaluator, fold: Fold, *, storage: Any = None,
                 keep_result: bool = True) -> dict[str, Any]:
    """Selection, DSR, PBO, importances and the out-of-sample backtest of one fold."""
    import optuna

    from flushback.backtests.optimize import overfitting as of

    storage = storage or open_storage(cfg.storage_url, heartbeat=None)
    study = optuna.load_study(study_name=cfg.fold_study_name(fold), storage=storage)
    TS = optuna.trial.TrialState
    complete = study.get_trials(deepcopy=False, states=(TS.COMPLETE,))
    counts = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TS}
    out: dict[str, Any] = {"fold": fold.to_dict(), "study_name": study.study_name,
                           "trial_counts": counts}
    best = _select(study, cfg)
    if best is None:
        out["error"] = "no completed trial"
        return out
    params = {**cfg.space.fixed, **best.params}
    out["best_trial"] = best.number
    out["best_params"] = _jsonable(params)
    out["best_values"] = {o.label: v for o, v in zip(cfg.objectives, best.values, strict=True)}
    out["in_sample_metrics"] = _fb(best).get("train_metrics", {})
    # overfitting statistics over the stored per-trial training returns
    series = [decode_returns(_fb(t)["train_returns"]) for t in complete
              if "train_returns" in _fb(t)]
    lengths = {len(s) for s in series}
    if series and len(lengths) == 1:
        mat = np.column_stack(series)
        best_r = decode_returns(_fb(best)["train_returns"]) if "train_returns" in \
            _fb(best) else None
        if best_r is not None:
            out["dsr"] = _dsr_over_population(study, series, best_r)
        if mat.shape[1] >= 2:
            measure, note = _pbo_measure(cfg.objectives[0])
            try:
                # the first return of every series is the 0 of the starting bar: dropped
                p = of.probability_of_backtest_overfitting(
                    mat[1:], _pbo_splits(mat.shape[0] - 1), measure,
                    periods_per_year=ev.periods_per_year)
                out["pbo"] = {**p.to_dict(), **({"note": note} if note else {})}
            except ValueError as exc:
                out["pbo"] = {"error": str(exc)}
    # importances (fANOVA; optuna.importance)
    try:
        # optuna's default evaluator (PED-ANOVA) ranks by "low is good" when given a target
        sign = -1.0 if cfg.objectives[0].direction == "maximize" else 1.0
        target = (lambda t: sign * t.values[0]) if cfg.multi else None
        with warnings.catch_warnings():  # "low is good" / "too few trials" notices
            warnings.simplefilter("ignore", UserWarning)
            imp = optuna.importance.get_param_importances(study, target=target)
        out["param_importances"] = {k: float(v) for k, v in imp.items()}
    except Exception as exc:  # too few trials, a single distinct value, ...
        out["param_importances"] = {}
        out["param_importances_error"] = str(exc)[:200]
    if cfg.multi:
        out["pareto_front"] = [
            {"number": t.number, "values": dict(zip([o.label for o in cfg.objectives],
                                                    t.values, strict=True)),
             "params": _jsonable(t.params)}
            for t in study.best_trials
        ]
    # the out-of-sample backtest of the chosen parameters (warm-up history, never scored)
    t0 = time.perf_counter()
    oos = ev.evaluate(params, fold.test_start, fold.test_end, keep=keep_result)
    out["oos_seconds"] = time.perf_counter() - t0
    out["out_of_sample_metrics"] = _jsonable_metrics(oos.metrics)
    n_oos = int(oos.metrics.get("n_trades") or 0)
    if cfg.min_trades and n_oos < cfg.min_trades:
        out["warning"] = (f"fold {fold.index + 1}: the selected configuration trades {n_oos} "
                          f"times in its test window, fewer than min_trades={cfg.min_trades}: "
                          "its out-of-sample figures rest on too few trades")
    out["_oos"] = oos  # removed before serialization
    return out


def _jsonable_metrics(m: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in m.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    return out


def trials_table(cfg: StudyConfig, fold: Fold, storage: Any, limit: int | None = None) -> list[
        dict[str, Any]]:
    import optuna

    study = optuna.load_study(study_name=cfg.fold_study_name(fold), storage=storage)
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "values": list(t.values) if t.values is not None else None,
            "params": _jsonable(t.params),
            "train_metrics": _fb(t).get("train_metrics"),
            "timings": _fb(t).get("timings"),
            "retried_from": t.system_attrs.get("failed_trial"),
        })
    return rows[:limit] if limit else rows


def copy_config(cfg: StudyConfig, **changes: Any) -> StudyConfig:
    return dataclasses.replace(copy.copy(cfg), **changes)


# --------------------------------------------------------------------------------------------
# the real evaluator: a backtest spec through flushback.backtests.run.runner


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
                        and _searchable(declared[key])):
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

        view = self._view(start, end)
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

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec.name, "interval": self.spec.data.interval,
                "symbol": self.spec.data.symbol, "bars": len(self.index),
                "engine": self.engine}

    # -- evaluation --------------------------------------------------------------------
    def _view(self, start: pd.Timestamp, end: pd.Timestamp) -> Any:
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
        res = run_backtest(self.spec, prepared=self._view(start, end), params=dict(params),
                           reuse_signals=self.memoize_signals, engine=engine)
        t1 = time.perf_counter()
        eq = res.equity["equity"].to_numpy(dtype=float)
        r = np.zeros(len(eq))
        if len(eq) > 1:
            r[1:] = eq[1:] / eq[:-1] - 1.0
        return Evaluation(metrics=dict(res.metrics), returns=r, timings={"backtest": t1 - t0},
                          result=res if keep else None)


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


def spec_evaluator(**kwargs: Any) -> SpecEvaluator:
    return SpecEvaluator(**kwargs)


# --------------------------------------------------------------------------------------------
# stitching the out-of-sample folds and the report section


def stitch_out_of_sample(results: Sequence[Any], cash: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chain the test-window backtests: each fold's account is rescaled to start where the
    previous fold's ended (returns compound; nothing is re-run). Returns (equity, trades)."""
    parts, trades = [], []
    level, blevel = float(cash), float(cash)
    tid = 0
    for res in results:
        eq = res.equity
        scale = level / cash
        bscale = blevel / cash
        part = eq.copy()
        for col in ("equity", "cash", "position"):
            if col in part:
                part[col] = part[col] * scale
        if "benchmark_equity" in part:
            part["benchmark_equity"] = part["benchmark_equity"] * bscale
        parts.append(part)
        level = float(part["equity"].iloc[-1])
        if "benchmark_equity" in part:
            blevel = float(part["benchmark_equity"].iloc[-1])
        t = res.trades.copy()
        if len(t):
            for col in ("size", "entry_fee", "exit_fee", "pnl"):
                if col in t:
                    t[col] = t[col] * scale
            if "trade_id" in t:
                t["trade_id"] = np.arange(tid + 1, tid + 1 + len(t))
            tid += len(t)
            trades.append(t)
    equity = pd.concat(parts)
    all_trades = pd.concat(trades, ignore_index=True) if trades else results[-1].trades.iloc[0:0]
    return equity, all_trades


def build_result(cfg: StudyConfig, ev: SpecEvaluator, folds_out: Sequence[dict[str, Any]]) -> Any:
    """The run of the optimization: the stitched out-of-sample backtest (never in-sample)."""
    from flushback.backtests.run.metrics import compute_metrics
    from flushback.backtests.run.runner import compute_run_id

    oos = [f["_oos"].result for f in folds_out]
    equity, trades = stitch_out_of_sample(oos, ev.spec.cash)
    ppy = ev.periods_per_year
    metrics = compute_metrics(equity["equity"], trades, ppy, position=equity.get("position"))
    bmetrics = compute_metrics(equity["benchmark_equity"], None, ppy)
    start, end = cfg.folds[0].test_start, cfg.folds[-1].test_end
    frame = ev.prepared.frame.loc[(ev.prepared.frame.index >= start)
                                  & (ev.prepared.frame.index <= end)]
    frame.attrs = dict(ev.prepared.frame.attrs)
    signals = pd.concat([r.signals for r in oos])
    last = oos[-1]
    config = dict(last.config)
    config["window"] = {"start": iso_z(start), "end": iso_z(end)}
    config["optimization"] = {"fingerprint": cfg.fingerprint(),
                              "chosen_params": [f.get("best_params") for f in folds_out]}
    run_id = compute_run_id(config, ev.prepared.fingerprints)
    return dataclasses.replace(
        last, run_id=run_id, frame=frame, signals=signals, equity=equity, trades=trades,
        metrics=metrics, benchmark_metrics=bmetrics, config=config,
        benchmark_trades=None,
    )


def _section_models() -> tuple[Any, Any]:
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class FoldComparison(BaseModel):
        model_config = ConfigDict(extra="forbid")
        fold: int = Field(ge=1)
        train: tuple[str, str]
        test: tuple[str, str]
        in_sample: dict[str, float | int | None]
        out_of_sample: dict[str, float | int | None]
        dsr: float | None = Field(default=None, ge=0, le=1)
        pbo: float | None = Field(default=None, ge=0, le=1)

    class OptimizationSection(BaseModel):
        """``report.json["optimization"]`` (owned by this module; see docs/optimize.md)."""

        model_config = ConfigDict(extra="forbid")
        result_is_out_of_sample: Literal[True]
        note: str
        study: dict[str, Any]
        search_space: dict[str, Any]
        best_params: dict[str, Any]
        best_params_fold: int
        best_values_in_sample: dict[str, float] | None
        out_of_sample_metrics: dict[str, Any]
        is_vs_oos: list[FoldComparison] = Field(min_length=1)
        dsr: dict[str, Any] | None
        pbo: dict[str, Any] | None
        param_importances: dict[str, float] | None
        pareto_front: list[dict[str, Any]] | None
        folds: list[dict[str, Any]]
        fold_boundaries: list[dict[str, Any]]
        timings_mean_seconds: dict[str, float]
        trials: list[dict[str, Any]]
        trials_truncated: bool
        engine_check: dict[str, Any] | None = None
        warnings: list[str] | None = None

    return FoldComparison, OptimizationSection


def validate_optimization_section(section: Mapping[str, Any]) -> dict[str, Any]:
    """Check an optimization section against its model (ConfigError naming the problem)."""
    from pydantic import ValidationError

    _, model = _section_models()
    try:
        model.model_validate(dict(section))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"optimization section: {where}: {first['msg']}") from None
    return dict(section)


_IS_OOS_METRICS = ("sharpe", "sortino", "calmar", "cagr", "total_return", "max_drawdown",
                   "profit_factor", "n_trades", "exposure")


def optimization_section(cfg: StudyConfig, folds_out: Sequence[dict[str, Any]],
                         result_metrics: Mapping[str, Any], *, mode: str,
                         storage: Any, wall_seconds: float | None = None,
                         max_trials_listed: int = 2000,
                         embargo_bars: int = 0) -> dict[str, Any]:
    last = folds_out[-1]
    fold_rows = []
    is_vs_oos = []
    for f in folds_out:
        row = {k: v for k, v in f.items() if not k.startswith("_")}
        fold_rows.append(_jsonable(row))
        ins, outs = f.get("in_sample_metrics", {}), f.get("out_of_sample_metrics", {})
        is_vs_oos.append({
            "fold": f["fold"]["index"] + 1,
            "train": [f["fold"]["train_start"], f["fold"]["train_end"]],
            "test": [f["fold"]["test_start"], f["fold"]["test_end"]],
            "in_sample": {k: ins.get(k) for k in _IS_OOS_METRICS},
            "out_of_sample": {k: outs.get(k) for k in _IS_OOS_METRICS},
            "dsr": (f.get("dsr") or {}).get("dsr"),
            "pbo": (f.get("pbo") or {}).get("pbo"),
        })
    trials = []
    for fold in cfg.folds:
        for t in trials_table(cfg, fold, storage):
            t["fold"] = fold.index + 1
            trials.append(t)
    timing_keys: dict[str, list[float]] = {}
    for t in trials:
        for k, v in (t.get("timings") or {}).items():
            timing_keys.setdefault(k, []).append(v)
    return _jsonable({
        "result_is_out_of_sample": True,
        "note": ("metrics, equity and trades of this report are the stitched out-of-sample "
                 "test windows, each traded with the parameters chosen on its own training "
                 "window; in-sample figures appear only in the per-fold comparison"),
        "study": {
            "name": cfg.study_name,
            "fold_studies": [cfg.fold_study_name(f) for f in cfg.folds],
            "storage": _redact(cfg.storage_url),
            "sampler": cfg.sampler,
            "seed": cfg.seed,
            "pruner": cfg.pruner,
            "prune_chunks": cfg.prune_chunks,
            "n_trials": cfg.n_trials,
            "workers": cfg.workers,
            "objectives": [o.label for o in cfg.objectives],
            "validation": mode,
            "n_folds": len(cfg.folds),
            "fingerprint": cfg.fingerprint(),
            "wall_seconds": wall_seconds,
            "min_trades": cfg.min_trades,
            "embargo_bars": embargo_bars,
        },
        "search_space": cfg.space.to_dict(),
        "best_params": last.get("best_params"),
        "best_params_fold": len(folds_out),
        "best_values_in_sample": last.get("best_values"),
        "out_of_sample_metrics": _jsonable_metrics(result_metrics),
        "is_vs_oos": is_vs_oos,
        "dsr": last.get("dsr"),
        "pbo": last.get("pbo"),
        "param_importances": last.get("param_importances"),
        "pareto_front": last.get("pareto_front"),
        "folds": fold_rows,
        "fold_boundaries": [f.to_dict() for f in cfg.folds],
        "timings_mean_seconds": {k: float(np.mean(v)) for k, v in timing_keys.items()},
        "trials": trials[:max_trials_listed],
        "trials_truncated": len(trials) > max_trials_listed,
        "warnings": [f["warning"] for f in folds_out if f.get("warning")],
    })


# --------------------------------------------------------------------------------------------
# the whole command as a function (the CLI is a thin layer over this)


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a study: every finished trial is already in the storage; what
    was saved and where, so the same command can resume."""

    def __init__(self, storage: str, studies: list[str], finished: int | None,
                 total: int) -> None:
        super().__init__("optimization interrupted")
        self.storage, self.studies, self.finished, self.total = storage, studies, finished, total

    @staticmethod
    def caused(exc: BaseException | None) -> bool:
        """A KeyboardInterrupt, or an error raised while one was unwinding (e.g. inside a
        storage lock's cleanup)."""
        seen = 0
        while exc is not None and seen < 20:
            if isinstance(exc, KeyboardInterrupt):
                return True
            exc, seen = exc.__context__, seen + 1
        return False

    @classmethod
    def of(cls, cfg: StudyConfig) -> StudyInterrupted:
        import optuna

        names = [cfg.fold_study_name(f) for f in cfg.folds]
        finished: int | None = None
        try:
            storage = open_storage(cfg.storage_url, heartbeat=None)
            count = 0
            for name in names:
                study = optuna.load_study(study_name=name, storage=storage)
                count += min(_counts(study)[0], cfg.n_trials)
            finished = count
        except Exception:  # the storage is unreachable now: say so rather than guess
            finished = None
        return cls(_redact(cfg.storage_url), names, finished, cfg.n_trials * len(names))


@dataclass
class OptimizationRun:
    run_dir: Path
    result: Any
    section: dict[str, Any]
    config: StudyConfig


def default_study_name(spec_name: str, cfg: StudyConfig) -> str:
    return f"{spec_name}-{cfg.fingerprint()[:10]}"


def optimize_spec(
    spec: str,
    *,
    n_trials: int = 100,
    objective: str | None = None,
    directions: str | None = None,
    sampler: str | None = None,
    walk_forward: int | None = None,
    anchored: bool = True,
    train_until: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    seed: int | None = None,
    pruner: str = "none",
    prune_chunks: int | None = None,
    overrides: Sequence[str] = (),
    data_dir: str | None = None,
    heartbeat: int = 5,
    runs_dir: str | None = None,
    progress: bool = False,
    console: Any = None,
    engine: str | None = None,
    embargo: int | None = None,
    min_trades: int | None = None,
) -> OptimizationRun:
    """Build the study from a spec, run it (resuming if it exists), analyse, write the run.

    ``engine``: the trials' engine (default: the fast engine when it runs the strategy type).
    The selected configurations and the stitched out-of-sample run are then re-run on
    backtrader (:mod:`flushback.backtests.optimize.engine_check`); a mismatch raises EngineMismatch.

    ``embargo``: bars between each training window and its test window (default: the longest
    holding period the search allows plus the signals' warm-up, see
    :meth:`SpecEvaluator.default_embargo`). ``min_trades`` (default
    :data:`DEFAULT_MIN_TRADES`): fewer trades on a training window make a trial infeasible;
    a selected configuration trading fewer times in its test window is reported as a warning.
    """
    from flushback.backtests.optimize.engine_check import raise_on_mismatch, recheck_on_reference
    from flushback.backtests.run.folders import write_run

    if n_trials < 1:
        raise ConfigError("--trials must be >= 1")
    if workers < 1:
        raise ConfigError("--workers must be >= 1")
    objectives = parse_objectives(objective, directions)
    sampler = sampler or ("nsga2" if len(objectives) > 1 else "tpe")
    _make_sampler(sampler, seed, len(objectives) > 1)  # unknown / unavailable: fail now
    _make_pruner(pruner)
    ev_kwargs: dict[str, Any] = {"spec": spec, "overrides": list(overrides),
                                 "data_dir": data_dir, "engine": engine}
    ev = SpecEvaluator(**ev_kwargs)
    ev_kwargs["engine"] = ev.engine  # workers run the same engine
    space = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys())
    if not space.params:
        raise ConfigError("nothing to optimize: the search space is empty",
                          hint="list parameters in [search] params = [...] or give ranges")
    if embargo is None:
        embargo = ev.default_embargo(space)
    if embargo < 0:
        raise ConfigError("--embargo must be >= 0")
    min_trades = DEFAULT_MIN_TRADES if min_trades is None else int(min_trades)
    if min_trades < 0:
        raise ConfigError("--min-trades must be >= 0")
    folds = make_folds(ev.index, walk_forward=walk_forward, anchored=anchored,
                       train_until=train_until, embargo_bars=embargo)
    mode = ("walk_forward_anchored" if anchored else "walk_forward_rolling") if walk_forward \
        else ("train_until" if train_until else "holdout_30pct")
    if prune_chunks is None:
        prune_chunks = 3 if pruner != "none" else 1
    cfg = StudyConfig(
        evaluator_factory="flushback.backtests.optimize.study:spec_evaluator",
        evaluator_kwargs=ev_kwargs,
        objectives=objectives, space=space, folds=tuple(folds), n_trials=int(n_trials),
        storage_url=normalize_storage_url(storage) if storage else default_storage_url(),
        study_name=study or "pending",
        sampler=sampler, seed=seed, pruner=pruner, prune_chunks=int(prune_chunks),
        heartbeat=int(heartbeat), workers=int(workers), min_trades=min_trades,
    )
    # the study's identity must not depend on where the spec or the data sit on disk:
    # fingerprint the spec's content instead of its path
    ident = dataclasses.replace(cfg, evaluator_kwargs={"spec": ev.spec.to_dict(),
                                                       "overrides": list(overrides)})
    cfg = dataclasses.replace(cfg, fingerprint_override=ident.fingerprint())
    if study is None:
        cfg = dataclasses.replace(cfg, study_name=default_study_name(ev.spec.name, cfg))
    t0 = time.perf_counter()
    try:
        run_study(cfg, evaluator=ev, progress=progress, console=console)
    except BaseException as exc:
        if not StudyInterrupted.caused(exc):
            raise
        raise StudyInterrupted.of(cfg) from None
    wall = time.perf_counter() - t0
    store = open_storage(cfg.storage_url, heartbeat=None)
    folds_out = [analyse_fold(cfg, ev, f, storage=store) for f in cfg.folds]
    missing = [f["study_name"] for f in folds_out if "error" in f]
    if missing:
        raise StoreError(f"no completed trial in {', '.join(missing)}",
                         hint="every trial failed or traded fewer than --min-trades "
                         f"({min_trades}) times: run `flushback backtest` on the spec, or "
                         "lower --min-trades")
    result = build_result(cfg, ev, folds_out)
    check = recheck_on_reference(ev, cfg.folds, folds_out, result, ev.spec.cash)
    section = optimization_section(cfg, folds_out, result.metrics, mode=mode, storage=store,
                                   wall_seconds=wall, embargo_bars=int(embargo))
    section["engine_check"] = _jsonable(check)
    section = validate_optimization_section(section)
    from flushback.backtests.run.spec import active_overrides

    run_dir = write_run(result, runs_dir=runs_dir,
                        sections={"kind": "optimization", "optimization": section,
                                  "overrides": active_overrides(overrides)})
    raise_on_mismatch(check, where=str(run_dir))
    return OptimizationRun(run_dir=run_dir, result=result, section=section, config=cfg)
