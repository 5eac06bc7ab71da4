"""A store that survives a kill: ``data import`` is SIGKILLed at every write step (before and
after each fsync, rename and delete it makes), and each time the store still loads at its
last good state (every dataset verifies against the manifest, holding either the old or the
new version, never a mix), and the next import completes and leaves no orphan behind.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from flushback.data.importer import import_folder
from flushback.data.store import Store
from flushback.data.synthetic import write_sample_folder

_KILLER = textwrap.dedent('''
    import os, signal, sys
    step, when, folder, store = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    count = [0]
    def wrap(fn):
        def inner(*args, **kwargs):
            count[0] += 1
            here = count[0] == step
            if here and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            out = fn(*args, **kwargs)
            if here and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        return inner
    from flushback.data.importer import import_folder
    from flushback.data.store import Store
    os.replace, os.unlink, os.fsync = wrap(os.replace), wrap(os.unlink), wrap(os.fsync)
    import_folder(folder, Store(store))
    print("STEPS", count[0])
''')


def _fingerprints(store: Store) -> dict[str, str]:
    out = {}
    for did in store.ids():
        _, info = store.read(did)  # verify=True: content matches the manifest
        out[did] = info.fingerprint
    return out


def _files(store: Store) -> set[str]:
    return {p.relative_to(store.root).as_posix()
            for p in (store.root / "datasets").rglob("*") if p.is_file()}


@pytest.mark.slow
def test_sigkill_at_every_write_step_leaves_the_last_good_store(tmp_path):
    old = write_sample_folder(tmp_path / "old", days=40)
    new = write_sample_folder(tmp_path / "new", days=40)
    # the new folder revises two datasets (a later bar, a corrected F&G value)
    bars = new / "prices" / "BTC-USD_1d.csv"
    df = pd.read_csv(bars)
    extra = df.iloc[[-1]].copy()
    extra["timestamp"] = "2024-02-10"
    pd.concat([df, extra]).to_csv(bars, index=False)
    fng = new / "sentiment" / "crypto_fear_greed.csv"
    f = pd.read_csv(fng)
    f.loc[5, "value"] = 50 if f.loc[5, "value"] != 50 else 51
    f.to_csv(fng, index=False)

    good = Store(tmp_path / "good")
    import_folder(old, good)
    before = _fingerprints(good)
    reference = Store(tmp_path / "reference")
    shutil.copytree(good.root, reference.root)
    import_folder(new, reference)
    after = _fingerprints(reference)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"prices/BTC-USD_1d", "sentiment/crypto_fear_greed"}

    step, killed = 0, 0
    while True:
        step += 1
        finished = False
        for when in ("before", "after"):
            trial = Store(tmp_path / f"trial-{step}-{when}")
            shutil.copytree(good.root, trial.root)
            proc = subprocess.run(
                [sys.executable, "-c", _KILLER, str(step), when, str(new), str(trial.root)],
                capture_output=True, text=True, timeout=120)
            if proc.returncode == 0:
                assert "STEPS" in proc.stdout
                finished = True
            else:
                assert proc.returncode == -9, proc.stderr  # SIGKILL, not a Python error
                killed += 1
            # the store loads, every dataset verifies, each is the old or the new version
            now = _fingerprints(trial)
            assert set(now) == set(before)
            for did, fp in now.items():
                assert fp in (before[did], after[did]), (step, when, did)
            # the next import completes, ends at the new state, and cleans up the orphans
            import_folder(new, trial)
            assert _fingerprints(trial) == after
            named = {trial.parquet_path(d).relative_to(trial.root).as_posix()
                     for d in trial.ids()}
            assert _files(trial) == named, (step, when)
            shutil.rmtree(trial.root)
        if finished:
            break
        assert step < 200, "the import never finished"
    # two datasets, each: fsync + rename of the new version, fsync of the folder, then the
    # manifest's fsync + rename + folder fsync, and the old version's delete
    assert killed >= 2 * 7 * 2
