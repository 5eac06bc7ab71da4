"""docs/strategies.md documents every declared strategy parameter (defaults included) and
every shipped spec; the docs cannot drift from the declarations silently."""

from __future__ import annotations

import re
from pathlib import Path

from flushback.backtests.run.spec import list_specs
from flushback.strategies.config import CONTRARIAN_PARAMS

DOC = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"


def test_contrarian_parameter_table_matches_the_declarations():
    text = DOC.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, flags=re.M))
    assert set(CONTRARIAN_PARAMS) <= set(rows), set(CONTRARIAN_PARAMS) - set(rows)
    for name, param in CONTRARIAN_PARAMS.items():
        shown = rows[name].strip().split(" ")[0].strip("`\"")
        if param.type in (int, float):
            assert float(shown) == float(param.default), (name, shown, param.default)
        else:
            assert shown.lower() == str(param.default).lower(), (name, shown, param.default)


def test_every_shipped_spec_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for name in list_specs():
        assert f"| {name} |" in text, name
