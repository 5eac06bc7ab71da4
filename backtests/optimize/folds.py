"""Train/test windows (:func:`make_folds`): one split (``train_until``, default 70/30) or ``K``
walk-forward folds, anchored or rolling, with an optional embargo between a training window and
its test window; and the training chunks a pruner is told about (:func:`train_chunks`).

A study only ever sees its fold's training window; the test window is scored once, for the
chosen parameters, with earlier bars given to the signals as warm-up history only."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.run.timefmt import iso_z
from flushback.data.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """One train/test split; windows are inclusive bar-open timestamps.

    ``train_end < test_start`` always; the test window's backtest may read bars before
    ``test_start`` as signal warm-up, but scores (equity, trades, metrics) start at
    ``test_start``.
    """

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def to_dict(self) -> dict[str, Any]:
        return {k: (iso_z(v) if isinstance(v, pd.Timestamp) else v)
                for k, v in dataclasses.asdict(self).items()}


def make_folds(
    index: pd.DatetimeIndex,
    *,
    walk_forward: int | None = None,
    anchored: bool = True,
    train_until: Any = None,
    test_fraction: float = 0.3,
    min_train_bars: int = 30,
    embargo_bars: int = 0,
) -> list[Fold]:
    """Train/test windows over ``index`` (the bars a backtest can score).

    - ``train_until``: one fold, train ``[start, train_until]``, test the bars after it.
    - ``walk_forward=K``: the bars are cut into ``K + 1`` equal blocks; fold ``k`` tests block
      ``k + 1`` and trains on blocks ``0..k`` (anchored) or on block ``k`` only (rolling).
    - neither: one fold with the last ``test_fraction`` of the bars as the test window.

    ``embargo_bars``: a gap between each training window's end and its test window's start
    (the last ``embargo_bars`` bars before the test window are in neither window), so that no
    training trade or signal window reaches into the test period.
    """
    idx = pd.DatetimeIndex(index)
    folds = _make_folds(idx, walk_forward, anchored, train_until, test_fraction,
                        min_train_bars)
    gap = int(embargo_bars)
    if gap <= 0:
        return folds
    out = []
    for f in folds:
        t0 = int(idx.searchsorted(f.train_start))
        end = int(idx.searchsorted(f.test_start)) - 1 - gap
        if end - t0 + 1 < min_train_bars:
            raise ConfigError(
                f"an embargo of {gap} bars leaves fold {f.index + 1} {max(end - t0 + 1, 0)} "
                f"training bars (at least {min_train_bars} needed)",
                hint="pass a smaller --embargo, fewer --walk-forward folds or a longer period")
        out.append(dataclasses.replace(f, train_end=idx[end]))
    return out


def _make_folds(idx: pd.DatetimeIndex, walk_forward: int | None, anchored: bool,
                train_until: Any, test_fraction: float, min_train_bars: int) -> list[Fold]:
    n = len(idx)
    if n < 2 * min_train_bars:
        raise ConfigError(f"{n} bars are too few to split into training and test windows",
                          hint="use a longer [data] period")
    if walk_forward is not None and train_until is not None:
        raise ConfigError("give either --walk-forward or --train-until, not both")
    if train_until is not None:
        cut = pd.Timestamp(train_until)
        if cut.tzinfo is None and idx.tz is not None:
            cut = cut.tz_localize(idx.tz)
        pos = int(idx.searchsorted(cut, side="right"))  # bars <= cut are training
        if pos < min_train_bars or pos >= n - 1:
            raise ConfigError(
                f"--train-until {train_until} leaves {pos} training and {n - pos} test bars",
                hint=f"pick a date between {idx[min_train_bars].date()} and {idx[-2].date()}",
            )
        return [Fold(0, idx[0], idx[pos - 1], idx[pos], idx[-1])]
    if walk_forward is None:
        pos = int(round(n * (1 - test_fraction)))
        return [Fold(0, idx[0], idx[pos - 1], idx[pos], idx[-1])]
    k = int(walk_forward)
    if k < 1:
        raise ConfigError("--walk-forward needs K >= 1")
    bounds = [int(round(i * n / (k + 1))) for i in range(k + 2)]
    if min(np.diff(bounds)) < min_train_bars:
        raise ConfigError(f"{n} bars are too few for {k} walk-forward folds",
                          hint="use fewer folds or a longer period")
    folds = []
    for i in range(k):
        tr0 = 0 if anchored else bounds[i]
        folds.append(Fold(i, idx[tr0], idx[bounds[i + 1] - 1], idx[bounds[i + 1]],
                          idx[bounds[i + 2] - 1]))
    return folds


def train_chunks(index: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp,
            n: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    if n <= 1:
        return [(start, end)]
    sub = index[(index >= start) & (index <= end)]
    if len(sub) < 2 * n:
        return [(start, end)]
    b = [int(round(i * len(sub) / n)) for i in range(n + 1)]
    return [(sub[b[i]], sub[b[i + 1] - 1]) for i in range(n)]
