"""Optimization: optuna studies over a spec's declared search space, out-of-sample, resumable
and shared by several worker processes or machines. The only room that imports optuna.

The modules, in the order a study uses them:

- ``objectives``: the metrics a study can optimize, their directions, the value optuna is told.
- ``space``: the search space from the declared ``Param`` ranges and the spec's ``[search]``
  table, and feasibility constraints.
- ``folds``: train/test windows (one split, walk-forward folds with an embargo, or the splits
  and backtest paths of combinatorial purged k-fold) and the training chunks a pruner is told
  about. ``stitch``: backtests of several windows chained into one account (the walk-forward
  result, a CPCV split's training segments, the CPCV paths).
- ``evaluator``: the ``Evaluator`` protocol, the per-trial returns codec, and ``SpecEvaluator``
  (a spec's backtest on a window that ends where the window ends); ``fast_trials`` is its
  array path on the fast engine.
- ``storage``: optuna storages from a URL (journal file, SQLite, PostgreSQL), password
  redaction. ``locks``: the cross-process gate (exactly N trials), worker leases and reaping
  the trials of dead workers.
- ``samplers``: samplers and pruners by name, and the reseeding that makes a resumed seeded
  study continue exactly.
- ``config``: ``StudyConfig`` (sent to worker processes), a study's fingerprint, creating or
  loading a fold's study, counting its trials.
- ``workers``: the per-trial loop, the worker processes and ``run_study``; ``batches`` is the
  batched loop (the study in memory, written in batches); ``progress`` the progress display.
- ``analysis``: the statistics of a finished fold (selection, DSR, PBO, importances, the
  out-of-sample backtest); ``overfitting`` holds PBO by CSCV and the Deflated Sharpe Ratio.
- ``section``: the stitched out-of-sample result and ``report.json["optimization"]``.
- ``engine_check``: the winners re-run on backtrader and compared.
- ``study``: ``optimize_spec``, the whole command as a function (``fb.optimize``).
- ``optuna_compat``: every access to optuna's private internals, each with its own test.

May import: ``flushback.backtests.run`` (to evaluate a configuration), ``flushback.data``,
``flushback.signals``, ``flushback.strategies``, ``flushback.backtests.reports.schema``.
"""
