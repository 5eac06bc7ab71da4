"""The audit: look-ahead (``lookahead``), warm-up (``warmup``) and external-data timing
(``external_timing``) checks, written over the small interfaces and shared comparisons of
``base``, run on a spec by re-running it on data cut at chosen moments (``run``).

May import: ``flushback.data``, ``flushback.signals``, ``flushback.backtests.run``,
``flushback.backtests.reports.schema``.
"""
