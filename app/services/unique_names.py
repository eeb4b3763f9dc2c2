"""One way to write a row under a unique name: a clash is a 400, never a 500 (issue 15).

Checking first and inserting after races: two requests both see the name free and the second
INSERT fails on the constraint (a 500 on Postgres). The constraint is the only arbiter, so every
create or rename of a named row (users, projects, experiments, groups, jobs, builds) writes inside
`unique_name(...)`: a savepoint around the writes, and a violation of the unique constraint on
that name turned into "A <kind> with name `x` already exists." with the request's transaction
still usable. On Postgres the second writer waits for the first to commit, then gets its 400.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

from sqlalchemy import Index, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest
from app.models import Base

_PG_UNIQUE = "23505"
_PG_CONSTRAINT = re.compile(r'unique constraint "([^"]+)"')
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")


def name_taken(kind: str, name: str, *, field: str = "name") -> BadRequest:
    article = "An" if kind[0] in "aeio" else "A"  # an experiment, a user
    return BadRequest(f"{article} {kind} with {field} `{name}` already exists.")


@cache
def _unique_columns() -> dict[str, tuple[str, frozenset[str]]]:
    """Unique constraint and index names of the schema -> (table, columns); `unique=True`
    columns are among the constraints, named by the metadata's naming convention."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for table in Base.metadata.sorted_tables:
        uniques: list[UniqueConstraint | Index]
        uniques = [c for c in table.constraints if isinstance(c, UniqueConstraint)]
        uniques += [i for i in table.indexes if isinstance(i, Index) and i.unique]
        for item in uniques:
            out[str(item.name)] = (table.name, frozenset(c.name for c in item.columns))
    return out


def violated_columns(exc: IntegrityError) -> frozenset[str] | None:
    """The columns of the unique constraint `exc` violates; None for any other error."""
    orig = exc.orig
    text = str(orig)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate == _PG_UNIQUE:
        match = _PG_CONSTRAINT.search(text)
        known = _unique_columns().get(match.group(1)) if match else None
        return known[1] if known else frozenset()
    match = _SQLITE_UNIQUE.search(text)
    if match:  # "UNIQUE constraint failed: t.a, t.b"
        return frozenset(part.strip().rsplit(".", 1)[-1] for part in match.group(1).split(","))
    return None


@asynccontextmanager
async def unique_name(
    session: AsyncSession, kind: str, name: str | None, *, field: str = "name"
) -> AsyncIterator[None]:
    """Run the block's writes (a flush, an INSERT) under the unique `field`; a clash on it is a
    400 naming `name`. Without a name nothing can clash: no savepoint round trips."""
    if name is None:
        yield
        return
    try:
        async with session.begin_nested():
            yield
    except IntegrityError as exc:
        columns = violated_columns(exc)
        if columns is None or field not in columns:
            raise  # another constraint: a bug or a vanished parent, not a taken name
        raise name_taken(kind, name, field=field) from None
