"""Optimization: optuna studies over a spec's declared search space, walk-forward folds,
storages (journal file, SQLite, PostgreSQL), worker processes, samplers, the overfitting
statistics (``overfitting``: PBO by CSCV and the Deflated Sharpe Ratio) and the report's
optimization section. The only room that imports optuna.

May import: ``flushback.backtests.run`` (to evaluate a configuration), ``flushback.data``,
``flushback.signals``, ``flushback.strategies``, ``flushback.backtests.reports.schema``.
"""
