"""Live sources, each a small client tested at its boundary.

- ``yfinance`` (:class:`~flushback.data.sources.yahoo.YahooSource`): daily and hourly bars;
- ``alternative.me`` (:class:`~flushback.data.sources.fear_greed.FearGreedClient`): the full
  Fear & Greed history;
- ``coinglass`` (:class:`~flushback.data.sources.coinglass.CoinglassClient`): liquidations,
  funding and open interest, with ``COINGLASS_API_KEY``.

File exports (Coinglass/Coinalyze CSV shapes) are parsed by :mod:`flushback.data.parsers`.
:func:`plan_fetch` maps ``flushback data fetch SOURCE SYMBOL...`` to dataset ids and fetch
functions; :func:`fetcher_for` gives the store the fetch function for a missing dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flushback.data.errors import ConfigError, DataError
from flushback.data.suggest import did_you_mean

__all__ = ["SOURCE_NAMES", "fetcher_for", "plan_fetch"]

SOURCE_NAMES = ("yfinance", "alternative.me", "coinglass")
_ALIASES = {"yahoo": "yfinance", "yf": "yfinance", "fng": "alternative.me",
            "alternative": "alternative.me", "alternativeme": "alternative.me",
            "fear_greed": "alternative.me"}

Fetcher = Callable[[], Any]


def _named(fn: Fetcher, name: str) -> Fetcher:
    fn.__name__ = name  # type: ignore[attr-defined]
    return fn


def _yahoo(symbol: str, interval: str, start: Any = None) -> Fetcher:
    def run() -> Any:
        from flushback.data.sources.yahoo import YahooSource

        return YahooSource().fetch_bars(symbol, interval, start=start)

    return _named(run, f"yfinance:{symbol}:{interval}")


def _fng() -> Fetcher:
    def run() -> Any:
        from flushback.data.sources.fear_greed import FearGreedClient

        return FearGreedClient().fetch()

    return _named(run, "alternative.me:fng")


def _coinglass(dataset_id: str) -> Fetcher:
    def run() -> Any:
        from flushback.data.sources.coinglass import CoinglassClient

        return CoinglassClient().fetch(dataset_id)

    return _named(run, f"coinglass:{dataset_id}")


def fetcher_for(dataset_id: str) -> Fetcher | None:
    """The fetch function that can (re)create ``dataset_id`` from a live source, if any."""
    from flushback.data.datasets import spec_for
    from flushback.data.sources.coinglass import CoinglassClient

    try:
        spec = spec_for(dataset_id)
    except DataError:
        return None
    if spec.kind == "bars" and spec.source == "yahoo" and spec.interval in ("1d", "1h"):
        return _yahoo(spec.symbol, spec.interval)
    if dataset_id == "sentiment/crypto_fear_greed":
        return _fng()
    if dataset_id in CoinglassClient.datasets and os.environ.get("COINGLASS_API_KEY"):
        return _coinglass(dataset_id)
    return None


def plan_fetch(source: str, symbols: Sequence[str], *, interval: str = "1d",
               start: Any = None, since: Mapping[str, Any] | None = None,
               ) -> list[tuple[str, Fetcher]]:
    """``(dataset id, fetch function)`` pairs for ``flushback data fetch SOURCE SYMBOL...``.

    ``since`` maps dataset ids already stored to the first timestamp worth re-fetching
    (incremental update); ``start`` overrides it.
    """
    from flushback.data.sources.coinglass import CoinglassClient

    name = _ALIASES.get(source.lower(), source.lower())
    if name not in SOURCE_NAMES:
        raise ConfigError(
            f"unknown source {source!r}" + did_you_mean(source, [*SOURCE_NAMES, *_ALIASES]),
            hint=f"use one of {', '.join(SOURCE_NAMES)}",
        )
    if name == "alternative.me":
        return [("sentiment/crypto_fear_greed", _fng())]
    if not symbols:
        raise ConfigError(f"{name} needs at least one symbol", hint="e.g. BTC-USD")
    plan: list[tuple[str, Fetcher]] = []
    for sym in symbols:
        if name == "yfinance":
            if interval not in ("1d", "1h"):
                raise ConfigError(f"yfinance serves 1d and 1h bars, not {interval!r}",
                                  hint="fetch 1h and let load_frame resample to 4h")
            did = f"prices/{sym}_{interval}"
            first = start if start is not None else (since or {}).get(did)
            plan.append((did, _yahoo(sym, interval, first)))
        else:
            did = sym if "/" in sym else f"liquidations/coinglass_binance_{sym.upper()}_{interval}"
            if did not in CoinglassClient.datasets:
                raise ConfigError(f"coinglass cannot fetch {sym!r} at {interval}",
                                  hint=f"one of {', '.join(CoinglassClient.datasets)}")
            plan.append((did, _coinglass(did)))
    return plan
