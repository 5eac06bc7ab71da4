"""Running a spec: the typed spec (``spec``), the runner that loads data once and runs the
reference or the fast engine (``runner``), the metrics (``metrics``, pure functions with the
annualisation explicit), warm-up reporting (``warmup``), run folders on disk (``folders``) and
the one ISO-UTC time format (``timefmt``).

May import: ``flushback.data``, ``flushback.signals``, ``flushback.strategies`` (the engines,
through their public functions), ``flushback.backtests.reports.schema`` (to build report.json).
Never imports optuna, the CLI or another room's internals.
"""
