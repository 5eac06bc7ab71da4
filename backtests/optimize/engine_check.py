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


def _row(what: str, fold: int | None, ref: Any, fast: Any,
         window: tuple[str, str] | None = None) -> dict[str, Any]:
    from flushback.strategies.parity import compare_results

    rep = compare_results(ref, fast)
    return {"what": what, "fold": fold, **({"window": list(window)} if window else {}),
            "ok": rep.ok, "parity": rep.to_dict(),
            "reference": _figures(ref), "fast": _figures(fast)}


def recheck_on_reference(ev: Any, folds: Sequence[Any], folds_out: Sequence[dict[str, Any]],
                         stitched: Any, cash: float) -> dict[str, Any]:
    """Re-run every fold's selection (each training window and each test window) and the
    stitched out-of-sample run (walk-forward) or every backtest path (combinatorial purged
    k-fold) on backtrader; the ``engine_check`` section (``ok`` False on any mismatch)."""
    from flushback.backtests.run.timefmt import iso_z
    from flushback.strategies.parity import compare_frames

    engine = getattr(ev, "engine", REFERENCE)
    if engine == REFERENCE:
        return {"engine": engine, "reference": REFERENCE, "ok": True, "rows": [],
                "note": "the study ran on the reference engine; nothing to re-check"}
    rows: list[dict[str, Any]] = []
    ref_tests: list[list[Any]] = []
    for fold, f in zip(folds, folds_out, strict=True):
        params = f["best_params"]
        k = fold.index + 1
        several = fold.combinatorial
        for a, b in fold.train_windows:
            fast_train = ev.evaluate(params, a, b, keep=True)
            ref_train = ev.evaluate(params, a, b, keep=True, engine=REFERENCE)
            rows.append(_row("train", k, ref_train.result, fast_train.result,
                             window=(iso_z(a), iso_z(b)) if several else None))
        refs = []
        for (a, b), fast_test in zip(fold.test_windows, f["_oos_windows"], strict=True):
            ref_test = ev.evaluate(params, a, b, keep=True, engine=REFERENCE)
            rows.append(_row("test", k, ref_test.result, fast_test.result,
                             window=(iso_z(a), iso_z(b)) if several else None))
            refs.append(ref_test.result)
        ref_tests.append(refs)
    ppy = ev.periods_per_year

    def stitched_row(what: str, path: int | None, ref_runs: list[Any],
                     fast: Any) -> dict[str, Any]:
        ref = _Stitched(ref_runs, cash, ppy)
        rep = compare_frames(ref.trades, fast.trades, ref.equity["equity"],
                             fast.equity["equity"])
        return {"what": what, "fold": None, **({"path": path} if path else {}), "ok": rep.ok,
                "parity": rep.to_dict(), "reference": _figures(ref), "fast": _figures(fast)}

    if folds and folds[0].combinatorial:
        from flushback.backtests.optimize.folds import cpcv_paths
        from flushback.backtests.optimize.section import path_results

        fast_paths, _ = path_results(folds, folds_out)
        for j, path in enumerate(cpcv_paths(folds)):
            ref_runs = [ref_tests[fi][folds[fi].test_groups.index(g)] for g, fi in path]
            fast = _Stitched([r for r, _ in fast_paths[j]], cash, ppy)
            rows.append(stitched_row("path", j + 1, ref_runs, fast))
    else:  # the stitched out-of-sample run, rebuilt from the reference's test windows
        rows.append(stitched_row("stitched_out_of_sample", None, [r[0] for r in ref_tests],
                                 stitched))
    return {"engine": engine, "reference": REFERENCE, "ok": all(r["ok"] for r in rows),
            "rows": rows}


class _Stitched:
    """Test-window runs stitched into one account, with its metrics (what a row compares)."""

    def __init__(self, runs: Sequence[Any], cash: float, ppy: int) -> None:
        from flushback.backtests.optimize.stitch import stitch_with_metrics

        self.equity, self.trades, self.metrics = stitch_with_metrics(runs, cash, ppy)


def raise_on_mismatch(section: dict[str, Any], where: str = "") -> None:
    """EngineMismatch naming the first differing trade of the first mismatching run."""
    for row in section.get("rows", []):
        if row["ok"]:
            continue
        if row.get("path"):
            label = f"backtest path {row['path']} (stitched test groups)"
        elif row["fold"] is None:
            label = "the stitched out-of-sample run"
        else:
            span = f" {row['window'][0]} to {row['window'][1]}" if row.get("window") else ""
            label = f"fold {row['fold']} ({row['what']} window{span})"
        raise EngineMismatch(
            f"the fast engine and backtrader disagree on {label}: "
            f"{row['parity']['summary']}",
            hint="this is a bug in the fast engine: report it with this spec; meanwhile run "
            "with --engine backtrader" + (f" (the report is in {where})" if where else ""),
        )
