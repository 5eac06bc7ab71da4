"""``flushback audit``: prove that a spec's backtest sees no future and is no warm-up artifact.

This module wires the checks (:mod:`~flushback.backtests.audit.lookahead`,
:mod:`~flushback.backtests.audit.warmup`, :mod:`~flushback.backtests.audit.external_timing`) to a
real spec:

- :class:`SpecPipeline` implements the ``Pipeline`` protocol with the real data layer and the
  real runner. ``run(until)`` truncates the RAW inputs first -- ``load_frame(..., as_of=cut)``
  cuts every dataset the spec reads while it is read (bars that closed by the cut-off, external
  rows with ``known_at`` at or before it) and assembles the frame, the spec's signals are
  computed and the backtest runs with ``flushback.backtests.run.runner.run_backtest``: the same
  code path as ``flushback backtest`` (without the benchmark, which the audit does not check).
- :func:`audit_spec` runs the three checks and returns an :class:`AuditReport`;
  :func:`save_audit` stores it as the ``audit`` section of the run's ``report.json`` (the run of
  the full backtest: same ``run_id`` as ``flushback backtest SPEC``).

The shape of the ``audit`` section is documented in ``docs/audit.md`` and validated by
:class:`AuditSection`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from flushback.backtests.audit.base import FAIL, PASS, CheckResult, PipelineOutput
from flushback.backtests.audit.external_timing import check_external_timing
from flushback.backtests.audit.lookahead import check_lookahead
from flushback.backtests.audit.warmup import check_warmup
from flushback.backtests.run.timefmt import iso_z
from flushback.data.errors import BiasDetected, ConfigError
from flushback.data.intervals import parse_interval
from flushback.signals import SignalCache

__all__ = [
    "AUDIT_SCHEMA",
    "AuditReport",
    "AuditSection",
    "SpecPipeline",
    "audit_spec",
    "save_audit",
    "spec_signals",
    "raise_if_biased",
]

AUDIT_SCHEMA = "1.0"
MIN_SAMPLE_TRADES = 20


# --------------------------------------------------------------------------- spec pipeline
def spec_signals(spec: Any) -> dict[str, Any]:
    """Every signal of a spec, composites' children included (``entry``, ``entry.of.1``...)."""
    from flushback.signals import build_signal

    out: dict[str, Any] = {}

    def walk(name: str, sig: Any) -> None:
        out[name] = sig
        for i, child in enumerate(getattr(sig, "children", ()) or ()):
            walk(f"{name}.of.{i}", child)

    for name, cfg in spec.signals.items():
        walk(name, build_signal(cfg))
    return out


def _normalize_trades(trades: pd.DataFrame | None) -> pd.DataFrame | None:
    """A position still open at the end of the data is not an exit: exit_time NaT."""
    if trades is None:
        return None
    t = trades.copy()
    if "exit_reason" in t.columns and len(t):
        open_ = t["exit_reason"].astype(str).eq("end_of_data").to_numpy()
        if open_.any():
            t["exit_time"] = pd.to_datetime(t["exit_time"], utc=True)
            t.loc[open_, "exit_time"] = pd.NaT
            t.loc[open_, "exit_price"] = float("nan")
    return t


class SpecPipeline:
    """The ``Pipeline`` protocol over a spec, the data layer and the runner.

    ``index`` is the trading window of the full run; ``run(until)`` recomputes everything from
    raw data known at the close of bar ``until`` and returns the window's frame, signals, trades
    (a position open at the end has ``exit_time`` NaT) and the ``known_at``/``period_end`` of
    the external values used.
    """

    def __init__(self, spec: Any, *, data_dir: str | Path | None = None, since: Any = None,
                 until: Any = None) -> None:
        from flushback.backtests.run.runner import prepare

        self.spec = spec
        self.data_dir = data_dir
        base = prepare(spec, data_dir=data_dir, since=since, until=until)
        self._start = base.start
        self._end = base.end
        self._load_start = base.frame.index[0]
        self._interval = parse_interval(spec.data.interval)
        externals: Any = spec.data.externals
        self._externals = dict(externals) if isinstance(externals, Mapping) else tuple(externals)
        self._signals = spec_signals(spec)
        self.full_result: Any = None
        self.full_frame: pd.DataFrame | None = None
        self._index = base.window.index
        self.runs = 0

    @property
    def index(self) -> pd.DatetimeIndex:
        return self._index

    @property
    def interval(self) -> pd.Timedelta:
        return self._interval

    def _load(self, until: pd.Timestamp | None) -> Any:
        from flushback.data.basket import load_with_basket

        end = self._end if until is None else until
        as_of = None if until is None else until + self._interval  # the close of bar `until`
        kwargs = self.spec.data.load_kwargs()
        kwargs["externals"] = self._externals
        return load_with_basket(self.spec.data.symbol, self.spec.data.interval,
                                start=self._load_start, end=end, data_dir=self.data_dir,
                                as_of=as_of, **kwargs)

    def run(self, until: pd.Timestamp | None = None, *, trades: bool = True,
            open_only: bool = False) -> PipelineOutput:
        from flushback.backtests.run.runner import prepare_frame, run_backtest

        self.runs += 1
        af = self._load(until)
        frame = af.frame
        if open_only and until is not None:
            frame = _known_at_open(frame, list(af.known_at.columns))
        window_end = self._end if until is None else until
        prepared = prepare_frame(self.spec, frame, fingerprints=af.fingerprints,
                                 since=self._start, until=window_end)
        prepared.datasets = dict(af.datasets)
        window = prepared.window
        # a composite's children are computed once per truncated frame (the same signal cache
        # the optimizer's trials use; results are identical with and without it)
        with SignalCache(frame).active():
            if trades or until is None:
                # the benchmark (buy-and-hold) is not what the audit examines: only the full run,
                # which is stored with the audit, runs it
                result = run_backtest(self.spec, prepared=prepared, benchmark=until is None)
                out_frame, signals, tr = result.frame, result.signals, result.trades
                equity = result.equity.drop(columns=["benchmark_equity"], errors="ignore")
                if until is None:
                    self.full_result = result
                    self.full_frame = frame
            else:
                # the same computation as the runner's (build_signal(cfg).compute(frame) per spec
                # signal)
                signals = pd.DataFrame(
                    {name: self._signals[name].compute(frame) for name in self.spec.signals},
                    index=frame.index,
                ).loc[window.index]
                out_frame, tr, equity = window, None, None
            signals = signals.join(self._indicators(frame).loc[window.index], how="left")
        known = af.known_at.reindex(window.index) if af.known_at is not None else None
        pend = af.period_end.reindex(window.index) if af.period_end is not None else None
        return PipelineOutput(out_frame, signals, _normalize_trades(tr), known, pend, equity)

    def _indicators(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Composite children's values and every leaf signal's intermediate values
        (``Signal.explain``: e.g. the RSI behind ``oversold_rsi``, the z-score behind
        ``liquidation_spike``), so a bias hidden inside a composite or below a threshold still
        shows. Columns: ``entry.of.1`` (a child), ``entry.of.1.of.2:rsi`` (an indicator)."""
        cols: dict[str, pd.Series] = {}
        for name, sig in self._signals.items():
            if "." in name:
                cols[name] = sig.compute(frame)
            if getattr(sig, "children", None):
                continue
            explain = getattr(sig, "explain", None)
            if explain is None:
                continue
            extra = explain(frame)
            for col in extra.columns:
                if col not in frame.columns:
                    cols[f"{name}:{col}"] = extra[col]
        for col, values in self._feed_columns(frame).items():
            cols[f"strategy:{col}"] = pd.Series(values, index=frame.index)
        return pd.DataFrame(cols, index=frame.index)

    def _feed_columns(self, frame: pd.DataFrame) -> dict[str, Any]:
        """The per-bar columns the strategy computes in pandas for its feed (e.g. a realised
        volatility for sizing): compared like signals, since the engine decides on them."""
        from flushback.backtests.run.metrics import periods_per_year_for
        from flushback.strategies.config import get_strategy

        cls = get_strategy(self.spec.strategy.type)
        feed = getattr(cls, "feed_columns", None)
        if feed is None:
            return {}
        ppy = periods_per_year_for(self.spec.data.interval)
        return dict(feed(frame, dict(self.spec.strategy.params), ppy))


def _known_at_open(frame: pd.DataFrame, external_columns: list[str]) -> pd.DataFrame:
    """The frame as known at the OPEN of its last bar: that bar keeps its open price only
    (high = low = close = open, volume 0) and the external values known at its open, which
    are the previous bar's (joined as of the previous close = this open)."""
    out = frame.copy()
    out.attrs = dict(frame.attrs)
    last = out.index[-1]
    o = out.at[last, "open"]
    for col in ("high", "low", "close"):
        out.at[last, col] = o
    if "volume" in out.columns:
        out.at[last, "volume"] = 0.0
    cols = [c for c in external_columns if c in out.columns]
    if cols:
        prev = out.iloc[-2] if len(out) >= 2 else None
        for c in cols:
            out.at[last, c] = prev[c] if prev is not None else None
    return out


# --------------------------------------------------------------------------- report
class _CheckModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["lookahead", "warmup", "external_timing"]
    title: str
    verdict: Literal["pass", "fail", "skip"]
    summary: str
    params: dict[str, Any]
    columns: list[str]
    rows: list[dict[str, Any]]
    findings: list[dict[str, Any]]


class AuditSection(BaseModel):
    """The ``audit`` section of ``report.json`` (see docs/audit.md)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str
    passed: bool
    verdict: Literal["pass", "fail"]
    spec_name: str
    run_id: str | None
    created_at: str
    window: dict[str, str | None]
    bars: int
    settings: dict[str, Any]
    checks: list[_CheckModel]


@dataclass
class AuditReport:
    spec_name: str
    run_id: str | None
    checks: list[CheckResult]
    window: dict[str, str | None] = field(default_factory=dict)
    bars: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    result: Any = None  # the full BacktestResult (for write_run)
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"))

    @property
    def passed(self) -> bool:
        return all(c.verdict != FAIL for c in self.checks)

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "schema_version": AUDIT_SCHEMA,
            "passed": self.passed,
            "verdict": PASS if self.passed else FAIL,
            "spec_name": self.spec_name,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "window": dict(self.window),
            "bars": int(self.bars),
            "settings": dict(self.settings),
            "checks": [c.to_dict() for c in self.checks],
        }
        return AuditSection.model_validate(doc).model_dump(mode="json")


def audit_spec(
    spec: Any,
    *,
    data_dir: str | Path | None = None,
    since: Any = None,
    until: Any = None,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    trades: int | None = MIN_SAMPLE_TRADES,
    trigger_bars: int = 5,
    quiet_bars: int = 10,
    warmup_multiples: Sequence[float] = (1, 2, 4),
    warmup_points: int = 5,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Run the three checks on a spec (a BacktestSpec, a spec name or a TOML path).

    ``trades``: check every trade when there are at most this many, else a seeded sample of
    this many (at least 20; 0 or None = all trades).
    """
    from flushback.backtests.run.spec import BacktestSpec, load_spec

    if trades and trades < MIN_SAMPLE_TRADES:
        raise ConfigError(f"--trades {trades} is too small",
                          hint=f"sample at least {MIN_SAMPLE_TRADES} trades, or 0 for all")
    if not isinstance(spec, BacktestSpec):
        spec = load_spec(spec, overrides=list(overrides or []) if not isinstance(
            overrides, Mapping) else overrides)
    elif overrides:
        spec = spec.with_overrides(overrides)
    pipeline = SpecPipeline(spec, data_dir=data_dir, since=since, until=until)
    full = pipeline.run(None, trades=True)
    lookahead = check_lookahead(pipeline, full=full, max_trades=trades or None,
                                trigger_bars=trigger_bars, other_bars=quiet_bars, seed=seed,
                                progress=progress)
    assert pipeline.full_frame is not None
    warmup = check_warmup(pipeline.full_frame, spec_signals(spec), interval=pipeline.interval,
                          multiples=warmup_multiples, points=warmup_points)
    timing = check_external_timing(pipeline.index, pipeline.interval, full.known_at,
                                   full.period_end, frame=full.frame)
    idx = pipeline.index
    result = pipeline.full_result
    return AuditReport(
        spec_name=spec.name,
        run_id=getattr(result, "run_id", None),
        checks=[lookahead, warmup, timing],
        window={"start": iso_z(idx[0]) if len(idx) else None,
                "end": iso_z(idx[-1]) if len(idx) else None},
        bars=len(idx),
        settings={"trades": trades or 0, "trigger_bars": trigger_bars,
                  "quiet_bars": quiet_bars, "warmup_multiples": list(warmup_multiples),
                  "warmup_points": warmup_points, "seed": seed,
                  "symbol": spec.data.symbol, "interval": spec.data.interval},
        result=result,
    )


def save_audit(report: AuditReport, *, runs_dir: str | Path | None = None) -> Path:
    """Write the full run with its ``audit`` section; returns the run folder.

    When the run folder already holds a ``report.json`` (e.g. from ``flushback backtest``), it
    is rewritten with the new ``audit`` section; ``write_run`` writes atomically.
    """
    import json

    from flushback.backtests.run.folders import write_run
    from flushback.data.paths import runs_dir as _runs_dir

    if report.result is None:
        raise ValueError("the audit report carries no backtest result to store")
    sections: dict[str, Any] = {}
    existing = _runs_dir(runs_dir) / report.result.run_id / "report.json"
    if existing.is_file():  # keep what other commands stored with this run
        try:
            old = json.loads(existing.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        for key in ("events", "optimization"):
            if old.get(key) is not None:
                sections[key] = old[key]
    if "events" not in sections:  # the same flush-event section `flushback backtest` writes
        from flushback.backtests.events.strategy import report_sections

        sections.update(report_sections(report.result))
    sections["audit"] = report.to_dict()
    return Path(write_run(report.result, runs_dir=runs_dir, sections=sections))


def raise_if_biased(report: AuditReport) -> None:
    """BiasDetected (exit code 6) naming the failed checks, or nothing."""
    if report.passed:
        return
    failed = [c for c in report.checks if c.verdict == FAIL]
    first = next((f for c in failed for f in c.findings), None)
    raise BiasDetected(
        "audit failed: " + "; ".join(c.summary for c in failed),
        column=None if first is None else first.column,
        timestamps=[] if first is None or first.bar is None else [first.bar],
        hint="see the tables above (or the audit section of the run's report); fix the "
             "signal, its declared warm-up or the external data's known_at",
    )
