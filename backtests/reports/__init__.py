"""Reports: the versioned report.json schema (``schema``, its typed events/optimization/audit
sections in ``schema_sections``, the per-bar series kept beside it in ``long_series``), the
tables derived from a report (``tables``), report.html (``html``: the templates' context;
``figures``: the plotly figures; ``metric_view``: the metrics' plain names, units and
explanations; ``page``: the Jinja2 templates under ``templates/``, tables and the embedded,
compressed charts), the Markdown summary (``markdown``), study plots (``study_plots``) and
``compare`` across runs. Reads reports; never runs an engine.

May import: ``flushback.data`` (the flush catalogue), ``flushback.signals.registry`` (a
signal's declared defaults, for the Fear & Greed guides), ``flushback.backtests.run.folders``
and ``flushback.backtests.run.timefmt``.
"""
