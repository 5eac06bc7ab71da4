"""The look-ahead check (:func:`check_lookahead`).

For each sampled trade, the whole pipeline is recomputed on raw data cut at four bars: the
entry *decision* bar ``e - 1`` (the last bar the entry may depend on: a signal peeking one bar
ahead sees different data there; cutting at the fill bar ``e`` would hide it, the blind spot of
freqtrade's lookahead-analysis), the entry *fill* bar ``e`` (the trade must exist with the same
entry time and price), and likewise the exit decision bar ``x - 1`` and the exit fill bar
``x``. Seeded samples of trigger bars (per boolean signal column) and of bars where nothing
fired are cut too, so a biased signal that never led to a trade is still caught. At every cut,
every signal column and every assembled frame column is compared on every bar up to the cut
(not only the last one): a value at bar ``t`` may depend on rows up to ``t`` only, so an honest
pipeline reproduces the full run there exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.audit.base import (
    FAIL,
    PASS,
    CheckResult,
    Finding,
    Pipeline,
    PipelineOutput,
    compare_columns,
    plain,
)
from flushback.backtests.run.timefmt import iso_z

TRADE_COLUMNS = ("entry_time", "entry_price", "exit_time", "exit_price")

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
                    f"{source} column '{col}' at {iso_z(bar)}: {plain(a)!r} on the full data, "
                    f"{plain(b)!r} on data truncated at {iso_z(until)}"
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
                        f"account '{col}' at {iso_z(bar)}: {plain(a)!r} on the full data, "
                        f"{plain(b)!r} on data truncated at {iso_z(until)} ({count} bar(s) "
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
