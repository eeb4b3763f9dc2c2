"""Random search: distinct points, never more than an all-discrete space holds (v0 hung: #193)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from app.logic.matrix import MatrixParam, space_size
from app.logic.search.base import (
    Suggestion,
    SuggestResult,
    Trial,
    derive_seed,
    params_key,
    suggest_indexed,
)

_MASK64 = (1 << 64) - 1
_ROUNDS = 4
# Draws per vectorised batch; part of the stream's definition, so changing it changes suggestions.
_BATCH = 256
# Consecutive repeats after which a space counts as exhausted. Quantised continuous options can
# hold few distinct points (`quniform: 0:1:0.5`), and v0 looped forever on such spaces.
MAX_MISSES = 10_000


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread integer hash."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class Permutation:
    """A seeded bijection of range(size) in O(1) memory: a Feistel network plus cycle walking.

    Position i of a random search over an enumerable space is point `perm(i)`: sampling without
    replacement, computable for any i without remembering earlier draws.
    """

    def __init__(self, size: int, key: int) -> None:
        self.size = size
        bits = max(2, (size - 1).bit_length())
        self.half = (bits + 1) // 2
        self.mask = (1 << self.half) - 1
        self.keys = [_mix64((key + r * 0x9E3779B97F4A7C15) & _MASK64) for r in range(_ROUNDS)]

    def _encrypt(self, x: int) -> int:
        left, right = x >> self.half, x & self.mask
        for key in self.keys:
            left, right = right, left ^ (_mix64(right ^ key) & self.mask)
        return (left << self.half) | right

    def __call__(self, index: int) -> int:
        x = self._encrypt(index)
        while x >= self.size:  # the domain is < 4x size, so this loops ~twice on average
            x = self._encrypt(x)
        return x


class RandomSearch:
    def __init__(self, matrix: Mapping[str, MatrixParam], n_experiments: int, seed: int) -> None:
        self.names = tuple(matrix)
        self.params = tuple(matrix.values())
        self.seed = seed
        self.space_size = space_size(self.params)
        self.total = (
            n_experiments if self.space_size is None else min(n_experiments, self.space_size)
        )
        self._enumerable = all(param.is_enumerable for param in self.params)
        if self._enumerable:
            assert self.space_size is not None
            self._values = tuple(param.to_values() for param in self.params)
            self._perm = Permutation(self.space_size, derive_seed(seed, 1))

    def iter_suggestions(self, start: int = 0, limit: int | None = None) -> Iterator[Suggestion]:
        """Suggestions start..start+limit-1. Enumerable spaces cost O(limit) time and memory;
        others replay the seeded stream from 0 (a set of the points seen, to skip repeats)."""
        stop = self.total if limit is None else min(self.total, start + limit)
        if self._enumerable:
            return (Suggestion(i, self._decode(self._perm(i))) for i in range(start, stop))
        return self._stream(start, stop)

    def suggest(self, history: Sequence[Trial], limit: int | None = None) -> SuggestResult:
        return suggest_indexed(self.iter_suggestions, self.total, history, limit)

    def _decode(self, position: int) -> dict[str, Any]:
        picks: list[Any] = [None] * len(self._values)
        for pos in range(len(self._values) - 1, -1, -1):
            position, digit = divmod(position, len(self._values[pos]))
            picks[pos] = self._values[pos][digit]
        return dict(zip(self.names, picks, strict=True))

    def _stream(self, start: int, stop: int) -> Iterator[Suggestion]:
        rng = np.random.default_rng(derive_seed(self.seed, 2))
        seen: set[tuple[Any, ...]] = set()
        produced = misses = 0
        while produced < stop:
            columns = [param.sample(rng, _BATCH) for param in self.params]
            for row in zip(*columns, strict=True):
                params = dict(zip(self.names, row, strict=True))
                key = params_key(params, self.names)
                if key in seen:
                    misses += 1
                    if misses >= MAX_MISSES:
                        return
                    continue
                misses = 0
                seen.add(key)
                if produced >= start:
                    yield Suggestion(produced, params)
                produced += 1
                if produced >= stop:
                    return
