"""The typed ``events``, ``optimization`` and ``audit`` sections of ``report.json``.

Their writers (:mod:`flushback.backtests.events`, :mod:`flushback.backtests.optimize`,
:mod:`flushback.backtests.audit`) own the content and validate it with their own models; these
are the READ side, so that everything that shows a run reads named, typed fields instead of
guessing key names. Each model declares the fields a reader uses and keeps any other field
its writer adds (``extra="allow"``); a model dumps exactly the keys it was given (a field its
writer left out is not invented as ``null``), so ``report.json`` reads back unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

__all__ = [
    "EventsSection",
    "EventHorizonSummary",
    "EventOutcome",
    "StrategyAtEvent",
    "OptimizationSection",
    "FoldComparison",
    "OptTrial",
    "AuditSection",
    "AuditCheck",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        keep = set(self.model_fields_set) | set(self.model_extra or {})
        return {k: v for k, v in data.items() if k in keep}


# --------------------------------------------------------------------------- events
class EventHorizonSummary(_Section):
    """The event study at one horizon: the events' forward return against random days (the
    fields report.html shows; the writer's other statistics are kept as written)."""

    horizon: int
    n_events: int = 0
    n_clusters: int = 0
    ret_mean: float | None = None
    ret_median: float | None = None
    ret_ci_lo: float | None = None
    ret_ci_hi: float | None = None
    win_rate: float | None = None
    ret_baseline: float | None = None
    ret_p_value: float | None = None
    mae_mean: float | None = None
    mae_baseline: float | None = None


class EventOutcome(_Section):
    """The market after one event (forward returns by horizon kept as written)."""

    event_id: str
    name: str = ""
    day: str = ""
    status: str = ""


class StrategyAtEvent(_Section):
    """What the strategy did at one event (the trade's numbers kept as written)."""

    event_id: str
    event_name: str = ""
    event_day: str = ""
    action: str = "none"
    trade_id: int | None = None


class EventsSection(_Section):
    """``report.json["events"]``: the catalog event study on the run's bars and what the
    strategy did at each event (writer: ``flushback.backtests.events.study.EventsSection``)."""

    schema_id: str | None = None
    source: str | None = None
    catalog_version: str | None = None
    horizons: list[int] = []
    baseline: dict[str, Any] = {}
    summary: list[EventHorizonSummary] = []
    outcomes: list[EventOutcome] = []
    strategy: list[StrategyAtEvent] | None = None

    @property
    def draws(self) -> int | None:
        """Random draws of the baseline (None when the study did not run)."""
        value = self.baseline.get("draws")
        return None if value is None else int(value)


# --------------------------------------------------------------------------- optimization
class FoldComparison(_Section):
    """One walk-forward fold: its windows and the objective in- and out-of-sample."""

    fold: int
    train: list[str]
    test: list[str]
    in_sample: dict[str, float | int | None] = {}
    out_of_sample: dict[str, float | int | None] = {}
    dsr: float | None = None
    pbo: float | None = None
    #: a combinatorial purged k-fold split: its training segments and test groups (1-based)
    train_windows: list[list[str]] | None = None
    test_windows: list[list[str]] | None = None
    test_groups: list[int] | None = None


class OptTrial(_Section):
    """One optuna trial as listed in the section."""

    number: int
    state: str = "COMPLETE"
    values: list[float | None] | None = None
    params: dict[str, Any] = {}
    fold: int | None = None

    @property
    def value(self) -> float | None:
        """The first objective's value (None when missing or not finite)."""
        import math

        v = self.values[0] if self.values else None
        return v if isinstance(v, int | float) and math.isfinite(v) else None


class OptimizationSection(_Section):
    """``report.json["optimization"]`` (writer: ``flushback.backtests.optimize``)."""

    note: str | None = None
    study: dict[str, Any] = {}
    search_space: dict[str, Any] = {}
    best_params: dict[str, Any] | None = None
    best_params_fold: int | None = None
    is_vs_oos: list[FoldComparison] = []
    dsr: dict[str, Any] | None = None
    pbo: dict[str, Any] | None = None
    param_importances: dict[str, float | None] | None = None
    trials: list[OptTrial] = []
    trials_truncated: bool = False
    warnings: list[str] | None = None
    #: combinatorial purged k-fold: groups, every backtest path and their spread
    cpcv: dict[str, Any] | None = None

    @property
    def objective_label(self) -> str:
        """The first objective as the optimizer wrote it (e.g. ``max_sharpe``)."""
        objectives = self.study.get("objectives") or []
        return str(objectives[0]) if objectives else "objective"

    @property
    def objective(self) -> str:
        """The first objective's metric name (``max_sharpe`` -> ``sharpe``)."""
        label = self.objective_label
        for prefix in ("max_", "min_"):
            if label.startswith(prefix):
                return label[len(prefix):]
        return label

    @property
    def minimize(self) -> bool:
        return self.objective_label.startswith("min_")

    @property
    def dsr_value(self) -> float | None:
        return None if self.dsr is None else self.dsr.get("dsr")

    @property
    def pbo_value(self) -> float | None:
        return None if self.pbo is None else self.pbo.get("pbo")


# --------------------------------------------------------------------------- audit
class AuditCheck(_Section):
    """One bias check: verdict, summary, its table and the findings behind a failure."""

    name: str
    title: str = ""
    verdict: str = ""
    summary: str = ""
    params: dict[str, Any] = {}
    columns: list[str] = []
    rows: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []


class AuditSection(_Section):
    """``report.json["audit"]`` (writer: ``flushback.backtests.audit``)."""

    verdict: str | None = None
    passed: bool | None = None
    window: dict[str, Any] = {}
    bars: int | None = None
    settings: dict[str, Any] = {}
    checks: list[AuditCheck] = []
