"""``flushback today``: the signals at the latest bar, and the historical setups most like it
(FORWARD-LOOKING for the analogues' outcomes only).

Two parts:

1. **Signals of the day.** Every signal of a spec (its ``[signals.*]`` and the legs of its
   composites) or, without a spec, every registered non-composite trigger with its defaults,
   evaluated at the latest bar known at the date (``load_frame(..., as_of=close of bar D)``).
   Each gets a status: ``yes`` / ``no`` / ``no data`` (an input is missing or stale at that
   bar: "no" would be a claim the data cannot make) / ``warming up``; and each input its value,
   when it became known and its age at the bar's close (or, when missing, its last value).

2. **Nearest historical setups.** Point-in-time features on daily bars (see
   :data:`FEATURES`), each standardised with *expanding* statistics (mean and standard
   deviation of the feature's values up to and including that day), so a day's features never
   use data after it. The distance between today ``t`` and a past day ``s`` is the root mean
   square of the differences of their standardised features over the features both have
   (missing features are left out, never imputed; at least ``min_features`` are required),
   optionally weighted. The ``k`` nearest days at least ``exclude_days`` before ``t`` are
   taken greedily, each at least ``min_gap_days`` from the ones already taken (one day per
   episode). What followed each -- forward returns from the next open, drawdown ahead -- is
   :func:`flushback.backtests.events.study.forward_outcomes` on the data known at ``t`` (an
   outcome not yet known at ``t`` is missing).

docs/today.md documents the features, their scaling and the distance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.events.study import _f as _opt  # finite float or None
from flushback.backtests.events.study import events_from_triggers, forward_outcomes
from flushback.backtests.run.timefmt import iso_z
from flushback.backtests.run.warmup import first_valid_position
from flushback.data.errors import ConfigError, DataError

__all__ = ["FEATURES", "TodayResult", "feature_table", "standardise", "nearest_setups",
           "signal_states", "today"]

#: feature -> what it is (all known at the daily bar's close)
FEATURES: dict[str, str] = {
    "fng": "Crypto Fear & Greed Index (0..100) of the day",
    "liq_z": "robust z-score of the day's long liquidations (log USD) vs the 90 days before, "
             "within the reporting regime (liquidation_spike's z)",
    "liq_long_share": "long share of the day's liquidations (0..1)",
    "rsi_1d": "Wilder RSI(14) on daily closes",
    "rsi_4h": "Wilder RSI(14) on 4h closes, at the 4h bar closing with the day",
    "drawdown": "close / highest high so far - 1 (<= 0)",
    "funding": "perpetual funding rate (fraction per 8h) known at the close",
}
DEFAULT_HORIZONS = (7, 30, 90)
_DAY = pd.Timedelta(days=1)
_INTRADAY_FOR = {"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"}


# --------------------------------------------------------------------------- features
def _rsi4h_on_days(days: pd.DatetimeIndex, bars4h: pd.DataFrame | None) -> pd.Series:
    """RSI(14) of 4h bars placed on each daily bar: the 4h bar closing at the day's close (or
    the one before, when that bar is missing); NaN when neither exists."""
    from flushback.signals import build_signal

    if bars4h is None or len(bars4h) == 0:
        return pd.Series(np.nan, index=days, name="rsi_4h")
    b = bars4h.copy()
    b.attrs["interval"] = "4h"
    rsi = build_signal({"type": "rsi"}).compute(b)
    closes = pd.DataFrame({"t": rsi.index + pd.Timedelta(hours=4), "rsi": rsi.to_numpy()})
    want = pd.DataFrame({"t": days + _DAY})
    got = pd.merge_asof(want, closes, on="t", tolerance=pd.Timedelta(hours=4),
                        direction="backward")
    return pd.Series(got["rsi"].to_numpy(), index=days, name="rsi_4h")


def feature_table(frame: pd.DataFrame, bars4h: pd.DataFrame | None = None) -> pd.DataFrame:
    """Raw point-in-time features (:data:`FEATURES`) per daily bar of ``frame``.

    ``frame``: an assembled daily frame (``load_frame(symbol, "1d")``); missing external
    columns give NaN features. ``bars4h``: 4h bars of the same market for ``rsi_4h`` (None:
    NaN). Every value at bar t uses rows <= t only.
    """
    from flushback.signals import build_signal
    from flushback.signals.liquidations import LiquidationSpike

    idx = frame.index
    out = pd.DataFrame(index=idx)
    out["fng"] = frame["fng"] if "fng" in frame.columns else np.nan
    if {"liq_long_usd", "liq_short_usd"} <= set(frame.columns):
        parts = LiquidationSpike().explain(frame)
        out["liq_z"] = parts["z"].astype("float64")
        out["liq_long_share"] = parts["long_share"].where(
            frame["liq_long_usd"].notna() & frame["liq_short_usd"].notna())
    else:
        out["liq_z"] = out["liq_long_share"] = np.nan
    out["rsi_1d"] = build_signal({"type": "rsi"}).compute(frame)
    out["rsi_4h"] = _rsi4h_on_days(idx, bars4h)
    out["drawdown"] = frame["close"] / frame["high"].cummax() - 1.0
    out["funding"] = frame["funding_rate"] if "funding_rate" in frame.columns else np.nan
    return out.astype("float64")


def standardise(raw: pd.DataFrame, min_obs: int = 180) -> pd.DataFrame:
    """Expanding z-scores: ``(x_t - mean(x_<=t)) / std(x_<=t)`` over the feature's non-missing
    values up to and including t (ddof 1); NaN until ``min_obs`` values exist, where x_t is
    missing, or where the spread is 0."""
    out = {}
    for c in raw.columns:
        x = raw[c]
        ex = x.expanding(min_periods=min_obs)
        m, s = ex.mean(), ex.std(ddof=1)
        z = (x - m) / s.where(s > 0)
        out[c] = z.where(x.notna())
    return pd.DataFrame(out, index=raw.index)


def nearest_setups(z: pd.DataFrame, date: pd.Timestamp, *, k: int = 5, exclude_days: int = 30,
                   min_gap_days: int = 30, min_features: int = 3,
                   weights: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The ``k`` days most like ``date`` (see the module docstring): columns ``distance``,
    ``n_features`` (compared), ``features`` (their names), indexed by day."""
    if date not in z.index:
        raise DataError(f"no feature row for {date}", hint="pick a date inside the data")
    w = np.array([float((weights or {}).get(c, 1.0)) for c in z.columns])
    if np.any(w < 0):
        raise ConfigError("feature weights must be >= 0")
    zt = z.loc[date].to_numpy(dtype=float)
    cand = z.loc[: date - pd.Timedelta(days=exclude_days)]
    diff = cand.to_numpy(dtype=float) - zt
    have = np.isfinite(diff) & (w > 0)
    wsum = (have * w).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.sqrt(np.where(have, w * diff**2, 0.0).sum(axis=1) / wsum)
    n = have.sum(axis=1)
    ok = (n >= min_features) & np.isfinite(d)
    order = np.argsort(np.where(ok, d, np.inf), kind="stable")
    chosen: list[int] = []
    gap = pd.Timedelta(days=min_gap_days)
    for i in order:
        if not ok[i] or len(chosen) >= k:
            break
        if all(abs(cand.index[i] - cand.index[j]) >= gap for j in chosen):
            chosen.append(int(i))
    names = np.asarray(z.columns)
    return pd.DataFrame({
        "distance": d[chosen], "n_features": n[chosen],
        "features": [",".join(names[have[i]]) for i in chosen],
    }, index=cand.index[chosen])


# --------------------------------------------------------------------------- signals
def _leaves(name: str, sig: Any) -> list[tuple[str, Any]]:
    children = getattr(sig, "children", None)
    out = [(name, sig)]
    for i, c in enumerate(children or ()):
        out += _leaves(f"{name}.of.{i}", c)
    return out


def _has_data(sig: Any, row: pd.Series) -> bool:
    children = getattr(sig, "children", None)
    if not children:
        return bool(all(pd.notna(row.get(c)) for c in sig.required_columns()))
    got = [_has_data(c, row) for c in children]
    if sig.name == "any":
        return any(got)
    if sig.name == "k_of_n":
        return sum(got) >= int(sig.own_params["k"])
    return all(got)


def _fmt(col: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, str):
        return v
    v = float(v)
    if col.endswith("_usd"):
        return f"${v / 1e6:,.1f}M"
    if col == "funding_rate":
        return f"{v:.6f}"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _age(td: pd.Timedelta) -> str:
    hours = td / pd.Timedelta(hours=1)
    return f"{hours:.0f}h old" if hours < 48 else f"{hours / 24:.1f} days old"


def signal_states(signals: Mapping[str, Any], frame: pd.DataFrame, known_at: pd.DataFrame,
                  at: pd.Timestamp) -> list[dict[str, Any]]:
    """Status of every signal (and composite leg) at bar ``at``, with its inputs' values and
    ages. ``known_at``: ``AssembledFrame.known_at`` (when each external value became known)."""
    from flushback.data.intervals import bar_interval

    iv = bar_interval(frame)
    pos = int(frame.index.get_loc(at))
    row = frame.iloc[pos]
    close = at + iv
    rows = []
    for top, sig in signals.items():
        for name, s in _leaves(top, sig):
            values = s.compute(frame).iloc[: pos + 1].to_numpy()
            fired = bool(values[-1])
            hits = np.flatnonzero(values)
            first = first_valid_position(s, frame, iv)
            if not _has_data(s, row):
                status = "no data"
            elif fired:
                status = "yes"
            elif first is None or pos < first:
                status = "warming up"
            else:
                status = "no"
            inputs = []
            # a composite's inputs are listed on its legs
            for col in () if getattr(s, "children", None) else s.required_columns():
                v = row.get(col)
                item: dict[str, Any] = {"column": col, "value": None if pd.isna(v) else v}
                when = None
                if pd.notna(v):
                    when = known_at[col].iloc[pos] if col in known_at.columns else close
                    item["value_text"] = _fmt(col, v)
                else:
                    last = frame[col].iloc[: pos + 1].last_valid_index()
                    item["value_text"] = "no data" if last is None else (
                        f"no data (last {_fmt(col, frame.at[last, col])} on "
                        f"{last.strftime('%Y-%m-%d')})")
                    if last is not None:
                        when = (known_at.at[last, col] if col in known_at.columns
                                else last + iv)
                item["known_at"] = None if when is None or pd.isna(when) else iso_z(when)
                item["age_hours"] = (None if item["known_at"] is None
                                     else float((close - when) / pd.Timedelta(hours=1)))
                item["age_text"] = ("never" if item["age_hours"] is None
                                    else _age(close - when))
                inputs.append(item)
            last = frame.index[hits[-1]] if hits.size else None
            rows.append({"name": name, "type": s.name, "config": s.to_config(),
                         "status": status, "leg": name != top, "inputs": inputs,
                         "last_fired": None if last is None else iso_z(last),
                         "bars_since_fired": None if last is None else int(pos - hits[-1])})
    return rows


def default_signals() -> dict[str, Any]:
    """The library's defaults: every registered non-composite trigger with default params
    (not the breadth signals: today reads one asset, they read a basket)."""
    from flushback.data.errors import ConfigError
    from flushback.signals import get_signal, list_signals
    from flushback.signals.compose import Composite

    out = {}
    for name in list_signals():
        cls = get_signal(name)
        if (cls.kind == "bool" and not issubclass(cls, Composite)
                and not getattr(cls, "needs_basket", False)):
            try:
                out[name] = cls()
            except ConfigError:  # needs a user choice (the generic signals' column): no default
                continue
    return out


# --------------------------------------------------------------------------- result
@dataclass
class TodayResult:
    """What :func:`today` found: signals at the bar, today's features, the analogues."""

    date: str  # the bar (UTC open) the signals were read at
    as_of: str | None
    symbol: str
    interval: str
    signals: list[dict[str, Any]]
    features: dict[str, float | None]
    z: dict[str, float | None]
    feature_names: list[str]
    analogues: list[dict[str, Any]]
    horizons: list[int]
    summary: str
    method: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from flushback.backtests.events.signal_study import _clean

        return _clean({"schema_id": "flushback.today/1", **{
            k: getattr(self, k) for k in ("date", "as_of", "symbol", "interval", "signals",
                                          "features", "z", "feature_names", "analogues",
                                          "horizons", "summary", "method", "settings")}})

    def write(self, out_dir: str | Path, *, png: bool = True) -> dict[str, Path]:
        """``today.json``, ``today.html`` (plotly) and ``today.png`` (matplotlib) in out_dir."""
        from flushback.backtests.reports.schema import write_text_atomic
        from flushback.backtests.reports.study_plots import today_html, today_png

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "today.json", "html": out / "today.html"}
        write_text_atomic(paths["json"], json.dumps(self.to_dict(), indent=1, allow_nan=False)
                          + "\n")
        write_text_atomic(paths["html"], today_html(self))
        if png:
            paths["png"] = today_png(self, out / "today.png")
        return paths


def _catalog_match(day: pd.Timestamp, catalog: Any, slack_days: int = 3) -> str | None:
    for ev in catalog:
        lo, hi = ev.window
        if lo - pd.Timedelta(days=slack_days) <= day <= hi + pd.Timedelta(days=slack_days):
            return str(ev.id)
    return None


def _utc(value: Any) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def analogue_features(symbol: str, *, as_of: Any = None, data_dir: Any = None,
                      intraday_symbol: str | None = None, min_obs: int = 180,
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(daily assembled frame, raw features, expanding z-scores) for ``symbol`` with the data
    known at ``as_of`` (None: everything). ``rsi_4h`` reads 4h bars of ``intraday_symbol``
    (default: the Binance spot pair for BTC-USD/ETH-USD, else the symbol itself)."""
    from flushback.data import load_frame

    af = load_frame(symbol, "1d", data_dir=data_dir, as_of=as_of)
    bars4h = None
    try:
        bars4h = load_frame(intraday_symbol or _INTRADAY_FOR.get(symbol, symbol), "4h",
                            externals=None, data_dir=data_dir, as_of=as_of).frame
    except DataError:
        bars4h = None  # no 4h bars: rsi_4h is missing (left out of every distance)
    raw = feature_table(af.frame, bars4h)
    return af.frame, raw, standardise(raw, min_obs=min_obs)


def today(
    spec: Any = None,
    *,
    date: Any = None,
    data_dir: Any = None,
    k: int = 5,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    exclude_days: int = 30,
    min_gap_days: int = 30,
    min_features: int = 3,
    weights: Mapping[str, float] | None = None,
    symbol: str | None = None,
    intraday_symbol: str | None = None,
) -> TodayResult:
    """The signals at the latest bar known on ``date`` (default: the latest bar in the data)
    and the ``k`` nearest historical setups with what followed them.

    ``spec``: a spec (name, path or ``BacktestSpec``) whose signals are read; None: the
    library's default triggers on ``symbol`` (default BTC-USD) daily bars.
    """
    from flushback.backtests.run.spec import load_spec
    from flushback.data import load_frame
    from flushback.data.flush_events import load_catalog
    from flushback.signals import build_signal

    sp = None if spec is None else (spec if hasattr(spec, "signals") else load_spec(spec))
    symbol = symbol or (sp.data.symbol if sp is not None else "BTC-USD")
    interval = sp.data.interval if sp is not None else "1d"
    as_of = None if date is None else _utc(date) + _DAY  # the close of the daily bar `date`
    externals: Any = sp.data.externals if sp is not None else (
        "fng", "liquidations", "funding", "open_interest")
    externals = dict(externals) if isinstance(externals, Mapping) else tuple(externals)
    af = load_frame(symbol, interval, externals=externals, data_dir=data_dir, as_of=as_of)
    frame = af.frame
    at = frame.index[-1]
    sigs = ({n: build_signal(c) for n, c in sp.signals.items()} if sp is not None
            else default_signals())
    states = signal_states(sigs, frame, af.known_at, at)

    daily, raw, z = analogue_features(symbol, as_of=as_of, data_dir=data_dir,
                                      intraday_symbol=intraday_symbol)
    day = at.normalize()
    if day not in z.index:
        raise DataError(f"no daily bar for {day.date()} in {symbol}",
                        hint="pick a date inside the daily data")
    near = nearest_setups(z, day, k=k, exclude_days=exclude_days, min_gap_days=min_gap_days,
                          min_features=min_features, weights=weights)
    catalog = load_catalog()
    hs = tuple(int(h) for h in horizons)
    outcomes = forward_outcomes(daily, events_from_triggers(pd.DatetimeIndex(near.index), "1d",
                                                            prefix="analogue"), hs)
    longest = max(hs)
    analogues = []
    for (s, r), (_, o) in zip(near.iterrows(), outcomes.iterrows(), strict=True):
        e = int(o["entry_pos"]) if o["status"] == "ok" else -1
        path = []
        if e >= 0:
            seg = daily["close"].to_numpy()[e: e + longest]
            path = [float(v) for v in seg / daily["open"].to_numpy()[e]]
        analogues.append({
            "date": iso_z(s), "distance": float(r["distance"]),
            "n_features": int(r["n_features"]), "compared": r["features"].split(","),
            "catalog_event": _catalog_match(s, catalog),
            "features": {c: _opt(raw.at[s, c]) for c in raw.columns},
            "z": {c: _opt(z.at[s, c]) for c in z.columns},
            "entry_time": iso_z(o.get("entry_time")) if e >= 0 else None,
            "forward": {str(h): _opt(o.get(f"ret_{h}")) for h in hs},
            "mae": {str(h): _opt(o.get(f"mae_{h}")) for h in hs},
            "drawdown_ahead": _opt(o.get("drawdown_ahead")),
            "days_to_low": _opt(o.get("days_to_low")),
            "path": path,
        })
    result = TodayResult(
        date=iso_z(at), as_of=None if as_of is None else iso_z(as_of), symbol=symbol,
        interval=interval, signals=states,
        features={c: _opt(raw.at[day, c]) for c in raw.columns},
        z={c: _opt(z.at[day, c]) for c in z.columns}, feature_names=list(raw.columns),
        analogues=analogues, horizons=list(hs), summary="",
        method=_method_text(exclude_days, min_gap_days, min_features, weights),
        settings={"spec": None if sp is None else sp.name, "k": k,
                  "exclude_days": exclude_days, "min_gap_days": min_gap_days,
                  "min_features": min_features, "weights": dict(weights or {}),
                  "fingerprints": dict(af.fingerprints)},
    )
    result.summary = summarise(result)
    return result


def _method_text(exclude_days: int, min_gap_days: int, min_features: int,
                 weights: Mapping[str, float] | None) -> str:
    return (
        "Features (daily, known at the close): " + "; ".join(f"{k}: {v}" for k, v in
                                                              FEATURES.items())
        + ". Each is standardised with its expanding mean and standard deviation up to that "
        "day (no later data). Distance: root mean square of the standardised differences over "
        f"the features both days have (at least {min_features}; missing ones are left out, not "
        f"imputed)" + (f", weighted {dict(weights)}" if weights else "") + f". Candidates end "
        f"{exclude_days} days before the date; analogues are at least {min_gap_days} days "
        "apart. Outcomes: from the next day's open, with the data known on the date."
    )


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f}%"


def summarise(res: TodayResult) -> str:
    """A plain-words paragraph: what fired, what has no data, what followed the analogues."""
    top = [s for s in res.signals if not s["leg"]]
    fired = [s["name"] for s in res.signals if s["status"] == "yes"]
    nodata = [s for s in res.signals if s["status"] == "no data"]
    parts = [f"On {res.date[:10]} ({res.symbol} {res.interval}, the latest bar known"
             + (f" at {res.as_of[:16].replace('T', ' ')} UTC" if res.as_of else "") + "): "
             + (f"{sum(s['status'] == 'yes' for s in top)} of {len(top)} signals fired"
                + (f" ({', '.join(fired)})" if fired else "") + ".")]
    recent = [f"{s['name']} ({s['last_fired'][:10]})" for s in res.signals
              if s["status"] != "yes" and s["bars_since_fired"] is not None
              and 0 < s["bars_since_fired"] <= 3]
    if recent:
        parts.append("Fired in the 3 bars before: " + ", ".join(recent) + ".")
    if nodata:
        texts = []
        for s in nodata:
            miss = [i for i in s["inputs"] if i["value"] is None]
            texts.append(s["name"] + (f" ({miss[0]['column']}: {miss[0]['value_text']})"
                                      if miss else ""))
        parts.append("No data, so neither yes nor no: " + "; ".join(texts) + ".")
    missing_today = [c for c, v in res.z.items() if v is None]
    if res.analogues:
        desc = ", ".join(a["date"][:10] + (f" [{a['catalog_event']}]" if a["catalog_event"]
                                           else "") for a in res.analogues)
        parts.append(f"The {len(res.analogues)} most similar earlier days"
                     + (f" (compared without {', '.join(missing_today)}, missing today)"
                        if missing_today else "") + f": {desc}.")
        for h in res.horizons:
            vals = [a["forward"][str(h)] for a in res.analogues
                    if a["forward"][str(h)] is not None]
            if vals:
                up = sum(v > 0 for v in vals)
                parts.append(f"{h} days later {res.symbol} was higher after {up} of "
                             f"{len(vals)} (median {_pct(float(np.median(vals)))}).")
        dd = [a["drawdown_ahead"] for a in res.analogues if a["drawdown_ahead"] is not None]
        if dd:
            parts.append(f"The drawdown still ahead of them (lowest low within "
                         f"{max(res.horizons)} days vs the day's close) had median "
                         f"{_pct(float(np.median(dd)))}, worst {_pct(min(dd))}.")
        parts.append("A handful of analogues describes the past; it is not a forecast.")
    else:
        parts.append("No earlier day has enough features in common to compare.")
    return " ".join(parts)
