"""The signal registry: ``@register("name")``, ``get_signal``, ``list_signals``, ``build_signal``.

Signals are registered explicitly by the decorator when their module is imported
(``flushback.signals`` imports every library module); there is no directory scanning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flushback.data.errors import ConfigError
from flushback.data.suggest import did_you_mean
from flushback.signals.base import Signal

__all__ = ["register", "get_signal", "list_signals", "build_signal", "config_from_text",
           "temporary_registration"]

_REGISTRY: dict[str, type[Signal]] = {}


def register(name: str) -> Callable[[type[Signal]], type[Signal]]:
    """Class decorator: register a :class:`Signal` subclass under ``name`` (sets ``cls.name``)."""

    def deco(cls: type[Signal]) -> type[Signal]:
        if not (isinstance(cls, type) and issubclass(cls, Signal)):
            raise TypeError(f"@register({name!r}) needs a Signal subclass, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(
                f"signal name '{name}' is already registered by {_REGISTRY[name].__qualname__}",
                hint="choose another name",
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def get_signal(name: str) -> type[Signal]:
    """The class registered as ``name``; ConfigError with a did-you-mean otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown signal '{name}'" + did_you_mean(name, _REGISTRY),
            hint="`flushback signals list` shows the registered signals",
        ) from None


def list_signals() -> list[str]:
    """Registered signal names, sorted."""
    return sorted(_REGISTRY)


def build_signal(config: Mapping[str, Any] | str) -> Signal:
    """Build a signal from a config dict such as ``{"type": "oversold_rsi", "threshold": 25}``.

    Composites nest: ``{"type": "all", "window": 2, "of": [{...}, {"type": "any", "of": [...]}]}``.
    A bare string is a signal name with its default parameters.
    """
    if isinstance(config, str):
        return get_signal(config)()
    if isinstance(config, Signal):
        return config
    if not isinstance(config, Mapping):
        raise ConfigError(f"a signal config must be a mapping, got {type(config).__name__}")
    if "type" not in config:
        raise ConfigError(
            f"signal config {dict(config)!r} has no 'type'",
            hint="add type = one of " + ", ".join(list_signals()),
        )
    cls = get_signal(config["type"])
    return cls.from_config(config) if hasattr(cls, "from_config") else cls(
        **{k: v for k, v in config.items() if k != "type"}
    )


def config_from_text(text: str) -> dict[str, Any]:
    """A signal config from command-line text: a JSON object (``'{"type": "all", ...}'``) or a
    bare name (``extreme_fear`` -> ``{"type": "extreme_fear"}``); ConfigError on bad JSON."""
    import json

    text = text.strip()
    if not text.startswith("{"):
        return {"type": text}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"SIGNAL is not valid JSON: {exc}",
                          hint='e.g. \'{"type": "all", "of": [...]}\'') from None
    if not isinstance(config, dict):
        raise ConfigError("a JSON SIGNAL must be an object with a 'type'")
    return config


@contextlib.contextmanager
def temporary_registration(name: str, cls: type[Signal]) -> Iterator[type[Signal]]:
    """Register ``cls`` as ``name`` only inside the ``with`` block (tests, experiments)."""
    if name in _REGISTRY:
        raise ConfigError(f"signal name '{name}' is already registered")
    register(name)(cls)
    try:
        yield cls
    finally:
        _REGISTRY.pop(name, None)
