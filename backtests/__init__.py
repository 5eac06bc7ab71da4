"""flushback.backtests: everything that runs, judges and reports a strategy, in rooms.

- ``run``: a spec, the runner (either engine, chosen through ``flushback.strategies.engines``),
  metrics, warm-up reporting, run folders;
- ``optimize``: optuna studies, folds, storages, workers, samplers, the overfitting statistics,
  the fast trial path and the end-of-study re-check on backtrader;
- ``events``: the flush detector, the event study, signal studies, today's setup, what a
  strategy did at each event (everything that looks forward lives here, by name);
- ``reports``: the report.json schema, derived tables, HTML/Markdown, compare;
- ``audit``: the look-ahead, warm-up and data-timing audit;
- ``cli``: thin typer commands (parse, call, render);
- ``api``: the Python surface behind ``import flushback as fb`` (the CLI calls the same
  functions).

See docs/architecture.md for what each room may import and where a new feature goes.
"""
