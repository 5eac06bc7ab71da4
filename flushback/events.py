"""``fb.events``: the flush-event study from Python (``flushback events study``)."""

from __future__ import annotations

from flushback.backtests.api import study_events as study
from flushback.data.flush_events import load_catalog as catalog

__all__ = ["catalog", "study"]
