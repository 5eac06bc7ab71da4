"""The search space: the ranges the signals and the strategy declare (``Param``), narrowed,
fixed or restricted by a spec's ``[search]`` table (:func:`build_search_space`), plus
feasibility constraints such as ``"strategy.take_profit > strategy.stop_loss"``
(:class:`Constraint`, evaluated without ``eval``)."""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flushback.data.errors import ConfigError


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
        if not is_searchable(declared[key]) and key not in narrowed:
            if key in explicit:
                raise _unsearchable(key, declared[key])
            continue  # a free-text name or an open level: only searched when given a range
        if not is_searchable(declared[key]):
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


def is_searchable(decl: Any) -> bool:
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
