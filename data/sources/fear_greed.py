"""The Crypto Fear & Greed Index from alternative.me (full history as JSON).

``GET https://api.alternative.me/fng/?limit=0&format=json`` returns
``{"name": ..., "data": [{"value": "30", "value_classification": "Fear",
"timestamp": "1517443200", ...}], "metadata": {"error": null}}``, newest first. The value dated
D is published at D 00:00 UTC; see ``docs/data.md`` for the declared 1 h publication lag.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from flushback.data.datasets import spec_for
from flushback.data.errors import DataError, SourceUnavailable
from flushback.data.sources.http import get_json

__all__ = ["DATASET_ID", "FearGreedClient", "parse_fng_json"]

URL = "https://api.alternative.me/fng/"
DATASET_ID = "sentiment/crypto_fear_greed"


def parse_fng_json(payload: Any, *, url: str = URL) -> pd.DataFrame:
    """alternative.me JSON -> the canonical F&G frame (as the CSV parser produces it)."""
    from flushback.data.parsers import parse_fng

    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise DataError("unexpected alternative.me response (no 'data' list)", file=url,
                        hint="the API may have changed; retry later")
    err = (payload.get("metadata") or {}).get("error")
    if err:
        raise SourceUnavailable(f"alternative.me reported an error: {err}", file=url,
                                hint="retry later")
    rows = payload["data"]
    if not rows:
        raise DataError("empty data: alternative.me returned no values", file=url,
                        hint="retry later")
    try:
        raw = pd.DataFrame({
            "date": [pd.Timestamp(int(r["timestamp"]), unit="s", tz="UTC").strftime("%Y-%m-%d")
                     for r in rows],
            "value": [str(r["value"]) for r in rows],
        })
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"malformed alternative.me row ({type(exc).__name__}: {exc})", file=url,
                        column="timestamp", hint="the API may have changed") from None
    raw = raw.sort_values("date").drop_duplicates("date", keep="last").reset_index(drop=True)
    frame = parse_fng(raw, spec_for(DATASET_ID), file=url)
    frame.index.name = "timestamp"
    return frame


class FearGreedClient:
    """Fetches the full F&G history. ``session`` is any object with ``get`` (requests-like)."""

    name = "alternative.me"

    def __init__(self, session: Any = None, *, retries: int = 3, backoff: float = 1.0,
                 sleep: Any = None) -> None:
        self.session = session
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def fetch(self) -> pd.DataFrame:
        kw: dict[str, Any] = {}
        if self.sleep is not None:
            kw["sleep"] = self.sleep
        payload = get_json(URL, params={"limit": 0, "format": "json"}, source=self.name,
                           session=self.session, retries=self.retries, backoff=self.backoff,
                           **kw)
        return parse_fng_json(payload)
