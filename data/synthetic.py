"""A seeded generator of small datasets in the layout of ``../shared/data``, for tests and demos.

``write_sample_folder(root)`` writes a tiny, valid folder (prices/, sentiment/, liquidations/,
derivatives/) that ``load_frame(data_dir=root)`` and ``flushback data import root`` accept.
The numbers are random (seeded), not market data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["synthetic_bars", "write_sample_folder"]


def synthetic_bars(start: str = "2024-01-01", periods: int = 400, interval: str = "1d",
                   seed: int = 7, price: float = 40_000.0) -> pd.DataFrame:
    """Random-walk OHLCV bars, consistent (low <= open, close <= high), indexed at bar open."""
    rng = np.random.default_rng(seed)
    freq = {"1d": "1D", "4h": "4h", "1h": "1h"}[interval]
    idx = pd.date_range(start, periods=periods, freq=freq, tz="UTC", name="timestamp")
    rets = rng.normal(0, 0.03 if interval == "1d" else 0.008, periods)
    close = price * np.exp(np.cumsum(rets))
    open_ = np.concatenate([[price], close[:-1]])
    wiggle = np.abs(rng.normal(0, 0.01, (2, periods)))
    high = np.maximum(open_, close) * (1 + wiggle[0])
    low = np.minimum(open_, close) * (1 - wiggle[1])
    vol = rng.uniform(100, 1000, periods)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": vol}, index=idx)


def _write(df: pd.DataFrame, path: Path, daily: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df.copy()
    fmt = "%Y-%m-%d" if daily else "%Y-%m-%dT%H:%M:%SZ"
    out.index = pd.DatetimeIndex(out.index).strftime(fmt)
    out.index.name = "timestamp"
    out.to_csv(path)


def write_sample_folder(root: str | Path, *, symbol: str = "BTC-USD", start: str = "2024-01-01",
                        days: int = 120, seed: int = 7) -> Path:
    """Write a small folder laid out like ``../shared/data``; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    daily = synthetic_bars(start, days, "1d", seed)
    hourly = synthetic_bars(start, days * 24, "1h", seed + 1)
    _write(daily, root / "prices" / f"{symbol}_1d.csv", True)
    _write(hourly, root / "prices" / f"{symbol}_1h.csv", False)
    didx = pd.date_range(start, periods=days, freq="1D", tz="UTC")
    fng = pd.DataFrame({"value": rng.integers(5, 95, days)}, index=didx)
    fng["classification"] = np.where(fng["value"] <= 25, "Extreme Fear", "Other")
    fng.index.name = "date"
    out = fng.copy()
    out.index = didx.strftime("%Y-%m-%d")
    out.index.name = "date"
    (root / "sentiment").mkdir(parents=True, exist_ok=True)
    out.to_csv(root / "sentiment" / "crypto_fear_greed.csv")
    coin = symbol.split("-")[0].replace("USDT", "")
    liq = pd.DataFrame({"long_usd": rng.lognormal(16, 1, days),
                        "short_usd": rng.lognormal(15.5, 1, days),
                        "source_interval": "1d", "exchange": "Binance",
                        "binance_feed": "throttled"}, index=didx)
    _write(liq, root / "liquidations" / f"coinglass_binance_{coin}_1d.csv", True)
    h4 = pd.date_range(start, periods=days * 6, freq="4h", tz="UTC")
    liq4 = pd.DataFrame({"long_usd": rng.lognormal(14, 1, len(h4)),
                         "short_usd": rng.lognormal(13.5, 1, len(h4)),
                         "exchange": "Binance", "binance_feed": "throttled",
                         "symbol_scope": coin}, index=h4)
    _write(liq4, root / "liquidations" / f"coinglass_binance_{coin}_4h.csv", False)
    fund = pd.DataFrame({"funding_rate_mean_8h_fraction": rng.normal(1e-4, 1e-4, days)},
                        index=didx)
    fund["funding_rate_mean_abs_8h_fraction"] = fund.iloc[:, 0].abs()
    _write(fund, root / "derivatives" / "binance_btcusdt_funding_1d.csv", True)
    oi = pd.DataFrame({"oi_usd_open": 6e10, "oi_usd_high": 6.2e10, "oi_usd_low": 5.9e10,
                       "oi_usd_close": 6e10 * np.exp(np.cumsum(rng.normal(0, 0.01, len(h4))))},
                      index=h4)
    _write(oi, root / "derivatives" / "coinglass_btc_open_interest_aggregated_4h.csv", False)
    return root
