"""A small JSON-over-HTTP helper with bounded retries and backoff, shared by the API clients.

Retried: HTTP 429 (honouring ``Retry-After`` up to ``max_wait``), 5xx, timeouts and dropped
connections, at most ``retries`` times with exponential backoff. Anything else, or running out
of retries, is a :class:`SourceUnavailable`; a body that is not the expected JSON is a
:class:`DataError`. Request headers (API keys) are never put into messages or logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from flushback.data.errors import DataError, SourceUnavailable

__all__ = ["get_json"]

log = logging.getLogger("flushback.data.sources")


def _session() -> Any:
    import requests

    return requests.Session()


def get_json(
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    source: str,
    session: Any = None,
    retries: int = 3,
    backoff: float = 1.0,
    max_wait: float = 60.0,
    timeout: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """GET ``url`` and decode JSON; see the module docstring for the failure policy."""
    import requests

    sess = session if session is not None else _session()
    last = "no attempt"
    for attempt in range(retries + 1):
        wait = backoff * (2**attempt)
        try:
            resp = sess.get(url, params=dict(params or {}), headers=dict(headers or {}),
                            timeout=timeout)
        except requests.Timeout:
            last = f"timed out after {timeout:g}s"
        except requests.ConnectionError as exc:
            text = str(exc)
            if "resolve" in text.lower() or "name or service" in text.lower():
                raise SourceUnavailable(
                    f"{source} is unreachable (cannot resolve host)", file=url,
                    hint="check the network, or run with --offline / --data-dir",
                ) from None
            last = "connection failed"
        else:
            status = int(getattr(resp, "status_code", 0))
            if status == 429:
                after = resp.headers.get("Retry-After") if hasattr(resp, "headers") else None
                try:
                    wait = min(float(after), max_wait) if after else wait
                except ValueError:
                    pass
                last = "HTTP 429 (rate limited)"
            elif status >= 500:
                last = f"HTTP {status}"
            elif status >= 400:
                raise SourceUnavailable(
                    f"{source} refused the request: HTTP {status}", file=url,
                    hint="check the symbol, the parameters and (for keyed APIs) the API key",
                )
            else:
                try:
                    return resp.json()
                except ValueError:
                    raise DataError(
                        f"{source} returned malformed JSON", file=url,
                        hint="the API may have changed or returned an error page; retry later",
                    ) from None
        if attempt < retries:
            log.info("%s: %s, retrying in %.1fs (%d/%d)", source, last, wait, attempt + 1,
                     retries)
            sleep(wait)
    raise SourceUnavailable(f"{source} failed after {retries + 1} attempts: {last}", file=url,
                            hint="retry later, or use the local store with --offline")
