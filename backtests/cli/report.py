"""``flushback report RUN``, ``flushback compare RUN...`` and ``flushback runs list``.

All three read stored ``report.json`` files (a run id, a unique run-id prefix, a run folder or a
report.json path); none re-runs a backtest.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from flushback.backtests.cli._common import OutputFormat, console, console_err, print_json

runs_app = typer.Typer(help="List the stored runs.", no_args_is_help=True)


class ReportFormat(StrEnum):
    html = "html"
    md = "md"


_RUNS_DIR_OPT = typer.Option(
    None, "--runs-dir", envvar="FLUSHBACK_RUNS_DIR", help="Folder holding the runs."
)


def report(
    run: str = typer.Argument(..., help="Run id (or unique prefix), run folder or report.json."),
    fmt: ReportFormat = typer.Option(ReportFormat.html, "--format", help="html or md."),
    output: str = typer.Option(
        None, "--output", "-o",
        help="Where to write (default: report.html next to report.json; md prints to stdout).",
    ),
    open_: bool = typer.Option(False, "--open", help="Open the HTML report in a browser."),
    runs_dir: str = _RUNS_DIR_OPT,
) -> None:
    """Render a run's report from its report.json: a self-contained HTML page or Markdown."""
    from flushback.backtests.compare import resolve_report_path
    from flushback.backtests.report_html import render_report_html, render_report_markdown
    from flushback.backtests.report_schema import load_report_file

    path = resolve_report_path(run, runs_dir)
    rep = load_report_file(path)
    if fmt is ReportFormat.md:
        text = render_report_markdown(rep)
        if output:
            from flushback.backtests.report_html import write_text_atomic

            write_text_atomic(output, text)
            console_err.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)
        else:
            import sys

            sys.stdout.write(text)
        return
    target = Path(output) if output else path.with_name("report.html")
    render_report_html(rep, target)
    console.print(f"report {rep.run_id} -> {target}", markup=False, highlight=False, soft_wrap=True)
    if open_:
        import webbrowser

        webbrowser.open(target.resolve().as_uri())


def compare(
    runs: list[str] = typer.Argument(
        ..., help="Two or more run ids (or prefixes), run folders or report.json files."
    ),
    html: str = typer.Option(None, "--html", help="Also write the comparison as an HTML page."),
    metric: list[str] = typer.Option(
        None, "--metric", "-m", help="Metric to show (repeatable; default: the headline set)."
    ),
    allow_mismatch: bool = typer.Option(
        False, "--allow-mismatch",
        help="Compare runs over different symbols, intervals or data windows anyway.",
    ),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples for the CI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    runs_dir: str = _RUNS_DIR_OPT,
) -> None:
    """Put runs side by side: metrics, equity, per-flush outcomes, pairwise Sharpe difference
    (bootstrap CI) and a paired test on per-event returns."""
    from flushback.backtests.compare import (
        compare_reports,
        load_reports,
        print_comparison,
        render_compare_html,
    )

    reports = load_reports(runs, runs_dir)
    comp = compare_reports(reports, allow_mismatch=allow_mismatch, metrics=metric or None,
                           n_resamples=resamples, seed=seed)
    if fmt is OutputFormat.json:
        print_json(comp.to_dict())
    else:
        print_comparison(comp, console)
    if html:
        render_compare_html(comp, html)
        console_err.print(f"wrote {html}", markup=False, highlight=False, soft_wrap=True)


@runs_app.command("list")
def runs_list(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    runs_dir: str = _RUNS_DIR_OPT,
) -> None:
    """The stored runs: id, spec, data window and headline metrics."""
    from rich.table import Table

    from flushback.backtests.report_html import fmt as fmt_num
    from flushback.backtests.report_html import fmt_metric
    from flushback.backtests.report_schema import load_report_file
    from flushback.data.errors import DataError
    from flushback.data.paths import runs_dir as default_runs_dir

    root = default_runs_dir(runs_dir)
    rows = []
    bad = []
    for path in sorted(root.glob("*/report.json")) if root.is_dir() else []:
        if path.parent.name.startswith("."):
            continue
        try:
            rep = load_report_file(path)
        except DataError as exc:
            bad.append(f"{path.parent.name}: {exc}")
            continue
        m = rep.metrics
        rows.append({
            "run_id": rep.run_id, "kind": rep.kind, "spec": rep.spec_name,
            "symbol": rep.data.symbol, "interval": rep.data.interval,
            "start": rep.data.start, "end": rep.data.end, "created_at": rep.created_at,
            "total_return": m.get("total_return"), "sharpe": m.get("sharpe"),
            "max_drawdown": m.get("max_drawdown"), "n_trades": m.get("n_trades"),
        })
    rows.sort(key=lambda r: r["created_at"], reverse=True)
    if fmt is OutputFormat.json:
        print_json({"runs_dir": str(root), "runs": rows, "unreadable": bad})
        return
    if not rows:
        console.print(f"no runs in {root}", markup=False, highlight=False, soft_wrap=True)
    else:
        t = Table(title=f"Runs in {root}", title_justify="left")
        t.add_column("run_id", no_wrap=True, min_width=16)
        t.add_column("spec", overflow="fold")
        t.add_column("data", overflow="fold")
        for col in ("return", "Sharpe", "max DD", "trades"):
            t.add_column(col, justify="right", no_wrap=True)
        for r in rows:
            t.add_row(r["run_id"], r["spec"] or "-",
                      f"{r['symbol']} {r['interval']} {r['start'][:10]}→{r['end'][:10]}",
                      fmt_metric("total_return", r["total_return"]),
                      fmt_num(r["sharpe"], 3),
                      fmt_metric("max_drawdown", r["max_drawdown"]),
                      fmt_metric("n_trades", r["n_trades"]))
        console.print(t)
    for line in bad:
        console_err.print(f"skipped unreadable run {line}", markup=False, highlight=False,
                          soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``report``, ``compare`` and ``runs`` to the root app (one line in ``_register``)."""
    app.command("report")(report)
    app.command("compare")(compare)
    app.add_typer(runs_app, name="runs", help="List the stored runs.")
