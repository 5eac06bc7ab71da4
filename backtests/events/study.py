"""Event study (FORWARD-LOOKING): what happened after each flush, against random days.

Everything in this module looks into the future of an event on purpose; it lives in
``flushback.backtests`` and nothing under ``flushback.signals`` may import it.

Time rule (the same as the backtest fill rule)
----------------------------------------------
An event is *known* at a moment ``known_at``: for a catalog event dated D (a UTC day) that is the
close of the daily bar D, i.e. D + 1 day 00:00 UTC; for a signal trigger on bar t it is the close
of bar t (t + interval). The study enters at the OPEN of the first bar that opens at or after
``known_at`` (the "entry bar", D + 1 on daily data).

For a horizon of h days (``hb = h / interval`` bars) and entry bar e:

- ``ret_h``   = close[e + hb - 1] / open[e] - 1          (hold hb full bars)
- ``mae_h``   = min(low[e .. e + hb - 1]) / open[e] - 1   (maximum adverse excursion, <= 0)
- ``mfe_h``   = max(high[e .. e + hb - 1]) / open[e] - 1  (maximum favourable excursion, >= 0)

Horizon-free outcomes per event: the *pre-event close* (close of the last bar that closed at or
before the start of the event day, D 00:00 UTC, i.e. bar D - 1 on daily data); the *days to
recover* it (first close at or after ``known_at`` that is >= the pre-event close, counted in days
from ``known_at``; None when it never did within the data); the *drawdown still ahead* (lowest
low over the longest horizon after ``known_at``, relative to the event bar's close, capped at 0)
and the days until that low.

Baseline and inference
----------------------
The baseline is the same statistic for random entry bars drawn from the same period
(default: from the first to the last event), by a seeded bootstrap (numpy ``Generator``; 10,000
draws by default), optionally matched on the volatility regime (tercile of trailing 30-day
realised volatility at the event bar).

Overlap: at horizon h, events whose holding windows overlap (entries fewer than hb bars apart)
are merged into one *cluster* (transitively). A cluster counts once: its value is the mean of
its members (``cluster="mean"``) or its first member (``cluster="first"``, the trade a single
account could actually take). The null distribution is built the same way: each draw places
every cluster, with its members' relative spacing kept, at a random start such that no two
placed clusters overlap (at least hb bars from one cluster's last member to the next one's
first, the rule that separates the real clusters) and every member enters in the baseline
period with its whole window in the data. Without overlaps the placed clusters are as many
independent units as the real ones, so the event mean and the baseline are the same statistic
of the same number of independent units. Unmatched, the placement is uniform over all
non-overlapping placements (exact: random order + uniform gaps, see :func:`_place_clusters`),
which is the conditional law of the clusters of uniformly random event days; matched on
volatility, clusters are placed one at a time among their regime's free dates. Random clusters
that may overlap make the baseline's spread too wide and the test conservative.

- event mean interval: ``scipy.stats.bootstrap`` over cluster values (percentile, seeded);
- baseline band: the (alpha/2, 1 - alpha/2) quantiles of the null distribution of the mean;
- p-values: one-sided ``p_greater`` = (1 + #{null >= obs}) / (draws + 1), ``p_less`` likewise,
  and two-sided ``p_value`` = min(1, 2 * min(p_greater, p_less)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from flushback.backtests.events import DEFAULT_DRAWS
from flushback.backtests.run.timefmt import iso_z
from flushback.data.errors import ConfigError, DataError
from flushback.data.intervals import duration, frame_step

__all__ = [
    "DEFAULT_HORIZONS",
    "StudyEvent",
    "EventStudy",
    "events_from_catalog",
    "events_from_triggers",
    "forward_outcomes",
    "run_event_study",
    "HorizonSummary",
    "EventOutcome",
    "StrategyEventRow",
    "EventsSection",
]

DEFAULT_HORIZONS: tuple[int, ...] = (1, 3, 7, 14, 30, 90)
METRICS = ("ret", "mae", "mfe")
_DAY = pd.Timedelta(days=1)


# --------------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyEvent:
    """One event to study: an id, a label and the moment it became known (UTC)."""

    id: str
    name: str
    day_start: pd.Timestamp  # start of the event day/bar (UTC): the pre-event close is before it
    known_at: pd.Timestamp  # the event is known here; entry at the first bar opening at/after it


def events_from_catalog(catalog: Iterable[Any]) -> list[StudyEvent]:
    """Catalog events (``FlushEvent``): anchored on their ``start`` day, known at its close."""
    out = []
    for ev in catalog:
        day = pd.Timestamp(ev.start, tz="UTC")
        out.append(StudyEvent(id=ev.id, name=ev.name, day_start=day, known_at=day + _DAY))
    return out


def events_from_triggers(
    triggers: pd.Series | pd.DatetimeIndex,
    interval: pd.Timedelta | str,
    *,
    prefix: str = "trigger",
) -> list[StudyEvent]:
    """Events from signal triggers: bar-open timestamps (or a bool Series) on ``interval`` bars.

    A trigger on bar t is known at t + interval (its close).
    """
    step = duration(interval)
    if isinstance(triggers, pd.Series):
        idx = triggers.index[triggers.fillna(False).astype(bool).to_numpy()]
    else:
        idx = pd.DatetimeIndex(triggers)
    idx = pd.DatetimeIndex(idx)
    if idx.tz is None:
        raise DataError(
            "trigger timestamps are naive", hint="localize bar times to UTC before the study"
        )
    idx = idx.tz_convert("UTC")
    return [
        StudyEvent(
            id=f"{prefix}-{t.strftime('%Y-%m-%dT%H:%M')}",
            name=f"{prefix} {t.strftime('%Y-%m-%d %H:%M')}",
            day_start=t,
            known_at=t + step,
        )
        for t in idx.sort_values()
    ]


# --------------------------------------------------------------------------------------------
# outcomes (forward-looking)
# --------------------------------------------------------------------------------------------
def _check_frame(frame: pd.DataFrame) -> None:
    missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
    if missing:
        raise DataError(
            f"the price frame lacks column(s) {', '.join(missing)}",
            column=missing[0],
            hint="pass an OHLC frame (flushback.data.load_frame(...).frame)",
        )
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
        raise DataError(
            "the price frame needs a tz-aware (UTC) DatetimeIndex of bar open times",
            hint="index the frame by UTC bar open time",
        )
    if not frame.index.is_monotonic_increasing or frame.index.has_duplicates:
        raise DataError("the price frame index is unsorted or has duplicates")
    bad = frame[["open", "high", "low", "close"]].isna().any(axis=1)
    if bad.any():
        raise DataError(
            "NaN prices in the frame",
            timestamps=frame.index[bad.to_numpy()][:5],
            hint="clean or trim the price data first",
        )


def _horizon_bars(horizons: Sequence[int], step: pd.Timedelta) -> list[int]:
    out = []
    for h in horizons:
        if int(h) != h or h <= 0:
            raise ConfigError(f"horizon {h!r} is not a positive whole number of days")
        bars = pd.Timedelta(days=int(h)) / step
        if abs(bars - round(bars)) > 1e-9:
            raise ConfigError(
                f"horizon {h} days is not a whole number of {step} bars",
                hint="use daily horizons on 1h/4h/1d bars",
            )
        out.append(int(round(bars)))
    return out


@dataclass
class _Arrays:
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    index: pd.DatetimeIndex
    step: pd.Timedelta

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _Arrays:
        _check_frame(frame)
        return cls(
            open=frame["open"].to_numpy(dtype="float64"),
            high=frame["high"].to_numpy(dtype="float64"),
            low=frame["low"].to_numpy(dtype="float64"),
            close=frame["close"].to_numpy(dtype="float64"),
            index=pd.DatetimeIndex(frame.index).tz_convert("UTC"),
            step=frame_step(frame),
        )

    def entry_pos(self, known_at: pd.Timestamp) -> int:
        """First bar opening at or after ``known_at`` (len(index) when none)."""
        return int(self.index.searchsorted(known_at, side="left"))

    def metric_arrays(self, hb: int) -> dict[str, np.ndarray]:
        """ret/mae/mfe for an entry at every bar (NaN where the horizon runs past the data)."""
        n = len(self.open)
        out = {m: np.full(n, np.nan) for m in METRICS}
        if hb > n:
            return out
        from numpy.lib.stride_tricks import sliding_window_view

        lows = sliding_window_view(self.low, hb).min(axis=1)  # window starting at e
        highs = sliding_window_view(self.high, hb).max(axis=1)
        m = n - hb + 1
        entry = self.open[:m]
        out["ret"][:m] = self.close[hb - 1 :] / entry - 1.0
        out["mae"][:m] = lows / entry - 1.0
        out["mfe"][:m] = highs / entry - 1.0
        return out


def forward_outcomes(
    frame: pd.DataFrame,
    events: Sequence[StudyEvent],
    horizons: Sequence[int] = DEFAULT_HORIZONS,
) -> pd.DataFrame:
    """One row per event with entry, per-horizon ret/mae/mfe and the horizon-free outcomes.

    FORWARD-LOOKING by design (outcomes after the event). Events whose entry bar is not in the
    frame get NaN outcomes (column ``status`` says why); horizons that run past the data are NaN.
    """
    arr = _Arrays.of(frame)
    hbs = _horizon_bars(horizons, arr.step)
    n = len(arr.open)
    max_hb = max(hbs) if hbs else 1
    rows = []
    for ev in events:
        e = arr.entry_pos(ev.known_at)
        row: dict[str, Any] = {"event_id": ev.id, "name": ev.name, "day": ev.day_start}
        # pre-event close: the last bar whose close <= day_start
        pre = int(arr.index.searchsorted(ev.day_start - arr.step, side="right")) - 1
        row["pre_event_close"] = arr.close[pre] if pre >= 0 else np.nan
        if e >= n or e == 0:
            row.update(status="no entry bar in data", entry_pos=-1, entry_time=pd.NaT)
            rows.append(row)
            continue
        if arr.index[e] - ev.known_at >= arr.step:
            row.update(status="gap: no bar right after the event", entry_pos=-1, entry_time=pd.NaT)
            rows.append(row)
            continue
        row.update(status="ok", entry_pos=e, entry_time=arr.index[e], entry_price=arr.open[e])
        row["event_close"] = arr.close[e - 1]
        for h, hb in zip(horizons, hbs, strict=True):
            last = e + hb - 1
            if last < n:
                lo = arr.low[e : last + 1].min()
                hi = arr.high[e : last + 1].max()
                row[f"exit_time_{h}"] = arr.index[last] + arr.step
                row[f"ret_{h}"] = arr.close[last] / arr.open[e] - 1.0
                row[f"mae_{h}"] = lo / arr.open[e] - 1.0
                row[f"mfe_{h}"] = hi / arr.open[e] - 1.0
            else:
                row[f"exit_time_{h}"] = pd.NaT
                row[f"ret_{h}"] = row[f"mae_{h}"] = row[f"mfe_{h}"] = np.nan
        # days to recover the pre-event close (first close at or after known_at)
        pc = row["pre_event_close"]
        rec = np.nan
        if np.isfinite(pc):
            hit = np.flatnonzero(arr.close[e - 1 :] >= pc)
            if hit.size:
                k = e - 1 + int(hit[0])
                rec = (arr.index[k] + arr.step - ev.known_at) / _DAY
        row["days_to_recover"] = rec
        end = min(n, e + max_hb)
        seg = arr.low[e:end]
        j = int(np.argmin(seg))
        row["drawdown_ahead"] = min(0.0, seg[j] / row["event_close"] - 1.0)
        row["days_to_low"] = (arr.index[e + j] + arr.step - ev.known_at) / _DAY
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# clustering, baseline, inference
# --------------------------------------------------------------------------------------------
def _clusters(positions: np.ndarray, hb: int) -> list[np.ndarray]:
    """Group entry positions: consecutive entries fewer than hb bars apart share a cluster."""
    if positions.size == 0:
        return []
    order = np.argsort(positions, kind="stable")
    pos = positions[order]
    groups: list[list[int]] = [[int(order[0])]]
    for k in range(1, pos.size):
        if pos[k] - pos[k - 1] < hb:
            groups[-1].append(int(order[k]))
        else:
            groups.append([int(order[k])])
    return [np.asarray(g) for g in groups]


def _place_clusters(
    spans: Sequence[int],
    lo: int,
    last: int,
    hb: int,
    draws: int,
    rng: np.random.Generator,
    buckets: Sequence[int] | None = None,
    vol_bucket: np.ndarray | None = None,
    horizon: int = 0,
) -> np.ndarray:
    """Random placements of the clusters that never overlap, as the real ones never do.

    Cluster k spans ``spans[k]`` bars from its first to its last member; placed at start
    ``s_k`` its members enter in ``[lo, last]`` and two clusters are at least ``hb`` bars apart
    (last member of one to first of the next), the rule that separates the real clusters.
    Returns ``draws x K`` start positions.

    Unmatched: uniform over all such placements, exactly. A random order of the clusters and
    the K + 1 free gaps around them (summing to the slack ``F``) define a placement; every order
    has the same number of gap vectors, so a uniform order and a uniform composition of F into
    K + 1 parts (Dirichlet(1, ..., 1)-multinomial: uniform over compositions) give a uniform
    placement. Matched on volatility: the clusters are placed one at a time, in a random order
    per draw, each uniformly among the starts in its regime that clear the clusters already
    placed.
    """
    d = np.asarray(spans, dtype=np.int64)
    k = d.size
    slack = (last - lo) - int(d.sum()) - (k - 1) * hb
    if slack < 0:
        raise DataError(
            f"the {k} event clusters at horizon {horizon}d do not fit without overlap in the "
            "baseline period",
            hint="widen the baseline period (period=...) or use fewer or shorter horizons",
        )
    order = np.argsort(rng.random((draws, k)), axis=1)
    if buckets is None:
        gaps = rng.multinomial(slack, rng.dirichlet(np.ones(k + 1), size=draws))
        span = d[order] + hb  # room each cluster takes before the next one may start
        before = np.cumsum(span, axis=1) - span
        ordered = lo + np.cumsum(gaps[:, :k], axis=1) + before
        out = np.empty((draws, k), dtype=np.int64)
        np.put_along_axis(out, order, ordered, axis=1)
        return out
    assert vol_bucket is not None
    out = np.full((draws, k), -(10**12), dtype=np.int64)  # unplaced: far away from everything
    placed_span = np.zeros((draws, k), dtype=np.int64)
    rows_all = np.arange(draws)
    for j in range(k):
        for c in range(k):
            rows = rows_all[order[:, j] == c]
            if rows.size == 0:
                continue
            cand = np.arange(lo, last - d[c] + 1)
            cand = cand[vol_bucket[cand] == buckets[c]]
            if cand.size == 0:
                raise DataError(
                    f"no baseline dates available at horizon {horizon}d in the event's "
                    "volatility regime",
                    hint="widen the baseline period or drop --match-volatility",
                )
            todo = rows
            for _ in range(1000):
                s = cand[rng.integers(0, cand.size, size=todo.size)]
                other, o_span = out[todo], placed_span[todo]
                clash = ((s[:, None] < other + o_span + hb)
                         & (other < s[:, None] + d[c] + hb)).any(axis=1)
                ok = todo[~clash]
                out[ok, c], placed_span[ok, c] = s[~clash], d[c]
                todo = todo[clash]
                if todo.size == 0:
                    break
            else:
                raise DataError(
                    f"cannot place the {k} event clusters at horizon {horizon}d without "
                    "overlap inside their volatility regimes",
                    hint="widen the baseline period or drop --match-volatility",
                )
    return out


def _realised_vol(close: np.ndarray, window: int) -> np.ndarray:
    lr = np.diff(np.log(close), prepend=np.nan)
    return pd.Series(lr).rolling(window, min_periods=window).std().to_numpy()


@dataclass
class EventStudy:
    """Result of :func:`run_event_study`: per-event outcomes, per-horizon summary, settings."""

    outcomes: pd.DataFrame
    summary: pd.DataFrame
    settings: dict[str, Any]
    null_means: dict[tuple[int, str], np.ndarray] = field(default_factory=dict, repr=False)

    def to_section(self, **meta: Any) -> EventsSection:
        """The report section (``events``) for ``write_run(..., sections={"events": ...})``."""
        return EventsSection.from_study(self, **meta)


def run_event_study(
    frame: pd.DataFrame,
    events: Sequence[StudyEvent],
    *,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    alpha: float = 0.05,
    cluster: Literal["mean", "first"] = "mean",
    match_volatility: bool = False,
    vol_window_days: int = 30,
    period: tuple[Any, Any] | None = None,
) -> EventStudy:
    """Forward outcomes of ``events`` on ``frame`` against a seeded random-day baseline.

    ``period`` (start, end) bounds the random entry dates; default: from the first to the last
    event's entry. See the module docstring for the exact definitions.
    """
    if draws < 1:
        raise ConfigError(f"draws must be >= 1, got {draws}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    if cluster not in ("mean", "first"):
        raise ConfigError(f"cluster must be 'mean' or 'first', got {cluster!r}")
    horizons = tuple(int(h) for h in horizons)
    arr = _Arrays.of(frame)
    hbs = _horizon_bars(horizons, arr.step)
    outcomes = forward_outcomes(frame, events, horizons)
    n = len(arr.open)
    rng = np.random.default_rng(seed)
    ok = outcomes[outcomes["status"] == "ok"] if len(outcomes) else outcomes
    entry = ok["entry_pos"].to_numpy(dtype=int) if len(ok) else np.array([], dtype=int)

    # baseline period, as entry positions
    if period is not None:
        p0, p1 = (None if p is None or p == "" else _utc(p) for p in period)
        lo = int(arr.index.searchsorted(p0, side="left")) if p0 is not None else 1
        hi = int(arr.index.searchsorted(p1, side="right")) - 1 if p1 is not None else n - 1
    elif entry.size:
        lo, hi = int(entry.min()), int(entry.max())
    else:
        lo, hi = 1, n - 1
    lo = max(lo, 1)
    in_period = np.zeros(n, dtype=bool)
    in_period[lo : hi + 1] = True

    vol_bucket = None
    vol_window = max(2, int(round(pd.Timedelta(days=vol_window_days) / arr.step)))
    if match_volatility:
        vol = _realised_vol(arr.close, vol_window)
        # regime known at the close of the bar before the entry (the event bar)
        vol_prev = np.concatenate([[np.nan], vol[:-1]])
        ref = vol_prev[in_period & np.isfinite(vol_prev)]
        if ref.size < 3:
            raise DataError("too little data to define volatility regimes for matching")
        edges = np.quantile(ref, [1 / 3, 2 / 3])
        vol_bucket = np.where(np.isfinite(vol_prev), np.searchsorted(edges, vol_prev), -1)

    rows = []
    null_means: dict[tuple[int, str], np.ndarray] = {}
    for h, hb in zip(horizons, hbs, strict=True):
        metrics = arr.metric_arrays(hb)
        have = ok[np.isfinite(ok[f"ret_{h}"].to_numpy(dtype=float))] if len(ok) else ok
        pos = have["entry_pos"].to_numpy(dtype=int) if len(have) else np.array([], dtype=int)
        groups = _clusters(pos, hb)
        row: dict[str, Any] = {
            "horizon": h,
            "bars": hb,
            "n_events": int(pos.size),
            "n_clusters": len(groups),
        }
        if not groups:
            rows.append(row)
            continue
        # cluster layouts: offsets of members from the cluster's first entry
        layouts = []
        for g in groups:
            members = np.sort(pos[g])
            offs = members - members[0] if cluster == "mean" else np.array([0])
            layouts.append((members[0], offs))
        # every member's window must fit in the data: the last entry allowed is n - hb
        starts = _place_clusters(
            [int(pos[g].max() - pos[g].min()) for g in groups], lo, min(hi, n - hb), hb,
            draws, rng, None if vol_bucket is None else
            [int(vol_bucket[start]) for start, _ in layouts], vol_bucket, h,
        )
        for metric in METRICS:
            marr = metrics[metric]
            obs_vals = np.array([marr[start + offs].mean() for start, offs in layouts])
            obs = float(obs_vals.mean())
            null = np.zeros(draws)
            for k, (_, offs) in enumerate(layouts):
                null += np.mean([marr[starts[:, k] + o] for o in offs], axis=0)
            null /= len(layouts)
            null_means[(h, metric)] = null
            p_greater = (1 + int(np.sum(null >= obs))) / (draws + 1)
            p_less = (1 + int(np.sum(null <= obs))) / (draws + 1)
            row[f"{metric}_mean"] = obs
            row[f"{metric}_baseline"] = float(null.mean())
            row[f"{metric}_baseline_lo"] = float(np.quantile(null, alpha / 2))
            row[f"{metric}_baseline_hi"] = float(np.quantile(null, 1 - alpha / 2))
            row[f"{metric}_p_value"] = min(1.0, 2 * min(p_greater, p_less))
            row[f"{metric}_p_greater"] = p_greater
            if metric == "ret":
                row["ret_median"] = float(np.median(obs_vals))
                row["win_rate"] = float(np.mean(obs_vals > 0))
                lo_ci, hi_ci = _bootstrap_ci(obs_vals, alpha, draws, rng)
                row["ret_ci_lo"], row["ret_ci_hi"] = lo_ci, hi_ci
        rows.append(row)
    summary = pd.DataFrame(rows)
    settings = {
        "horizons": list(horizons),
        "draws": int(draws),
        "seed": int(seed),
        "alpha": float(alpha),
        "cluster": cluster,
        "match_volatility": bool(match_volatility),
        "vol_window_days": int(vol_window_days),
        "period_start": arr.index[lo],
        "period_end": arr.index[hi],
        "interval": str(arr.step),
    }
    return EventStudy(outcomes=outcomes, summary=summary, settings=settings, null_means=null_means)


def _utc(value: Any) -> pd.Timestamp:
    """A timestamp in UTC; naive values (e.g. ``"2024-01-01"``) are read as UTC."""
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _bootstrap_ci(
    values: np.ndarray, alpha: float, draws: int, rng: np.random.Generator
) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean (scipy.stats.bootstrap); None when n < 2."""
    if values.size < 2 or np.allclose(values, values[0]):
        return (None, None)
    from scipy import stats

    res = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=1 - alpha,
        n_resamples=min(draws, 10_000),
        method="percentile",
        rng=rng,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


# --------------------------------------------------------------------------------------------
# report section (pydantic)
# --------------------------------------------------------------------------------------------
def _f(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HorizonSummary(_Model):
    horizon: int
    n_events: int
    n_clusters: int
    ret_mean: float | None = None
    ret_median: float | None = None
    ret_ci_lo: float | None = None
    ret_ci_hi: float | None = None
    win_rate: float | None = None
    ret_baseline: float | None = None
    ret_baseline_lo: float | None = None
    ret_baseline_hi: float | None = None
    ret_p_value: float | None = None
    ret_p_greater: float | None = None
    mae_mean: float | None = None
    mae_baseline: float | None = None
    mae_p_value: float | None = None
    mfe_mean: float | None = None
    mfe_baseline: float | None = None
    mfe_p_value: float | None = None


class EventOutcome(_Model):
    event_id: str
    name: str
    day: str
    status: str
    entry_time: str | None = None
    entry_price: float | None = None
    pre_event_close: float | None = None
    event_close: float | None = None
    returns: dict[str, float | None] = {}
    mae: dict[str, float | None] = {}
    mfe: dict[str, float | None] = {}
    days_to_recover: float | None = None
    drawdown_ahead: float | None = None
    days_to_low: float | None = None


class StrategyEventRow(_Model):
    """What one strategy did at one event (see ``flushback.backtests.events.strategy``)."""

    event_id: str
    event_name: str
    event_day: str
    action: Literal["entered", "in_position", "none", "no_data"]
    trade_id: int | None = None
    signal_time: str | None = None
    entry_time: str | None = None
    entry_price: float | None = None
    days_after_event: float | None = None
    exit_time: str | None = None
    exit_price: float | None = None
    exit_reason: str | None = None
    pnl: float | None = None
    return_pct: float | None = None


class EventsSection(_Model):
    """The ``events`` section of report.json (schema ``flushback.events/1``)."""

    schema_id: Literal["flushback.events/1"] = "flushback.events/1"
    source: str = "catalog"
    catalog_version: str | None = None
    symbol: str | None = None
    interval: str | None = None
    horizons: list[int] = []
    baseline: dict[str, Any] = {}
    summary: list[HorizonSummary] = []
    outcomes: list[EventOutcome] = []
    strategy: list[StrategyEventRow] | None = None

    @classmethod
    def from_study(
        cls,
        study: EventStudy | None,
        *,
        source: str = "catalog",
        catalog_version: str | None = None,
        symbol: str | None = None,
        interval: str | None = None,
        strategy: Sequence[StrategyEventRow] | None = None,
    ) -> EventsSection:
        if study is None:
            return cls(
                source=source, catalog_version=catalog_version, symbol=symbol,
                interval=interval, strategy=None if strategy is None else list(strategy),
            )
        s = study.settings
        horizons = list(s["horizons"])
        summary = []
        for rec in study.summary.to_dict("records"):
            summary.append(
                HorizonSummary(
                    horizon=int(rec["horizon"]),
                    n_events=int(rec["n_events"]),
                    n_clusters=int(rec["n_clusters"]),
                    **{
                        k: _f(rec.get(k))
                        for k in HorizonSummary.model_fields
                        if k not in ("horizon", "n_events", "n_clusters")
                    },
                )
            )
        outcomes = []
        for rec in study.outcomes.to_dict("records"):
            outcomes.append(
                EventOutcome(
                    event_id=str(rec["event_id"]),
                    name=str(rec["name"]),
                    day=iso_z(rec["day"]) or "",
                    status=str(rec["status"]),
                    entry_time=iso_z(rec.get("entry_time")),
                    entry_price=_f(rec.get("entry_price")),
                    pre_event_close=_f(rec.get("pre_event_close")),
                    event_close=_f(rec.get("event_close")),
                    returns={str(h): _f(rec.get(f"ret_{h}")) for h in horizons},
                    mae={str(h): _f(rec.get(f"mae_{h}")) for h in horizons},
                    mfe={str(h): _f(rec.get(f"mfe_{h}")) for h in horizons},
                    days_to_recover=_f(rec.get("days_to_recover")),
                    drawdown_ahead=_f(rec.get("drawdown_ahead")),
                    days_to_low=_f(rec.get("days_to_low")),
                )
            )
        baseline = {
            "kind": "random",
            "draws": s["draws"],
            "seed": s["seed"],
            "alpha": s["alpha"],
            "cluster": s["cluster"],
            "matched_on": "volatility_regime" if s["match_volatility"] else None,
            "period_start": iso_z(s["period_start"]),
            "period_end": iso_z(s["period_end"]),
        }
        return cls(
            source=source,
            catalog_version=catalog_version,
            symbol=symbol,
            interval=interval,
            horizons=horizons,
            baseline=baseline,
            summary=summary,
            outcomes=outcomes,
            strategy=None if strategy is None else list(strategy),
        )

    def to_report(self) -> dict[str, Any]:
        """JSON-ready dict (no NaN) for ``write_run(..., sections={"events": ...})``."""
        return self.model_dump(mode="json")
