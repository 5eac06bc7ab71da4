"""A study's definition (:class:`StudyConfig`, picklable: it is sent to worker processes), its
identity (the settings and fingerprint that must match for two commands to share a study),
creating or loading a fold's study while refusing one made with other settings
(:func:`ensure_study`), and counting its finished and running trials (:func:`trial_counts`)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from flushback.backtests.optimize.folds import Fold
from flushback.backtests.optimize.objectives import Objective
from flushback.backtests.optimize.space import SearchSpace
from flushback.backtests.optimize.storage import redact_url
from flushback.data.errors import ConfigError


@dataclass(frozen=True)
class StudyConfig:
    """Everything a worker process needs to run its share of a study: the evaluator to
    build (``evaluator_factory``: ``"module:callable"``, with ``evaluator_kwargs``), the
    objectives, search space and folds, the trial budget, the storage and study name, and the
    sampler, pruner and batching settings."""

    evaluator_factory: str
    evaluator_kwargs: dict[str, Any]
    objectives: tuple[Objective, ...]
    space: SearchSpace
    folds: tuple[Fold, ...]
    n_trials: int
    storage_url: str
    study_name: str
    sampler: str = "tpe"
    seed: int | None = None
    pruner: str = "none"
    prune_chunks: int = 1
    heartbeat: int = 5
    workers: int = 1
    # set when evaluator_kwargs hold machine-specific paths that must not change the identity
    fingerprint_override: str | None = None
    #: a trial trading fewer times on its training window is infeasible (0 = no constraint)
    min_trades: int = 0
    #: trials per storage write at most (1: the per-trial loop; see backtests.optimize.batches)
    batch: int = 256
    #: a batch is sized to about this much work, so slow trials are still written promptly
    flush_seconds: float = 1.0
    #: QMC trials without optuna's ask/tell (the same trials written; False: through ask)
    direct: bool = True

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def fold_study_name(self, fold: Fold) -> str:
        if len(self.folds) == 1:
            return self.study_name
        return f"{self.study_name}.fold{fold.index + 1}of{len(self.folds)}"

    def settings(self) -> dict[str, Any]:
        """What must match for two commands to share (resume) a study."""
        return {
            "evaluator": self.evaluator_factory,
            "evaluator_kwargs": jsonable(self.evaluator_kwargs),
            "objectives": [o.label for o in self.objectives],
            "space": self.space.to_dict(),
            "folds": [f.to_dict() for f in self.folds],
            "sampler": self.sampler,
            "seed": self.seed,
            "pruner": self.pruner,
            "prune_chunks": self.prune_chunks,
            **({"min_trades": self.min_trades} if self.min_trades else {}),
        }

    def fingerprint(self) -> str:
        if self.fingerprint_override:
            return self.fingerprint_override
        blob = json.dumps(self.settings(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


def ensure_study(cfg: StudyConfig, storage: Any, fold: Fold) -> Any:
    """Create or load the fold's study; refuse one created with other settings."""
    import optuna

    name = cfg.fold_study_name(fold)
    directions: list[Any] = [o.direction for o in cfg.objectives]
    for attempt in range(5):
        try:
            study = optuna.create_study(storage=storage, study_name=name, directions=directions,
                                        load_if_exists=True)
            break
        except optuna.exceptions.DuplicatedStudyError:  # pragma: no cover - creation race
            time.sleep(0.2 * (attempt + 1))
    else:  # pragma: no cover
        study = optuna.load_study(study_name=name, storage=storage)
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(
            f"study '{name}' exists with directions "
            f"{[d.name.lower() for d in study.directions]}, not {directions}",
            hint="use another --study name",
        )
    fp = cfg.fingerprint()
    have = study.user_attrs.get("flushback_fingerprint")
    if have is None:
        study.set_user_attr("flushback_fingerprint", fp)
        study.set_user_attr("flushback_settings", cfg.settings())
        study.set_user_attr("fold", fold.to_dict())
        study.set_user_attr("flushback_param_names", [p.name for p in cfg.space.params])
    elif have != fp:
        raise ConfigError(
            f"study '{name}' in {redact_url(cfg.storage_url)} was created with other settings "
            "(spec, search space, objectives, folds, sampler or seed differ)",
            hint="run the same command as before to resume it, or pass a new --study name",
        )
    return study


def copy_config(cfg: StudyConfig, **changes: Any) -> StudyConfig:
    return dataclasses.replace(copy.copy(cfg), **changes)


def trial_counts(study: Any) -> tuple[int, int]:
    import optuna

    TS = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False, states=(TS.COMPLETE, TS.PRUNED, TS.RUNNING))
    done = sum(1 for t in trials if t.state in (TS.COMPLETE, TS.PRUNED))
    return done, len(trials) - done
