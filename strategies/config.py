"""Strategy parameter declarations and the strategy registry (no backtrader import here).

Strategy parameters are declared with the same :class:`~flushback.signals.base.Param` type as
signal parameters: the declaration is both the validation rule and the search range the
optimizer samples. A spec's ``[strategy]`` table is validated against these declarations, so
unknown keys are refused with a did-you-mean.

Built-in strategy types (classes are imported lazily, so loading a spec stays cheap):

- ``contrarian``: entry on ``signals.entry``; exits by holding period, take-profit,
  stop-loss, trailing stop, structure levels (``flushback.strategies.levels``) or
  ``signals.exit``; cooldown; fraction or volatility-target sizing;
  optional scale-in up to ``max_tranches``.
- ``buy_and_hold``: buy at the first opportunity (the open of the second bar), hold to the end.
- ``fear_greed_accumulation``: buy ``buy_fraction`` of the cash at the next open after each
  bar whose Fear & Greed value is ``<= buy_below``; sell ``sell_fraction`` of the position after
  each bar ``>= sell_above``.

Custom strategies: subclass :class:`flushback.strategies.adapter.FlushbackStrategy`, implement
``decide()``, declare ``param_specs`` and register with :func:`register_strategy` (see
docs/strategies.md). There is one registry for both: the built-in classes register with the
same decorator, their entries declared here so that their metadata is known before backtrader
is imported. A validated configuration holds every declared parameter (:func:`complete_params`),
so strategies read it by key and a default lives only in its ``Param``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from flushback.data.errors import ConfigError
from flushback.data.suggest import did_you_mean
from flushback.signals.base import Param, validate_params
from flushback.strategies.margin import MAX_LEVERAGE

__all__ = [
    "CONTRARIAN_PARAMS",
    "BUY_AND_HOLD_PARAMS",
    "FEAR_GREED_ACCUMULATION_PARAMS",
    "register_strategy",
    "get_strategy",
    "strategy_param_specs",
    "strategy_signals",
    "validate_strategy_params",
    "list_strategies",
    "builtin_strategies",
    "complete_params",
    "trigger_signals",
]

CONTRARIAN_PARAMS: Mapping[str, Param] = MappingProxyType(
    {
        "sizing": Param(str, "fraction", choices=("fraction", "volatility"),
                        doc="fraction of equity, or volatility target"),
        "fraction": Param(float, 1.0, 0.01, 1.0,
                          doc="fraction of equity invested when fully in (all tranches); "
                          "with sizing='volatility' the cap"),
        "vol_target": Param(float, 0.6, 0.05, 3.0,
                            doc="annualised volatility target (sizing='volatility')", units="frac"),
        "vol_lookback": Param(int, 30, 5, 400, doc="bars of log returns for realised volatility"),
        "hold_bars": Param(int, 0, 0, 5000, doc="exit after this many bars held (0 = off)"),
        "take_profit": Param(float, 0.0, 0.0, 3.0,
                             doc="exit when close >= avg entry * (1 + take_profit) (0 = off)"),
        "stop_loss": Param(float, 0.0, 0.0, 0.95,
                           doc="exit when close <= avg entry * (1 - stop_loss) (0 = off)"),
        "trailing_stop": Param(float, 0.0, 0.0, 0.95,
                               doc="exit when close <= highest close since entry * (1 - x)"),
        "level_take_profit": Param(str, "off", choices=("off", "retracement", "gap",
                                                          "swing_high"),
                                   doc="exit when close >= a structure level: a retracement of "
                                   "the drop, the nearest open gap above, the last swing high"),
        "level_retracement": Param(float, 0.5, 0.1, 1.0,
                                   doc="level_take_profit='retracement': the part of the drop "
                                   "from the last swing high retraced", units="fraction"),
        "level_stop": Param(str, "off", choices=("off", "swing_low", "next_level"),
                            doc="exit when close <= a structure level: the last confirmed swing "
                            "low, or the next level below the close"),
        "level_stop_buffer": Param(float, 0.0, 0.0, 0.2,
                                   doc="the stop sits this far below its level", units="fraction"),
        "level_update": Param(str, "fixed", choices=("fixed", "moving"),
                              doc="levels of the entry signal bar, or of the previous bar"),
        "swing_bars": Param(int, 3, 1, 20, doc="bars on each side of a swing (confirmed this "
                            "many bars later)", units="bars"),
        "swing_lookback": Param(int, 120, 10, 1000, doc="swings, gaps and levels older than "
                                "this are forgotten", units="bars"),
        "exit_mode": Param(str, "close", choices=("close", "intrabar"),
                           doc="stop/take-profit/trailing: decided on the close and filled at "
                           "the next open, or resting orders filled intrabar"),
        "exit_on_signal": Param(bool, True, doc="exit when signals.exit fires (if declared)"),
        "cooldown_bars": Param(int, 0, 0, 2000,
                               doc="no new entry until this many bars after an exit fill"),
        "max_tranches": Param(int, 1, 1, 10, doc="scale in over repeated triggers, up to K"),
        "tranche_spacing_bars": Param(int, 1, 1, 2000,
                                      doc="minimum bars between two tranches"),
        **{
            "side": Param(str, "long", choices=("long", "short"),
                          doc="long, or short (the entry signal opens a short; exits mirrored)"),
            "leverage": Param(float, 1.0, 1.0, MAX_LEVERAGE,
                              doc="notional / margin of the position (isolated margin)",
                              units="x"),
            "maintenance_margin": Param(float, 0.004, 0.0, 0.5,
                                        doc="maintenance-margin rate: the position is "
                                        "liquidated when its equity falls to this fraction "
                                        "of its notional", units="fraction"),
        },
    }
)

#: the perpetual keys of a contrarian configuration; a 1x long (all at their defaults) is
#: recorded without them (so that spot-like runs keep their run_id)
PERP_KEYS = ("side", "leverage", "maintenance_margin")

BUY_AND_HOLD_PARAMS: Mapping[str, Param] = MappingProxyType(
    {"fraction": Param(float, 1.0, 0.01, 1.0, doc="fraction of equity bought")}
)

FEAR_GREED_ACCUMULATION_PARAMS: Mapping[str, Param] = MappingProxyType(
    {
        "buy_below": Param(float, 20.0, 0.0, 100.0, doc="buy when F&G <= this"),
        "sell_above": Param(float, 80.0, 0.0, 100.0, doc="sell when F&G >= this"),
        "buy_fraction": Param(float, 0.1, 0.001, 1.0, doc="fraction of the cash spent per buy"),
        "sell_fraction": Param(float, 0.1, 0.001, 1.0,
                               doc="fraction of the position sold per sell"),
    }
)

@dataclass
class _Entry:
    """One registered strategy type: its class (or, for a built-in not imported yet, the
    ``module:Class`` that defines it) and what the spec layer needs without importing it."""

    target: str | type
    params: Mapping[str, Param]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    builtin: bool = False

    def load(self) -> type:
        if isinstance(self.target, str):
            module, cls = self.target.split(":")
            importlib.import_module(module)  # its @register_strategy resolves this entry
            if isinstance(self.target, str):  # pragma: no cover - a built-in lost its decorator
                raise RuntimeError(f"{self.target} does not register itself")
        return self.target


# The one registry: built-in and custom types alike. The built-ins are declared here with their
# metadata (so a spec validates without importing backtrader) and bind their class when their
# module is imported (their own ``@register_strategy``).
_REGISTRY: dict[str, _Entry] = {
    "contrarian": _Entry("flushback.strategies.contrarian:ContrarianStrategy", CONTRARIAN_PARAMS,
                         ("entry",), ("exit",), ("entry", "exit"), builtin=True),
    "buy_and_hold": _Entry("flushback.strategies.benchmarks:BuyAndHold", BUY_AND_HOLD_PARAMS,
                           builtin=True),
    "fear_greed_accumulation": _Entry("flushback.strategies.benchmarks:FearGreedAccumulation",
                                      FEAR_GREED_ACCUMULATION_PARAMS, builtin=True),
}


def register_strategy(name: str) -> Callable[[type], type]:
    """Class decorator: make a FlushbackStrategy subclass usable as ``[strategy] type = name``.

    The class declares ``param_specs`` (name -> Param) and may declare ``required_signals`` /
    ``optional_signals`` (names of ``[signals.<name>]`` tables it reads as feed lines) and
    ``trigger_signals`` (those it reads as boolean triggers). The built-in strategies register
    the same way.
    """

    def deco(cls: type) -> type:
        entry = _REGISTRY.get(name)
        if entry is not None and entry.target is not cls and not (
                entry.target == f"{cls.__module__}:{cls.__qualname__}"):
            raise ConfigError(f"strategy type '{name}' is already registered",
                              hint="choose another name")
        if entry is not None and entry.builtin:
            if dict(getattr(cls, "param_specs", {})) != dict(entry.params):
                raise RuntimeError(f"{cls.__qualname__}.param_specs differ from the "
                                   f"declarations of strategy type '{name}'")
            entry.target = cls
        else:
            _REGISTRY[name] = _Entry(
                cls, MappingProxyType(dict(getattr(cls, "param_specs", {}))),
                tuple(getattr(cls, "required_signals", ())),
                tuple(getattr(cls, "optional_signals", ())),
                tuple(getattr(cls, "trigger_signals", ())))
        cls.strategy_type = name  # type: ignore[attr-defined]
        return cls

    return deco


def list_strategies() -> list[str]:
    return sorted(_REGISTRY)


def builtin_strategies() -> tuple[str, ...]:
    """The strategy types flushback ships (every engine runs them)."""
    return tuple(name for name, entry in _REGISTRY.items() if entry.builtin)


def _entry(name: str) -> _Entry:
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ConfigError(
            f"unknown strategy type '{name}'" + did_you_mean(name, list_strategies()),
            hint="one of: " + ", ".join(list_strategies()),
        )
    return entry


def get_strategy(name: str) -> type:
    """The backtrader strategy class for ``name`` (imports backtrader)."""
    return _entry(name).load()


def strategy_param_specs(name: str) -> Mapping[str, Param]:
    return _entry(name).params


def strategy_signals(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) signal names a strategy type reads."""
    entry = _entry(name)
    return entry.required, entry.optional


def trigger_signals(name: str) -> tuple[str, ...]:
    """Signal names a strategy type reads as boolean triggers (fires when true): every signal
    of the built-in types; a custom strategy declares its own as ``trigger_signals``."""
    return _entry(name).triggers


def complete_params(specs: Mapping[str, Param], values: Mapping[str, Any] | None, *,
                    name: str) -> dict[str, Any]:
    """``values`` validated against ``specs`` with every declared parameter present (its
    declared default when not given): the one place a strategy parameter's default is read."""
    return validate_params(
        specs, values or {}, owner=f"strategy({name})",
        unknown=lambda key: f"unknown key 'strategy.{key}' for strategy type '{name}'",
        hint=f"keys of {name}: type, {', '.join(specs)}",
    )


def validate_strategy_params(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``values`` against the declarations of ``name``; defaults filled in."""
    out = complete_params(strategy_param_specs(name), values, name=name)
    if name == "contrarian":
        _check_perp(out)
    return out


def update_strategy_params(name: str, params: Mapping[str, Any],
                           changes: Mapping[str, Any]) -> dict[str, Any]:
    """``validate_strategy_params(name, {**params, **changes})`` for ``params`` that are
    already validated and complete (a loaded spec's): only ``changes`` are checked against
    their declarations, then the combinations (an optimizer trial changes a few keys)."""
    specs = strategy_param_specs(name)
    if any(key not in specs for key in changes):  # the full route words the error
        return validate_strategy_params(name, {**params, **changes})
    out = dict(params)
    for key, value in changes.items():
        out[key] = specs[key].validate(value, key, f"strategy({name})")
    if name == "contrarian":
        _check_perp(out)
    return out


def _check_perp(cfg: Mapping[str, Any]) -> None:
    """The combinations of the perpetual keys the engines refuse."""
    lev, mm = float(cfg["leverage"]), float(cfg["maintenance_margin"])
    if mm >= 1.0 / lev:
        raise ConfigError(
            f"strategy.maintenance_margin = {mm} is not below 1 / leverage = {1.0 / lev:.4g}: "
            "the position would be liquidated at its entry price",
            hint="lower the leverage or the maintenance-margin rate")
    if cfg["side"] == "short" and (cfg["level_take_profit"] != "off"
                                   or cfg["level_stop"] != "off"):
        raise ConfigError("the structure-level exits are long-only (side = 'short')",
                          hint="set level_take_profit and level_stop to 'off', or side = 'long'")


def perp_defaults(cfg: Mapping[str, Any]) -> bool:
    """Whether a contrarian configuration is a 1x long (every perpetual key at its
    default)."""
    return all(cfg.get(k, CONTRARIAN_PARAMS[k].default) == CONTRARIAN_PARAMS[k].default
               for k in PERP_KEYS)
