"""The audit: look-ahead, warm-up and data-timing checks (``checks``) run on a spec by
re-running it on data cut at chosen moments (``run``).

May import: ``flushback.data``, ``flushback.signals``, ``flushback.backtests.run``,
``flushback.backtests.reports.schema``.
"""
