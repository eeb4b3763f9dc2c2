"""Errors of the pure logic layer. No I/O here; the service layer maps them to HTTP 400."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def format_path(loc: Sequence[str | int]) -> str:
    """`("hptuning", "matrix", "lr", "linspace")` -> `hptuning.matrix.lr.linspace`."""
    return ".".join(str(part) for part in loc)


class SpecError(ValueError):
    """An invalid polyaxonfile / hptuning / query. Each problem has a dotted path and a reason.

    `str(err)` reads like
    `hptuning.matrix.lr.linspace: stop value must be strictly higher than start`.
    """

    def __init__(
        self, problems: Iterable[tuple[str, str]] | str, reason: str | None = None
    ) -> None:
        if isinstance(problems, str):
            self.problems: list[tuple[str, str]] = [(problems, reason or "invalid value")]
        else:
            self.problems = list(problems)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return "; ".join(f"{path}: {reason}" if path else reason for path, reason in self.problems)

    def prefixed(self, prefix: str) -> SpecError:
        """The same problems, under a parent path (e.g. `hptuning`)."""
        return SpecError((f"{prefix}.{p}" if p else prefix, r) for p, r in self.problems)
