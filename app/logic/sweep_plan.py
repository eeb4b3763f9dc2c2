"""What a group's hptuning will do before it runs: space size, experiment counts, warnings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.logic.hptuning import HPTuningConfig
from app.logic.matrix import space_size
from app.logic.search.hyperband import bracket_size, schedule


@dataclass(frozen=True)
class SweepPlan:
    """`space_size` is None for a continuous space. `iterations` lists the experiments each
    iteration creates; for hyperband and bo these are upper bounds, reached when every trial
    reports the objective metric."""

    algorithm: str
    space_size: int | None
    total_experiments: int
    iterations: tuple[int, ...]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "space_size": self.space_size,
            "total_experiments": self.total_experiments,
            "iterations": list(self.iterations),
            "warnings": list(self.warnings),
        }


def plan_sweep(config: HPTuningConfig) -> SweepPlan:
    algorithm = config.search_algorithm
    size = space_size(tuple(config.matrix.values()))
    if algorithm == "random":
        iterations, warnings = _random(config, size)
    elif algorithm == "hyperband":
        iterations, warnings = _hyperband(config, size)
    elif algorithm == "bo":
        iterations, warnings = _bo(config, size)
    else:
        iterations, warnings = _grid(config, size)
    total = sum(iterations)
    if config.concurrency > total:
        warnings.append(
            f"concurrency {config.concurrency} is larger than the {total} experiments planned"
        )
    return SweepPlan(algorithm, size, total, tuple(iterations), tuple(warnings))


def _too_many(section: str, n: int, size: int) -> str:
    return (
        f"{section}.n_experiments ({n}) is larger than the space ({size} points): "
        f"{size} experiments will be created"
    )


def _grid(config: HPTuningConfig, size: int | None) -> tuple[list[int], list[str]]:
    assert size is not None  # grid rejects continuous options at validation
    n = config.grid_search.n_experiments if config.grid_search else None
    if n is not None and n > size:
        return [size], [_too_many("grid_search", n, size)]
    return [size if n is None else n], []


def _random(config: HPTuningConfig, size: int | None) -> tuple[list[int], list[str]]:
    assert config.random_search is not None
    n = config.random_search.n_experiments
    if size is not None:
        return ([size], [_too_many("random_search", n, size)]) if n > size else ([n], [])
    warnings = []
    bound = _distinct_bound(config)
    if bound is not None and n > bound:
        warnings.append(
            f"random_search.n_experiments ({n}) is larger than the at most {bound} distinct "
            "points of the quantised space: the search may end with fewer experiments"
        )
    return [n], warnings


def _distinct_bound(config: HPTuningConfig) -> int | None:
    bound = 1
    for param in config.matrix.values():
        distinct = param.distinct_bound()
        if distinct is None:
            return None
        bound *= distinct
    return bound


def _hyperband(config: HPTuningConfig, size: int | None) -> tuple[list[int], list[str]]:
    hb = config.hyperband
    assert hb is not None
    rungs = schedule(hb, size)
    warnings = []
    largest = bracket_size(hb.max_iter, hb.eta, max((r.bracket for r in rungs), default=0))
    if size is not None and size < largest:
        warnings.append(
            f"the space has {size} points, fewer than the {largest} configs of the first "
            "bracket: brackets are capped to the space"
        )
    return [rung.n_configs for rung in rungs], warnings


def _bo(config: HPTuningConfig, size: int | None) -> tuple[list[int], list[str]]:
    bo = config.bo
    assert bo is not None
    warnings = []
    initial = bo.n_initial_trials if size is None else min(bo.n_initial_trials, size)
    steps = bo.n_iterations
    if size is not None and initial + steps > size:
        steps = size - initial
        warnings.append(
            f"bo plans {bo.n_initial_trials + bo.n_iterations} experiments but the space has "
            f"{size} points: {size} experiments will be created"
        )
    if config.concurrency > 1 and steps:
        warnings.append("concurrency only applies to the initial trials: bo suggests one at a time")
    return [initial] + [1] * steps, warnings


def planned_experiments(config: HPTuningConfig) -> int:
    """Shortcut for the total, e.g. for a group's expected `num_experiments`."""
    return plan_sweep(config).total_experiments
