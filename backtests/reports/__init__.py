"""Reports: the versioned report.json schema (``schema``), the tables derived from a
report (``tables``), HTML and Markdown rendering (``html``), study plots (``study_plots``) and
``compare`` across runs. Reads reports; never runs an engine.

May import: ``flushback.data`` (the flush catalogue), ``flushback.backtests.run.folders`` and
``flushback.backtests.run.timefmt``.
"""
