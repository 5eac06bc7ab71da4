"""The end-of-optimization engine check: the winners re-run on the reference engine.

A study's trials run on the fast engine; what the user reads (each fold's selected
configuration on its training window and on its test window, and the stitched out-of-sample
run) is re-run here on backtrader, the reference, and compared with
:func:`flushback.strategies.parity.compare_results`: trades exactly, equity to 1e-9. The
figures of both engines go side by side into ``report.json["optimization"]["engine_check"]``;
a mismatch raises :class:`~flushback.data.errors.EngineMismatch` naming the first differing
trade (after the run folder is written, so the report can be read).

May import: the optimizer's evaluator protocol (duck-typed), ``strategies.parity``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flushback.data.errors import EngineMismatch

__all__ = ["recheck_on_reference", "raise_on_mismatch", "SIDE_BY_SIDE_METRICS"]

SIDE_BY_SIDE_METRICS = ("n_trades", "end_equity", "total_return", "sharpe", "max_drawdown")
REFERENCE = "backtrader"


def _figures(result: Any) -> dict[str, Any]:
    m = result.metrics
    out = {}
    for k in SIDE_BY_SIDE_METRICS:
        v = m.get(k)
        out[k] = float(v) if isinstance(v, float) else v
    return out


def _row(what: str, fold: int | None, ref: Any, fast: Any) -> dict[str, Any]:
    from flushback.strategies.parity import compare_results

    rep = compare_results(ref, fast)
    return {"what": what, "fold": fold, "ok": rep.ok, "parity": rep.to_dict(),
            "reference": _figures(ref), "fast": _figures(fast)}


def recheck_on_reference(ev: Any, folds: Sequence[Any], folds_out: Sequence[dict[str, Any]],
                         stitched: Any, cash: float) -> dict[str, Any]:
    """Re-run every fold's selection (training and test window) and the stitched out-of-sample
    run on backtrader; the ``engine_check`` section (``ok`` False on any mismatch)."""
    from flushback.backtests.optimize.section import stitch_out_of_sample
    from flushback.backtests.run.metrics import compute_metrics

    engine = getattr(ev, "engine", REFERENCE)
    if engine == REFERENCE:
        return {"engine": engine, "reference": REFERENCE, "ok": True, "rows": [],
                "note": "the study ran on the reference engine; nothing to re-check"}
    rows: list[dict[str, Any]] = []
    ref_oos = []
    for fold, f in zip(folds, folds_out, strict=True):
        params = f["best_params"]
        k = fold.index + 1
        fast_train = ev.evaluate(params, fold.train_start, fold.train_end, keep=True)
        ref_train = ev.evaluate(params, fold.train_start, fold.train_end, keep=True,
                                engine=REFERENCE)
        rows.append(_row("train", k, ref_train.result, fast_train.result))
        ref_test = ev.evaluate(params, fold.test_start, fold.test_end, keep=True,
                               engine=REFERENCE)
        rows.append(_row("test", k, ref_test.result, f["_oos"].result))
        ref_oos.append(ref_test.result)
    # the stitched out-of-sample run, rebuilt from the reference's test windows
    from flushback.strategies.parity import compare_frames

    equity, trades = stitch_out_of_sample(ref_oos, cash)
    ppy = ev.periods_per_year
    ref_metrics = compute_metrics(equity["equity"], trades, ppy,
                                  position=equity.get("position"))
    rep = compare_frames(trades, stitched.trades, equity["equity"], stitched.equity["equity"])
    rows.append({"what": "stitched_out_of_sample", "fold": None, "ok": rep.ok,
                 "parity": rep.to_dict(),
                 "reference": {k: ref_metrics.get(k) for k in SIDE_BY_SIDE_METRICS},
                 "fast": _figures(stitched)})
    return {"engine": engine, "reference": REFERENCE, "ok": all(r["ok"] for r in rows),
            "rows": rows}


def raise_on_mismatch(section: dict[str, Any], where: str = "") -> None:
    """EngineMismatch naming the first differing trade of the first mismatching run."""
    for row in section.get("rows", []):
        if row["ok"]:
            continue
        label = ("the stitched out-of-sample run" if row["fold"] is None
                 else f"fold {row['fold']} ({row['what']} window)")
        raise EngineMismatch(
            f"the fast engine and backtrader disagree on {label}: "
            f"{row['parity']['summary']}",
            hint="this is a bug in the fast engine: report it with this spec; meanwhile run "
            "with --engine backtrader" + (f" (the report is in {where})" if where else ""),
        )
