"""Who is calling: the value authentication resolves a token to (app/services/users.py) and
the principal cache keeps (app/services/principal_cache.py)."""

from __future__ import annotations

from dataclasses import dataclass

from app.models import User


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, possibly through a token scoped to one run."""

    user: User
    run_kind: str | None = None  # "experiment" | "job" | "build" | "notebook" when run-scoped
    run_id: int | None = None
    token_id: int | None = None  # the token this request came with (logout revokes it)

    @property
    def is_run_scoped(self) -> bool:
        return self.run_kind is not None

    def may_act_on_run(self, kind: str, run_id: int) -> bool:
        return not self.is_run_scoped or (self.run_kind == kind and self.run_id == run_id)
