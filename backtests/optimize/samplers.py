"""Samplers and pruners by name (``--sampler``, ``--pruner``), and the reseeding wrapper
(:class:`ReseededSampler`) that rebuilds the sampler before every trial with a seed derived from
(seed, fold, number of finished trials): its state is a function of the storage, so a resumed
seeded study continues exactly as an uninterrupted one."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from flushback.backtests.optimize.optuna_compat import (
    block_qmc_sampler,
    carry_search_space_cache,
    finished_trials_in_ask,
    qmc_position_key,
)
from flushback.data.errors import ConfigError


def make_sampler(name: str, seed: int | None, multi: bool,
                 space: dict[str, Any] | None = None) -> Any:
    """The sampler ``name``; ``space`` (the distributions every trial of the study asks)
    lets the QMC samplers draw their points in blocks from the first trial on
    (:func:`~flushback.backtests.optimize.optuna_compat.block_qmc_sampler`)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        if name == "cmaes":
            import importlib.util

            if importlib.util.find_spec("cmaes") is None:
                raise ConfigError("the cmaes sampler needs the 'cmaes' package",
                                  hint="pip install cmaes, or use --sampler tpe")
            if multi:
                raise ConfigError("the cmaes sampler is single-objective",
                                  hint="use --sampler nsga2 or tpe with --directions")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "qmc":
            return block_qmc_sampler(seed, space)
        if name == "qmc-tpe":
            return _qmc_then_tpe(seed, multi, space)
    raise ConfigError(f"unknown sampler '{name}'",
                      hint="tpe, nsga2, cmaes, random, qmc or qmc-tpe")


#: ``qmc-tpe``: this many quasi-random (Sobol) points first, then TPE on what they found
QMC_WARM_START = 32


def _qmc_then_tpe(seed: int | None, multi: bool, space: dict[str, Any] | None) -> Any:
    """A QMC warm start followed by TPE, as one sampler: the first :data:`QMC_WARM_START`
    finished trials are a scrambled Sobol sequence (space-filling, a better start than
    TPE's random start-up), every later one is TPE's (without its own random start-up)."""
    import optuna

    class QmcThenTpe(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self.qmc = block_qmc_sampler(seed, space)
            self.tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=0,
                                                  multivariate=False)

        def _active(self, study: Any) -> Any:
            states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            done = len(finished_trials_in_ask(study, states))
            return self.qmc if done < QMC_WARM_START else self.tpe

        def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
            return self._active(study).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
            return self._active(study).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, name, dist):  # type: ignore[no-untyped-def]
            return self._active(study).sample_independent(study, trial, name, dist)

        def before_trial(self, study, trial):  # type: ignore[no-untyped-def]
            self._active(study).before_trial(study, trial)

        def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
            self._active(study).after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.tpe.reseed_rng()

    if multi:
        raise ConfigError("the qmc-tpe sampler is single-objective",
                          hint="use --sampler nsga2 or tpe with --directions")
    return QmcThenTpe()


_FINISHED = ("COMPLETE", "PRUNED")


class ReseededSampler:
    """Delegate to a sampler rebuilt before each trial from (seed, fold, finished trials).

    optuna's samplers keep their history in the storage but their random state in memory; a
    process that dies loses that state. Deriving the seed from what the storage holds makes a
    resumed seeded study sample exactly what the uninterrupted one would have.
    """

    def __init__(self, name: str, seed: int | None, fold: int, multi: bool,
                 space: dict[str, Any] | None = None):
        self._args = (name, multi)
        self._seed = seed
        self._fold = fold
        self._stable = name == "qmc"  # QMC's scramble seed must stay fixed for the sequence
        self._space = space
        self._inner = make_sampler(name, seed, multi, space)

    n_done: int | None = None  # set by the worker under the gate, just before ask()

    def _reseed(self, study: Any) -> None:
        if self._seed is None or self._stable:
            return
        n_done = self.n_done
        if n_done is None:
            import optuna

            states = tuple(getattr(optuna.trial.TrialState, s) for s in _FINISHED)
            n_done = len(study.get_trials(deepcopy=False, states=states))
        seed = int(np.random.SeedSequence([self._seed, self._fold, n_done]).generate_state(1)[0])
        name, multi = self._args
        if name == "qmc-tpe":  # the Sobol sequence keeps its scramble; TPE is reseeded
            import optuna

            self._inner.tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=0)
            return
        old, self._inner = self._inner, make_sampler(name, seed, multi, self._space)
        # Keep the incremental intersection-search-space cache of the previous instance (it
        # is a pure function of the study's trials, which optuna's own long-lived sampler
        # also caches): a fresh one re-scans every trial at each ask, O(N) per trial.
        carry_search_space_cache(old, self._inner)

    @property
    def inner(self) -> Any:
        """The sampler delegated to now (rebuilt before each trial unless it is QMC)."""
        return self._inner

    def sequence_key(self) -> str | None:
        """The study system attribute where a QMC sampler keeps its place in the sequence
        (None for other samplers): workers claim its ids in advance."""
        inner = getattr(self._inner, "qmc", self._inner)
        return qmc_position_key(inner)

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
        return self._inner.sample_independent(study, trial, name, dist)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._reseed(study)
        self._inner.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def as_optuna_sampler(s: ReseededSampler) -> Any:
    import optuna

    class OptunaShell(optuna.samplers.BaseSampler):  # thin optuna-typed shell
        def __init__(self, inner: ReseededSampler) -> None:
            self._w = inner

        def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
            return self._w.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
            return self._w.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, name, dist):  # type: ignore[no-untyped-def]
            return self._w.sample_independent(study, trial, name, dist)

        def before_trial(self, study, trial):  # type: ignore[no-untyped-def]
            self._w.before_trial(study, trial)

        def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
            self._w.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._w.reseed_rng()

    return OptunaShell(s)


def make_pruner(name: str) -> Any:
    import optuna

    if name in ("none", "", None):
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=8, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner()
    raise ConfigError(f"unknown pruner '{name}'", hint="none, median, hyperband or sha")
