"""The dataset catalog: what each dataset is, where it comes from and when its values are known.

A *dataset id* names one series independently of where it is stored. It is the file's path
inside a folder laid out like ``../shared/data`` without the ``.csv`` suffix, e.g.
``prices/BTC-USD_1d`` or ``liquidations/coinglass_binance_BTC_1d``; the local store keeps the
same ids (``<store>/datasets/<id>.parquet``) and a live source writes to the same id as the file
it replaces.

Every external dataset declares its ``publication_lag``: a value describing the period
``[start, period_end)`` becomes known at ``known_at = period_end + publication_lag``. The lags
are documented in ``docs/data.md``:

- exchange-generated aggregates (liquidations, funding, open interest) are known when their
  bucket closes: lag 0;
- alternative.me's Fear & Greed value dated D is published at D 00:00 UTC and describes the day
  that ends then; we declare a 1 h lag, so the daily bar D (closing D+1 00:00) uses the value
  dated D and never the one dated D+1.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.errors import DataError
from flushback.data.intervals import (
    INTERVALS,
    fmt_td,
    ns_values,
    parse_interval,
)
from flushback.data.suggest import did_you_mean

__all__ = [
    "BAR_COLUMNS",
    "BINANCE_LIQ_BREAK",
    "EXTERNAL_KINDS",
    "INTERVALS",
    "LIQ_REGIMES",
    "DatasetInfo",
    "DatasetSpec",
    "catalog",
    "default_externals",
    "fingerprint",
    "fmt_td",
    "ns_values",
    "parse_interval",
    "spec_for",
    "spec_for_path",
]

BAR_COLUMNS = ("open", "high", "low", "close", "volume")

# kind -> the frame columns it provides (liq_regime is a string column)
EXTERNAL_KINDS: dict[str, tuple[str, ...]] = {
    "fng": ("fng",),
    "liquidations": ("liq_long_usd", "liq_short_usd", "liq_regime"),
    "funding": ("funding_rate",),
    "open_interest": ("oi_usd",),
}

# Liquidation reporting regimes (the ``liq_regime`` values); levels are not comparable across
# them. Binance throttled its public liquidation feed on 2021-04-27 (PROVENANCE.md).
LIQ_REGIMES = ("binance_full", "binance_throttled", "coinalyze_multi",
               "binance_okx_bybit_full", "binance_okx_bybit_throttled")
BINANCE_LIQ_BREAK = pd.Timestamp("2021-04-27", tz="UTC")

# How a finer source is combined into a coarser bar: flows are summed, rates averaged,
# levels take the last value.
AGGREGATION = {
    "liq_long_usd": "sum",
    "liq_short_usd": "sum",
    "liq_regime": "last",
    "funding_rate": "mean",
    "oi_usd": "last",
    "fng": "last",
}


@dataclass(frozen=True)
class DatasetSpec:
    """Static description of one dataset (no data)."""

    id: str
    kind: str  # "bars" | one of EXTERNAL_KINDS
    source: str  # yahoo | binance | alternative.me | coinglass | coinalyze | cryptodatadownload
    symbol: str  # bar symbol ("BTC-USD"), coin ("BTC") or "crypto" for the F&G index
    interval: str  # the period each row describes
    parser: str  # name of the function in flushback.data.parsers
    publication_lag: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(0))
    max_staleness: pd.Timedelta | None = None  # default staleness for the as-of join
    units: str = ""
    notes: str = ""
    default: bool = True  # used by load_frame's defaults (False: flagged / lower quality)
    venue: str = ""  # who reported it: "binance", "binance+okx+bybit", "7 exchanges", ...
    instrument: str = ""  # bars: "spot", "perp" or "index" (Yahoo's USD aggregate)
    column: str = ""  # user series: the value column in the file (default: the only one)
    label: str = "start"  # a row's timestamp is its period's "start" or its "end"
    aggregate: str = "last"  # combining finer rows into a bar: "last" | "sum" | "mean"
    # holes the source is known to have (PROVENANCE.md): (first missing, last missing) bar
    # opens, reported as gaps but not refused for their length
    known_gaps: tuple[tuple[str, str], ...] = ()

    @property
    def period(self) -> pd.Timedelta:
        return INTERVALS[self.interval]

    @property
    def staleness(self) -> pd.Timedelta:
        """Maximum age (bar close - known_at) after which a value is treated as absent.

        Flows (liquidations) are only valid until the next bucket is due; levels and rates may
        be carried over one missing period; Fear & Greed up to 48 h.
        """
        if self.max_staleness is not None:
            return self.max_staleness
        if self.kind == "liquidations":
            return self.period - pd.Timedelta(seconds=1)
        return self.period


_LIQ3_NOTE = (
    "Coinglass aggregated-history over Binance + OKX + Bybit; its Binance part has the "
    "2021-04-27 reporting break too (binance_feed)"
)
_LIQ_NOTE = (
    "Coinglass aggregated-history, Binance only, coin-aggregated over all Binance futures pairs; "
    "binance_feed marks the 2021-04-27 reporting break (full -> throttled)"
)


def _builtin_catalog() -> dict[str, DatasetSpec]:
    h = pd.Timedelta(hours=1)
    specs: list[DatasetSpec] = []
    for sym in ("BTC-USD", "ETH-USD"):
        for iv in ("1d", "1h"):
            specs.append(
                DatasetSpec(
                    f"prices/{sym}_{iv}", "bars", "yahoo", sym, iv, "bars",
                    units="USD; volume in USD"
                    + ("" if iv == "1d" else " (hourly volume unreliable)"),
                    venue="yahoo", instrument="index",
                )
            )
    for sym, ivs in (("BTCUSDT", ("1d", "4h", "1h")), ("ETHUSDT", ("1d",)), ("SOLUSDT", ("1d",))):
        for iv in ivs:
            specs.append(
                DatasetSpec(
                    f"prices/{sym}_{iv}", "bars", "binance", sym, iv, "bars",
                    units="USDT; volume in base units", venue="binance", instrument="spot",
                )
            )
    for coin in ("BTC", "ETH", "SOL"):
        for iv in ("1h", "4h"):
            specs.append(
                DatasetSpec(
                    f"prices/{coin}USDT-PERP_{iv}", "bars", "binance-futures", f"{coin}USDT-PERP",
                    iv, "bars", units="USDT; volume in base units (contracts)",
                    notes="Binance USDT-M perpetual (not spot): wicks can differ from spot",
                    venue="binance", instrument="perp",
                    # no source covers these hours (PROVENANCE.md); the 4h file does
                    known_gaps=(("2024-06-16T12:00:00Z",
                                 "2025-09-13T08:00:00Z" if coin == "SOL" else
                                 "2025-09-13T07:00:00Z"),) if iv == "1h" else (),
                )
            )
    specs.append(
        DatasetSpec(
            "prices/BTCUSDT_1h_2017-2020_cryptodatadownload", "bars", "cryptodatadownload",
            "BTCUSDT", "1h", "bars", units="USDT; volume differs from Binance by ~4 %",
            notes="lower quality, see quality_flag; not used by default", default=False,
            venue="binance", instrument="spot",
        )
    )
    specs.append(
        DatasetSpec(
            "sentiment/crypto_fear_greed", "fng", "alternative.me", "crypto", "1d", "fng",
            publication_lag=h, max_staleness=pd.Timedelta(hours=48),
            units="index 0..100",
            notes="value dated D is published at D 00:00 UTC and describes the day ending then",
            venue="alternative.me",
        )
    )
    for coin in ("BTC", "ETH", "SOL"):
        for iv in ("1d", "4h"):
            specs.append(
                DatasetSpec(
                    f"liquidations/coinglass_binance_{coin}_{iv}", "liquidations", "coinglass",
                    coin, iv, "coinglass_liquidations", units="USD", notes=_LIQ_NOTE,
                    venue="binance",
                )
            )
        specs.append(
            DatasetSpec(
                f"liquidations/coinglass_binance-okx-bybit_{coin}_1d", "liquidations",
                "coinglass", coin, "1d", "coinglass_liquidations", units="USD",
                notes=_LIQ3_NOTE, venue="binance+okx+bybit",
            )
        )
        specs += [
            DatasetSpec(
                f"derivatives/binance_{coin.lower()}usdt_funding_8h", "funding", "binance", coin,
                "8h", "funding_fraction", units="fraction per 8h (each settlement)",
                notes="raw settlements at 00/08/16 UTC; a row is labelled by its settlement time",
                venue="binance",
            ),
            DatasetSpec(
                f"derivatives/binance_{coin.lower()}usdt_open_interest_4h", "open_interest",
                "binance", coin, "4h", "oi_snapshot",
                units="USD (snapshot at the timestamp, one USDT-M contract)",
                notes="a snapshot, known at its timestamp; Binance serves only 30 days",
                venue="binance",
            ),
        ]
    specs += [
        DatasetSpec(
            "liquidations/coinalyze_btc_perps_1d", "liquidations", "coinalyze", "BTC", "1d",
            "coinalyze_liquidations", units="USD",
            notes="12 BTC perpetual markets on 7 exchanges; n_markets_reporting varies",
            default=False, venue="7 exchanges (coinalyze)",
        ),
        DatasetSpec(
            "derivatives/binance_btcusdt_funding_1d", "funding", "binance", "BTC", "1d",
            "funding_fraction", units="fraction per 8h (daily mean of the 8h rates)",
            venue="binance",
        ),
        DatasetSpec(
            "derivatives/coinglass_binance_btcusdt_funding_1d", "funding", "coinglass", "BTC",
            "1d", "funding_percent_ohlc", units="percent per 8h in the file -> fraction",
            notes="OHLC of the predicted rate; close is used", default=False,
            venue="binance",
        ),
        DatasetSpec(
            "derivatives/coinglass_binance_btcusdt_funding_8h", "funding", "coinglass", "BTC",
            "8h", "funding_percent_ohlc", units="percent per 8h in the file -> fraction",
            default=False, venue="binance",
        ),
        *(DatasetSpec(
            f"derivatives/coinglass_btc_funding_oiweighted_{iv}", "funding", "coinglass", "BTC",
            iv, "funding_percent_ohlc", units="percent per 8h in the file -> fraction",
            notes="open-interest weighted across exchanges", default=False,
            venue="all exchanges (OI-weighted)",
        ) for iv in ("1d", "4h")),
        DatasetSpec(
            "derivatives/coinglass_btc_open_interest_aggregated_4h", "open_interest",
            "coinglass", "BTC", "4h", "oi_ohlc", units="USD (close of the bucket)",
            venue="all exchanges",
        ),
        DatasetSpec(
            "derivatives/coinalyze_btc_perps_funding_1d", "funding", "coinalyze", "BTC", "1d",
            "coinalyze_funding", units="percent per interval in the file -> fraction",
            notes="binance_btcusdt market", default=False, venue="binance",
        ),
        DatasetSpec(
            "derivatives/coinalyze_btc_perps_open_interest_1d", "open_interest", "coinalyze",
            "BTC", "1d", "coinalyze_open_interest",
            units="USD, sum over the markets reporting that day",
            venue="coinalyze panel (chain-linked)",
        ),
    ]
    return {s.id: s for s in specs}


_CATALOG = _builtin_catalog()
_PRICE_RE = re.compile(r"^prices/([A-Za-z0-9.\-]+?)_(1h|4h|8h|1d)$")


def catalog() -> dict[str, DatasetSpec]:
    """All built-in dataset specs, by id."""
    return dict(_CATALOG)


_USER_SPECS: dict[str, DatasetSpec] = {}


def register_user_spec(spec: DatasetSpec) -> DatasetSpec:
    """Make a user series' spec known to :func:`spec_for` (the store registers the series it
    holds when it reads its manifest; a data folder, those with a sidecar TOML)."""
    if spec.id in _CATALOG:
        raise DataError(f"{spec.id!r} is a built-in dataset", hint="choose another name")
    _USER_SPECS[spec.id] = spec
    return spec


def spec_for(dataset_id: str) -> DatasetSpec:
    """The spec for a dataset id; price files of any symbol follow ``prices/<SYMBOL>_<iv>``."""
    if dataset_id in _CATALOG:
        return _CATALOG[dataset_id]
    if dataset_id in _USER_SPECS:
        return _USER_SPECS[dataset_id]
    if dataset_id.startswith("series/"):
        name = dataset_id.split("/", 1)[1]
        raise DataError(
            f"unknown user series {name!r}",
            hint=f"import it with `flushback data import FILE --as {name} --interval 1d "
            "--lag 0h`, or declare it in the spec under [data.series]",
        )
    m = _PRICE_RE.match(dataset_id)
    if m:
        sym, iv = m.groups()
        if sym.endswith("-PERP"):
            return DatasetSpec(dataset_id, "bars", "binance-futures", sym, iv, "bars",
                               instrument="perp")
        source = "binance" if sym.endswith(("USDT", "BUSD", "USDC")) else "yahoo"
        return DatasetSpec(dataset_id, "bars", source, sym, iv, "bars")
    raise DataError(
        f"unknown dataset {dataset_id!r}",
        hint="name files like prices/<SYMBOL>_<1h|4h|1d>.csv or use a dataset listed in "
        "docs/data.md",
    )


def spec_for_path(path: Any, root: Any) -> DatasetSpec:
    """Spec for a CSV file inside a data folder (its id is the relative path minus .csv)."""
    from pathlib import Path

    rel = Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    if rel.endswith(".csv"):
        rel = rel[:-4]
    try:
        return spec_for(rel)
    except DataError as exc:
        raise DataError(exc.message, file=str(path), hint=exc.hint) from None


# Symbol -> the default external datasets per kind, for bar intervals (1d vs intraday).
_COIN = {"BTC-USD": "BTC", "BTCUSDT": "BTC", "ETH-USD": "ETH", "ETHUSDT": "ETH", "SOLUSDT": "SOL",
         "SOL-USD": "SOL"}


def is_perp(symbol: str) -> bool:
    """A perpetual-futures symbol (``BTCUSDT-PERP``): its own instrument, prices differ from
    spot, but its liquidations, funding and open interest are its coin's."""
    return symbol.upper().endswith("-PERP")


def coin_of(symbol: str) -> str:
    """The coin a symbol's external series are joined by: BTC-USD, BTCUSDT, BTCUSDT-PERP -> BTC."""
    if is_perp(symbol):
        symbol = symbol[: -len("-PERP")]
    if symbol in _COIN:
        return _COIN[symbol]
    for quote in ("-USD", "USDT", "USDC", "BUSD", "USD"):
        if symbol.endswith(quote):
            return symbol[: -len(quote)]
    return symbol


# Named sources a spec can choose per external kind (``data.sources``): name -> a function of
# (coin, daily bars?) giving the dataset ids in priority order. Different reporters are never
# spliced into one column: a source name stands for one reporter (at one or more
# granularities; the finer first).
def _liq_binance(coin: str, daily: bool) -> tuple[str, ...]:
    d, h4 = f"liquidations/coinglass_binance_{coin}_1d", f"liquidations/coinglass_binance_{coin}_4h"
    return (d,) if daily else (h4, d)


def _liq_aggregate(coin: str, daily: bool) -> tuple[str, ...]:
    return (f"liquidations/coinglass_binance-okx-bybit_{coin}_1d",)


def _btc_only(*ids: str) -> Any:
    return lambda coin, daily: ids if coin == "BTC" else ()


def _funding_binance(coin: str, daily: bool) -> tuple[str, ...]:
    """The raw 8h settlements (2026 on), then BTC's daily means of the same settlements; on
    daily bars BTC's daily file alone (the 8h file's daily means equal it)."""
    raw = f"derivatives/binance_{coin.lower()}usdt_funding_8h"
    if coin != "BTC":
        return (raw,)
    return ("derivatives/binance_btcusdt_funding_1d",) if daily else (
        raw, "derivatives/binance_btcusdt_funding_1d")


def _funding_coinglass(coin: str, daily: bool) -> tuple[str, ...]:
    iv = "1d" if daily else "8h"
    return (f"derivatives/coinglass_binance_btcusdt_funding_{iv}",) if coin == "BTC" else ()


def _funding_oiweighted(coin: str, daily: bool) -> tuple[str, ...]:
    iv = "1d" if daily else "4h"
    return (f"derivatives/coinglass_btc_funding_oiweighted_{iv}",) if coin == "BTC" else ()


def _oi_binance(coin: str, daily: bool) -> tuple[str, ...]:
    return (f"derivatives/binance_{coin.lower()}usdt_open_interest_4h",)


SOURCES: dict[str, dict[str, Any]] = {
    "fng": {"alternative.me": lambda coin, daily: ("sentiment/crypto_fear_greed",)},
    "liquidations": {
        "binance": _liq_binance,
        "binance-okx-bybit": _liq_aggregate,
        "coinalyze": _btc_only("liquidations/coinalyze_btc_perps_1d"),
    },
    "funding": {
        "binance": _funding_binance,
        "coinglass-binance": _funding_coinglass,
        "coinglass-oiweighted": _funding_oiweighted,
    },
    "open_interest": {
        "coinalyze": _btc_only("derivatives/coinalyze_btc_perps_open_interest_1d"),
        "coinglass": _btc_only("derivatives/coinglass_btc_open_interest_aggregated_4h"),
        "binance": _oi_binance,
        # Coinalyze's panel (2022-01..2024-09), then Coinglass's all-exchange aggregate: two
        # reporters spliced on purpose and named as such in every report (oi_flush reads
        # changes, not levels)
        "coinalyze+coinglass": _btc_only("derivatives/coinalyze_btc_perps_open_interest_1d",
                                         "derivatives/coinglass_btc_open_interest_aggregated_4h"),
    },
}

# The source each kind uses unless a spec names another (docs/data.md).
DEFAULT_SOURCES: dict[str, str] = {
    "fng": "alternative.me",
    "liquidations": "binance",
    "funding": "binance",
    "open_interest": "coinalyze+coinglass",
}


def source_names(kind: str) -> list[str]:
    """The named sources of one external kind (what ``data.sources.<kind>`` accepts)."""
    return list(SOURCES.get(kind, {}))


def default_externals(symbol: str, interval: str,
                      sources: Any = None) -> dict[str, tuple[str, ...]]:
    """kind -> dataset ids (priority order: the first covers what it can, the next fill the rest).

    ``sources`` maps a kind to a named source (``SOURCES``; e.g. ``{"liquidations":
    "binance-okx-bybit"}``); other kinds use ``DEFAULT_SOURCES``. Kinds without a dataset for
    this coin map to ``()`` (the column is all NaN).
    """
    coin = coin_of(symbol)
    daily = parse_interval(interval) >= pd.Timedelta(days=1)
    chosen = dict(DEFAULT_SOURCES)
    for kind, name in dict(sources or {}).items():
        if kind not in EXTERNAL_KINDS:
            raise DataError(f"unknown external kind {kind!r} in data.sources",
                            hint=f"use any of {', '.join(EXTERNAL_KINDS)}")
        if name not in source_names(kind):
            raise DataError(
                f"unknown {kind} source {name!r}" + did_you_mean(name, source_names(kind)),
                hint=f"{kind} sources: {', '.join(source_names(kind))}")
        chosen[kind] = name
    known_coin = coin in ("BTC", "ETH", "SOL")
    return {kind: tuple(SOURCES[kind][name](coin, daily)) if known_coin or kind == "fng"
            else () for kind, name in chosen.items()}


@dataclass
class DatasetInfo:
    """What a loaded dataset holds: spec facts plus coverage and the content fingerprint."""

    id: str
    kind: str
    source: str
    symbol: str
    interval: str
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    gaps: int
    fingerprint: str
    publication_lag: str = "0s"
    units: str = ""
    location: str = ""
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("first", "last"):
            v = d[k]
            d[k] = None if v is None else pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%SZ")
        return d


def count_gaps(index: pd.DatetimeIndex, period: pd.Timedelta) -> int:
    """Number of missing period starts inside ``[first, last]`` of a regular series."""
    if len(index) < 2:
        return 0
    steps = np.diff(ns_values(index)) // period.value
    return int(np.clip(steps - 1, 0, None).sum())


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of a frame's content: index, column names, dtypes and values (order-sensitive).

    Deterministic across processes and independent of the file format it was read from, so a
    dataset read from a CSV folder and the same dataset served from the Parquet store share one
    fingerprint.
    """
    h = hashlib.sha256()
    idx = frame.index
    if isinstance(idx, pd.DatetimeIndex):
        h.update(idx.as_unit("ns").asi8.tobytes())
    else:
        h.update("\x1f".join(map(str, idx)).encode())
    for col in frame.columns:
        s = frame[col]
        h.update(f"\x1e{col}".encode())
        if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s):
            h.update(b"dt")
            h.update(pd.DatetimeIndex(s).as_unit("ns").asi8.tobytes())
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            h.update(b"f8")
            arr = s.to_numpy(dtype="float64", na_value=np.nan)
            arr = np.where(np.isnan(arr), np.nan, arr)  # one canonical NaN bit pattern
            h.update(np.ascontiguousarray(arr).tobytes())
        else:
            h.update(b"str")
            h.update("\x1f".join("" if pd.isna(v) else str(v) for v in s).encode())
    return h.hexdigest()
