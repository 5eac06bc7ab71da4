"""Trials run outside optuna's ask/tell, for a sampler whose points do not depend on results.

A QMC study's next point is the next id of a scrambled Sobol sequence: no finished trial
changes it. optuna's ``ask`` still costs about as much as a fast-engine trial (a trial row in
the in-memory study, the search space transformed per parameter, one storage write per
parameter and attribute, then ``tell``). :class:`DirectSampler` asks the same sampler for the
same point (``sample_relative`` on the same study, which claims the same sample id), resolves
each parameter as ``Trial._suggest`` does, and :class:`DirectTrial` records what the trial
reports and how it ends as ``Study.tell`` would; the batch then writes its
``FrozenTrial``. The trials written are the ones the ask/tell loop writes: same parameters,
values, states, attributes and intermediate values (``tests/test_optimize_direct.py``
compares the two loops trial by trial, on each storage kind).

The random sampler's points do not depend on results either: its trials are drawn the same
way, after the same reseeding (``samplers.ReseededSampler``) as before an ``ask``.

Used by the batched loop when the sampler is ``qmc`` or ``random`` and no pruner can stop a
trial (:func:`direct_sampler`); anything else goes through ``ask``."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DirectSampler", "DirectTrial", "direct_sampler"]


def direct_sampler(cfg: Any, reseeded: Any, study: Any) -> DirectSampler | None:
    """The direct path for this study, or None where trials must go through ``ask``: a
    sampler whose points depend on results (TPE, NSGA-II, CMA-ES, qmc-tpe), a pruner that may
    stop a trial, or a parameter that the QMC sampler's relative search space does not cover
    (optuna would sample it independently)."""
    if cfg.sampler not in ("qmc", "random") or not (cfg.pruner == "none"
                                                    or cfg.prune_chunks <= 1 or cfg.multi):
        return None
    dists = cfg.space.distributions()
    if cfg.sampler == "random":  # every parameter drawn independently, as ask draws it
        return DirectSampler(reseeded, study, dists, {})
    space = reseeded.inner.infer_relative_search_space(study, None)
    for name, dist in dists.items():
        if dist.single():
            continue
        if name not in space or space[name] != dist:
            return None
    return DirectSampler(reseeded, study, dists, space)


class DirectSampler:
    """The points ``study.ask(dists)`` would give, from the same sampler and study: QMC's
    relative sample (``space``, the sampler's relative search space), or, with an empty
    ``space``, the random sampler's independent draws after its reseeding
    (``samplers.ReseededSampler``: seed, fold, finished trials)."""

    def __init__(self, reseeded: Any, study: Any, dists: Mapping[str, Any],
                 space: Mapping[str, Any]) -> None:
        self._reseeded, self._study = reseeded, study
        self._dists = dict(dists)
        self._space = dict(space)
        self._points: list[dict[str, Any]] = []

    @property
    def _inner(self) -> Any:
        return self._reseeded.inner

    def begin(self, k: int) -> None:
        """A batch of ``k`` trials starts (its sample ids claimed): draw its ``k`` points."""
        if not self._space:
            return  # drawn one trial at a time, each after its reseeding
        block = getattr(self._inner, "relative_points", None)
        if block is None:
            self._points = [self._inner.sample_relative(self._study, None, self._space)
                            for _ in range(k)]
        else:
            self._points = block(self._study, self._space, k)
        self._points.reverse()

    def ask(self, number: int, owner: str, n_done: int) -> DirectTrial:
        """The next trial (``n_done``: the finished trials the worker's study holds, which
        the sampler is reseeded from as before an ``ask``): its parameters as
        ``Trial._suggest`` resolves them (a single-valued distribution's value, else the
        relative sample, else the sampler's independent draw, in the distributions'
        order)."""
        from optuna.distributions import _get_single_value

        start = datetime.datetime.now()
        if self._space:
            relative = (self._points.pop() if self._points else
                        self._inner.sample_relative(self._study, None, self._space))
        else:
            self._reseeded.n_done = n_done
            self._reseeded.before_trial(self._study, None)
            relative = {}
        raw: dict[str, Any] = {}
        for name, dist in self._dists.items():
            if dist.single():
                value = _get_single_value(dist)
            elif name in relative and dist._contains(dist.to_internal_repr(relative[name])):
                value = relative[name]
            else:
                value = self._inner.sample_independent(self._study, None, name, dist)
            raw[name] = value
        return DirectTrial(number, raw, self._dists, owner, start)


class DirectTrial:
    """A trial evaluated without a storage row: what ``score_trial`` sets, reports and tells
    is kept here and written as one ``FrozenTrial`` with its batch.

    ``params`` are the values the sampler returned (what ``Trial.params`` holds during the
    trial); the written trial holds them as the storage does, in their distribution's
    external representation."""

    def __init__(self, number: int, params: dict[str, Any], dists: Mapping[str, Any],
                 owner: str, start: datetime.datetime) -> None:
        self.number = number
        self.params = params
        self.distributions = dists
        self.user_attrs: dict[str, Any] = {"flushback_owner": owner}
        self.intermediate_values: dict[int, float] = {}
        self.datetime_start = start
        self.datetime_complete: datetime.datetime | None = None
        self.state: Any = None
        self.values: list[float] | None = None

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value

    def report(self, value: float, step: int) -> None:
        """``Trial.report``: the first value reported at a step is kept."""
        step = int(step)
        if step < 0:
            raise ValueError(f"`{step=}` must be non-negative.")
        self.intermediate_values.setdefault(step, float(value))

    def should_prune(self) -> bool:
        return False  # only studies without a pruner take the direct path

    def tell(self, n_objectives: int, values: float | Sequence[float] | None = None,
             state: Any = None) -> None:
        """``Study.tell(trial, values, state=state)``: values that are not finite numbers
        (NaN, the wrong count) fail the trial; a pruned trial takes its last reported
        value when it has one."""
        from optuna.trial import TrialState

        vals = None if values is None else (
            list(values) if isinstance(values, Sequence) else [values])
        if state is None:
            bad = vals is None or _infeasible(vals, n_objectives)
            state = TrialState.FAIL if bad else TrialState.COMPLETE
            if bad:
                vals = None
        elif state == TrialState.PRUNED:
            vals = None
            if self.intermediate_values:
                last = self.intermediate_values[max(self.intermediate_values)]
                if not _infeasible([last], n_objectives):
                    vals = [last]
        elif state == TrialState.FAIL:
            vals = None
        self.state = state
        self.values = None if vals is None else [float(v) for v in vals]
        self.datetime_complete = datetime.datetime.now()

    def frozen(self, system_attrs: dict[str, Any]) -> Any:
        """The finished trial as the storage writes it."""
        from optuna.trial import FrozenTrial

        params = {name: dist.to_external_repr(dist.to_internal_repr(self.params[name]))
                  for name, dist in self.distributions.items()}
        return FrozenTrial(number=self.number, state=self.state, value=None,
                           values=self.values, datetime_start=self.datetime_start,
                           datetime_complete=self.datetime_complete, params=params,
                           distributions=dict(self.distributions),
                           user_attrs=self.user_attrs, system_attrs=system_attrs,
                           intermediate_values=self.intermediate_values, trial_id=-1)


def _infeasible(values: Sequence[Any], n_objectives: int) -> bool:
    """optuna's ``_check_values_are_feasible``: each value a float, none NaN, one per
    objective."""
    for v in values:
        try:
            if math.isnan(float(v)):
                return True
        except (TypeError, ValueError):
            return True
    return len(values) != n_objectives
