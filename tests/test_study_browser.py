"""``study.html`` and ``today.html`` render in headless Chromium: every chart drawn with data,
no script errors, no network requests."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import inspect_page, output_dir

from flushback.backtests.events.signal_study import study
from flushback.backtests.events.today import today
from flushback.data.synthetic import write_sample_folder

pytestmark = pytest.mark.browser


def test_study_html_renders_every_bucket(tmp_path):
    rng = np.random.default_rng(2)
    n = 400
    idx = pd.date_range("2022-01-01", periods=n, freq="1D", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    frame = pd.DataFrame({"open": np.r_[close[0], close[:-1]], "close": close}, index=idx)
    frame["high"] = frame[["open", "close"]].max(axis=1) * 1.01
    frame["low"] = frame[["open", "close"]].min(axis=1) * 0.99
    frame["volume"] = 1.0
    frame["fng"] = rng.integers(0, 100, n).astype(float)
    frame.attrs["interval"] = "1d"
    st = study(frame, None, buckets="fng:0,25,45,55,76,101", horizons=(7, 30), draws=200)
    paths = st.write(tmp_path, png=False)
    report = inspect_page(paths["html"], output_dir("study") / "study.png")
    assert report.errors == [] and report.problems() == []
    (chart,) = report.charts
    boxes = [t for t in chart["traces"] if t["type"] == "box"]
    assert len(boxes) == 2 * 6  # (all bars + 5 buckets) x 2 horizons
    assert all(t["points"] > 0 for t in boxes)


def test_today_html_renders_the_analogue_paths(tmp_path):
    root = write_sample_folder(tmp_path / "data", days=500, seed=3)
    res = today(date="2025-05-01", data_dir=root, k=3, horizons=(7, 30))
    assert len(res.analogues) == 3
    paths = res.write(tmp_path / "out", png=True)
    report = inspect_page(paths["html"], output_dir("today") / "today.png")
    assert report.errors == [] and report.problems() == []
    (chart,) = report.charts
    assert [t["points"] for t in chart["traces"]] == [30, 30, 30]
