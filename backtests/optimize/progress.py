"""The progress display of a running study (rich bar on a terminal, plain lines when piped):
trials done over all workers and folds, trials/s, best so far, ETA."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from flushback.backtests.optimize.config import StudyConfig, trial_counts


class StudyProgress:
    """rich progress: trials done (all workers, all folds), trials/s, best so far, ETA."""

    def __init__(self, cfg: StudyConfig, storage: Any, total: int, console: Any,
                 plain: bool = False) -> None:
        self._plain, self._console, self._total = plain, console, total
        self._said: tuple[str, int] | None = None
        self._said_at = time.perf_counter()
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._cfg, self._storage = cfg, storage
        self._p = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} trials/s"), TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self._task = self._p.add_task("optimize", total=total, rate="-", best="-")
        self._t0 = time.perf_counter()
        self._start_done: int | None = None
        self._last = 0.0

    def start(self) -> None:
        if not self._plain:
            self._p.start()
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        import optuna

        now = time.perf_counter()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        done, best, fold_label = 0, None, ""
        for fold in self._cfg.folds:
            try:
                study = optuna.load_study(study_name=self._cfg.fold_study_name(fold),
                                          storage=self._storage)
                d, _ = trial_counts(study)
            except Exception:
                continue
            done += min(d, self._cfg.n_trials)
            current = d < self._cfg.n_trials and not fold_label
            if current or (fold is self._cfg.folds[-1] and not fold_label):
                # best so far of the fold in progress (of the last fold once all are done)
                if current:
                    fold_label = f"fold {fold.index + 1}/{len(self._cfg.folds)}"
                if not self._cfg.multi:
                    with contextlib.suppress(Exception):
                        best = study.best_value
        if self._start_done is None:
            self._start_done = done
        rate = (done - self._start_done) / max(now - self._t0, 1e-9)
        label = self._cfg.objectives[0].label
        if self._plain:
            self._line(done, rate, "-" if best is None else f"{label}={best:.3f}", fold_label,
                       now, force)
            return
        self._p.update(
            self._task, completed=done, rate=f"{rate:.1f}",
            best="-" if best is None else f"{label}={best:.3f}",
            description=f"optimize {fold_label}".strip(),
        )

    def _line(self, done: int, rate: float, best: str, fold: str, now: float,
              force: bool) -> None:
        """A line when the fold changes, every ~5 % of the trials, or after 60 s of quiet."""
        step = max(1, self._total // 20)
        said_fold, said_done = self._said or ("", -step)
        if not (force or fold != said_fold or done - said_done >= step
                or now - self._said_at >= 60):
            return
        if self._said is not None and (fold, done) == self._said:
            return
        self._said, self._said_at = (fold, done), now
        elapsed = now - self._t0
        left = (self._total - done) / rate if rate > 0 else None
        eta = "" if left is None or done >= self._total else f", ETA {_clock(left)}"
        where = f" ({fold})" if fold else ""
        self._console.print(
            f"optimize{where}: {done}/{self._total} trials, {rate:.1f} trials/s, best {best}, "
            f"elapsed {_clock(elapsed)}{eta}", markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if not self._plain:
            self._p.stop()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"
