"""The flush catalog: content, sources, validation errors, and facts re-read from the data files."""

from __future__ import annotations

import csv
import datetime as dt
import tomllib
from pathlib import Path

import pytest

from flushback.data.errors import DataError
from flushback.data.flush_events import CATALOG_PATH, load_catalog, parse_catalog

ISSUE_DATES = [
    "2020-03-12", "2021-01-11", "2021-04-18", "2021-05-19", "2021-09-07", "2021-12-04",
    "2022-05-09", "2022-06-13", "2022-11-08", "2023-08-17", "2024-08-05", "2025-02-03",
    "2025-10-10", "2026-02-02", "2026-02-05",
]


def test_catalog_has_the_issue_events_with_sources():
    cat = load_catalog()
    assert len(cat) >= 15
    assert cat.version
    starts = {e.start.isoformat() for e in cat}
    assert set(ISSUE_DATES) <= starts
    assert min(e.start for e in cat).year == 2020 and max(e.start for e in cat).year == 2026
    assert len({e.id for e in cat}) == len(cat)
    for ev in cat:
        assert ev.name and ev.end >= ev.start
        assert ev.facts, ev.id
        assert ev.facts_of("btc_low_usd"), ev.id
        for f in ev.facts:
            assert f.source.strip()
            if f.source_type == "article":
                assert f.published is not None
    feb = cat.get("2026-02-05-february-capitulation")
    assert (feb.start, feb.end) == (dt.date(2026, 2, 5), dt.date(2026, 2, 6))
    assert {f.value for f in feb.facts_of("fng")} >= {9}
    assert feb.headline("liq_24h_usd").value == 2_600_000_000
    assert cat.get("2026-02-02-february-flush").headline("liq_1h_usd").value == 144_000_000


def test_article_facts_appear_in_the_seed_articles():
    """Every article figure is stated in a seed article (as the number the article prints)."""
    seeds = Path(__file__).resolve().parents[2] / "shared" / "seeds"
    if not seeds.is_dir():
        pytest.skip(f"seed articles not found at {seeds}")
    text = " ".join(p.read_text(encoding="utf-8") for p in seeds.glob("*.txt"))
    printed = {
        144_000_000: "$144 million", 659_000_000: "$659 million", 431_000_000: "$431 million",
        2_510_000_000: "$2.51 billion", 2_600_000_000: "$2.6B", 2_140_000_000: "$2.14B",
        1_950_000_000: "$1.95 billion", 1_700_000_000: "$1.7 billion",
        500_000_000: "$500 million", 466_660_000: "$466.66M", 2_560_000_000: "2.56 billion",
        19_000_000_000: "$19 billion", 75203: "$75,203", 60704: "$60,704", 63280: "$63,280",
        14: "14/100", 9: "9 out of 100",
    }
    for ev in load_catalog():
        for f in ev.facts:
            if f.source_type != "article" or f.note and f.note.startswith("derived"):
                continue
            if f.kind == "long_share_1h":
                assert "70%" in text
                continue
            assert printed[f.value] in text, (ev.id, f.kind, f.value)


def _read_csv(path: Path, key: str) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fh:
        return {row[key]: row for row in csv.DictReader(fh)}


@pytest.mark.realdata
def test_data_file_facts_match_the_files(shared_data_dir):
    cache: dict[str, dict[str, dict[str, str]]] = {}
    checked = 0
    for ev in load_catalog():
        for f in ev.facts:
            if f.source_type != "data_file":
                continue
            path = shared_data_dir / f.source
            key = "date" if f.source.startswith("sentiment/") else "timestamp"
            rows = cache.setdefault(f.source, _read_csv(path, key))
            row = rows[f.on.isoformat()]
            if f.kind == "fng":
                assert float(row["value"]) == f.value, (ev.id, f.on)
            elif f.kind == "btc_low_usd":
                assert float(row["low"]) == pytest.approx(f.value, abs=0.006)
                # and it is the lowest low of the window
                days = [ev.start + dt.timedelta(d) for d in range((ev.end - ev.start).days + 1)]
                assert f.value == pytest.approx(
                    min(float(rows[d.isoformat()]["low"]) for d in days), abs=0.006
                )
            elif f.kind == "liq_24h_usd":
                total = float(row["long_usd"]) + float(row["short_usd"])
                assert f.value == pytest.approx(total, abs=50_001), (ev.id, f.source)
            elif f.kind == "long_share":
                lo, sh = float(row["long_usd"]), float(row["short_usd"])
                assert f.value == pytest.approx(lo / (lo + sh), abs=0.0005)
            else:  # pragma: no cover - a new kind needs a check here
                raise AssertionError(f"unchecked data_file fact kind {f.kind}")
            checked += 1
    assert checked >= 60


def test_catalog_ships_as_package_data():
    assert CATALOG_PATH.name == "flush_events.toml" and CATALOG_PATH.is_file()
    pyproject = tomllib.loads(
        (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    )
    assert "*.toml" in pyproject["tool"]["setuptools"]["package-data"]["flushback.data"]


def _doc(**event):
    base = {"id": "x", "name": "X", "start": dt.date(2024, 8, 5)}
    base.update(event)
    return {"version": "1", "events": [base]}


FACT = {
    "kind": "fng", "value": 20, "on": dt.date(2024, 8, 5), "scope": "s",
    "source_type": "data_file", "source": "sentiment/crypto_fear_greed.csv",
}


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"version": "1", "events": []}, "no events"),
        ({"events": [{"id": "x"}]}, "version"),
        (_doc(strat=dt.date(2024, 1, 1)), "did you mean 'start'"),
        (_doc(start="2024-08-05"), "TOML date"),
        (_doc(end=dt.date(2024, 8, 1)), "before start"),
        (_doc(facts=[{**FACT, "kind": "fgn"}]), "did you mean 'fng'"),
        (_doc(facts=[{**FACT, "value": 140}]), "outside its range"),
        (_doc(facts=[{**FACT, "kind": "long_share", "value": 82}]), "fractions"),
        (_doc(facts=[{**FACT, "source": " "}]), "names its source"),
        (_doc(facts=[{**FACT, "source_type": "article"}]), "publication date"),
        (_doc(facts=[{k: v for k, v in FACT.items() if k != "source"}]), "missing required"),
        (_doc(facts=[{**FACT, "qualifier": "roughly"}]), "qualifier"),
    ],
)
def test_malformed_catalog_raises_data_error(doc, needle):
    with pytest.raises(DataError) as info:
        parse_catalog(doc, file="bad.toml")
    assert needle in str(info.value)
    assert "bad.toml" in str(info.value)


def test_duplicate_ids_and_file_errors(tmp_path):
    doc = {"version": "1", "events": [_doc()["events"][0], _doc()["events"][0]]}
    with pytest.raises(DataError, match="duplicate id"):
        parse_catalog(doc)
    bad = tmp_path / "c.toml"
    bad.write_text('version = "1"\n[[events]\nid=1')
    with pytest.raises(DataError, match="not a valid TOML"):
        load_catalog(bad)
    with pytest.raises(DataError, match="not found"):
        load_catalog(tmp_path / "missing.toml")
    with pytest.raises(DataError, match="did you mean"):
        load_catalog().get("2026-02-05-february-capitulatio")


def test_between_and_anchors():
    cat = load_catalog()
    sub = cat.between("2022-01-01", "2022-12-31")
    assert all(e.start.year == 2022 for e in sub) and len(sub) >= 3
    a = cat.anchors()
    assert str(a.tz) == "UTC" and a.is_monotonic_increasing
