"""One home for did-you-mean suggestions (flushback.data.suggest): the format every error
message appends, and that no other module asks difflib itself."""

from __future__ import annotations

from pathlib import Path

from flushback.data.suggest import closest, did_you_mean

ROOT = Path(__file__).resolve().parents[1]


def test_closest_and_the_appended_suggestion():
    names = ["oversold_rsi", "extreme_fear", "liquidation_spike"]
    assert closest("oversold_rsl", names) == "oversold_rsi"
    assert closest("zzz", names) is None
    assert did_you_mean("extreme_feer", names) == " (did you mean 'extreme_fear'?)"
    assert did_you_mean("zzz", names) == ""
    # candidates and word are compared as strings
    assert closest(14, [13, 140, "x"]) in ("13", "140")


def test_no_other_module_calls_difflib():
    users = sorted(
        str(p.relative_to(ROOT)) for folder in ("data", "signals", "strategies", "backtests",
                                                "flushback", "benchmarks", "examples")
        for p in (ROOT / folder).rglob("*.py") if "difflib" in p.read_text(encoding="utf-8"))
    assert users == ["data/suggest.py"], users
