"""Train/test windows (:func:`make_folds`): one split (``train_until``, default 70/30), ``K``
walk-forward folds, anchored or rolling, with an optional embargo between a training window and
its test window, or combinatorial purged k-fold (:func:`make_cpcv_folds`, with its backtest
paths :func:`cpcv_paths`); and the training chunks a pruner is told about
(:func:`train_chunks`).

A study only ever sees its fold's training windows; the test windows are scored once, for the
chosen parameters, with earlier bars given to the signals as warm-up history only."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.run.timefmt import iso_z
from flushback.data.errors import ConfigError

Window = tuple[pd.Timestamp, pd.Timestamp]


@dataclass(frozen=True)
class Fold:
    """One train/test split; windows are inclusive bar-open timestamps.

    A walk-forward or single split has one training and one test window, ``train_end <
    test_start``. A split of combinatorial purged k-fold has several of each:
    ``train_segments`` (the bars of the groups it trains on, purged around its test groups) and
    ``test_segments`` (its test groups, numbered ``test_groups``); ``train_start``/``train_end``
    and ``test_start``/``test_end`` then span them. A test window's backtest may read bars
    before its start as signal warm-up, but scores (equity, trades, metrics) start at its start.
    """

    index: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    train_segments: tuple[Window, ...] = ()
    test_segments: tuple[Window, ...] = ()
    test_groups: tuple[int, ...] = ()

    @property
    def train_windows(self) -> tuple[Window, ...]:
        """The windows a trial is scored on (one, or a CPCV split's training segments)."""
        return self.train_segments or ((self.train_start, self.train_end),)

    @property
    def test_windows(self) -> tuple[Window, ...]:
        """The windows the chosen configuration is tested on (one, or the test groups)."""
        return self.test_segments or ((self.test_start, self.test_end),)

    @property
    def combinatorial(self) -> bool:
        return bool(self.test_groups)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index}
        for k in ("train_start", "train_end", "test_start", "test_end"):
            out[k] = iso_z(getattr(self, k))
        # only a CPCV split has these (a walk-forward fold's dict, and so the fingerprint of
        # its study, is what it always was)
        if self.test_groups:
            out["train_segments"] = [[iso_z(a), iso_z(b)] for a, b in self.train_segments]
            out["test_segments"] = [[iso_z(a), iso_z(b)] for a, b in self.test_segments]
            out["test_groups"] = [int(g) for g in self.test_groups]
        return out


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


def make_cpcv_folds(index: pd.DatetimeIndex, n_groups: int, n_test_groups: int = 2, *,
                    embargo_bars: int = 0, min_train_bars: int = 30,
                    max_splits: int = 252) -> list[Fold]:
    """Combinatorial purged k-fold (Lopez de Prado, *Advances in Financial Machine Learning*,
    ch. 12): the bars cut into ``n_groups`` equal groups; every choice of ``n_test_groups`` of
    them is one split (``C(n_groups, n_test_groups)`` splits, in lexicographic order), tested
    on those groups and trained on the others.

    Purge and embargo: ``embargo_bars`` bars before each test group's start and after its end
    belong to no training segment, so no training trade or signal window reaches into a test
    group, and no training segment's warm-up reads one. What is left of the training groups is
    cut into contiguous segments, each backtested on its own (flat at its start); a segment of
    fewer than ``min_train_bars`` bars is dropped (it lay inside the purge). Test groups are
    whole groups, each backtested on its own with the bars before it as warm-up history.
    """
    idx = pd.DatetimeIndex(index)
    n, big_n, k = len(idx), int(n_groups), int(n_test_groups)
    if big_n < 2:
        raise ConfigError("--cpcv needs at least 2 groups")
    if not 1 <= k < big_n:
        raise ConfigError(f"--test-groups must be between 1 and {big_n - 1} with {big_n} groups")
    n_splits = math.comb(big_n, k)
    if n_splits > max_splits:
        raise ConfigError(f"--cpcv {big_n} with {k} test groups makes {n_splits} splits, "
                          f"each its own study (at most {max_splits})",
                          hint="use fewer groups or fewer test groups")
    bounds = [int(round(i * n / big_n)) for i in range(big_n + 1)]
    if min(np.diff(bounds)) < min_train_bars:
        raise ConfigError(f"{n} bars are too few for {big_n} CPCV groups",
                          hint="use fewer groups or a longer period")
    gap = max(int(embargo_bars), 0)
    folds = []
    for i, test in enumerate(itertools.combinations(range(big_n), k)):
        keep = np.ones(n, dtype=bool)
        for g in test:
            keep[max(bounds[g] - gap, 0):min(bounds[g + 1] + gap, n)] = False
        segments: list[Window] = []
        for a, b in _runs(keep):
            if b - a >= min_train_bars:
                segments.append((idx[a], idx[b - 1]))
        n_train = sum(int(idx.searchsorted(b)) - int(idx.searchsorted(a)) + 1
                      for a, b in segments)
        if n_train < min_train_bars:
            raise ConfigError(
                f"an embargo of {gap} bars leaves split {i + 1} (test groups "
                f"{', '.join(str(g + 1) for g in test)}) {n_train} training bars "
                f"(at least {min_train_bars} needed)",
                hint="pass a smaller --embargo, fewer --test-groups or a longer period")
        tests = tuple((idx[bounds[g]], idx[bounds[g + 1] - 1]) for g in test)
        folds.append(Fold(i, segments[0][0], segments[-1][1], tests[0][0], tests[-1][1],
                          train_segments=tuple(segments), test_segments=tests,
                          test_groups=tuple(test)))
    return folds


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def cpcv_paths(folds: list[Fold] | tuple[Fold, ...]) -> list[list[tuple[int, int]]]:
    """The backtest paths of a combinatorial purged k-fold: ``C(N - 1, k - 1)`` of them, each a
    list of ``(group, fold index)`` covering every group once, in time order.

    Group ``g`` is tested by ``C(N - 1, k - 1)`` splits; path ``j`` takes its result from the
    ``j``-th of them (in split order), so every (split, test group) result is used by exactly
    one path."""
    by_group: dict[int, list[int]] = {}
    for f in folds:
        for g in f.test_groups:
            by_group.setdefault(int(g), []).append(f.index)
    if not by_group:
        raise ValueError("not a combinatorial purged k-fold: no fold has test groups")
    counts = {len(v) for v in by_group.values()}
    if len(counts) != 1:
        raise ValueError(f"groups are tested by different numbers of splits: {sorted(counts)}")
    n_paths = counts.pop()
    return [[(g, by_group[g][j]) for g in sorted(by_group)] for j in range(n_paths)]


def train_chunks(index: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp,
            n: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    if n <= 1:
        return [(start, end)]
    sub = index[(index >= start) & (index <= end)]
    if len(sub) < 2 * n:
        return [(start, end)]
    b = [int(round(i * len(sub) / n)) for i in range(n + 1)]
    return [(sub[b[i]], sub[b[i + 1] - 1]) for i in range(n)]
