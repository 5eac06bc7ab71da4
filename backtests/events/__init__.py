"""Flush events: the catalogue's detector (``detector``), the event study with its
random-day baseline (``study``), signal studies and buckets (``signal_study``), today's setup
and its nearest analogues (``today``), and what a strategy did at each event (``strategy``).
Everything here looks forward (forward returns, outcomes) and says so; ``flushback.signals``
never imports it.

May import: ``flushback.data``, ``flushback.signals``, ``flushback.backtests.run``,
``flushback.backtests.reports.schema``.
"""

#: random-day draws of the baseline: the one default of every event study (``flushback events
#: study``, the events section of a run's report, ``fb.events.study``, the signal study), so
#: the same events give the same p-values everywhere
DEFAULT_DRAWS = 10_000
