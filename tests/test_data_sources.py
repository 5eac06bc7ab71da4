"""Source clients at their boundary: recorded-shape responses and simulated failures.

No network: yfinance's ``download`` and the HTTP session are replaced by fakes.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import requests

from flushback.data.errors import ConfigError, DataError, SourceUnavailable
from flushback.data.sources import fetcher_for, plan_fetch
from flushback.data.sources.coinglass import CoinglassClient, parse_coinglass_payload
from flushback.data.sources.fear_greed import FearGreedClient, parse_fng_json
from flushback.data.sources.http import get_json
from flushback.data.sources.yahoo import MAX_INTRADAY_DAYS, YahooSource, normalize_yf_frame

NOW = pd.Timestamp("2026-02-10 12:00", tz="UTC")


# ---------------------------------------------------------------- fakes

class FakeResponse:
    def __init__(self, status=200, payload=None, headers=None, bad_json=False):
        self.status_code = status
        self._payload = payload
        self.headers = headers or {}
        self._bad = bad_json

    def json(self):
        if self._bad:
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
        return self._payload


class FakeSession:
    """Returns (or raises) the scripted items in order; records each call."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls = []

    def get(self, url, params=None, headers=None, timeout=None):
        self.calls.append({"url": url, "params": params, "headers": headers})
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def yf_frame(days=3, multi=True, symbol="BTC-USD", start="2026-02-01"):
    """The shape yfinance 0.2.48+ returns: MultiIndex (Price, Ticker), naive daily index."""
    idx = pd.date_range(start, periods=days, freq="1D", name="Date")
    base = np.arange(100.0, 100.0 + days)
    data = {"Adj Close": base, "Close": base, "High": base + 2, "Low": base - 2,
            "Open": base - 1, "Volume": np.full(days, 1e9)}
    df = pd.DataFrame(data, index=idx)
    if multi:
        df.columns = pd.MultiIndex.from_product([df.columns, [symbol]],
                                                names=["Price", "Ticker"])
    return df


# ---------------------------------------------------------------- yfinance

def test_yfinance_multiindex_frame_is_normalised():
    bars = normalize_yf_frame(yf_frame(), "BTC-USD", "1d")
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert str(bars.index.tz) == "UTC" and bars.index[0] == pd.Timestamp("2026-02-01", tz="UTC")
    assert bars["close"].tolist() == [100.0, 101.0, 102.0]
    flat = normalize_yf_frame(yf_frame(multi=False), "BTC-USD", "1d")
    pd.testing.assert_frame_equal(flat, bars)


def test_yfinance_passes_auto_adjust_false_and_drops_open_bar():
    seen = {}

    def download(symbol, **kw):
        seen.update(kw, symbol=symbol)
        return yf_frame(days=10, start="2026-02-01")  # last row 2026-02-10: still open at NOW

    bars = YahooSource(download, now=lambda: NOW).fetch_bars("BTC-USD", "1d")
    assert seen["auto_adjust"] is False and seen["progress"] is False
    assert bars.index[-1] == pd.Timestamp("2026-02-09", tz="UTC") and len(bars) == 9


def test_yfinance_empty_frame_is_source_unavailable_not_empty_data():
    src = YahooSource(lambda s, **kw: yf_frame(days=0), retries=0, now=lambda: NOW)
    with pytest.raises(SourceUnavailable, match="returned no 1d data for BTC-USD"):
        src.fetch_bars("BTC-USD")


def test_yfinance_logged_error_is_in_the_one_line_message():
    def download(symbol, **kw):
        logging.getLogger("yfinance").error("['BTC-USD']: DNSError('Could not resolve host')")
        print("noise on stdout")
        return yf_frame(days=0)

    with pytest.raises(SourceUnavailable) as ei:
        YahooSource(download, retries=0, now=lambda: NOW).fetch_bars("BTC-USD")
    assert "Could not resolve host" in str(ei.value) and "\n" not in str(ei.value)


def test_yfinance_429_retried_with_backoff_then_succeeds():
    class YFRateLimitError(Exception):
        pass

    attempts, sleeps = [], []

    def download(symbol, **kw):
        attempts.append(1)
        if len(attempts) < 3:
            raise YFRateLimitError("Too Many Requests. Rate limited. Try after a while.")
        return yf_frame(days=3)

    src = YahooSource(download, retries=3, backoff=2.0, sleep=sleeps.append, now=lambda: NOW)
    bars = src.fetch_bars("BTC-USD")
    assert len(bars) == 3 and len(attempts) == 3 and sleeps == [2.0, 4.0]


def test_yfinance_429_bounded_retries():
    sleeps = []

    def download(symbol, **kw):
        raise RuntimeError("YFRateLimitError: Too Many Requests")

    src = YahooSource(download, retries=2, backoff=1.0, sleep=sleeps.append, now=lambda: NOW)
    with pytest.raises(SourceUnavailable, match="Too Many Requests"):
        src.fetch_bars("BTC-USD")
    assert sleeps == [1.0, 2.0]


def test_yfinance_timeout_is_retried_but_dns_failure_is_not():
    sleeps = []
    src = YahooSource(lambda s, **kw: (_ for _ in ()).throw(TimeoutError("Read timed out")),
                      retries=1, sleep=sleeps.append, now=lambda: NOW)
    with pytest.raises(SourceUnavailable, match="timed out"):
        src.fetch_bars("BTC-USD")
    assert len(sleeps) == 1
    sleeps.clear()
    src = YahooSource(lambda s, **kw: (_ for _ in ()).throw(OSError("Could not resolve host")),
                      retries=3, sleep=sleeps.append, now=lambda: NOW)
    with pytest.raises(SourceUnavailable):
        src.fetch_bars("BTC-USD")
    assert sleeps == []


def test_yfinance_hourly_start_clamped_to_730_days():
    seen = {}

    def download(symbol, **kw):
        seen.update(kw)
        idx = pd.date_range("2026-02-10 08:00", periods=3, freq="1h", tz="UTC", name="Datetime")
        return pd.DataFrame({"Open": 1.0, "High": 2.0, "Low": 0.5, "Close": 1.5, "Volume": 0.0},
                            index=idx)

    bars = YahooSource(download, now=lambda: NOW).fetch_bars("BTC-USD", "1h", start="2015-01-01")
    floor = (NOW - pd.Timedelta(days=MAX_INTRADAY_DAYS - 1)).normalize()
    assert seen["start"] == floor.strftime("%Y-%m-%d") and seen["interval"] == "1h"
    assert len(bars) == 3 and bars.attrs["clamped_start"] == str(floor)
    with pytest.raises(DataError, match="unknown interval"):
        YahooSource(download).fetch_bars("BTC-USD", "15m")


# ---------------------------------------------------------------- alternative.me

FNG_PAYLOAD = {
    "name": "Fear and Greed Index",
    "data": [
        {"value": "9", "value_classification": "Extreme Fear", "timestamp": "1770336000",
         "time_until_update": "3600"},
        {"value": "12", "value_classification": "Extreme Fear", "timestamp": "1770249600"},
    ],
    "metadata": {"error": None},
}


def test_fng_recorded_shape_parses_newest_first_to_sorted_frame():
    f = parse_fng_json(FNG_PAYLOAD)
    assert list(f.index) == [pd.Timestamp("2026-02-05", tz="UTC"),
                             pd.Timestamp("2026-02-06", tz="UTC")]
    assert f["fng"].tolist() == [12.0, 9.0]
    assert f["known_at"].iloc[1] == pd.Timestamp("2026-02-06 01:00", tz="UTC")


def test_fng_client_requests_full_history():
    sess = FakeSession(FakeResponse(200, FNG_PAYLOAD))
    f = FearGreedClient(sess).fetch()
    assert sess.calls[0]["params"] == {"limit": 0, "format": "json"} and len(f) == 2


def test_fng_malformed_json_and_shapes():
    sess = FakeSession(FakeResponse(200, bad_json=True))
    with pytest.raises(DataError, match="malformed JSON") as ei:
        FearGreedClient(sess).fetch()
    assert "alternative.me" in ei.value.file
    with pytest.raises(DataError, match="no 'data' list"):
        parse_fng_json({"oops": 1})
    with pytest.raises(DataError, match="empty data"):
        parse_fng_json({"data": [], "metadata": {"error": None}})
    with pytest.raises(DataError, match="malformed alternative.me row"):
        parse_fng_json({"data": [{"value": "9"}], "metadata": {"error": None}})
    with pytest.raises(SourceUnavailable, match="reported an error"):
        parse_fng_json({"data": [], "metadata": {"error": "limit exceeded"}})


def test_fng_429_retried_honouring_retry_after_then_success():
    sleeps = []
    sess = FakeSession(FakeResponse(429, headers={"Retry-After": "7"}),
                       FakeResponse(200, FNG_PAYLOAD))
    f = FearGreedClient(sess, sleep=sleeps.append).fetch()
    assert len(f) == 2 and sleeps == [7.0]


def test_fng_timeouts_exhaust_bounded_retries():
    sleeps = []
    sess = FakeSession(*[requests.Timeout("read timeout")] * 4)
    with pytest.raises(SourceUnavailable, match="failed after 4 attempts: timed out"):
        FearGreedClient(sess, retries=3, backoff=0.5, sleep=sleeps.append).fetch()
    assert sleeps == [0.5, 1.0, 2.0] and len(sess.calls) == 4


def test_http_unreachable_host_fails_fast_and_5xx_is_retried():
    sess = FakeSession(requests.ConnectionError("Failed to resolve 'api.alternative.me'"))
    with pytest.raises(SourceUnavailable, match="unreachable"):
        get_json("https://x", source="x", session=sess, sleep=lambda s: None)
    assert len(sess.calls) == 1
    sess = FakeSession(FakeResponse(503), FakeResponse(200, {"ok": 1}))
    assert get_json("https://x", source="x", session=sess, sleep=lambda s: None) == {"ok": 1}
    sess = FakeSession(FakeResponse(404))
    with pytest.raises(SourceUnavailable, match="HTTP 404"):
        get_json("https://x", source="x", session=sess, sleep=lambda s: None)


# ---------------------------------------------------------------- Coinglass

LIQ_PAYLOAD = {"code": "0", "msg": "success", "data": [
    {"time": 1760054400000, "aggregated_long_liquidation_usd": 286427425.6,
     "aggregated_short_liquidation_usd": 117263363.0},
    {"time": 1760140800000, "aggregated_long_liquidation_usd": 20036037.91,
     "aggregated_short_liquidation_usd": 8357474.753},
    {"time": 1760227200000, "aggregated_long_liquidation_usd": 1.0,
     "aggregated_short_liquidation_usd": 1.0},
]}


def test_coinglass_liquidations_payload_and_open_bucket_dropped():
    now = pd.Timestamp("2025-10-12 06:00", tz="UTC")  # the 10-12 bucket is still open
    f = parse_coinglass_payload(LIQ_PAYLOAD, "liquidations/coinglass_binance_BTC_1d", now=now)
    assert list(f.index) == [pd.Timestamp("2025-10-10", tz="UTC"),
                             pd.Timestamp("2025-10-11", tz="UTC")]
    assert f["liq_long_usd"].iloc[0] == 286427425.6
    assert f["liq_regime"].tolist() == ["binance_throttled"] * 2
    assert f["known_at"].iloc[0] == pd.Timestamp("2025-10-11", tz="UTC")


def test_coinglass_funding_percent_to_fraction_and_oi():
    payload = {"code": "0", "data": [{"time": 1760112000000, "open": "0.01", "high": "0.01",
                                      "low": "-0.03", "close": "-0.0213"}]}
    f = parse_coinglass_payload(payload, "derivatives/coinglass_binance_btcusdt_funding_8h",
                                now=NOW)
    assert f["funding_rate"].iloc[0] == pytest.approx(-0.000213)
    payload = {"code": "0", "data": [{"time": 1760126400000, "open": 8.577e10, "high": 8.6e10,
                                      "low": 6.982e10, "close": 7.051e10}]}
    f = parse_coinglass_payload(payload,
                                "derivatives/coinglass_btc_open_interest_aggregated_4h", now=NOW)
    assert f["oi_usd"].iloc[0] == 7.051e10


def test_coinglass_errors_and_key_never_leaks(monkeypatch):
    with pytest.raises(SourceUnavailable, match="COINGLASS_API_KEY is not set"):
        CoinglassClient().fetch("liquidations/coinglass_binance_BTC_1d")
    secret = "s3cr3t-key-123"
    monkeypatch.setenv("COINGLASS_API_KEY", secret)
    client = CoinglassClient(session=FakeSession(
        FakeResponse(200, {"code": "30001", "msg": "API key invalid"})), sleep=lambda s: None)
    assert secret not in repr(client)
    with pytest.raises(SourceUnavailable, match="Coinglass error 30001") as ei:
        client.fetch("liquidations/coinglass_binance_BTC_1d")
    assert secret not in str(ei.value)
    sess = FakeSession(FakeResponse(200, LIQ_PAYLOAD))
    f = CoinglassClient(session=sess).fetch("liquidations/coinglass_binance_BTC_4h")
    assert sess.calls[0]["headers"]["CG-API-KEY"] == secret
    assert sess.calls[0]["params"]["exchange_list"] == "Binance"
    assert sess.calls[0]["params"]["interval"] == "4h" and len(f) == 3
    sess = FakeSession(FakeResponse(401))
    with pytest.raises(SourceUnavailable, match="HTTP 401") as ei:
        CoinglassClient(session=sess).fetch("liquidations/coinglass_binance_BTC_1d")
    assert secret not in str(ei.value)
    with pytest.raises(DataError, match="malformed Coinglass row"):
        parse_coinglass_payload({"code": "0", "data": [{"time": 1}]},
                                "liquidations/coinglass_binance_BTC_1d")
    with pytest.raises(ConfigError):
        CoinglassClient().fetch("prices/BTC-USD_1d")


def test_coinglass_logs_do_not_contain_the_key(monkeypatch, caplog):
    secret = "another-secret"
    monkeypatch.setenv("COINGLASS_API_KEY", secret)
    sess = FakeSession(FakeResponse(429), FakeResponse(200, LIQ_PAYLOAD))
    with caplog.at_level(logging.DEBUG):
        CoinglassClient(session=sess, sleep=lambda s: None).fetch(
            "liquidations/coinglass_binance_BTC_1d")
    assert caplog.records and all(secret not in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- plans

def test_plan_fetch_maps_sources_and_symbols():
    plan = plan_fetch("yfinance", ["BTC-USD", "ETH-USD"], interval="1h")
    assert [d for d, _ in plan] == ["prices/BTC-USD_1h", "prices/ETH-USD_1h"]
    assert [d for d, _ in plan_fetch("fng", [])] == ["sentiment/crypto_fear_greed"]
    assert [d for d, _ in plan_fetch("coinglass", ["btc"], interval="4h")] == [
        "liquidations/coinglass_binance_BTC_4h"]
    with pytest.raises(ConfigError, match="did you mean 'yfinance'"):
        plan_fetch("yfinanse", ["BTC-USD"])
    with pytest.raises(ConfigError, match="not '4h'"):
        plan_fetch("yfinance", ["BTC-USD"], interval="4h")


def test_fetcher_for_known_datasets(monkeypatch):
    assert fetcher_for("prices/BTC-USD_1d") is not None
    assert fetcher_for("sentiment/crypto_fear_greed") is not None
    assert fetcher_for("prices/BTCUSDT_4h") is None  # no live Binance client
    assert fetcher_for("liquidations/coinglass_binance_BTC_1d") is None  # no key
    monkeypatch.setenv("COINGLASS_API_KEY", "k")
    assert fetcher_for("liquidations/coinglass_binance_BTC_1d") is not None
