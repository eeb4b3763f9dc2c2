"""Grid search: the Cartesian product in matrix-key order (last key fastest), lazily indexed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from app.logic.matrix import MatrixParam
from app.logic.search.base import Suggestion, SuggestResult, Trial, suggest_indexed


class GridSearch:
    """Suggestion `i` is the i-th product, decoded in mixed radix: memory is O(sum of lengths)."""

    def __init__(self, matrix: Mapping[str, MatrixParam], n_experiments: int | None = None) -> None:
        self.names = tuple(matrix)
        self.values = tuple(param.to_values() for param in matrix.values())
        self.space_size = 1
        for values in self.values:
            self.space_size *= len(values)
        self.total = (
            self.space_size if n_experiments is None else min(n_experiments, self.space_size)
        )

    def params_at(self, index: int) -> dict[str, Any]:
        picks: list[Any] = [None] * len(self.values)
        for pos in range(len(self.values) - 1, -1, -1):
            values = self.values[pos]
            index, digit = divmod(index, len(values))
            picks[pos] = values[digit]
        return dict(zip(self.names, picks, strict=True))

    def iter_suggestions(self, start: int = 0, limit: int | None = None) -> Iterator[Suggestion]:
        stop = self.total if limit is None else min(self.total, start + limit)
        for index in range(start, stop):
            yield Suggestion(index=index, params=self.params_at(index))

    def suggest(self, history: Sequence[Trial], limit: int | None = None) -> SuggestResult:
        return suggest_indexed(self.iter_suggestions, self.total, history, limit)
