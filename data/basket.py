"""Baskets: several assets' bars on one frame, aligned honestly.

A basket frame is the assembled frame of one asset (the *primary*, the one whose bars index
the frame) plus, for every member of the basket, its bars and liquidations as columns named
``<field>@<symbol>``: ``open@ETHUSDT``, ``close@SOLUSDT``, ``liq_long_usd@SOLUSDT``... The
primary is a member too (``close@BTCUSDT`` equals ``close``), so a breadth signal reads every
member the same way.

Calendar alignment:

- Members are loaded at the primary's interval and joined on the bar open time, exactly: a
  member's bar opening at ``t`` closes at ``t + interval``, the same moment as the primary's,
  so its values are known at the primary bar's close and never earlier. A member with no bar
  at ``t`` (it had not started trading, or its file has a hole) is NaN there; nothing is
  forward-filled and no member bar is moved to another timestamp.
- A member's liquidations are its own assembled columns (as-of joined on their own
  ``known_at``, see :func:`flushback.data.load_frame`), so the time rule holds per member.
- What a statistic does with a member that has no data yet, or has not finished its own
  warm-up, is the business of whoever reads the basket (the breadth signals use only the
  members with data and finished warm-up at each bar, and say how many they used).

``frame.attrs["basket"]`` lists the members in order; :func:`members` reads them back and
:func:`member_frame` rebuilds one member's frame with the canonical column names so that any
single-asset signal can run on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from flushback.data.errors import ConfigError
from flushback.data.frames import AssembledFrame

__all__ = ["BAR_FIELDS", "EXTERNAL_FIELDS", "UNIVERSES", "attach_basket", "basket_column",
           "basket_members", "load_basket", "load_with_basket", "member_frame", "members",
           "universe"]

BAR_FIELDS = ("open", "high", "low", "close", "volume")
#: named universes (``data.basket = "majors"``): the assets of ``../shared/data``
UNIVERSES: dict[str, tuple[str, ...]] = {
    "majors": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    "majors-perp": ("BTCUSDT-PERP", "ETHUSDT-PERP", "SOLUSDT-PERP"),
    "majors-usd": ("BTC-USD", "ETH-USD"),
}
EXTERNAL_FIELDS = ("liq_long_usd", "liq_short_usd", "liq_regime")


def basket_column(field: str, symbol: str) -> str:
    """The frame column holding ``field`` of basket member ``symbol``."""
    return f"{field}@{symbol}"


def members(frame: pd.DataFrame) -> list[str]:
    """The basket's members in order (from ``attrs["basket"]``, else from the ``close@``
    columns); empty for a single-asset frame."""
    declared = frame.attrs.get("basket")
    if declared:
        return [str(s) for s in declared]
    return [c.split("@", 1)[1] for c in frame.columns if str(c).startswith("close@")]


def member_frame(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """Member ``symbol``'s bars and liquidations on the basket frame's index, under the
    canonical names (``close``, ``liq_long_usd``...), with ``attrs`` interval, symbol and the
    member's column intervals. NaN where the member has no bar."""
    cols = {}
    for field in (*BAR_FIELDS, *EXTERNAL_FIELDS):
        name = basket_column(field, symbol)
        if name in frame.columns:
            cols[field] = frame[name]
    if "close" not in cols:
        raise ConfigError(
            f"'{symbol}' is not a member of this frame's basket"
            + (f" ({', '.join(members(frame))})" if members(frame) else " (it has none)"),
            hint="load the frame with flushback.data.load_basket(...) or name the members "
            "in the spec's data.basket",
        )
    out = pd.DataFrame(cols, index=frame.index)
    intervals = frame.attrs.get("column_intervals", {})
    out.attrs = {
        "interval": frame.attrs.get("interval"),
        "symbol": symbol,
        "column_intervals": {f: intervals[basket_column(f, symbol)] for f in EXTERNAL_FIELDS
                             if basket_column(f, symbol) in intervals},
    }
    return out


def attach_basket(primary: AssembledFrame, basket: Sequence[str], *,
                  loaded: dict[str, AssembledFrame]) -> AssembledFrame:
    """``primary`` with every member's columns added (see the module docstring).

    ``loaded``: symbol -> the member's assembled frame at the primary's interval (the primary
    itself may be left out). Fingerprints, datasets, known_at and sources of the members are
    merged in, so a run's identity changes when a member's data does."""
    symbol = primary.symbol
    names = _check_members(basket, symbol)
    frame = primary.frame.copy()
    idx = frame.index
    known = primary.known_at.copy()
    pend = primary.period_end.copy()
    fingerprints = dict(primary.fingerprints)
    datasets = dict(primary.datasets)
    sources = dict(primary.sources)
    intervals = dict(frame.attrs.get("column_intervals", {}))
    first_bar: dict[str, str | None] = {}
    new_cols: dict[str, pd.Series] = {}
    for member in names:
        af = primary if member == symbol else loaded[member]
        mf = af.frame
        if member != symbol and af.interval != primary.interval:
            raise ConfigError(
                f"basket member {member} is at {af.interval}, the frame at {primary.interval}",
                hint="load every member at the primary's interval",
            )
        for field in (*BAR_FIELDS, *EXTERNAL_FIELDS):
            if field in mf.columns:
                new_cols[basket_column(field, member)] = mf[field].reindex(idx)
        for field in EXTERNAL_FIELDS:
            name = basket_column(field, member)
            if field in af.known_at.columns:
                known[name] = af.known_at[field].reindex(idx)
                pend[name] = af.period_end[field].reindex(idx)
            if field in mf.attrs.get("column_intervals", {}):
                intervals[name] = mf.attrs["column_intervals"][field]
        present = mf["close"].reindex(idx).first_valid_index()
        first_bar[member] = None if present is None else pd.Timestamp(present).isoformat()
        if member != symbol:
            fingerprints.update(af.fingerprints)
            datasets.update(af.datasets)
            for kind, prov in af.sources.items():
                sources[f"{kind}@{member}"] = prov
    frame = pd.concat([frame, pd.DataFrame(new_cols, index=idx)], axis=1)
    frame.attrs = {**primary.frame.attrs, "basket": names, "basket_first_bar": first_bar,
                   "column_intervals": intervals}
    return AssembledFrame(frame=frame, fingerprints=fingerprints, datasets=datasets,
                          known_at=known, period_end=pend, sources=sources)


def universe(name: str) -> tuple[str, ...]:
    """The symbols of a named universe (:data:`UNIVERSES`); ConfigError with a did-you-mean."""
    if name not in UNIVERSES:
        from flushback.data.suggest import did_you_mean

        raise ConfigError(f"unknown universe {name!r}" + did_you_mean(name, UNIVERSES),
                          hint=f"universes: {', '.join(UNIVERSES)}; or list the symbols")
    return UNIVERSES[name]


def basket_members(symbol: str, basket: Sequence[str]) -> list[str]:
    """The members of ``symbol``'s basket in order: ``symbol`` first unless the basket lists
    it elsewhere, each once (a duplicate is a ConfigError)."""
    return _check_members(basket, symbol)


def _check_members(basket: Sequence[str], symbol: str) -> list[str]:
    if isinstance(basket, str):
        basket = [basket]
    names = [str(s) for s in basket]
    if not names:
        raise ConfigError("an empty basket", hint="name at least two symbols")
    dup = sorted({s for s in names if names.count(s) > 1})
    if dup:
        raise ConfigError(f"basket names {', '.join(dup)} more than once",
                          hint="list each symbol once")
    if any("@" in s for s in names):
        raise ConfigError("a basket symbol cannot contain '@'", hint="use the dataset symbol")
    if symbol not in names:
        names = [symbol, *names]
    return names


def load_basket(symbol: str, basket: Sequence[str], interval: str = "1d", *,
                data_dir: str | Path | None = None, **load_kwargs: Any) -> AssembledFrame:
    """The assembled frame of ``symbol`` with the basket's members attached.

    ``load_kwargs`` go to :func:`flushback.data.load_frame` for the primary (``start``,
    ``end``, ``as_of``, ``externals``, ``sources``...); members are loaded with the same
    window, ``as_of``, ``offline`` and ``sources`` and only their liquidations as externals
    (a member without liquidation data gets NaN columns)."""
    from flushback.data.assemble import load_frame

    names = _check_members(basket, symbol)
    primary = load_frame(symbol, interval, data_dir=data_dir, **load_kwargs)
    shared: dict[str, Any] = {k: load_kwargs[k] for k in ("start", "end", "as_of", "offline",
                                                          "sources", "max_staleness")
                              if k in load_kwargs}
    loaded = {m: _member(load_frame, m, interval, data_dir, shared, primary)
              for m in names if m != symbol}
    return attach_basket(primary, names, loaded=loaded)


def _member(load_frame: Any, member: str, interval: str, data_dir: str | Path | None,
            shared: dict[str, Any], primary: AssembledFrame) -> AssembledFrame:
    """A member's assembled frame; one without a bar in the window (not listed yet, or read
    as of a moment before its first bar) is an empty frame, so it is NaN on every bar."""
    from flushback.data.errors import DataError

    try:
        return load_frame(member, interval, data_dir=data_dir, externals=("liquidations",),
                          **shared)
    except DataError as exc:
        if getattr(exc, "coverage", None) is None:  # no such dataset: a real error
            raise
    empty = pd.DataFrame({f: pd.Series(dtype="float64") for f in BAR_FIELDS},
                         index=primary.frame.index[:0])
    empty.attrs = {"interval": primary.interval, "symbol": member}
    return AssembledFrame(frame=empty)


def load_with_basket(symbol: str, interval: str, *, basket: Sequence[str] = (),
                     data_dir: str | Path | None = None, **load_kwargs: Any) -> AssembledFrame:
    """:func:`load_basket` when ``basket`` names members, else plain ``load_frame`` (what a
    spec's ``[data]`` table asks for)."""
    if basket:
        return load_basket(symbol, basket, interval, data_dir=data_dir, **load_kwargs)
    from flushback.data.assemble import load_frame

    return load_frame(symbol, interval, data_dir=data_dir, **load_kwargs)
