"""Search algorithms as deterministic suggestion engines over frozen snapshots.

Usage by the reconciler, once per step:

    result = suggest(hptuning, seed=group.seed, history=trials, limit=500)
    insert result.suggestions under the unique (group, index) key, then commit

The same (hptuning, seed, history) gives the same result, so a retry after a crash inserts exactly
the rows still missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.logic.hptuning import HPTuningConfig
from app.logic.search.base import DONE_STATUSES, Suggestion, SuggestResult, Trial
from app.logic.search.bo import BayesianOptimization
from app.logic.search.grid import GridSearch
from app.logic.search.hyperband import Hyperband
from app.logic.search.random import RandomSearch

__all__ = [
    "DONE_STATUSES",
    "BayesianOptimization",
    "GridSearch",
    "Hyperband",
    "RandomSearch",
    "SearchAlgorithm",
    "SuggestResult",
    "Suggestion",
    "Trial",
    "current_iteration",
    "make_search",
    "suggest",
]


class SearchAlgorithm(Protocol):
    def suggest(self, history: Sequence[Trial], limit: int | None = None) -> SuggestResult: ...


def make_search(config: HPTuningConfig, seed: int) -> SearchAlgorithm:
    """The engine of the group's algorithm. `seed` is the group's stored seed (never None)."""
    algorithm = config.search_algorithm
    if algorithm == "random":
        assert config.random_search is not None
        return RandomSearch(config.matrix, config.random_search.n_experiments, seed)
    if algorithm == "hyperband":
        assert config.hyperband is not None
        return Hyperband(config.matrix, config.hyperband, seed)
    if algorithm == "bo":
        assert config.bo is not None
        return BayesianOptimization(config.matrix, config.bo, seed)
    n_experiments = config.grid_search.n_experiments if config.grid_search else None
    return GridSearch(config.matrix, n_experiments)


def suggest(
    config: HPTuningConfig, *, seed: int, history: Sequence[Trial], limit: int | None = None
) -> SuggestResult:
    """Given the group's existing trials, the experiments that should exist next (at most limit)."""
    return make_search(config, seed).suggest(history, limit)


def current_iteration(config: HPTuningConfig, history: Sequence[Trial]) -> int:
    """v0's `current_iteration`: iteration rows, which only hyperband and bo create."""
    if config.search_algorithm not in ("hyperband", "bo"):
        return 0
    return len({trial.iteration for trial in history})
