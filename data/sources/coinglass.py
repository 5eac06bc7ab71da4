"""Coinglass API v4 client (liquidations, funding, open interest) for users with an API key.

The key comes from the environment variable ``COINGLASS_API_KEY`` (or the constructor) and is
sent only in the ``CG-API-KEY`` header: it is never logged, never put into an error message and
masked in ``repr``. Responses look like ``{"code": "0", "msg": "success", "data": [...]}`` with
``time`` in milliseconds; values are converted to the same canonical frames as the Coinglass
CSV exports in ``../shared/data`` (funding percent -> fraction). The last, still-open bucket is
dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from flushback.data.datasets import spec_for
from flushback.data.errors import ConfigError, DataError, SourceUnavailable
from flushback.data.parsers import add_known_at, binance_regime
from flushback.data.sources.http import get_json

__all__ = ["BASE_URL", "CoinglassClient", "parse_coinglass_payload"]

BASE_URL = "https://open-api-v4.coinglass.com"
ENV_KEY = "COINGLASS_API_KEY"


def _rows(payload: Any, url: str) -> list[dict[str, Any]]:
    if isinstance(payload, dict) and str(payload.get("code", "0")) != "0":
        raise SourceUnavailable(f"Coinglass error {payload.get('code')}: {payload.get('msg')}",
                                file=url, hint="check the API key, plan limits and parameters")
    if not isinstance(payload, dict) or "data" not in payload:
        raise DataError("unexpected Coinglass response (no 'data')", file=url,
                        hint="the API may have changed; retry later")
    rows = payload["data"]
    if not isinstance(rows, list):
        raise DataError("unexpected Coinglass response ('data' is not a list)", file=url,
                        hint="the API may have changed")
    if not rows:
        raise DataError("empty data: Coinglass returned no rows", file=url,
                        hint="check the symbol and the interval")
    return rows


def parse_coinglass_payload(payload: Any, dataset_id: str, *, url: str = BASE_URL,
                            now: pd.Timestamp | None = None) -> pd.DataFrame:
    """A Coinglass v4 JSON payload -> the canonical frame of ``dataset_id``."""
    spec = spec_for(dataset_id)
    rows = _rows(payload, url)
    try:
        t = pd.to_datetime([int(r["time"]) for r in rows], unit="ms", utc=True)
        if spec.kind == "liquidations":
            data = {
                "liq_long_usd": [float(r["aggregated_long_liquidation_usd"]) for r in rows],
                "liq_short_usd": [float(r["aggregated_short_liquidation_usd"]) for r in rows],
            }
        elif spec.kind == "funding":
            data = {"funding_rate": [float(r["close"]) / 100.0 for r in rows]}  # percent
        elif spec.kind == "open_interest":
            data = {"oi_usd": [float(r["close"]) for r in rows]}
        else:  # pragma: no cover
            raise ConfigError(f"Coinglass does not serve {spec.kind}")
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"malformed Coinglass row ({type(exc).__name__}: {exc})", file=url,
                        hint="the API may have changed") from None
    frame = pd.DataFrame(data, index=pd.DatetimeIndex(t, name="timestamp").as_unit("ns"))
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    if spec.kind == "liquidations":
        frame["liq_regime"] = binance_regime(frame.index)
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    frame = frame[frame.index + spec.period <= now]  # drop the still-open bucket
    if len(frame) == 0:
        raise DataError("empty data: only an unfinished bucket", file=url, hint="retry later")
    return add_known_at(frame, spec.period, spec.publication_lag)


# dataset id -> (path, params)
_ENDPOINTS: dict[str, tuple[str, dict[str, str]]] = {}
for _coin in ("BTC", "ETH", "SOL"):
    for _iv in ("1d", "4h"):
        _ENDPOINTS[f"liquidations/coinglass_binance_{_coin}_{_iv}"] = (
            "/api/futures/liquidation/aggregated-history",
            {"exchange_list": "Binance", "symbol": _coin, "interval": _iv},
        )
_ENDPOINTS["derivatives/coinglass_binance_btcusdt_funding_8h"] = (
    "/api/futures/funding-rate/history",
    {"exchange": "Binance", "symbol": "BTCUSDT", "interval": "8h"})
_ENDPOINTS["derivatives/coinglass_binance_btcusdt_funding_1d"] = (
    "/api/futures/funding-rate/history",
    {"exchange": "Binance", "symbol": "BTCUSDT", "interval": "1d"})
_ENDPOINTS["derivatives/coinglass_btc_open_interest_aggregated_4h"] = (
    "/api/futures/open-interest/aggregated-history", {"symbol": "BTC", "interval": "4h"})


class CoinglassClient:
    """``fetch(dataset_id)`` for the Coinglass datasets in the catalog."""

    name = "coinglass"
    datasets = tuple(_ENDPOINTS)

    def __init__(self, api_key: str | None = None, *, session: Any = None, retries: int = 3,
                 backoff: float = 1.0, sleep: Callable[[float], None] | None = None) -> None:
        self._key = api_key if api_key is not None else os.environ.get(ENV_KEY)
        self.session = session
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def __repr__(self) -> str:
        return f"CoinglassClient(api_key={'***' if self._key else None})"

    def fetch(self, dataset_id: str, *, limit: int = 4500) -> pd.DataFrame:
        if dataset_id not in _ENDPOINTS:
            raise ConfigError(f"Coinglass cannot fetch {dataset_id!r}",
                              hint=f"choose one of {', '.join(_ENDPOINTS)}")
        if not self._key:
            raise SourceUnavailable(
                f"Coinglass needs an API key ({ENV_KEY} is not set)",
                hint=f"export {ENV_KEY}=... (a Coinglass API v4 key), or import CSV exports "
                "with `flushback data import DIR`",
            )
        path, params = _ENDPOINTS[dataset_id]
        url = BASE_URL + path
        kw: dict[str, Any] = {}
        if self.sleep is not None:
            kw["sleep"] = self.sleep
        payload = get_json(url, params={**params, "limit": limit},
                           headers={"CG-API-KEY": self._key, "accept": "application/json"},
                           source=self.name, session=self.session, retries=self.retries,
                           backoff=self.backoff, **kw)
        return parse_coinglass_payload(payload, dataset_id, url=url)
