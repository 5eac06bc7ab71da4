"""The three bias checks of ``flushback audit``, written over small interfaces.

The checks never import the runner, backtrader or the data layer's loaders (only its pure
interval helpers, :mod:`flushback.data.intervals`): they work on a
:class:`Pipeline` (anything that recomputes frame, signal columns and trades from the raw inputs
as they were known at a given bar close) and on signal-like objects (``compute(frame)``,
``warmup_for(interval)``, ``tolerance``). :mod:`flushback.backtests.audit.run` wires them to a
spec, the data layer and the runner; the tests drive the same functions with planted biases.

Time conventions (DESIGN.md, "Time"): bars are indexed by their OPEN time, a bar's values are
known at its close (open + interval), and an order decided at the close of bar ``s`` fills at the
open of bar ``s + 1``. So the data a fill at bar ``e`` may depend on is exactly the bars up to
``e - 1`` and the external rows with ``known_at <= close(e - 1) = open(e)``.

Look-ahead (:func:`check_lookahead`)
    For each sampled trade, the whole pipeline is recomputed on raw data cut at four bars:
    the entry *decision* bar ``e - 1`` (the last bar the entry may depend on: a signal peeking
    one bar ahead sees different data there; cutting at the fill bar ``e`` would hide it, the
    blind spot of freqtrade's lookahead-analysis), the entry *fill* bar ``e`` (the trade must
    exist with the same entry time and price), and likewise the exit decision bar ``x - 1`` and
    the exit fill bar ``x``. Seeded samples of trigger bars (per boolean signal column) and of
    bars where nothing fired are cut too, so a biased signal that never led to a trade is still
    caught. At every cut, every signal column and every assembled frame column is compared on
    every bar up to the cut (not only the last one): a value at bar ``t`` may depend on rows up
    to ``t`` only, so an honest pipeline reproduces the full run there exactly.

Warm-up (:func:`check_warmup`)
    Each signal's values at evaluation bars are recomputed from only ``N`` bars of history for
    ``N`` = the declared ``warmup_for(interval)`` and multiples of it; the relative difference to
    the full-history value must be within the signal's declared ``tolerance`` at ``N`` = that
    warm-up.

External timing (:func:`check_external_timing`)
    From the ``known_at`` / ``period_end`` frames of the assembled data: for each external
    column, the lag between each value's period end and the close of the first bar that used
    it. Fails when a value was used at a bar closing before its ``known_at``, when a value is
    declared known before its period ended, or when a value has no ``known_at`` at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from flushback.backtests.run.timefmt import iso_z
from flushback.data.intervals import frame_step

__all__ = [
    "PASS",
    "FAIL",
    "SKIP",
    "PipelineOutput",
    "Pipeline",
    "SignalLike",
    "Finding",
    "CheckResult",
    "check_lookahead",
    "check_warmup",
    "check_external_timing",
    "compare_columns",
    "relative_difference",
]

PASS = "pass"
FAIL = "fail"
SKIP = "skip"

TRADE_COLUMNS = ("entry_time", "entry_price", "exit_time", "exit_price")


# --------------------------------------------------------------------------- interfaces
@dataclass(frozen=True)
class PipelineOutput:
    """What one (possibly truncated) pipeline run produced.

    ``frame``: the assembled frame (index = bar open times). ``signals``: signal/indicator
    columns on the same index. ``trades``: one row per trade with at least ``entry_time``,
    ``entry_price``, ``exit_time``, ``exit_price`` (a position still open at the end of the data
    has ``exit_time`` NaT, not an artificial end-of-data exit), or None when trades were not
    requested. ``known_at`` / ``period_end``: per external column, the known_at / period end of
    the value used at each bar (optional). ``equity``: per bar account state (e.g. ``equity``,
    ``cash``, ``position``; optional) -- compared bar by bar, it pins every fill, including
    scale-ins whose average entry price legitimately changes after the cut.
    """

    frame: pd.DataFrame
    signals: pd.DataFrame
    trades: pd.DataFrame | None = None
    known_at: pd.DataFrame | None = None
    period_end: pd.DataFrame | None = None
    equity: pd.DataFrame | None = None


@runtime_checkable
class Pipeline(Protocol):
    """Recomputes the whole strategy from raw inputs known at a given moment.

    ``run(until)`` must truncate the RAW inputs before anything is derived from them: the bars
    whose open time is ``<= until`` and the external rows whose ``known_at`` is ``<= until +
    interval`` (the close of bar ``until``); then assemble, compute signals and (when
    ``trades``) run the backtest. ``until=None`` means all data.

    ``open_only=True``: the data as known at the OPEN of bar ``until`` (the moment an order
    decided at the previous close fills): the last bar keeps its open only (high = low = close =
    open, volume 0) and its external values are those known at its open (the previous bar's).
    """

    @property
    def index(self) -> pd.DatetimeIndex: ...

    @property
    def interval(self) -> pd.Timedelta: ...

    def run(self, until: pd.Timestamp | None = None, *, trades: bool = True,
            open_only: bool = False) -> PipelineOutput: ...


@runtime_checkable
class SignalLike(Protocol):
    tolerance: float

    def warmup_for(self, interval: pd.Timedelta) -> int: ...

    def compute(self, frame: pd.DataFrame) -> pd.Series: ...


@dataclass
class Finding:
    """One piece of evidence of bias: where (bar, column), what (both values), found how."""

    kind: str
    message: str
    bar: pd.Timestamp | None = None
    column: str | None = None
    full: Any = None
    truncated: Any = None
    cut: pd.Timestamp | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "bar": iso_z(self.bar),
            "column": self.column,
            "full": _plain(self.full),
            "truncated": _plain(self.truncated),
            "cut": iso_z(self.cut),
        }


@dataclass
class CheckResult:
    """A check's verdict, a one-line summary, table rows and the findings behind a failure."""

    name: str
    title: str
    verdict: str
    summary: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict != FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "verdict": self.verdict,
            "summary": self.summary,
            "params": {k: _plain(v) for k, v in self.params.items()},
            "columns": list(self.columns),
            "rows": [{k: _plain(v) for k, v in row.items()} for row in self.rows],
            "findings": [f.to_dict() for f in self.findings],
        }


# --------------------------------------------------------------------------- helpers
def _plain(value: Any) -> Any:
    """JSON-friendly scalar: numpy -> python, NaN/inf -> None, timestamps -> ISO UTC."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, pd.Timestamp | np.datetime64):
        return iso_z(value)
    if isinstance(value, pd.Timedelta):
        return value.total_seconds() / 3600.0
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series)


def _differs(a: pd.Series, b: pd.Series, rtol: float, atol: float) -> np.ndarray:
    """Element-wise "not the same value" (both missing counts as the same)."""
    if _is_numeric(a) and _is_numeric(b):
        x = a.astype("float64").to_numpy()
        y = b.astype("float64").to_numpy()
        both_nan = np.isnan(x) & np.isnan(y)
        with np.errstate(invalid="ignore"):
            close = np.isclose(x, y, rtol=rtol, atol=atol)
        return ~(close | both_nan)
    xa = a.astype(object).to_numpy()
    ya = b.astype(object).to_numpy()
    na_x = pd.isna(a).to_numpy()
    na_y = pd.isna(b).to_numpy()
    same = (xa == ya) | (na_x & na_y)
    return ~same.astype(bool)


def compare_columns(
    full: pd.DataFrame,
    truncated: pd.DataFrame,
    index: pd.DatetimeIndex,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    columns: Iterable[str] | None = None,
) -> list[tuple[str, pd.Timestamp, Any, Any, int]]:
    """Columns whose values differ on ``index`` between two runs.

    Returns ``(column, first differing bar, full value, truncated value, number of differing
    bars)`` per differing column. A column missing from ``truncated`` differs everywhere.
    """
    out: list[tuple[str, pd.Timestamp, Any, Any, int]] = []
    n = len(index)
    full_aligned = full.index[:n].equals(index)
    trunc_aligned = truncated.index.equals(index)
    for col in columns if columns is not None else full.columns:
        a = full[col].iloc[:n] if full_aligned else full[col].reindex(index)
        if col not in truncated.columns:
            b = pd.Series(np.nan, index=index, dtype="float64")
        else:
            b = truncated[col] if trunc_aligned else truncated[col].reindex(index)
        mask = _differs(a, b, rtol, atol)
        if mask.any():
            pos = int(np.argmax(mask))
            out.append((str(col), index[pos], a.iloc[pos], b.iloc[pos], int(mask.sum())))
    return out


def relative_difference(full: Any, other: Any, *, floor: float = 1e-12) -> float:
    """|other - full| / max(|full|, floor); booleans compare as 0/1; NaN vs NaN is 0,
    NaN vs a number is infinite."""
    def _f(v: Any) -> float:
        if v is None:
            return math.nan
        try:
            if pd.isna(v):
                return math.nan
        except (TypeError, ValueError):
            pass
        return float(v)

    x, y = _f(full), _f(other)
    if math.isnan(x) and math.isnan(y):
        return 0.0
    if math.isnan(x) or math.isnan(y):
        return math.inf
    return abs(y - x) / max(abs(x), floor)


def _trades_frame(trades: pd.DataFrame | None) -> pd.DataFrame:
    if trades is None:
        return pd.DataFrame(columns=list(TRADE_COLUMNS))
    missing = [c for c in ("entry_time", "entry_price") if c not in trades.columns]
    if missing:
        raise ValueError(f"trades frame lacks columns {missing}")
    t = trades.copy()
    for c in ("exit_time", "exit_price"):
        if c not in t.columns:
            t[c] = pd.NaT if c == "exit_time" else np.nan
    t["entry_time"] = pd.to_datetime(t["entry_time"], utc=True)
    t["exit_time"] = pd.to_datetime(t["exit_time"], utc=True)
    if "trade_id" not in t.columns:
        t["trade_id"] = np.arange(1, len(t) + 1)
    return t.sort_values("entry_time", kind="stable").reset_index(drop=True)


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    try:
        if pd.isna(a) and pd.isna(b):
            return True
        return bool(np.isclose(float(a), float(b), rtol=rtol, atol=atol))
    except (TypeError, ValueError):
        return a == b


@dataclass
class _Cut:
    pos: int
    purposes: list[str] = field(default_factory=list)
    trades: bool = False
    open_only: bool = False


# --------------------------------------------------------------------------- look-ahead
def check_lookahead(
    pipeline: Pipeline,
    *,
    full: PipelineOutput | None = None,
    max_trades: int | None = 20,
    trigger_bars: int = 5,
    other_bars: int = 10,
    seed: int = 0,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    max_findings: int = 200,
    progress: Callable[[int, int], None] | None = None,
    open_only_cuts: bool = True,
) -> CheckResult:
    """Recompute the pipeline on data truncated at trade and sample bars; report differences.

    ``max_trades``: check every trade when there are at most this many, else a seeded sample of
    this many (``None`` or 0: all). ``trigger_bars``: per boolean signal column, how many of its
    trigger bars (not already cut for a trade) to cut at; ``other_bars``: how many bars where no
    boolean signal fired. ``progress(done, total)`` is called after every truncated run.
    ``open_only_cuts``: also re-run each sampled entry with its fill bar known at its open only
    (catches an engine that peeks at the fill bar's close; needs ``run(..., open_only=True)``).
    """
    index = pipeline.index
    if full is None:
        full = pipeline.run(None, trades=True)
    trades = _trades_frame(full.trades)
    rng = np.random.default_rng(seed)
    findings: list[Finding] = []
    n_findings = 0

    def add(f: Finding) -> None:
        nonlocal n_findings
        n_findings += 1
        if len(findings) < max_findings:
            findings.append(f)

    # ---- which trades
    n_trades = len(trades)
    if max_trades and n_trades > max_trades:
        chosen = np.sort(rng.choice(n_trades, size=max_trades, replace=False))
    else:
        chosen = np.arange(n_trades)
    sample = trades.iloc[chosen]

    cuts: dict[tuple[int, bool], _Cut] = {}

    def cut_at(pos: int, purpose: str, with_trades: bool, open_only: bool = False) -> None:
        if pos < 0 or pos >= len(index) or (open_only and pos < 2):
            return
        with_trades = with_trades and pos >= 1  # a backtest needs two bars
        c = cuts.setdefault((pos, open_only), _Cut(pos, open_only=open_only))
        c.purposes.append(purpose)
        c.trades = c.trades or with_trades

    for _, tr in sample.iterrows():
        tid = tr["trade_id"]
        entry = tr["entry_time"]
        if entry not in index:
            add(Finding("trade_time", f"trade {tid}: entry time is not a bar open", bar=entry))
            continue
        e = int(index.get_loc(entry))
        cut_at(e - 1, f"trade {tid} entry decision", False)
        # the engine decides at the close of e-1 and fills at the open of e: with bar e known
        # only at its open, an engine peeking at bar e's close loses the trade
        if open_only_cuts:
            cut_at(e, f"trade {tid} entry at the open", True, open_only=True)
        cut_at(e, f"trade {tid} entry fill", True)
        if pd.notna(tr["exit_time"]):
            if tr["exit_time"] not in index:
                add(Finding("trade_time", f"trade {tid}: exit time is not a bar open",
                            bar=tr["exit_time"]))
                continue
            x = int(index.get_loc(tr["exit_time"]))
            cut_at(x - 1, f"trade {tid} exit decision", False)
            cut_at(x, f"trade {tid} exit fill", True)

    # ---- sample trigger bars per boolean signal column, and bars where nothing fired
    sig = full.signals
    bool_cols = [c for c in sig.columns if pd.api.types.is_bool_dtype(sig[c])]
    fired = np.zeros(len(index), dtype=bool)
    trade_cut_positions = {pos for pos, _ in cuts}
    n_trigger_cuts = 0
    for col in bool_cols:
        values = sig[col].reindex(index).fillna(False).to_numpy(dtype=bool)
        fired |= values
        candidates = [p for p in np.flatnonzero(values) if p not in trade_cut_positions]
        if candidates:
            k = min(trigger_bars, len(candidates))
            for p in np.sort(rng.choice(candidates, size=k, replace=False)):
                cut_at(int(p), f"trigger of {col}", False)
                n_trigger_cuts += 1
    quiet = [p for p in np.flatnonzero(~fired) if (p, False) not in cuts]
    n_other_cuts = 0
    if quiet and other_bars:
        k = min(other_bars, len(quiet))
        for p in np.sort(rng.choice(quiet, size=k, replace=False)):
            cut_at(int(p), "no trigger", False)
            n_other_cuts += 1

    # ---- recompute at every cut and compare
    per_column: dict[str, dict[str, Any]] = {}
    trade_cuts = trade_bad = 0
    total = len(cuts)
    for done, key in enumerate(sorted(cuts), start=1):
        c = cuts[key]
        pos = c.pos
        until = index[pos]
        if c.open_only:
            out = pipeline.run(until, trades=c.trades, open_only=True)
        else:
            out = pipeline.run(until, trades=c.trades)
        upto = index[: pos + 1]
        # at an open-only cut the last bar is not complete: compare the bars before it
        compared = upto[:-1] if c.open_only else upto
        if not out.frame.index.equals(upto):
            add(Finding(
                "truncation",
                f"the run truncated at {iso_z(until)} returned {len(out.frame)} bars, "
                f"expected {len(upto)} (the pipeline does not truncate its raw inputs)",
                cut=until,
            ))
        for source, full_df, trunc_df in (
            ("signal", full.signals, out.signals),
            ("frame", full.frame, out.frame),
        ):
            diffs = compare_columns(full_df, trunc_df, compared, rtol=rtol, atol=atol)
            diff_cols = {d[0] for d in diffs}
            for col in full_df.columns:
                col_key = f"{source}:{col}"
                stat = per_column.setdefault(
                    col_key, {"source": source, "column": str(col), "cuts": 0,
                              "biased_cuts": 0, "first": None})
                stat["cuts"] += 1
                if col in diff_cols:
                    stat["biased_cuts"] += 1
            for col, bar, a, b, count in diffs:
                stat = per_column[f"{source}:{col}"]
                f = Finding(
                    "signal_value" if source == "signal" else "frame_value",
                    f"{source} column '{col}' at {iso_z(bar)}: {_plain(a)!r} on the full data, "
                    f"{_plain(b)!r} on data truncated at {iso_z(until)}"
                    f"{' (its open only)' if c.open_only else ''} ({count} bar(s) differ; "
                    f"cut for {', '.join(c.purposes)})",
                    bar=bar, column=col, full=a, truncated=b, cut=until,
                )
                if stat["first"] is None or bar < stat["first"].bar:
                    stat["first"] = f
                add(f)
        if c.trades:
            trade_cuts += 1
            bad = _compare_trades(trades, _trades_frame(out.trades), until, rtol, atol,
                                  exits_before_cut=c.open_only)
            if full.equity is not None and out.equity is not None:
                for col, bar, a, b, count in compare_columns(
                        full.equity, out.equity, compared, rtol=rtol, atol=atol):
                    bad.append(Finding(
                        "trade_equity",
                        f"account '{col}' at {iso_z(bar)}: {_plain(a)!r} on the full data, "
                        f"{_plain(b)!r} on data truncated at {iso_z(until)} ({count} bar(s) "
                        "differ)",
                        bar=bar, column=col, full=a, truncated=b, cut=until,
                    ))
            if bad:
                trade_bad += 1
            for f in bad:
                add(f)
        if progress is not None:
            progress(done, total)

    rows: list[dict[str, Any]] = []
    for stat in per_column.values():
        first: Finding | None = stat["first"]
        rows.append({
            "item": f"{stat['source']} {stat['column']}",
            "cuts": stat["cuts"],
            "biased": stat["biased_cuts"],
            "bar": first.bar if first else None,
            "full": first.full if first else None,
            "truncated": first.truncated if first else None,
            "verdict": FAIL if stat["biased_cuts"] else PASS,
        })
    trade_findings = [f for f in findings if f.kind.startswith("trade")]
    first_trade = trade_findings[0] if trade_findings else None
    rows.append({
        "item": f"trades ({len(sample)} of {n_trades} checked)",
        "cuts": trade_cuts,
        "biased": trade_bad,
        "bar": first_trade.bar if first_trade else None,
        "full": first_trade.full if first_trade else None,
        "truncated": first_trade.truncated if first_trade else None,
        "verdict": FAIL if trade_findings else PASS,
    })
    verdict = FAIL if n_findings else PASS
    biased_cols = [r["item"] for r in rows if r["verdict"] == FAIL]
    if verdict == PASS:
        summary = (f"{total} truncated re-runs ({len(sample)} of {n_trades} trades, "
                   f"{n_trigger_cuts} trigger bars, {n_other_cuts} quiet bars): every signal, "
                   "frame value and trade reproduced")
    else:
        summary = (f"look-ahead: {n_findings} difference(s) in {total} truncated re-runs; "
                   f"biased: {', '.join(biased_cols)}")
    return CheckResult(
        name="lookahead",
        title="Look-ahead (re-run on truncated raw data)",
        verdict=verdict,
        summary=summary,
        columns=["item", "cuts", "biased", "bar", "full", "truncated", "verdict"],
        rows=rows,
        findings=findings,
        params={
            "trades_total": n_trades,
            "trades_checked": len(sample),
            "max_trades": max_trades or 0,
            "trigger_cuts": n_trigger_cuts,
            "quiet_cuts": n_other_cuts,
            "truncated_runs": total,
            "findings_total": n_findings,
            "seed": seed,
            "rtol": rtol,
        },
    )


def _compare_trades(
    full: pd.DataFrame, trunc: pd.DataFrame, until: pd.Timestamp, rtol: float, atol: float,
    *, exits_before_cut: bool = False,
) -> list[Finding]:
    """Trades known by bar ``until`` must be identical in the full and the truncated run.

    Entries: the set of entry times up to the cut must be equal. Exits: every trade row closed
    by the cut (a partial exit is its own row, with the same entry time) must exist in both runs
    with the same entry time, exit time and prices. A position still open at the cut is pinned
    by the account state (see ``PipelineOutput.equity``), not by its average entry price.
    ``exits_before_cut``: the cut bar is known at its open only (an intrabar exit on it cannot
    be reproduced), so only exits before it are compared.
    """
    out: list[Finding] = []
    f_known = full[full["entry_time"] <= until]
    t_known = trunc[trunc["entry_time"] <= until]
    f_entries = sorted(set(f_known["entry_time"]))
    t_entries = sorted(set(t_known["entry_time"]))
    t_entry_set, f_entry_set = set(t_entries), set(f_entries)
    for e in f_entries:
        if e not in t_entry_set:
            nearest = None
            if t_entries:
                nearest = min(t_entries, key=lambda x: abs(x - e))
            out.append(Finding(
                "trade_entry",
                f"a trade entered at {iso_z(e)} on the full data but not on data truncated at "
                f"{iso_z(until)}"
                + (f" (nearest entry there: {iso_z(nearest)})" if nearest is not None else ""),
                bar=e, column="entry_time", full=e, truncated=nearest, cut=until,
            ))
    for e in t_entries:
        if e not in f_entry_set:
            out.append(Finding(
                "trade_extra",
                f"a trade entered at {iso_z(e)} on data truncated at {iso_z(until)} does not "
                "exist on the full data",
                bar=e, column="entry_time", full=None, truncated=e, cut=until,
            ))

    def closed(df: pd.DataFrame) -> dict[tuple[Any, Any], list[Any]]:
        rows: dict[tuple[Any, Any], list[Any]] = {}
        done = (df["exit_time"] < until) if exits_before_cut else (df["exit_time"] <= until)
        sel = df[df["exit_time"].notna() & done]
        for row in sel.itertuples(index=False):
            rows.setdefault((row.entry_time, row.exit_time), []).append(row)
        return rows

    f_closed, t_closed = closed(f_known), closed(t_known)
    for key, rows in f_closed.items():
        entry, exit_ = key
        if entry not in t_entry_set:
            continue  # already reported as a missing entry
        others = t_closed.get(key, [])
        if len(others) != len(rows):
            still = t_known[t_known["entry_time"] == entry]["exit_time"]
            alt = still.dropna()
            alt = alt[alt != exit_]
            out.append(Finding(
                "trade_exit",
                f"the trade entered at {iso_z(entry)} exits at {iso_z(exit_)} on the full data, "
                + (f"at {iso_z(alt.iloc[0])}" if len(alt) else "not (still open)")
                + f" on data truncated at {iso_z(until)}",
                bar=exit_, column="exit_time", full=exit_,
                truncated=alt.iloc[0] if len(alt) else None, cut=until,
            ))
            continue
        for a, b in zip(rows, others, strict=True):
            for col in ("entry_price", "exit_price"):
                va, vb = getattr(a, col), getattr(b, col)
                if not _close(va, vb, rtol, atol):
                    out.append(Finding(
                        f"trade_{col}",
                        f"the trade entered at {iso_z(entry)} (exit {iso_z(exit_)}) has {col} "
                        f"{va} on the full data, {vb} on data truncated at {iso_z(until)}",
                        bar=entry if col == "entry_price" else exit_, column=col, full=va,
                        truncated=vb, cut=until,
                    ))
    for key in t_closed:
        if key not in f_closed and key[0] in f_entry_set:
            entry, exit_ = key
            out.append(Finding(
                "trade_exit",
                f"the trade entered at {iso_z(entry)} exits at {iso_z(exit_)} on data truncated "
                f"at {iso_z(until)} but not on the full data",
                bar=exit_, column="exit_time", full=None, truncated=exit_, cut=until,
            ))
    return out


# --------------------------------------------------------------------------- warm-up
def _eval_positions(values: pd.Series, points: int, need: int) -> list[int]:
    """Evaluation bars: the last ``points`` bars, plus for boolean signals the last ``points``
    trigger bars (a trigger is where a short warm-up flips a decision); all at positions with
    at least ``need`` bars of history before them."""
    n = len(values)
    pos = [p for p in range(max(need, n - points), n)]
    if pd.api.types.is_bool_dtype(values):
        trig = [int(p) for p in np.flatnonzero(values.fillna(False).to_numpy(dtype=bool))
                if p >= need]
        pos.extend(trig[-points:])
    return sorted(set(pos))


def _declared_warmup(signal: Any, interval: pd.Timedelta) -> int:
    return int(signal.warmup_for(interval) or 0)


def _abs_difference(full: Any, other: Any) -> float:
    rel = relative_difference(full, other)
    if rel in (0.0, math.inf):
        return rel
    return abs(float(other) - float(full))


def check_warmup(
    frame: pd.DataFrame,
    signals: Mapping[str, SignalLike],
    *,
    interval: pd.Timedelta | None = None,
    multiples: Sequence[float] = (1, 2, 4),
    points: int = 5,
    full_values: Mapping[str, pd.Series] | None = None,
) -> CheckResult:
    """Compare each signal's values from full history with values from only N bars of history.

    For each signal and each ``N = ceil(m * warmup)`` (``m`` in ``multiples``; ``warmup`` is
    ``signal.warmup_for(interval)``), the value at
    each evaluation bar ``t`` is recomputed on ``frame.iloc[t - N : t + 1]`` (``N`` bars of
    history before ``t``, plus ``t``) and compared with the full-history value. The table
    reports the largest relative difference per ``N``; a signal fails when, at ``N = warmup``,
    a value differs by more than its declared ``tolerance`` (the Signal contract's absolute
    difference, on the signal's own scale; a boolean flip counts as 1, a value against NaN as
    infinite).
    """
    if interval is None:
        interval = frame_step(frame)
    rows: list[dict[str, Any]] = []
    findings: list[Finding] = []
    mults = sorted({float(m) for m in multiples} | {1.0})
    for name, signal in signals.items():
        w = _declared_warmup(signal, interval)
        tol = float(getattr(signal, "tolerance", 0.0) or 0.0)
        if full_values and name in full_values:
            full = full_values[name]
        else:
            full = signal.compute(frame)
        full = full.reindex(frame.index)
        ns = {m: max(int(math.ceil(m * w)), 0) for m in mults}
        need = ns[1.0]
        positions = _eval_positions(full, points, need)
        row: dict[str, Any] = {"signal": name, "warmup_bars": w, "tolerance": tol,
                               "points": len(positions)}
        if not positions:
            row.update({"max_abs_diff": None, "verdict": SKIP,
                        "note": f"history shorter than {need + 1} bars"})
            rows.append(row)
            continue
        worst_abs = 0.0
        mine: list[Finding] = []
        abs_by_mult: dict[float, float] = {}
        for m, n in ns.items():
            worst_rel: float | None = 0.0
            usable = [p for p in positions if p >= n]
            if not usable:  # not enough history for this multiple
                row[f"rel_diff_x{m:g}"] = None
                continue
            for p in usable:
                sub = frame.iloc[p - n: p + 1]
                value = signal.compute(sub).iloc[-1]
                a = full.iloc[p]
                worst_rel = max(worst_rel or 0.0, relative_difference(a, value))
                d = _abs_difference(a, value)
                abs_by_mult[m] = max(abs_by_mult.get(m, 0.0), d)
                if m == 1.0:
                    if d > tol:
                        mine.append(Finding(
                            "warmup",
                            f"signal '{name}': with its declared warm-up of {w} bars the value "
                            f"at {iso_z(frame.index[p])} is {_plain(value)!r}, {_plain(a)!r} "
                            f"with full history (difference {d:.4g} > tolerance {tol:g}); "
                            "declare a longer warm-up",
                            bar=frame.index[p], column=name, full=a, truncated=value,
                        ))
                    worst_abs = max(worst_abs, d)
            row[f"rel_diff_x{m:g}"] = worst_rel
        row["max_abs_diff"] = worst_abs
        row["verdict"] = FAIL if worst_abs > tol else PASS
        top = max(abs_by_mult) if abs_by_mult else 1.0
        if (row["verdict"] == FAIL and top > 1.0
                and abs_by_mult[top] >= abs_by_mult.get(1.0, 0.0) > tol):
            # more history does not help: not a warm-up problem but a value that depends on
            # what the window cannot see (look-ahead, a full-sample statistic)
            row["note"] = f"no better with {top:g}x the declared warm-up"
            for f in mine:
                f.message = f.message.replace(
                    "declare a longer warm-up",
                    f"it still differs with {top:g}x that history: look for look-ahead or a "
                    "full-sample statistic rather than a short warm-up")
        findings.extend(mine)
        rows.append(row)
    failing = [r["signal"] for r in rows if r["verdict"] == FAIL]
    if failing:
        verdict = FAIL
    elif any(r["verdict"] == PASS for r in rows):
        verdict = PASS
    else:
        verdict = SKIP
    if failing:
        summary = f"declared warm-up too short for: {', '.join(failing)}"
    elif not rows:
        summary = "the spec has no signals: nothing to warm up"
    elif verdict == SKIP:
        summary = "not enough history to evaluate any signal"
    else:
        summary = f"{len(rows)} signal(s) converge within their tolerance at the declared warm-up"
    cols: list[str] = ["signal", "warmup_bars", "tolerance", "points"]
    for r in rows:
        for k in r:
            if k.startswith("rel_diff") and k not in cols:
                cols.append(k)
    cols += ["max_abs_diff", "verdict"]
    if any("note" in r for r in rows):
        cols.append("note")
    return CheckResult(
        name="warmup",
        title="Warm-up (full history vs N bars of history)",
        verdict=verdict,
        summary=summary,
        columns=cols,
        rows=rows,
        findings=findings[:200],
        params={"multiples": list(mults), "points": points},
    )


# --------------------------------------------------------------------------- external timing
def check_external_timing(
    index: pd.DatetimeIndex,
    interval: pd.Timedelta,
    known_at: pd.DataFrame | None,
    period_end: pd.DataFrame | None,
    *,
    frame: pd.DataFrame | None = None,
    columns: Iterable[str] | None = None,
) -> CheckResult:
    """Lag between each external value's period end and its first use (the bar close).

    A value counts as *used* at bar ``t`` from that bar's close, ``t + interval``. Fails when a
    value is used before its ``known_at``, when ``known_at`` precedes ``period_end`` (nothing is
    known before its period ended), or when ``frame`` holds a value without a ``known_at``.
    """
    if known_at is None or period_end is None or known_at.shape[1] == 0:
        return CheckResult(
            name="external_timing", title="External data timing", verdict=SKIP,
            summary="the spec uses no external series", columns=[], rows=[],
        )
    cols = list(columns) if columns is not None else list(known_at.columns)
    close = pd.Series(index + interval, index=index)
    rows: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for col in cols:
        if col not in known_at.columns:
            continue
        ka = pd.to_datetime(known_at[col].reindex(index), utc=True)
        pe = pd.to_datetime(period_end[col].reindex(index), utc=True) if (
            col in period_end.columns) else pd.Series(pd.NaT, index=index, dtype=ka.dtype)
        used = ka.notna()
        early = used & (ka > close)
        before_end = used & pe.notna() & (ka < pe)
        orphan = pd.Series(False, index=index)
        if frame is not None and col in frame.columns:
            orphan = frame[col].reindex(index).notna() & ~used
        row: dict[str, Any] = {"column": col, "values_used": 0, "bars_used": int(used.sum())}
        if used.any():
            d = pd.DataFrame({"pe": pe[used], "ka": ka[used], "close": close[used]})
            first = d.groupby(["ka", "pe"], dropna=False)["close"].min().reset_index()
            lag = (first["close"] - first["pe"]).dropna()
            pub = (first["ka"] - first["pe"]).dropna()
            hours = lag.dt.total_seconds() / 3600.0
            row.update({
                "values_used": len(first),
                "lag_h_min": float(hours.min()) if len(hours) else None,
                "lag_h_median": float(hours.median()) if len(hours) else None,
                "lag_h_max": float(hours.max()) if len(hours) else None,
                "publication_lag_h": (float(pub.dt.total_seconds().min() / 3600.0)
                                          if len(pub) else None),
            })
        row["early_uses"] = int(early.sum())
        row["known_before_end"] = int(before_end.sum())
        row["no_known_at"] = int(orphan.sum())
        bad = row["early_uses"] or row["known_before_end"] or row["no_known_at"]
        row["verdict"] = FAIL if bad else PASS
        rows.append(row)
        if early.any():
            t = early.idxmax()
            findings.append(Finding(
                "early_use",
                f"column '{col}': a value known at {iso_z(ka[t])} was used at the close of bar "
                f"{iso_z(t)} ({iso_z(close[t])}), {int(early.sum())} bar(s) in all",
                bar=t, column=col, full=ka[t], truncated=close[t],
            ))
        if before_end.any():
            t = before_end.idxmax()
            findings.append(Finding(
                "known_before_end",
                f"column '{col}': known_at {iso_z(ka[t])} precedes the end of the period it "
                f"describes ({iso_z(pe[t])}) at bar {iso_z(t)}",
                bar=t, column=col, full=pe[t], truncated=ka[t],
            ))
        if orphan.any():
            t = orphan.idxmax()
            findings.append(Finding(
                "no_known_at",
                f"column '{col}': value at bar {iso_z(t)} has no known_at",
                bar=t, column=col,
            ))
    failing = [r["column"] for r in rows if r["verdict"] == FAIL]
    verdict = FAIL if failing else (PASS if rows else SKIP)
    if failing:
        summary = f"values used before they were known in: {', '.join(failing)}"
    elif rows:
        summary = f"{len(rows)} external column(s): every value used at or after its known_at"
    else:
        summary = "no external column to check"
    return CheckResult(
        name="external_timing",
        title="External data timing (period end -> first use at bar close)",
        verdict=verdict,
        summary=summary,
        columns=["column", "values_used", "bars_used", "publication_lag_h",
                 "lag_h_min", "lag_h_median", "lag_h_max",
                 "early_uses", "known_before_end", "no_known_at", "verdict"],
        rows=rows,
        findings=findings,
    )
