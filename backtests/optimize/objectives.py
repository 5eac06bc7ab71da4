"""What a study optimizes: the metrics it can score (:data:`OBJECTIVE_METRICS`), their
directions (``--objective`` / ``--directions``, :func:`parse_objectives`) and the value optuna
is told for a backtest's metrics (:func:`objective_value`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flushback.data.errors import ConfigError

# metric name -> default direction ("max_drawdown" is scored by its magnitude, so "min" is the
# sensible direction whatever sign convention the metrics module uses)
OBJECTIVE_METRICS: dict[str, str] = {
    "sharpe": "maximize",
    "sortino": "maximize",
    "calmar": "maximize",
    "cagr": "maximize",
    "total_return": "maximize",
    "profit_factor": "maximize",
    "win_rate": "maximize",
    "expectancy": "maximize",
    "max_drawdown": "minimize",
    "volatility": "minimize",
    "exposure": "minimize",
}


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # "maximize" | "minimize"

    @property
    def label(self) -> str:
        return f"{'max' if self.direction == 'maximize' else 'min'}_{self.metric}"


def parse_objectives(objective: str | None = None, directions: str | None = None) -> tuple[
        Objective, ...]:
    """``--objective sharpe`` or ``--directions max_sharpe,min_max_drawdown``."""
    from flushback.signals.base import did_you_mean

    out: list[Objective] = []
    if directions:
        for item in [s.strip() for s in directions.split(",") if s.strip()]:
            head, _, metric = item.partition("_")
            if head not in ("max", "min") or not metric:
                raise ConfigError(f"direction '{item}' must look like max_<metric> or min_<metric>",
                                  hint="e.g. --directions max_sharpe,min_max_drawdown")
            if metric not in OBJECTIVE_METRICS:
                raise ConfigError(f"unknown objective metric '{metric}'"
                                  + did_you_mean(metric, OBJECTIVE_METRICS),
                                  hint=f"choose from {', '.join(OBJECTIVE_METRICS)}")
            out.append(Objective(metric, "maximize" if head == "max" else "minimize"))
        if objective and objective != out[0].metric:
            raise ConfigError("give either --objective or --directions, not both")
        return tuple(out)
    metric = objective or "sharpe"
    if metric not in OBJECTIVE_METRICS:
        raise ConfigError(f"unknown objective '{metric}'" + did_you_mean(metric, OBJECTIVE_METRICS),
                          hint=f"choose from {', '.join(OBJECTIVE_METRICS)}")
    return (Objective(metric, OBJECTIVE_METRICS[metric]),)


def objective_value(metrics: Mapping[str, Any], metric: str) -> float:
    """The value optuna sees; undefined metrics (no trades, flat equity) become 0.0."""
    v = metrics.get(metric)
    try:
        v = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(v):
        return 0.0
    return abs(v) if metric == "max_drawdown" else v
