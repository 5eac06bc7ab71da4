"""Backtest specs: one typed, frozen object per backtest, loaded from TOML.

Layers, later wins: the model defaults -> the TOML file -> ``FLUSHBACK_SET`` (environment:
``"k=v;k=v"``) -> ``overrides`` (the CLI's ``--set k=v``). Unknown keys are refused with a
did-you-mean at every level (``[data]``, ``[costs]``, ``[strategy]`` keys are validated against
the strategy's declared parameters, ``[signals.*]`` against the signal registry).

A spec file::

    name = "fear_flush_btc_daily"
    description = "..."
    cash = 10000.0

    [data]
    symbol = "BTC-USD"
    interval = "1d"            # "1h" | "4h" | "1d"
    start = "2018-02-01"       # optional; the bars before it are used for warm-up only
    end = "2026-06-04"         # optional, inclusive (a date includes that whole day)
    externals = ["fng", "liquidations", "funding", "open_interest"]

    [signals.entry]            # each [signals.X] becomes the feed line X
    type = "extreme_fear"
    threshold = 20

    [strategy]
    type = "contrarian"        # | "buy_and_hold" | "fear_greed_accumulation" | registered
    hold_bars = 30
    take_profit = 0.25

    [benchmark]
    type = "buy_and_hold"

    [costs]
    commission = 0.001         # FRACTION of notional per side (0.1 %)
    slippage = 0.0005          # fraction of the open price
    funding = false            # perpetuals: true = the known rate accrued per bar;
                               # "settlements" = the Binance 8h settlements (see docs)

    [search]                   # optional, for `flushback optimize`
    "strategy.take_profit" = { low = 0.05, high = 0.5 }
    "signals.entry.threshold" = 20     # a scalar fixes the parameter

Every value can be overridden by a dotted path: ``strategy.take_profit=0.2``,
``signals.entry.of.0.threshold=15``, ``data.start=2020-01-01``. Values are parsed as TOML
(``0.2``, ``true``, ``"text"``, ``[1, 2]``), falling back to a plain string.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flushback.data.errors import ConfigError
from flushback.data.suggest import did_you_mean

__all__ = [
    "BacktestSpec",
    "DataSpec",
    "CostsSpec",
    "StrategySpec",
    "load_spec",
    "parse_spec",
    "apply_overrides",
    "active_overrides",
    "parse_override",
    "list_specs",
    "spec_path",
    "search_space",
    "SPECS_DIR",
]

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"
_PRICE_LINES = {"open", "high", "low", "close", "volume", "datetime", "openinterest",
                "funding_rate", "vol", "fng"}
_DEFAULT_EXTERNALS = ("fng", "liquidations", "funding", "open_interest")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_date(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{name} = {value!r} is not a date (use YYYY-MM-DD)") from None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    # a plain date means that whole day as an end (see runner._window_end); an explicit
    # midnight time stays a time, so it is not widened to the whole day
    has_time = isinstance(value, _dt.datetime) or (isinstance(value, str) and (
        "T" in value or ":" in value))
    if ts == ts.normalize() and not has_time:
        return ts.strftime("%Y-%m-%d")
    return ts.strftime("%Y-%m-%dT%H:%M:%S")


class DataSpec(_Frozen):
    """``[data]``: what to load."""

    symbol: str = "BTC-USD"
    interval: Literal["1h", "4h", "1d"] = "1d"
    start: str | None = None
    end: str | None = None
    externals: tuple[str, ...] | dict[str, str] = _DEFAULT_EXTERNALS
    warmup_bars: int | None = Field(default=None, ge=0)
    max_staleness: str | dict[str, str] | None = None  # passed to load_frame
    # kind -> named source, e.g. {liquidations = "binance-okx-bybit"} (docs/data.md)
    sources: dict[str, str] = Field(default_factory=dict)
    # user series: name -> "stored" (imported with `data import --as`) or a table with path,
    # interval, lag, column, label, aggregate, units (flushback.data.series)
    series: dict[str, Any] = Field(default_factory=dict)
    # other assets whose bars and liquidations ride along as close@SYMBOL... columns for the
    # breadth signals (flushback.data.basket); the spec's own symbol is always a member
    basket: tuple[str, ...] = ()

    def load_kwargs(self) -> dict[str, Any]:
        """What ``load_with_basket`` needs besides the symbol, interval and range."""
        externals: Any = self.externals
        externals = dict(externals) if isinstance(externals, Mapping) else tuple(externals)
        return {"externals": externals, "max_staleness": self.max_staleness,
                "sources": dict(self.sources),
                "series": {k: (k if v == "stored" else v) for k, v in self.series.items()},
                "basket": tuple(self.basket)}

    @model_validator(mode="before")
    @classmethod
    def _symbols(cls, data: Any) -> Any:
        """``data.symbols = [...]`` (or a universe name) is the basket spelled as a universe:
        its first symbol is the spec's own unless ``data.symbol`` names another member."""
        if not isinstance(data, Mapping) or "symbols" not in data:
            return data
        data = dict(data)
        if "basket" in data:
            raise ValueError("data.symbols and data.basket name the same thing: use one")
        symbols = cls._basket(data.pop("symbols"))
        if not symbols:
            raise ValueError("data.symbols is empty: name the assets of the universe")
        data.setdefault("symbol", symbols[0])
        if data["symbol"] not in symbols:
            raise ValueError(f"data.symbol {data['symbol']!r} is not one of data.symbols "
                             f"({', '.join(symbols)})")
        data["basket"] = symbols
        return data

    @field_validator("basket", mode="before")
    @classmethod
    def _basket(cls, v: Any) -> Any:
        from flushback.data.basket import UNIVERSES, universe

        if isinstance(v, str):  # a named universe (lower case) or one symbol
            v = list(universe(v)) if v in UNIVERSES or v.islower() else [v]
        names = [str(s) for s in v]
        dup = sorted({s for s in names if names.count(s) > 1})
        if dup:
            raise ValueError(f"data.basket names {', '.join(dup)} more than once")
        return tuple(names)

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: dict[str, str]) -> dict[str, str]:
        from flushback.data.datasets import EXTERNAL_KINDS, source_names

        for kind, name in v.items():
            if kind not in EXTERNAL_KINDS:
                raise ValueError(f"data.sources.{kind}: unknown external kind"
                                 + did_you_mean(kind, EXTERNAL_KINDS))
            if name not in source_names(kind):
                raise ValueError(f"data.sources.{kind} = {name!r} is not a {kind} source"
                                 + did_you_mean(name, source_names(kind))
                                 + f"; choose one of {', '.join(source_names(kind))}")
        return v

    @field_validator("series")
    @classmethod
    def _series(cls, v: dict[str, Any]) -> dict[str, Any]:
        from flushback.data.series import series_def

        for name, definition in v.items():
            if definition == "stored":
                series_def(name, {})  # checks the name only
            else:
                series_def(name, definition)
        return v

    @field_validator("start", "end", mode="before")
    @classmethod
    def _date(cls, v: Any, info: Any) -> str | None:
        return _parse_date(v, f"data.{info.field_name}")

    @model_validator(mode="after")
    def _order(self) -> DataSpec:
        if self.start and self.end and pd.Timestamp(self.end) < pd.Timestamp(self.start):
            raise ValueError(f"data.end {self.end} is before data.start {self.start}")
        return self


class CostsSpec(_Frozen):
    """``[costs]``: commission and slippage as FRACTIONS (0.001 = 0.1 %), funding: off,
    ``true`` (the rate known at each bar, accrued ``rate * bar_hours / 8`` per bar) or
    ``"settlements"`` (each 8h settlement of the perpetual's funding series, charged at the
    bar it falls in; ``flushback.strategies.funding``)."""

    commission: float = Field(default=0.001, ge=0.0, lt=0.1)
    slippage: float = Field(default=0.0005, ge=0.0, lt=0.1)
    funding: bool | Literal["settlements"] = False


class StrategySpec(_Frozen):
    """``[strategy]`` / ``[benchmark]``: a type and its declared parameters (flat in TOML)."""

    type: str = "contrarian"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        from flushback.strategies.config import validate_strategy_params

        if isinstance(data, StrategySpec):
            return data
        if not isinstance(data, Mapping):
            raise ValueError("must be a table")
        data = dict(data)
        kind = data.pop("type", "contrarian")
        nested = data.pop("params", None)
        if nested:
            data.update(nested)
        return {"type": kind, "params": validate_strategy_params(str(kind), data)}

    def to_config(self) -> dict[str, Any]:
        """``{"type": ..., **params}``; a contrarian 1x long leaves out the perpetual keys
        (``side``, ``leverage``, ``maintenance_margin``), so that its ``config`` and ``run_id``
        are those of a spot-like run; any other value records all three."""
        from flushback.strategies.config import PERP_KEYS, perp_defaults

        params = dict(self.params)
        if self.type == "contrarian" and perp_defaults(params):
            for key in PERP_KEYS:
                params.pop(key, None)
        return {"type": self.type, **params}


class BacktestSpec(_Frozen):
    """A backtest: data, signals, strategy, benchmark, costs, cash (see the module docstring)."""

    name: str = "custom"
    description: str = ""
    cash: float = Field(default=10_000.0, gt=0, allow_inf_nan=False)
    data: DataSpec = Field(default_factory=DataSpec)
    signals: dict[str, dict[str, Any]] = Field(default_factory=dict)
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    benchmark: StrategySpec = Field(default_factory=lambda: StrategySpec(type="buy_and_hold"))
    costs: CostsSpec = Field(default_factory=CostsSpec)
    search: dict[str, Any] = Field(default_factory=dict)
    # the basket traded as one portfolio with shared cash (flushback.strategies.portfolio);
    # None: the spec's strategy trades data.symbol alone
    portfolio: dict[str, Any] | None = None

    @field_validator("portfolio")
    @classmethod
    def _portfolio(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        from flushback.strategies.portfolio import PortfolioConfig

        if v is None:
            return None
        PortfolioConfig.from_mapping(v)
        return dict(v)

    @model_validator(mode="after")
    def _portfolio_needs(self) -> BacktestSpec:
        if self.portfolio is None:
            return self
        if not self.data.basket:
            raise ConfigError("[portfolio] trades a basket: data.basket names no other asset",
                              hint='add e.g. data.basket = ["ETHUSDT", "SOLUSDT"]')
        if "strategy" in self.model_fields_set:
            raise ConfigError("a spec has [portfolio] or [strategy], not both",
                              hint="the portfolio's exits (stop_loss, take_profit, hold_bars) "
                              "go in [portfolio]")
        if "entry" not in self.signals:
            raise ConfigError("[portfolio] needs [signals.entry]",
                              hint="the trigger that buys the basket's most oversold assets")
        return self

    @field_validator("signals")
    @classmethod
    def _signals(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from flushback.signals import build_signal

        for name, cfg in v.items():
            if not name.isidentifier() or name in _PRICE_LINES:
                raise ConfigError(
                    f"signal table name 'signals.{name}' cannot be used as a feed line",
                    hint="use an identifier such as entry, exit, fear (not a price column)",
                )
            try:
                build_signal(cfg)
            except ConfigError as exc:
                raise ConfigError(f"signals.{name}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _needs(self) -> BacktestSpec:
        from flushback.signals import build_signal
        from flushback.strategies.config import strategy_signals, trigger_signals

        for section, strat in (("strategy", self.strategy), ("benchmark", self.benchmark)):
            required, _ = strategy_signals(strat.type)
            missing = [s for s in required if s not in self.signals]
            if missing:
                raise ConfigError(
                    f"{section} type '{strat.type}' needs [signals.{missing[0]}]",
                    hint=f"add a [signals.{missing[0]}] table with a signal config",
                )
            # a float strength (e.g. type="rsi") read as a trigger would fire on every bar
            for name in trigger_signals(strat.type):
                if name in self.signals:
                    sig = build_signal(self.signals[name])
                    if sig.kind != "bool":
                        raise ConfigError(
                            f"signals.{name} is a {sig.kind} strength ('{sig.name}'), but "
                            f"{section} type '{strat.type}' reads it as a trigger",
                            hint="use a trigger signal (e.g. oversold_rsi instead of rsi)",
                        )
        return self

    # -- helpers ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The full spec as a plain dict (what a report's ``config`` holds; TOML-shaped)."""
        data = self.data.model_dump()
        data["externals"] = (
            list(data["externals"]) if isinstance(data["externals"], tuple) else data["externals"]
        )
        if data["basket"]:
            data["basket"] = list(data["basket"])
        else:  # a single-asset spec's config (and run id) reads as before baskets existed
            del data["basket"]
        out = {
            "name": self.name,
            "description": self.description,
            "cash": self.cash,
            "data": data,
            "signals": copy.deepcopy(self.signals),
            "strategy": self.strategy.to_config(),
            "benchmark": self.benchmark.to_config(),
            "costs": self.costs.model_dump(),
            "search": copy.deepcopy(self.search),
        }
        if self.portfolio is not None:  # the portfolio trades instead of [strategy]
            del out["strategy"]
            out["portfolio"] = dict(self.portfolio)
        return out

    def with_overrides(self, overrides: Mapping[str, Any] | Iterable[str]) -> BacktestSpec:
        """A new spec with dotted-path overrides applied (a dict or ``"k=v"`` strings)."""
        return parse_spec(apply_overrides(self.to_dict(), overrides))

    def fingerprint(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[str, Any]:
    """``"strategy.take_profit=0.2"`` -> ``("strategy.take_profit", 0.2)`` (TOML value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value",
                          hint="write e.g. --set strategy.take_profit=0.2")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if hasattr(value, "isoformat") and not isinstance(value, str):
        value = value.isoformat()
    return key, value


def _fields_at(path: list[str]) -> list[str]:
    models: dict[tuple[str, ...], type[BaseModel]] = {
        (): BacktestSpec, ("data",): DataSpec, ("costs",): CostsSpec,
    }
    model = models.get(tuple(path))
    return list(model.model_fields) if model else []


def apply_overrides(
    raw: Mapping[str, Any], overrides: Mapping[str, Any] | Iterable[str] | None
) -> dict[str, Any]:
    """Apply dotted-path overrides to a raw (TOML-shaped) spec dict; returns a new dict."""
    doc = copy.deepcopy(dict(raw))
    if not overrides:
        return doc
    items = (
        list(overrides.items())
        if isinstance(overrides, Mapping)
        else [parse_override(o) for o in overrides]
    )
    for key, value in items:
        parts = key.split(".")
        node: Any = doc
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                try:
                    node = node[int(part)]
                except (ValueError, IndexError):
                    raise ConfigError(f"override '{key}': no item {part!r} at '{where}'",
                                      hint=f"the list has {len(node)} item(s)") from None
                continue
            if part not in node:
                if depth == 0 and part not in _fields_at([]):
                    raise ConfigError(
                        f"unknown key '{part}' in override '{key}'"
                        + did_you_mean(part, _fields_at([])),
                        hint="top-level keys: " + ", ".join(_fields_at([])),
                    )
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict | list):
                raise ConfigError(f"override '{key}': '{where}' is a value, not a table")
        last = parts[-1]
        if isinstance(node, list):
            try:
                node[int(last)] = value
            except (ValueError, IndexError):
                raise ConfigError(f"override '{key}': no item {last!r}") from None
        else:
            node[last] = value
    return doc


# --------------------------------------------------------------------------- loading
def parse_spec(raw: Mapping[str, Any], *, file: str | None = None) -> BacktestSpec:
    """Validate a raw spec dict; pydantic errors become one ConfigError with did-you-mean."""
    try:
        return BacktestSpec.model_validate(dict(raw))
    except ConfigError as exc:
        if file and not exc.file:
            exc.file = file
            exc.args = (str(exc),)
        raise
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            dotted = ".".join(loc)
            if err["type"] == "extra_forbidden":
                fields = _fields_at(loc[:-1])
                msgs.append(f"unknown key '{dotted}'" + did_you_mean(loc[-1], fields))
            else:
                msgs.append(f"{dotted or 'spec'}: {err['msg']}")
        raise ConfigError(
            "invalid spec: " + "; ".join(msgs), file=file,
            hint="see docs/strategies.md for the spec format",
        ) from None


def list_specs() -> list[str]:
    """Names of the shipped specs (``backtests/specs/*.toml``)."""
    return sorted(p.stem for p in SPECS_DIR.glob("*.toml"))


def spec_path(path_or_name: str | Path) -> Path:
    p = Path(path_or_name)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ConfigError("spec file not found", file=str(p),
                              hint="give a path to a .toml spec or a shipped spec name")
        return p
    candidate = SPECS_DIR / f"{path_or_name}.toml"
    if candidate.exists():
        return candidate
    raise ConfigError(
        f"no spec named '{path_or_name}'" + did_you_mean(str(path_or_name), list_specs()),
        hint="shipped specs: " + ", ".join(list_specs()),
    )


def active_overrides(overrides: Iterable[str] | None = None, *, env: bool = True) -> list[str]:
    """The ``key=value`` overrides :func:`load_spec` applies, in order: ``FLUSHBACK_SET`` from
    the environment, then ``overrides`` (the CLI's ``--set``); recorded on a run's report so
    two runs of one spec with different overrides can be told apart."""
    env_set = os.environ.get("FLUSHBACK_SET", "").strip() if env else ""
    items = [x for x in env_set.split(";") if x.strip()] + list(overrides or [])
    out = []
    for text in items:
        key, _ = parse_override(text)
        out.append(f"{key}={text.split('=', 1)[1].strip()}")
    return out


def load_spec(
    path_or_name: str | Path | BacktestSpec | Mapping[str, Any],
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    *,
    env: bool = True,
) -> BacktestSpec:
    """Load a spec from a TOML path or a shipped spec name, then apply the overrides.

    ``FLUSHBACK_SET="k=v;k=v"`` in the environment is applied before ``overrides``.
    """
    file = None
    if isinstance(path_or_name, BacktestSpec):
        raw = path_or_name.to_dict()
    elif isinstance(path_or_name, Mapping):
        raw = dict(path_or_name)
    else:
        p = spec_path(path_or_name)
        file = str(p)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", file=file) from None
        raw.setdefault("name", p.stem)
        series = (raw.get("data") or {}).get("series") or {}
        for definition in series.values():  # paths are relative to the spec file
            if isinstance(definition, dict) and definition.get("path") and not Path(
                    definition["path"]).is_absolute():
                definition["path"] = str((p.parent / definition["path"]).resolve())
    env_set = os.environ.get("FLUSHBACK_SET", "").strip() if env else ""
    if env_set:
        raw = apply_overrides(raw, [s for s in env_set.split(";") if s.strip()])
    if overrides:
        raw = apply_overrides(raw, overrides)
    return parse_spec(raw, file=file)


# --------------------------------------------------------------------------- search space
_RANGE_KEYS = {"low", "high", "step", "log", "choices"}


def _flatten_search(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and not (set(v) <= _RANGE_KEYS and v):
            out.update(_flatten_search(v, key + "."))
        else:
            out[key] = v
    return out


def search_space(spec: BacktestSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(space, fixed)``: flat name -> Param for every tunable parameter of the spec's signals
    and strategy (``signals.<name>.<param>``, ``strategy.<param>``), narrowed by ``[search]``;
    and the parameters ``[search]`` fixes to a value. ``[search]`` keys outside ``signals.``
    and ``strategy.`` are options for the optimizer and are left alone here."""
    from dataclasses import replace

    from flushback.signals import build_signal
    from flushback.strategies.config import strategy_param_specs

    space: dict[str, Any] = {}
    for name, cfg in spec.signals.items():
        for k, p in build_signal(cfg).search_space().items():
            space[f"signals.{name}.{k}"] = p
    for k, p in strategy_param_specs(spec.strategy.type).items():
        space[f"strategy.{k}"] = p
    fixed: dict[str, Any] = {}
    for key, v in _flatten_search(spec.search).items():
        if not key.startswith(("signals.", "strategy.")):
            continue  # optimizer options (e.g. ``params = [...]``), not a parameter
        if key not in space:
            raise ConfigError(
                f"[search] names unknown parameter '{key}'" + did_you_mean(key, space),
                hint="tunable: " + ", ".join(sorted(space)),
            )
        if isinstance(v, Mapping):
            bad = set(v) - _RANGE_KEYS
            if bad:
                raise ConfigError(f"[search] '{key}': unknown range key(s) {sorted(bad)}")
            if space[key].kind == "text":
                raise ConfigError(f"[search] '{key}' is free text and cannot be searched",
                                  hint=f"fix it instead: '{key}' = \"...\"")
            space[key] = replace(space[key], **dict(v))
        else:
            fixed[key] = space.pop(key).validate(v, key)
    return space, fixed
