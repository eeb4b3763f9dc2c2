"""Snapshot types shared by the search algorithms: trials in, suggestions out.

The algorithms are pure: the reconciler reads a group's experiments into `Trial`s, asks "given what
exists, what should exist?", and inserts the answer under a unique (group, index) key. The same
config, seed and history always give the same answer, so a crash between two steps is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.logic.matrix import freeze
from app.logic.statuses import DONE, Status

# Statuses after which a trial will not report again: plx's done statuses, and the other names
# v0 0.5 gave its DONE set (a snapshot from an older server may carry them).
DONE_STATUSES = DONE | {"skipped", "upstream_failed", "done"}


@dataclass(frozen=True)
class Trial:
    """What the algorithm needs to know about one existing experiment of the group.

    `metric` is the experiment's last value of the objective metric (`HPTuningConfig.objective`),
    None when it never reported one.
    """

    index: int
    params: Mapping[str, Any]
    status: str = Status.CREATED
    metric: float | None = None
    iteration: int = 0
    original_index: int | None = None

    @property
    def is_done(self) -> bool:
        return self.status in DONE_STATUSES


@dataclass(frozen=True)
class Suggestion:
    """An experiment that should exist. `index` is unique and stable within the group.

    `original_index` names the trial a hyperband rung clones (restart or resume of it).
    """

    index: int
    params: dict[str, Any]
    iteration: int = 0
    original_index: int | None = None


@dataclass(frozen=True)
class SuggestResult:
    """The experiments to create now.

    - `iteration`: the 0-based iteration (v0 `ExperimentGroupIteration` row) the group is in.
    - `finished`: once `suggestions` exist, the algorithm will never suggest anything again.
    - `waiting`: nothing to create until running trials are done (hyperband rungs, bo steps).
    """

    suggestions: tuple[Suggestion, ...]
    iteration: int = 0
    finished: bool = False
    waiting: bool = False


def derive_seed(seed: int, *keys: int) -> int:
    """An independent, reproducible 64-bit seed for a sub-stream (a bracket, a BO step)."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def params_key(params: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    """A hashable identity of a point of the space, to tell repeats apart."""
    return tuple(freeze(params.get(name)) for name in names)


def missing(expected: Iterable[Suggestion], history: Sequence[Trial]) -> list[Suggestion]:
    existing = {trial.index for trial in history}
    return [s for s in expected if s.index not in existing]


IterFrom = Callable[[int, int | None], Iterator[Suggestion]]


def suggest_indexed(
    iter_from: IterFrom, total: int, history: Sequence[Trial], limit: int | None
) -> SuggestResult:
    """Suggestions 0..total-1 that are not in `history`, from the first gap on, at most `limit`.

    For algorithms whose whole list is known up front (grid, random): the caller materialises it
    in batches, and a repeated call after a crash returns exactly the rows still missing.
    """
    existing = {trial.index for trial in history}
    start = next((i for i in range(total) if i not in existing), total)
    found: list[Suggestion] = []
    for suggestion in iter_from(start, None):
        if suggestion.index in existing:
            continue
        if limit is not None and len(found) >= limit:
            return SuggestResult(tuple(found))
        found.append(suggestion)
    return SuggestResult(tuple(found), finished=True)
