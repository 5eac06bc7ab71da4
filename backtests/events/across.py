"""The event study on several assets: one section per asset and the paired comparison with
the reference asset (the first one), event by event.

Did ETH and SOL rebound more than BTC after the catalogued flushes? For each other asset and
horizon, on the events where both it and the reference have a forward return: the number of
events, the mean of the per-event differences (asset minus reference), how many events the
asset did better, and the two-sided Wilcoxon signed-rank p-value of the differences (None
with fewer than two events, or when every difference is zero). The events are the same days
for every asset (dated on the reference), so the differences are paired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AcrossAssets", "PairedRow"]


@dataclass
class PairedRow:
    symbol: str
    reference: str
    horizon: int
    n_events: int
    mean_diff: float | None
    n_better: int
    wilcoxon_p: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _returns(section: Any, horizon: int) -> dict[str, float]:
    out = {}
    for o in section.outcomes:
        r = o.returns.get(str(horizon)) if o.status == "ok" else None
        if r is not None and np.isfinite(r):
            out[o.event_id] = float(r)
    return out


def paired_row(symbol: str, reference: str, a: dict[str, float], b: dict[str, float],
               horizon: int) -> PairedRow:
    """The paired comparison of ``symbol``'s per-event returns ``a`` with the reference's
    ``b`` (event id -> return) at ``horizon``."""
    from scipy import stats

    common = sorted(set(a) & set(b))
    d = np.array([a[e] - b[e] for e in common], dtype="float64")
    p = None
    if d.size >= 2 and np.any(np.abs(d) > 1e-15):
        p = float(stats.wilcoxon(d, zero_method="zsplit").pvalue)
    return PairedRow(symbol=symbol, reference=reference, horizon=horizon,
                     n_events=int(d.size), mean_diff=float(d.mean()) if d.size else None,
                     n_better=int((d > 0).sum()), wilcoxon_p=p)


@dataclass
class AcrossAssets:
    """``sections``: symbol -> the asset's events section (``summary``, ``outcomes``);
    ``paired``: every other asset against the reference, per horizon."""

    symbols: list[str]
    sections: dict[str, Any]
    horizons: list[int]
    paired: list[PairedRow] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return self.symbols[0]

    @classmethod
    def from_sections(cls, sections: dict[str, Any], *, horizons: list[int]) -> AcrossAssets:
        symbols = list(sections)
        ref = symbols[0]
        paired = []
        for h in horizons:
            base = _returns(sections[ref], h)
            for s in symbols[1:]:
                paired.append(paired_row(s, ref, _returns(sections[s], h), base, h))
        return cls(symbols=symbols, sections=sections, horizons=list(horizons), paired=paired)

    def returns(self, horizon: int) -> dict[str, dict[str, float]]:
        """symbol -> {event id: forward return at ``horizon``} (events with an outcome)."""
        return {s: _returns(sec, horizon) for s, sec in self.sections.items()}

    def to_report(self) -> dict[str, Any]:
        return {
            "symbols": self.symbols,
            "reference": self.reference,
            "horizons": self.horizons,
            "studies": {s: sec.to_report() for s, sec in self.sections.items()},
            "paired": [p.to_dict() for p in self.paired],
        }
