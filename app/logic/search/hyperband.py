"""Hyperband (polyaxon-v0.md 2.3): brackets of random configs, promoted rung by rung.

Every (bracket, rung) is one iteration, as v0's `ExperimentGroupIteration` rows. Rung k > 0
clones the best trials of rung k-1, ranked by the clones' own metrics (v0 #703 ranked parents or
nothing), with the resource injected into params so the caller re-renders the command (#705). The
last rung of a bracket runs at max_iter: no extra rung at max_iter * eta as v0 had.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.logic.hptuning import HyperbandConfig
from app.logic.matrix import MatrixParam, space_size
from app.logic.search.base import Suggestion, SuggestResult, Trial, derive_seed, missing
from app.logic.search.random import RandomSearch

_EPS = 1e-9  # float noise guard: log(1000)/log(10) is 2.9999999999999996


@dataclass(frozen=True)
class Rung:
    iteration: int
    bracket: int
    rung: int
    n_configs: int
    resource: int | float
    offset: int  # index of the rung's first suggestion: indices are unique across the group


def s_max(max_iter: int, eta: float) -> int:
    return int(math.log(max_iter) / math.log(eta) + _EPS)


def bracket_size(max_iter: int, eta: float, bracket: int) -> int:
    """n = ceil((s_max+1) * eta**s / (s+1)): configs in the first rung of bracket s."""
    top = s_max(max_iter, eta)
    return math.ceil((top + 1) * eta**bracket / (bracket + 1) - _EPS)


def schedule(config: HyperbandConfig, space: int | None = None) -> tuple[Rung, ...]:
    """Every iteration in order, assuming each rung's trials all report the metric.

    `space` caps a first rung at the number of distinct points of an all-discrete matrix.
    """
    eta, max_iter = config.eta, config.max_iter
    rungs: list[Rung] = []
    offset = 0
    for bracket in range(s_max(max_iter, eta), -1, -1):
        first = bracket_size(max_iter, eta, bracket)
        if space is not None:
            first = min(first, space)
        for k in range(bracket + 1):
            n = math.floor(first * eta**-k + _EPS)
            if n < 1:
                break
            resource = config.resource.cast(max_iter * eta ** (k - bracket))
            rungs.append(Rung(len(rungs), bracket, k, n, resource, offset))
            offset += n
    return tuple(rungs)


class Hyperband:
    def __init__(
        self, matrix: Mapping[str, MatrixParam], config: HyperbandConfig, seed: int
    ) -> None:
        self.matrix = matrix
        self.config = config
        self.seed = seed
        self.rungs = schedule(config, space_size(tuple(matrix.values())))

    @property
    def total(self) -> int:
        return sum(rung.n_configs for rung in self.rungs)

    def suggest(self, history: Sequence[Trial], limit: int | None = None) -> SuggestResult:
        by_iteration: dict[int, list[Trial]] = {}
        for trial in history:
            by_iteration.setdefault(trial.iteration, []).append(trial)
        previous: list[Trial] = []
        previous_iteration = 0
        skipped_bracket: int | None = None
        for rung in self.rungs:
            if rung.bracket == skipped_bracket:
                continue
            # v0 `iterate`: nothing new (next rung or next bracket) until every trial is done.
            if any(not trial.is_done for trial in previous):
                return SuggestResult((), iteration=previous_iteration, waiting=True)
            expected = self._expected(rung, previous)
            if not expected:  # no trial of the previous rung reported the metric
                skipped_bracket = rung.bracket
                continue
            todo = missing(expected, history)
            if todo:
                batch = tuple(todo if limit is None else todo[:limit])
                last = rung is self.rungs[-1] and len(batch) == len(todo)
                return SuggestResult(batch, iteration=rung.iteration, finished=last)
            previous = by_iteration.get(rung.iteration, [])
            previous_iteration = rung.iteration
        return SuggestResult((), iteration=previous_iteration, finished=True)

    def _expected(self, rung: Rung, previous: Sequence[Trial]) -> list[Suggestion]:
        name = self.config.resource.name
        if rung.rung == 0:
            search = RandomSearch(self.matrix, rung.n_configs, derive_seed(self.seed, rung.bracket))
            return [
                Suggestion(rung.offset + s.index, {**s.params, name: rung.resource}, rung.iteration)
                for s in search.iter_suggestions(0, rung.n_configs)
            ]
        return [
            Suggestion(
                rung.offset + position,
                {**parent.params, name: rung.resource},
                rung.iteration,
                original_index=parent.index,
            )
            for position, parent in enumerate(self._best(previous, rung.n_configs))
        ]

    def _best(self, trials: Sequence[Trial], keep: int) -> list[Trial]:
        scored = [t for t in trials if t.metric is not None and math.isfinite(t.metric)]
        sign = -1.0 if self.config.metric.optimization == "maximize" else 1.0
        # Ties go to the lower index so the ranking, and thus the clones' indices, are stable.
        scored.sort(key=lambda t: (sign * float(t.metric or 0.0), t.index))
        return scored[:keep]
