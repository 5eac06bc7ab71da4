"""Compare every shipped spec's report.json between two checkouts (a refactor's guard).

    python tests/compare_reports.py OLD_CHECKOUT NEW_CHECKOUT [DATA_DIR]

Each checkout needs its own ``.venv``; ``flushback_version`` and ``created_at`` are ignored,
everything else (run_id, metrics, trades, equity, events, ...) must be identical. A report that
keeps its per-bar series in ``bars.parquet`` beside it (schema 1.2) is compared with those
series read back (``flushback.backtests.reports.long_series.join``), without the file
reference; ``--ignore KEY`` leaves out more top-level keys (e.g. ``schema_version``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from flushback.backtests.reports.long_series import join


def main() -> int:
    args = sys.argv[1:]
    ignore = {"flushback_version", "created_at", "long_series"}
    while "--ignore" in args:
        i = args.index("--ignore")
        ignore.add(args[i + 1])
        del args[i:i + 2]
    a, b = Path(args[0]), Path(args[1])
    data = args[2] if len(args) > 2 else str(a.parent / "shared" / "data")
    specs_of = [{p.stem for p in (t / "backtests" / "specs").glob("*.toml")} for t in (a, b)]
    specs = sorted(specs_of[0] & specs_of[1])
    for only in sorted(specs_of[0] ^ specs_of[1]):
        print(f"{only}: shipped by one checkout only, not compared")
    ok = True
    for spec in specs:
        docs = []
        for tree in (a, b):
            runs = tempfile.mkdtemp()
            out = subprocess.run(
                [str(tree / ".venv/bin/flushback"), "--data-dir", data, "backtest", spec,
                 "--runs-dir", runs, "--format", "json"],
                capture_output=True, text=True, check=True,
                env={"FLUSHBACK_HOME": runs, "PATH": "/usr/bin:/bin"})
            run_dir = Path(json.loads(out.stdout)["run_dir"])
            doc = join(json.loads((run_dir / "report.json").read_text()), run_dir)
            for key in ignore:
                doc.pop(key, None)
            docs.append(doc)
        same = docs[0] == docs[1]
        ok &= same
        keys = sorted(k for k in set(docs[0]) | set(docs[1]) if docs[0].get(k) != docs[1].get(k))
        print(f"{spec}: {'identical' if same else 'DIFFERENT: ' + ', '.join(keys)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
