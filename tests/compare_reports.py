"""Compare every shipped spec's report.json between two checkouts (a refactor's guard).

    python tests/compare_reports.py OLD_CHECKOUT NEW_CHECKOUT [DATA_DIR]

Each checkout needs its own ``.venv``; ``flushback_version`` and ``created_at`` are ignored,
everything else (run_id, metrics, trades, equity, events, ...) must be identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    data = sys.argv[3] if len(sys.argv) > 3 else str(a.parent / "shared" / "data")
    specs = sorted(p.stem for p in (a / "backtests" / "specs").glob("*.toml"))
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
            doc = json.loads((Path(json.loads(out.stdout)["run_dir"]) / "report.json")
                             .read_text())
            for key in ("flushback_version", "created_at"):
                doc.pop(key, None)
            docs.append(doc)
        same = docs[0] == docs[1]
        ok &= same
        print(f"{spec}: {'identical' if same else 'DIFFERENT'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
