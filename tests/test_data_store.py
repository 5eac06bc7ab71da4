"""The Parquet store: atomic writes, incremental merges, fingerprints, failure safety."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.data import load_frame, paths
from flushback.data.datasets import fingerprint
from flushback.data.errors import DataError, SourceUnavailable, StoreError
from flushback.data.importer import import_folder
from flushback.data.store import Store, StoreRepository, merge_frames
from flushback.data.synthetic import synthetic_bars, write_sample_folder

DID = "prices/BTC-USD_1d"


def test_store_lives_under_flushback_home(_isolated_home):
    assert Store().root == _isolated_home / "store" == paths.store_dir()


def test_folder_precedence_flag_then_variable_then_home_then_default(_isolated_home, tmp_path,
                                                                     monkeypatch):
    import platformdirs

    assert paths.runs_dir() == _isolated_home / "runs"
    assert paths.data_dir() is None
    monkeypatch.setenv("FLUSHBACK_STORE", str(tmp_path / "st"))
    monkeypatch.setenv("FLUSHBACK_RUNS_DIR", str(tmp_path / "rn"))
    monkeypatch.setenv("FLUSHBACK_DATA_DIR", str(tmp_path / "dd"))
    assert paths.store_dir() == tmp_path / "st" and paths.runs_dir() == tmp_path / "rn"
    assert paths.data_dir() == tmp_path / "dd"
    assert paths.store_dir(tmp_path / "x") == tmp_path / "x" == paths.runs_dir(tmp_path / "x")
    assert paths.data_dir(tmp_path / "x") == tmp_path / "x"
    for var in ("FLUSHBACK_HOME", "FLUSHBACK_STORE", "FLUSHBACK_RUNS_DIR", "FLUSHBACK_DATA_DIR"):
        monkeypatch.delenv(var)
    assert paths.store_dir() == Path(platformdirs.user_cache_dir("flushback")) / "store"
    assert paths.runs_dir() == Path("runs") and paths.data_dir() is None
    monkeypatch.setenv("FLUSHBACK_STORE", "")  # empty means unset
    assert paths.store_dir() == Path(platformdirs.user_cache_dir("flushback")) / "store"


def test_write_read_roundtrip_keeps_content_and_fingerprint(tmp_path):
    st = Store(tmp_path / "s")
    bars = synthetic_bars(periods=30)
    info, status = st.write(DID, bars, origin="test")
    assert status == "new" and info.rows == 30
    back, info2 = st.read(DID)
    pd.testing.assert_frame_equal(back, bars, check_freq=False, check_index_type=False)
    assert info2.fingerprint == fingerprint(bars) == info.fingerprint
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["datasets"][DID]["fingerprint"] == info.fingerprint
    assert manifest["datasets"][DID]["origin"] == "test"


def test_rewrite_same_content_is_a_noop(tmp_path):
    st = Store(tmp_path / "s")
    bars = synthetic_bars(periods=30)
    st.write(DID, bars, origin="a")
    path = st.parquet_path(DID)
    mtime = path.stat().st_mtime_ns
    info, status = st.write(DID, bars.iloc[10:20], origin="b")  # a subset: merge = same
    assert status == "unchanged" and path.stat().st_mtime_ns == mtime


def test_incremental_update_appends_and_new_rows_win(tmp_path):
    st = Store(tmp_path / "s")
    bars = synthetic_bars(periods=40)
    st.write(DID, bars.iloc[:30], origin="a")
    newer = bars.iloc[25:].copy()
    newer.loc[newer.index[0], ["close"]] = newer["close"].iloc[0] * 1.0001  # a revision
    info, status = st.write(DID, newer, origin="b")
    assert status == "updated" and info.rows == 40
    back, _ = st.read(DID)
    assert back.loc[newer.index[0], "close"] == newer["close"].iloc[0]
    assert back.loc[bars.index[0], "close"] == bars["close"].iloc[0]


def test_merge_frames_hand_example():
    idx = pd.date_range("2024-01-01", periods=3, freq="1D", tz="UTC")
    old = pd.DataFrame({"v": [1.0, 2.0, 3.0]}, index=idx)
    new = pd.DataFrame({"v": [20.0, 40.0]}, index=idx[1:].append(
        pd.DatetimeIndex([idx[-1] + pd.Timedelta(days=1)]))[[0, 2]])
    assert merge_frames(old, new)["v"].tolist() == [1.0, 20.0, 3.0, 40.0]


def test_invalid_update_never_overwrites_the_last_good_copy(tmp_path):
    st = Store(tmp_path / "s")
    bars = synthetic_bars(periods=30)
    st.write(DID, bars, origin="good")
    before = st.parquet_path(DID).read_bytes()
    bad = bars.iloc[-5:].copy()
    bad.loc[bad.index[2], "low"] = -1.0
    with pytest.raises(DataError, match="zero or negative"):
        st.write(DID, bad, origin="bad")
    assert st.parquet_path(DID).read_bytes() == before
    assert st.info(DID).fingerprint == fingerprint(bars)


def test_crash_during_replace_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    st = Store(tmp_path / "s")
    bars = synthetic_bars(periods=30)
    st.write(DID, bars, origin="good")
    before = st.parquet_path(DID).read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(StoreError, match="No space left"):
        st.write(DID, synthetic_bars(periods=35, seed=3), origin="crash")
    monkeypatch.undo()
    assert st.parquet_path(DID).read_bytes() == before
    leftovers = [p for p in st.parquet_path(DID).parent.iterdir() if p.suffix == ".tmp"]
    assert leftovers == []
    assert st.read(DID)[1].fingerprint == fingerprint(bars)


def test_file_changed_outside_flushback_is_detected(tmp_path):
    st = Store(tmp_path / "s")
    bars = synthetic_bars(periods=30)
    st.write(DID, bars, origin="good")
    other = bars.copy()
    other["close"] = other["close"] * 1.01
    other.to_parquet(st.parquet_path(DID))
    with pytest.raises(StoreError, match="does not match the manifest") as ei:
        st.read(DID)
    assert Path(ei.value.file).name.startswith("BTC-USD_1d.")
    assert ei.value.file == str(st.parquet_path(DID))
    st.parquet_path(DID).write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="unreadable"):
        st.read(DID)
    (tmp_path / "s" / "manifest.json").write_text("{oops")
    with pytest.raises(StoreError, match="corrupt"):
        st.ids()


def test_import_folder_twice_is_a_noop_and_load_frame_serves_from_store(tmp_path):
    root = write_sample_folder(tmp_path / "data", days=30)
    first = import_folder(root)
    assert {r.status for r in first} == {"new"}
    second = import_folder(root)
    assert {r.status for r in second} == {"unchanged"}
    assert [r.info.fingerprint for r in first] == [r.info.fingerprint for r in second]
    from_store = load_frame("BTC-USD", "1d", offline=True)
    from_dir = load_frame("BTC-USD", "1d", data_dir=root)
    pd.testing.assert_frame_equal(from_store.frame, from_dir.frame)
    assert from_store.fingerprints == from_dir.fingerprints


def test_import_with_a_bad_file_writes_nothing(tmp_path):
    root = write_sample_folder(tmp_path / "data", days=30)
    p = root / "prices" / "BTC-USD_1d.csv"
    lines = p.read_text().splitlines()
    lines[5] = lines[5].split(",")[0] + ",1,2,3,-4,5"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="nothing was imported") as ei:
        import_folder(root)
    assert ei.value.file == str(p)
    assert Store().ids() == []


def test_offline_repository_never_fetches(monkeypatch):
    import flushback.data.sources as sources

    def forbidden(_):
        raise AssertionError("network touched while offline")

    monkeypatch.setattr(sources, "fetcher_for", forbidden)
    repo = StoreRepository(offline=True)
    assert repo.has(DID) is False
    with pytest.raises(DataError, match="unknown symbol"):
        load_frame("BTC-USD", "1d", offline=True)


def test_online_repository_fetches_missing_and_stores_it(monkeypatch):
    import flushback.data.sources as sources

    calls = []

    def fetcher_for(did):
        def run():
            calls.append(did)
            return synthetic_bars(periods=50)

        run.__name__ = "fake"
        return run if did == DID else None

    monkeypatch.setattr(sources, "fetcher_for", fetcher_for)
    af = load_frame("BTC-USD", "1d", offline=False, externals=None)
    assert calls == [DID] and len(af.frame) == 50
    assert Store().has(DID)
    load_frame("BTC-USD", "1d", offline=False, externals=None)
    assert calls == [DID]  # served from the store the second time


def test_online_fetch_failure_is_reported_and_store_untouched(monkeypatch):
    import flushback.data.sources as sources

    def fetcher_for(did):
        def run():
            raise SourceUnavailable("yfinance is unreachable", file="yfinance:BTC-USD")

        run.__name__ = "fake"
        return run

    monkeypatch.setattr(sources, "fetcher_for", fetcher_for)
    with pytest.raises(SourceUnavailable, match="unreachable"):
        load_frame("BTC-USD", "1d", offline=False, externals=None)
    assert Store().ids() == []
    assert not np.any([p.suffix == ".parquet" for p in Store().root.rglob("*")])


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    """Store files and run folders are created like plain files (0666/0777 minus the umask),
    not with the temp file's private 0600/0700."""
    import os
    import stat

    from flushback.data.store import atomic_write_bytes, default_mode

    old = os.umask(0o022)
    try:
        p = atomic_write_bytes(tmp_path / "x" / "f.bin", b"abc")
        assert p.read_bytes() == b"abc"
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        assert default_mode(directory=True) == 0o755
        assert not [q for q in p.parent.iterdir() if q.name.endswith(".tmp")]
    finally:
        os.umask(old)
