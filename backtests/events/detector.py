"""Detect flush events in market data with the signals, and score them against the catalog.

Detection uses only information available at each bar (it is built from signals), but the
*scoring* compares against a hand-made catalog of known flushes, so this module lives in
``flushback.backtests``.

Rules
-----
- ``liquidation_spike`` on bars where liquidation data exists (``liq_long_usd`` not NaN and, for
  the z-score method, the signal's baseline warmed up so it can score the bar), the
  ``capitulation`` price/volume PROXY on bars where it does not (``mode="prefer_liquidations"``,
  the default); ``mode="union"`` uses both everywhere.
- Optional fear gate: a trigger counts only if ``extreme_fear`` (with the given threshold) fired
  on that bar or within the ``fear_window_days`` before it.
- Triggers no more than ``cluster_days`` apart join one detected event (transitively). The event
  is dated at its FIRST trigger (the bar where a trader would have known), with its last trigger
  and trigger count kept.
- Scoring: a catalog event is *found* when a detected event overlaps its window widened by
  ``tolerance_days`` on both sides; detected events that match no catalog event are *extra*.
  Only catalog events whose anchor lies inside the scored period count towards recall, and
  only detected events inside it towards precision (the CLI scores from January 1 of the
  catalog's first year, since the catalog does not cover earlier years).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from flushback.data.errors import ConfigError, DataError
from flushback.data.intervals import bar_interval, duration

__all__ = [
    "DetectedEvent",
    "Detection",
    "DetectionScore",
    "detect_flushes",
    "score_detection",
    "cluster_triggers",
]

DEFAULT_LIQ = {"type": "liquidation_spike"}
DEFAULT_PROXY = {"type": "capitulation"}


@dataclass(frozen=True)
class DetectedEvent:
    """A cluster of triggers: first (the event date), last, count and which sources fired."""

    first: pd.Timestamp
    last: pd.Timestamp
    n_triggers: int
    sources: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"detected-{self.first.strftime('%Y-%m-%d')}"


@dataclass
class Detection:
    events: list[DetectedEvent]
    triggers: pd.DataFrame  # bool columns: liquidation_spike, capitulation, fear_gate, trigger
    settings: dict[str, Any] = field(default_factory=dict)

    def study_events(self, interval: pd.Timedelta | str):
        """The detected events as event-study inputs (known at the close of the first trigger)."""
        from flushback.backtests.events.study import StudyEvent

        step = duration(interval)
        return [
            StudyEvent(
                id=e.id,
                name=f"detected {e.first.strftime('%Y-%m-%d')} ({'+'.join(e.sources)})",
                day_start=e.first,
                known_at=e.first + step,
            )
            for e in self.events
        ]


def cluster_triggers(
    triggers: pd.Series, cluster_days: float, sources: Mapping[str, pd.Series] | None = None
) -> list[DetectedEvent]:
    """Merge bool triggers no more than ``cluster_days`` apart into events (dated at the first)."""
    if cluster_days < 0:
        raise ConfigError(f"cluster_days must be >= 0, got {cluster_days}")
    trig = triggers.fillna(False).astype(bool)
    times = trig.index[trig.to_numpy()]
    out: list[DetectedEvent] = []
    if len(times) == 0:
        return out
    gap = pd.Timedelta(days=cluster_days)
    groups: list[list[pd.Timestamp]] = [[times[0]]]
    for t in times[1:]:
        if t - groups[-1][-1] <= gap:
            groups[-1].append(t)
        else:
            groups.append([t])
    for g in groups:
        fired: list[str] = []
        for name, s in (sources or {}).items():
            if bool(s.reindex(pd.DatetimeIndex(g)).fillna(False).astype(bool).any()):
                fired.append(name)
        out.append(DetectedEvent(first=g[0], last=g[-1], n_triggers=len(g), sources=tuple(fired)))
    return out


def detect_flushes(
    frame: pd.DataFrame,
    *,
    liquidation: Mapping[str, Any] | None = None,
    proxy: Mapping[str, Any] | None = None,
    fear: Mapping[str, Any] | float | None = None,
    fear_window_days: int = 3,
    cluster_days: float = 7,
    mode: Literal["prefer_liquidations", "union"] = "prefer_liquidations",
) -> Detection:
    """Run the flush signals over ``frame`` and cluster their triggers into events.

    ``liquidation`` / ``proxy``: signal configs (``build_signal`` dicts; defaults
    ``{"type": "liquidation_spike"}`` / ``{"type": "capitulation"}``). ``fear``: an
    ``extreme_fear`` config or a threshold number; None = no gate.
    """
    from flushback.signals import build_signal

    if mode not in ("prefer_liquidations", "union"):
        raise ConfigError(
            f"mode must be 'prefer_liquidations' or 'union', got {mode!r}",
            hint="prefer_liquidations uses the proxy only where liquidation data is missing",
        )
    liq_cfg = dict(liquidation or DEFAULT_LIQ)
    proxy_cfg = dict(proxy or DEFAULT_PROXY)
    idx = frame.index
    has_liq = (
        frame["liq_long_usd"].notna()
        if "liq_long_usd" in frame.columns
        else pd.Series(False, index=idx)
    )
    if has_liq.any():
        liq_sig = build_signal(liq_cfg)
        liq = liq_sig.compute(frame).fillna(False).astype(bool)
        # "data exists" = the liquidation signal can score the bar: with a z-score method that
        # needs a warmed-up baseline (e.g. the first weeks of a series or of a new reporting
        # regime); until then the proxy stands in
        explain = getattr(liq_sig, "explain", None)
        if callable(explain):
            parts = explain(frame)
            if "z" in parts.columns:
                has_liq = has_liq & parts["z"].notna()
    else:
        liq = pd.Series(False, index=idx)
    cap = build_signal(proxy_cfg).compute(frame).fillna(False).astype(bool)
    if mode == "prefer_liquidations":
        liq_part = liq & has_liq
        cap_part = cap & ~has_liq
    else:
        liq_part, cap_part = liq, cap
    trigger = liq_part | cap_part
    gate = pd.Series(True, index=idx)
    if fear is not None:
        if "fng" not in frame.columns:
            raise DataError(
                "the fear gate needs the 'fng' column", column="fng",
                hint="load the frame with the fng external or drop the fear gate",
            )
        fear_cfg = {"type": "extreme_fear", "threshold": float(fear)} if isinstance(
            fear, int | float
        ) else dict(fear)
        fired = build_signal(fear_cfg).compute(frame).fillna(False).astype(bool)
        step = bar_interval(frame)  # the declared interval, not the first two bars' spacing
        w = max(1, int(np.ceil(pd.Timedelta(days=fear_window_days) / step)) + 1)
        gate = fired.astype(float).rolling(w, min_periods=1).max().astype(bool)
        trigger = trigger & gate
    table = pd.DataFrame(
        {
            "liquidation_spike": liq_part & gate,
            "capitulation": cap_part & gate,
            "liquidation_data": has_liq,
            "fear_gate": gate,
            "trigger": trigger,
        },
        index=idx,
    )
    events = cluster_triggers(
        trigger,
        cluster_days,
        {"liquidation_spike": table["liquidation_spike"], "capitulation": table["capitulation"]},
    )
    settings = {
        "liquidation": liq_cfg,
        "proxy": proxy_cfg,
        "fear": None if fear is None else fear,
        "fear_window_days": fear_window_days,
        "cluster_days": cluster_days,
        "mode": mode,
    }
    return Detection(events=events, triggers=table, settings=settings)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogMatch(_Model):
    event_id: str
    name: str
    start: str
    found: bool
    detected: list[str] = []


class DetectionScore(_Model):
    """Found / missed / extra against the catalog, with recall and precision."""

    n_catalog: int
    n_detected: int
    found: list[CatalogMatch]
    missed: list[CatalogMatch]
    extra: list[str]
    recall: float | None
    precision: float | None
    tolerance_days: int
    period_start: str | None = None
    period_end: str | None = None


def score_detection(
    detected: Iterable[DetectedEvent],
    catalog: Iterable[Any],
    *,
    period: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    tolerance_days: int = 3,
) -> DetectionScore:
    """Match detected events to catalog events (window +- ``tolerance_days``)."""
    det = list(detected)
    tol = pd.Timedelta(days=tolerance_days)
    cat = list(catalog)
    if period is not None:
        lo, hi = period
        cat = [e for e in cat if lo <= pd.Timestamp(e.start, tz="UTC") <= hi]
        det = [d for d in det if d.last >= lo - tol and d.first <= hi]
    matched_det: set[int] = set()
    found: list[CatalogMatch] = []
    missed: list[CatalogMatch] = []
    for ev in cat:
        s = pd.Timestamp(ev.start, tz="UTC") - tol
        e = pd.Timestamp(ev.end, tz="UTC") + tol
        hits = [i for i, d in enumerate(det) if d.first <= e and d.last >= s]
        matched_det.update(hits)
        m = CatalogMatch(
            event_id=ev.id,
            name=ev.name,
            start=ev.start.isoformat(),
            found=bool(hits),
            detected=[det[i].first.strftime("%Y-%m-%d") for i in hits],
        )
        (found if hits else missed).append(m)
    extra = [d.first.strftime("%Y-%m-%d") for i, d in enumerate(det) if i not in matched_det]
    return DetectionScore(
        n_catalog=len(cat),
        n_detected=len(det),
        found=found,
        missed=missed,
        extra=extra,
        recall=(len(found) / len(cat)) if cat else None,
        precision=(len(matched_det) / len(det)) if det else None,
        tolerance_days=tolerance_days,
        period_start=None if period is None else period[0].strftime("%Y-%m-%d"),
        period_end=None if period is None else period[1].strftime("%Y-%m-%d"),
    )
