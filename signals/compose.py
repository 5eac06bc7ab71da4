"""Composition: ``all``, ``any``, ``k_of_n``, ``not``, ``cooldown``, ``first_of_cluster``.

A composite is itself a :class:`Signal` (same contract, same conformance suite). Its
parameters are its own (``window``, ``k``, ``bars``, ``gap``) plus every child's, namespaced
by the child's path: ``of.0.threshold``, ``of.1.of.0.period``. ``search_space()`` uses the same
keys, so an optimizer can tune a whole tree.

Children must be bool triggers (a float strength such as ``rsi`` is compared to a threshold by
its trigger variant, e.g. ``oversold_rsi``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from flushback.data.errors import ConfigError
from flushback.signals.base import Param, Signal, validate_params
from flushback.signals.registry import build_signal, register

__all__ = ["Composite", "AllOf", "AnyOf", "KOfN", "Not", "Cooldown", "FirstOfCluster"]


class Composite(Signal):
    """Base of the combinators: ``Composite(of=[child, ...], **own_params)``."""

    min_children: ClassVar[int] = 1
    max_children: ClassVar[int | None] = None

    def __init__(self, of: Sequence[Any] | Mapping[str, Any] | Signal | None = None,
                 **params: Any) -> None:
        if of is None:
            raise ConfigError(
                f"composite signal '{self.name}' needs 'of' (a list of child signal configs)",
                hint=f"e.g. type = '{self.name}', of = [{{type = 'extreme_fear'}}]",
            )
        if isinstance(of, Mapping | Signal | str):
            of = [of]
        children = [build_signal(c) for c in of]
        n = len(children)
        if n < self.min_children or (self.max_children is not None and n > self.max_children):
            want = (f"exactly {self.min_children}" if self.max_children == self.min_children
                    else f"at least {self.min_children}")
            raise ConfigError(f"'{self.name}' needs {want} child signal(s), got {n}")
        for i, child in enumerate(children):
            if child.kind != "bool":
                raise ConfigError(
                    f"'{self.name}'.of.{i} is '{child.name}', a float strength, not a trigger",
                    hint="compose triggers, e.g. oversold_rsi instead of rsi",
                )
        own: dict[str, Any] = {}
        child_over: dict[int, dict[str, Any]] = {}
        for key, value in params.items():
            if key.startswith("of."):
                _, idx, rest = (key.split(".", 2) + ["", ""])[:3]
                if not idx.isdigit() or int(idx) >= n or not rest:
                    raise ConfigError(
                        f"'{self.name}' has no parameter '{key}'",
                        hint=f"children are of.0 .. of.{n - 1}; e.g. of.0.<param>",
                    )
                child_over.setdefault(int(idx), {})[rest] = value
            else:
                own[key] = value
        children = [
            c.with_params(child_over[i]) if i in child_over else c for i, c in enumerate(children)
        ]
        self.children: tuple[Signal, ...] = tuple(children)
        specs = self.param_specs
        values = validate_params(
            specs, own, owner=self.name, known=["of"],
            unknown=lambda key: f"unknown parameter '{key}' for composite '{self.name}'",
            hint=f"parameters of {self.name}: {', '.join([*specs, 'of']) }",
        )
        self._validate(values)
        self.own_params: Mapping[str, Any] = MappingProxyType(dict(values))
        flat = dict(values)
        for i, child in enumerate(self.children):
            for k, v in child.params.items():
                flat[f"of.{i}.{k}"] = v
        self.params = MappingProxyType(flat)
        cols: list[str] = []
        opt: list[str] = []
        for child in self.children:
            cols += [c for c in child.required_columns() if c not in cols]
            opt += [c for c in child.optional_inputs if c not in opt]
        self.inputs = tuple(cols)  # type: ignore[misc]
        self.optional_inputs = tuple(opt)  # type: ignore[misc]
        self.tolerance = max((c.tolerance for c in self.children), default=0.0)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Composite:
        cfg = {k: v for k, v in config.items() if k != "type"}
        return cls(**cfg)

    def to_config(self) -> dict[str, Any]:
        return {"type": self.name, **self.own_params,
                "of": [c.to_config() for c in self.children]}

    def with_params(self, overrides: Mapping[str, Any]) -> Signal:
        return type(self)(of=list(self.children), **{**self.own_params, **dict(overrides)})

    def search_space(self) -> dict[str, Param]:  # type: ignore[override]
        space = dict(self.param_specs)
        for i, child in enumerate(self.children):
            for k, v in child.search_space().items():
                space[f"of.{i}.{k}"] = v
        return space

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return max(c.warmup_for(interval) for c in self.children) + self._extra_warmup()

    def _extra_warmup(self) -> int:
        return 0

    def child_values(self, frame: pd.DataFrame) -> list[pd.Series]:
        return [c.compute(frame) for c in self.children]

    def evaluable(self, frame: pd.DataFrame) -> pd.Series:
        parts = [c.evaluable(frame) for c in self.children]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if self.name == "all" else (out | p)
        return out

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Each child's trigger (True / False, or None where its inputs are missing: "no
        data", not "no") followed by the child's own explanation."""
        parts = []
        for i, child in enumerate(self.children):
            ex = child.explain(frame)
            ex.columns = [f"of.{i}.{c}" for c in ex.columns]
            fired = child.compute(frame).astype(object)
            ex.insert(0, f"of.{i}:{child.name}", fired.where(child.evaluable(frame), None))
            parts.append(ex)
        return pd.concat(parts, axis=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_config()!r})"


def _recent(series: pd.Series, window: int) -> np.ndarray:
    """True where ``series`` was True at least once in the last ``window`` bars (incl. t)."""
    x = series.to_numpy()
    if x.dtype == bool:  # children are bool triggers: a running count of hits, exact
        c = np.cumsum(x, dtype=np.int64)
        if len(c) > window:
            c[window:] = c[window:] - c[:-window].copy()
        return c > 0
    return series.astype("float64").rolling(window, min_periods=1).max().to_numpy() > 0


_WINDOW = Param(int, 1, 1, 30, step=1, doc="children may fire on different bars within this "
                "many bars (1 = the same bar)", units="bars")


class _WithinWindow(Composite):
    """Base of ``all``/``any``/``k_of_n``: which children fired within the last ``window`` bars
    (incl. t), combined per bar by ``_combine``."""

    def _extra_warmup(self) -> int:
        return self.own_params["window"] - 1

    def _combine(self, hits: np.ndarray) -> np.ndarray:
        """``hits``: bool array (children x bars) -> bool per bar."""
        raise NotImplementedError

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        w = self.own_params["window"]
        hits = np.vstack([_recent(s, w) for s in self.child_values(frame)])
        return pd.Series(self._combine(hits), index=frame.index)


@register("all")
class AllOf(_WithinWindow):
    """True when every child fired at least once within the last ``window`` bars."""

    summary = "every child fired within `window` bars (AND)"
    min_children = 1
    param_specs = {"window": _WINDOW}

    @classmethod
    def example(cls) -> Signal:
        return cls(of=[{"type": "extreme_fear", "threshold": 25},
                       {"type": "oversold_rsi"}], window=2)

    def _combine(self, hits: np.ndarray) -> np.ndarray:
        return np.asarray(hits.all(axis=0))


@register("any")
class AnyOf(_WithinWindow):
    """True when at least one child fired within the last ``window`` bars."""

    summary = "at least one child fired within `window` bars (OR)"
    param_specs = {"window": _WINDOW}

    @classmethod
    def example(cls) -> Signal:
        return cls(of=[{"type": "liquidation_spike"}, {"type": "capitulation"}])

    def _combine(self, hits: np.ndarray) -> np.ndarray:
        return np.asarray(hits.any(axis=0))


@register("k_of_n")
class KOfN(_WithinWindow):
    """True when at least ``k`` of the children fired within the last ``window`` bars."""

    summary = "at least k of the n children fired within `window` bars"
    min_children = 2
    param_specs = {
        "k": Param(int, 2, 1, 10, step=1, doc="children that must fire", units="children"),
        "window": _WINDOW,
    }

    def _validate(self, values: dict) -> None:
        if values["k"] > len(self.children):
            raise ConfigError(
                f"k_of_n.k = {values['k']} but there are only {len(self.children)} children",
                hint="k must be <= the number of children",
            )

    @classmethod
    def example(cls) -> Signal:
        return cls(of=[{"type": "extreme_fear", "threshold": 25}, {"type": "oversold_rsi"},
                       {"type": "capitulation"}], k=2, window=3)

    def _combine(self, hits: np.ndarray) -> np.ndarray:
        return hits.sum(axis=0) >= self.own_params["k"]


@register("not")
class Not(Composite):
    """Negation of one child: True where the child is False. False during the child's warm-up
    and wherever the child's inputs are missing (a missing value is unknown, not "false")."""

    summary = "negation of one child"
    min_children = max_children = 1
    param_specs: ClassVar[Mapping[str, Param]] = {}

    @classmethod
    def example(cls) -> Signal:
        return cls(of=[{"type": "extreme_greed"}])

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        child = self.children[0]
        # unknown is not "false": where the child's own inputs are missing, `not` is False too
        missing = frame[list(child.required_columns())].isna().any(axis=1)
        return ~self.child_values(frame)[0] & ~missing


@register("cooldown")
class Cooldown(Composite):
    """The child's triggers, except that after a trigger no new one is emitted for ``bars``
    bars (the suppressed ones do not restart the clock).

    Path-dependent: whether bar t fires depends on when the chain of triggers started, which
    can lie arbitrarily far back (a child firing every bar fires the cooldown every
    ``bars + 1`` bars from its first trigger). Its warm-up is therefore not exact; it declares
    ``tolerance = 1`` (a bool may differ). Use ``first_of_cluster`` for a finite-memory variant.
    """

    summary = "child's triggers, then silence for `bars` bars (path-dependent)"
    min_children = max_children = 1
    param_specs = {"bars": Param(int, 5, 1, 60, step=1, doc="no retrigger within this many bars",
                                 units="bars")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tolerance = 1.0

    @classmethod
    def example(cls) -> Signal:
        return cls(of=[{"type": "oversold_rsi"}], bars=5)

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        child = self.child_values(frame)[0].to_numpy()
        gap = self.own_params["bars"]
        out = np.zeros(len(child), dtype=bool)
        last = -(10**12)
        for i in np.flatnonzero(child):
            if i - last > gap:
                out[i] = True
                last = int(i)
        return pd.Series(out, index=frame.index)


@register("first_of_cluster")
class FirstOfCluster(Composite):
    """The first trigger of each cluster: the child fires at t and did not fire in any of the
    ``gap`` bars before t. Finite memory (exact after its warm-up)."""

    summary = "child fires and did not fire in the previous `gap` bars"
    min_children = max_children = 1
    param_specs = {"gap": Param(int, 5, 1, 60, step=1,
                                doc="quiet bars required before a new cluster", units="bars")}

    @classmethod
    def example(cls) -> Signal:
        return cls(of=[{"type": "drawdown"}], gap=5)

    def _extra_warmup(self) -> int:
        return self.own_params["gap"]

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        child = self.child_values(frame)[0]
        gap = self.own_params["gap"]
        before = child.astype("float64").shift(1).rolling(gap, min_periods=1).max().fillna(0.0)
        return child & (before.to_numpy() == 0)
