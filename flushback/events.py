"""``fb.events``: the flush-event study from Python (``flushback events study``), on one asset
(``study``) or on several side by side (``study_across``, ``events study --symbols``)."""

from __future__ import annotations

from flushback.backtests.api import study_events as study
from flushback.backtests.api import study_events_across as study_across
from flushback.data.flush_events import load_catalog as catalog

__all__ = ["catalog", "study", "study_across"]
