"""Sizes of the run folder's files for every shipped spec (report.html, report.json, CSVs).

    python benchmarks/report_sizes.py --data-dir ../shared/data [--write benchmarks/report_sizes.md]
        [--spec NAME ...]   # only these specs (default: every shipped spec)

Targets (docs/reports.md): report.html <= 2.5 MB for a daily run and <= 5 MB for six years of
hourly bars (the extra BTCUSDT hourly run, the longest hourly history in the data),
self-contained and offline.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import tempfile
from pathlib import Path

import flushback as fb
from flushback.backtests.run.spec import list_specs

_TARGET_MB = {"1d": 2.5, "4h": 5.0, "1h": 5.0}

#: runs beyond the shipped specs as written: the longest hourly history in the data (Binance
#: BTCUSDT 1h, 2020-10 .. 2026-02, with funding), the "six years hourly" case of the target
EXTRA_RUNS = [
    ("rsi4h_btc_hourly", {"data.symbol": "BTCUSDT", "data.start": "2020-01-01"}),
]


def measure(data_dir: str, specs: list[str] | None = None) -> list[dict]:
    rows = []
    runs = ([(name, {}) for name in specs] if specs
            else [(name, {}) for name in list_specs()] + EXTRA_RUNS)
    for name, overrides in runs:
        with tempfile.TemporaryDirectory() as tmp:
            res = fb.backtest(name, set=overrides or None, data_dir=data_dir)
            folder = res.save(tmp)
            sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
        interval = res.spec.data.interval
        label = name + "".join(f" --set {k}={v}" for k, v in overrides.items())
        rows.append({"spec": label, "interval": interval, "bars": len(res.equity),
                     "html_mb": sizes.get("report.html", 0) / 1e6,
                     "json_mb": sizes.get("report.json", 0) / 1e6,
                     "parquet_mb": sizes.get("bars.parquet", 0) / 1e6,
                     "csv_mb": sum(v for k, v in sizes.items() if k.endswith(".csv")) / 1e6,
                     "target_mb": _TARGET_MB.get(interval, 5.0)})
    return rows


def render(rows: list[dict], command: str) -> str:
    lines = [
        "# Report sizes of the shipped specs",
        "",
        f"Produced by `{command}` on {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "report.json keeps the per-bar equity and chart series in bars.parquet beside it once a",
        "run has 1,000 bars or more (flushback.backtests.reports.long_series).",
        "",
        "| spec | bars | report.html | report.json | bars.parquet | CSVs | html target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        met = "yes" if r["html_mb"] <= r["target_mb"] else "**no**"
        lines.append(f"| {r['spec']} ({r['interval']}) | {r['bars']:,} | {r['html_mb']:.2f} MB "
                     f"| {r['json_mb']:.2f} MB | {r['parquet_mb']:.2f} MB | {r['csv_mb']:.2f} MB "
                     f"| {r['target_mb']} MB | {met} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--write", default=None, help="Markdown file to write the table to.")
    ap.add_argument("--spec", action="append", default=None,
                    help="measure only this spec (repeatable; default: every shipped spec)")
    args = ap.parse_args()
    command = f"python benchmarks/report_sizes.py --data-dir {args.data_dir}"
    text = render(measure(args.data_dir, args.spec), command)
    print(text)
    if args.write:
        Path(args.write).write_text(text)


if __name__ == "__main__":
    main()
