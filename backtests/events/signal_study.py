"""Signal study (FORWARD-LOOKING): what followed a signal's triggers, or every bar grouped by
the buckets of a series, per day and per cluster, against random days.

``study(frame, signal=..., buckets=..., horizons=...)`` is what ``flushback study`` calls. It
reuses :mod:`flushback.backtests.events.study` for every number it shows (entry at the next
bar's open, ``forward_outcomes``, the clustered random-day baseline of ``run_event_study``) and
adds two things that study lacks:

- **per-day and per-cluster statistics side by side, each labelled.** A trigger on 30
  consecutive days is 30 *days* but one *cluster* at a 30-day horizon (their holding windows
  overlap). The per-day mean (mean of every day's forward return: the figure public tables of
  the Fear & Greed Index print) and the per-cluster mean (mean over clusters of their members'
  mean: the unit of the baseline test) are different statistics; both are shown with their n.
- **buckets of a series** (``"fng:0,25,45,55,76,101"``): bar t belongs to bucket
  ``[edge_i, edge_{i+1})`` by the value of the series at t (known at t's close, so the entry is
  t + 1's open, as for a trigger). With a signal, only its trigger bars are grouped.

The p-values are the event study's: the per-cluster mean against the null distribution of the
same statistic at random starts in the study period (the same period for every group), so
groups can be read against one baseline. The "all bars" row of a bucket study is the
unconditional per-day figure over the same bars (no test: it *is* the baseline population).

"Worst drawdown ahead" is ``forward_outcomes``' ``drawdown_ahead``: the lowest low over the
longest horizon after the entry, relative to the trigger bar's close (<= 0); ``mae_{h}`` is the
maximum adverse excursion from the entry open over h days.

This module may import ``flushback.data``, ``flushback.signals`` and
``flushback.backtests.events.study``; plots live in :mod:`flushback.backtests.reports.study_plots`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from flushback.backtests.events import DEFAULT_DRAWS
from flushback.backtests.events.study import _f as _num  # finite float or None
from flushback.backtests.events.study import (
    events_from_triggers,
    forward_outcomes,
    run_event_study,
)
from flushback.backtests.run.timefmt import iso_z
from flushback.data.errors import ConfigError, DataError

__all__ = ["Buckets", "SignalStudy", "parse_buckets", "resolve_target", "study", "study_data",
           "STUDY_SCHEMA"]

STUDY_SCHEMA = "flushback.study/1"
DEFAULT_STUDY_HORIZONS: tuple[int, ...] = (1, 7, 30, 90)
ALL_BARS = "all bars"


@dataclass(frozen=True)
class Buckets:
    """Half-open buckets ``[edges[i], edges[i+1])`` of a frame column."""

    column: str
    edges: tuple[float, ...]

    def labels(self) -> list[str]:
        out = []
        for lo, hi in zip(self.edges[:-1], self.edges[1:], strict=True):
            # an integer-valued series (the F&G index) with integer edges prints the closed
            # range people quote ("0-24" for [0, 25)); anything else the half-open interval
            if (self.column in INTEGER_VALUED and float(lo).is_integer()
                    and float(hi).is_integer()):
                out.append(f"{self.column} {int(lo)}-{int(hi) - 1}")
            else:
                out.append(f"{self.column} [{lo:g}, {hi:g})")
        return out

    def assign(self, values: pd.Series) -> pd.Series:
        """Bucket label per bar (NaN where the value is missing or outside every bucket)."""
        v = values.astype("float64").to_numpy()
        edges = np.asarray(self.edges, dtype="float64")
        pos = np.searchsorted(edges, v, side="right") - 1
        ok = np.isfinite(v) & (pos >= 0) & (pos < len(edges) - 1)
        labels = np.asarray(self.labels(), dtype=object)
        out = np.full(len(v), None, dtype=object)
        out[ok] = labels[pos[ok]]
        return pd.Series(out, index=values.index, name=f"{self.column}_bucket")


_ALIASES = {"fear_greed": "fng", "funding": "funding_rate"}
INTEGER_VALUED = ("fng",)  # columns whose values are whole numbers


def parse_buckets(text: str | Buckets | None) -> Buckets | None:
    """``"fng:0,25,45,55,76,101"`` -> :class:`Buckets` (edges strictly increasing)."""
    if text is None or isinstance(text, Buckets):
        return text
    if ":" not in text:
        raise ConfigError(f"--buckets {text!r} is not COLUMN:EDGE,EDGE,...",
                          hint="e.g. --buckets fng:0,25,45,55,76,101")
    col, _, rest = text.partition(":")
    col = _ALIASES.get(col.strip(), col.strip())
    try:
        edges = tuple(float(x) for x in rest.replace(" ", "").split(",") if x)
    except ValueError:
        raise ConfigError(f"--buckets {text!r}: the edges must be numbers",
                          hint="e.g. --buckets fng:0,25,45,55,76,101") from None
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ConfigError(f"--buckets {text!r}: give at least two strictly increasing edges",
                          hint="buckets are [edge_i, edge_i+1): fng:0,25,45,55,76,101")
    return Buckets(col, edges)


@dataclass
class SignalStudy:
    """Result of :func:`study`: a labelled summary table, the per-day outcomes, settings."""

    table: pd.DataFrame  # one row per (group, horizon); see TABLE_COLUMNS
    days: pd.DataFrame  # one row per (group, day): entry, ret/mae/mfe per horizon, drawdown
    settings: dict[str, Any]
    null_means: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    def groups(self) -> list[str]:
        return list(dict.fromkeys(self.table["group"]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready document (schema ``flushback.study/1``; no NaN)."""
        return {
            "schema_id": STUDY_SCHEMA,
            "settings": _clean(self.settings),
            "table": [_clean(r) for r in self.table.to_dict("records")],
            "days": [_clean(r) for r in self.days.to_dict("records")],
        }

    def write(self, out_dir: str | Path, *, png: bool = True) -> dict[str, Path]:
        """Write ``study.json``, ``study_table.csv``, ``study_days.csv``, ``study.html`` (plotly)
        and ``study.png`` (matplotlib, Agg) into ``out_dir``; returns the paths by kind."""
        from flushback.backtests.reports.schema import write_text_atomic
        from flushback.backtests.reports.study_plots import study_html, study_png

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": out / "study.json", "table_csv": out / "study_table.csv",
            "days_csv": out / "study_days.csv", "html": out / "study.html",
        }
        write_text_atomic(paths["json"], json.dumps(self.to_dict(), indent=1, allow_nan=False)
                          + "\n")
        write_text_atomic(paths["table_csv"], self.table.to_csv(
            index=False, float_format="%.17g", lineterminator="\n"))
        days = self.days.copy()
        for c in days.columns:
            if pd.api.types.is_datetime64_any_dtype(days[c]):
                days[c] = days[c].map(iso_z)
        write_text_atomic(paths["days_csv"], days.to_csv(
            index=False, float_format="%.17g", lineterminator="\n"))
        write_text_atomic(paths["html"], study_html(self))
        if png:
            paths["png"] = out / "study.png"
            study_png(self, paths["png"])
        return paths


def _clean(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, pd.Timestamp):
        return iso_z(obj)
    if obj is pd.NaT:
        return None
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _per_day(values: np.ndarray) -> dict[str, Any]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {"per_day_n": 0, "per_day_mean": None, "per_day_median": None,
                "per_day_win_rate": None}
    return {"per_day_n": int(v.size), "per_day_mean": float(v.mean()),
            "per_day_median": float(np.median(v)), "per_day_win_rate": float(np.mean(v > 0))}


def _trigger_mask(frame: pd.DataFrame, signal: Any) -> pd.Series:
    from flushback.signals import build_signal

    sig = build_signal(signal)
    if sig.kind != "bool":
        raise ConfigError(f"'{sig.name}' is a float strength, not a trigger",
                          hint="study its trigger variant (oversold_rsi, extreme_fear, ...) or "
                          "bucket the series with --buckets")
    return sig.compute(frame).astype(bool)


def study(
    frame: pd.DataFrame,
    signal: Any = None,
    *,
    buckets: str | Buckets | None = None,
    horizons: Sequence[int] = DEFAULT_STUDY_HORIZONS,
    start: Any = None,
    end: Any = None,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    alpha: float = 0.05,
    cluster: Literal["mean", "first"] = "mean",
    label: str | None = None,
) -> SignalStudy:
    """Forward returns after a signal's triggers (or every bar), optionally grouped by buckets.

    ``frame``: an assembled frame (``flushback.data.load_frame(...).frame``) with the history
    the signal needs before ``start``. ``signal``: a registered name, a config dict or a Signal;
    None = every bar. ``buckets``: ``"fng:0,25,45,55,76,101"`` or :class:`Buckets`.
    ``start``/``end`` bound the trigger bars and the baseline period (inclusive, UTC; never
    before the signal is valid: its inputs exist and its warm-up has elapsed); the
    forward returns of the last bars may run past ``end`` into later data when the frame has it
    (the outcome of a day does not change what was known on it).

    Returns a :class:`SignalStudy`; see the module docstring for the definitions.
    """
    if signal is None and buckets is None:
        raise ConfigError("nothing to study: give a signal, buckets, or both",
                          hint="e.g. study(frame, 'extreme_fear') or buckets='fng:0,25,...'")
    horizons = tuple(int(h) for h in horizons)
    bk = parse_buckets(buckets)
    idx = frame.index
    t0 = _utc(start) if start is not None else idx[0]
    t1 = _utc(end) if end is not None else idx[-1]
    if t1 < t0:
        raise ConfigError(f"the study ends ({t1}) before it starts ({t0})")
    valid_from = None
    if signal is not None:
        # the study (and its baseline period) starts where the signal can fire at all: its
        # inputs exist and its warm-up has elapsed (flushback.backtests.run.warmup)
        from flushback.backtests.run.warmup import first_valid_position
        from flushback.data.intervals import bar_interval
        from flushback.signals import build_signal

        sig = build_signal(signal)
        if sig.kind != "bool":
            _trigger_mask(frame, sig)  # raises the float-strength error
        pos = first_valid_position(sig, frame, bar_interval(frame))
        if pos is None:
            raise DataError("the signal is never valid on this frame (missing inputs or too "
                            "little history for its warm-up)", hint="load more data")
        valid_from = idx[pos]
        t0 = max(t0, valid_from)
    in_window = pd.Series((idx >= t0) & (idx <= t1), index=idx)
    if not in_window.any():
        raise DataError(f"no bar between {t0} and {t1}", hint="widen --start/--end")
    if signal is not None:
        mask = _trigger_mask(frame, signal) & in_window
        name = label or _signal_label(signal)
    else:
        mask = in_window.copy()
        name = label or ALL_BARS
    groups: dict[str, pd.Series] = {}
    if bk is not None:
        if bk.column not in frame.columns:
            raise DataError(f"the frame has no column {bk.column!r} to bucket",
                            column=bk.column, hint="load it with the externals it comes from "
                            "(fng -> externals=['fng'])")
        assigned = bk.assign(frame[bk.column])
        have = assigned.notna() & in_window
        if not have.any():
            raise DataError(f"no {bk.column} value inside {t0} .. {t1}", column=bk.column,
                            hint="widen --start/--end")
        # the study period of a bucket table is where the series exists
        first_bar, last_bar = idx[have.to_numpy()][0], idx[have.to_numpy()][-1]
        if signal is None:
            groups[ALL_BARS] = have
        for lab in bk.labels():
            groups[lab] = mask & (assigned == lab)
        period = (first_bar, last_bar)
    else:
        groups[name] = mask
        period = (idx[in_window.to_numpy()][0], idx[in_window.to_numpy()][-1])
    interval = frame.attrs.get("interval", "1d")
    rows, day_frames = [], []
    null_means: dict[tuple[str, int], np.ndarray] = {}
    for gname, gmask in groups.items():
        events = events_from_triggers(gmask, interval, prefix="bar")
        if not events:
            for h in horizons:
                rows.append({"group": gname, "horizon": h, **_per_day(np.array([])),
                             "per_cluster_n": 0})
            continue
        test = gname != ALL_BARS  # the unconditional row: per-day figures only, no test
        if test:
            es = run_event_study(frame, events, horizons=horizons, draws=draws, seed=seed,
                                 alpha=alpha, cluster=cluster, period=period)
            out, summ = es.outcomes, es.summary.set_index("horizon")
        else:
            es = None
            out, summ = forward_outcomes(frame, events, horizons), pd.DataFrame()
        ok = out[out["status"] == "ok"]
        dd = ok["drawdown_ahead"].to_numpy(dtype=float) if len(ok) else np.array([])
        dd = dd[np.isfinite(dd)]
        for h in horizons:
            r = ok[f"ret_{h}"].to_numpy(dtype=float) if len(ok) else np.array([])
            m = ok[f"mae_{h}"].to_numpy(dtype=float) if len(ok) else np.array([])
            m = m[np.isfinite(m)]
            s = summ.loc[h] if h in summ.index else pd.Series(dtype=float)
            row: dict[str, Any] = {"group": gname, "horizon": h, **_per_day(r)}
            row.update({
                "per_cluster_n": int(s.get("n_clusters", 0) or 0) if test else None,
                "per_cluster_mean": _num(s.get("ret_mean")),
                "per_cluster_median": _num(s.get("ret_median")),
                "per_cluster_win_rate": _num(s.get("win_rate")),
                "per_cluster_ci_lo": _num(s.get("ret_ci_lo")),
                "per_cluster_ci_hi": _num(s.get("ret_ci_hi")),
                "baseline_mean": _num(s.get("ret_baseline")) if test else None,
                "baseline_lo": _num(s.get("ret_baseline_lo")) if test else None,
                "baseline_hi": _num(s.get("ret_baseline_hi")) if test else None,
                "p_value": _num(s.get("ret_p_value")) if test else None,
                "p_greater": _num(s.get("ret_p_greater")) if test else None,
                "mae_mean": float(m.mean()) if m.size else None,
                "mae_worst": float(m.min()) if m.size else None,
                "drawdown_ahead_median": float(np.median(dd)) if dd.size else None,
                "drawdown_ahead_worst": float(dd.min()) if dd.size else None,
            })
            rows.append(row)
            if es is not None and (h, "ret") in es.null_means:
                null_means[(gname, h)] = es.null_means[(h, "ret")]
        keep = ["day", "entry_time", "entry_price", "event_close",
                *[f"{m}_{h}" for h in horizons for m in ("ret", "mae", "mfe")],
                "drawdown_ahead", "days_to_low"]
        d = ok[[c for c in keep if c in ok.columns]].copy()
        d.insert(0, "group", gname)
        day_frames.append(d)
    table = pd.DataFrame(rows)
    days = pd.concat(day_frames, ignore_index=True) if day_frames else pd.DataFrame()
    settings = {
        "signal": None if signal is None else _signal_config(signal),
        "label": name,
        "buckets": None if bk is None else {"column": bk.column, "edges": list(bk.edges),
                                            "labels": bk.labels()},
        "horizons": list(horizons),
        "symbol": frame.attrs.get("symbol"),
        "interval": interval,
        "signal_valid_from": None if valid_from is None else iso_z(valid_from),
        "period_start": iso_z(period[0]),
        "period_end": iso_z(period[1]),
        "entry": "open of the first bar after the trigger bar's close",
        "draws": int(draws), "seed": int(seed), "alpha": float(alpha), "cluster": cluster,
        "baseline": "random entry bars in the study period, clusters placed with their spacing",
    }
    return SignalStudy(table=table, days=days, settings=settings, null_means=null_means)


def _utc(value: Any) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _signal_config(signal: Any) -> dict[str, Any]:
    from flushback.signals import build_signal

    return build_signal(signal).to_config()


def _signal_label(signal: Any) -> str:
    cfg = _signal_config(signal)
    return str(cfg.get("type"))


EVERY_BAR = ("every-bar", "every_bar", "bars")


def resolve_target(target: str | None) -> tuple[dict[str, Any] | None, Any]:
    """``SIGNAL_OR_SPEC`` -> (signal config or None for every bar, the spec or None).

    Accepted: nothing / ``every-bar``; a JSON signal config (``'{"type": ...}'``); a registered
    signal name; a spec (a ``.toml`` path or a shipped name: its ``[signals.entry]``).
    """
    from flushback.backtests.run.spec import list_specs, load_spec
    from flushback.data.suggest import did_you_mean
    from flushback.signals import list_signals
    from flushback.signals.registry import config_from_text

    if target is None or target.strip() in EVERY_BAR:
        return None, None
    text = target.strip()
    if text.startswith("{"):
        return config_from_text(text), None
    if text in list_signals():
        return {"type": text}, None
    if text.endswith(".toml") or Path(text).is_file() or text in list_specs():
        spec = load_spec(text)
        if "entry" not in spec.signals:
            raise ConfigError(f"spec {spec.name!r} has no [signals.entry] to study",
                              hint="study a signal by name, or add [signals.entry]")
        return dict(spec.signals["entry"]), spec
    raise ConfigError(
        f"{text!r} is neither a signal nor a spec"
        + did_you_mean(text, [*list_signals(), *list_specs()]),
        hint="`flushback signals list` lists the signals; shipped specs: "
        + ", ".join(list_specs()),
    )


def study_data(target: str | None, *, symbol: str | None = None, interval: str | None = None,
               start: Any = None, end: Any = None, data_dir: Any = None,
               buckets: str | Buckets | None = None) -> tuple[pd.DataFrame, Any, dict[str, Any]]:
    """Load the frame a study of ``target`` needs: (frame, signal config or None, window).

    A spec supplies symbol, interval, externals and window unless given here; the frame starts
    early enough for the signal's warm-up before ``start``. Externals: the spec's, else all
    the defaults (F&G, liquidations, funding, open interest).
    """
    from flushback.data import load_frame
    from flushback.signals import build_signal
    from flushback.signals.base import duration

    cfg, spec = resolve_target(target)
    if spec is not None:
        symbol = symbol or spec.data.symbol
        interval = interval or spec.data.interval
        start = start if start is not None else spec.data.start
        end = end if end is not None else spec.data.end
        externals: Any = spec.data.externals
        externals = dict(externals) if isinstance(externals, Mapping) else tuple(externals)
    else:
        externals = ("fng", "liquidations", "funding", "open_interest")
    symbol, interval = symbol or "BTC-USD", interval or "1d"
    bk = parse_buckets(buckets)
    if bk is not None and isinstance(externals, tuple):
        need = {"fng": "fng", "funding_rate": "funding"}.get(bk.column)
        if need and need not in externals:
            externals = (*externals, need)
    load_start = None
    if start is not None and cfg is not None:
        step = duration(interval)
        load_start = _utc(start) - step * (2 * build_signal(cfg).warmup_for(step) + 10)
    af = load_frame(symbol, interval, externals=externals, start=load_start, data_dir=data_dir)
    return af.frame, cfg, {"start": start, "end": end, "fingerprints": af.fingerprints}
