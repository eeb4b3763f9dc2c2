"""Where SQLite and Postgres differ, in one module (as prefect keeps its dialect-specific query
pieces): callers ask these helpers instead of testing the dialect's name themselves.

Two kinds of helper. Questions about the database (`is_postgres`, `writes_in_ctes`) for code
that takes another path, and SQL constructs (`JsonHasAny`) that compile to each database's
own SQL, so the statement that uses them is the same Python object on both.

Prebuilt statements, everywhere in the app: a `@functools.cache` builder function whose
arguments are the statement's shape (a model, the bound column names), never its values, which
are bound parameters. Building a statement and its cache key costs more CPU than running it, so
hot paths build once. Why this style rather than module-level constants or dicts keyed by model:
a builder is lazy (nothing is built at import, before the mappers are configured), takes the
shape as arguments where a constant cannot, and `cache` is the dict keyed by shape without the
hand-written get-or-build. Dialect differences are compiled in by the constructs below (or by
SQLAlchemy's own compiled cache, which is per dialect), so no builder takes the dialect as a key.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Text, cast, exists, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

POSTGRES = "postgresql"

Bind = AsyncSession | AsyncConnection | AsyncEngine


def dialect_name(bind: Bind) -> str:
    """`postgresql` or `sqlite`, for a session, a connection or an engine."""
    if isinstance(bind, AsyncSession):
        engine = bind.bind if bind.bind is not None else bind.get_bind()
        return engine.dialect.name
    return bind.dialect.name


def is_postgres(bind: Bind) -> bool:
    return dialect_name(bind) == POSTGRES


def writes_in_ctes(bind: Bind) -> bool:
    """Whether an INSERT or UPDATE may sit in a WITH clause (a data-modifying CTE), so two
    writes go in one round trip: Postgres yes, SQLite no."""
    return is_postgres(bind)


def upsert(bind: Bind, model: type) -> Any:
    """An INSERT that takes `on_conflict_do_nothing` / `on_conflict_do_update` on both."""
    if is_postgres(bind):
        return postgresql.insert(model)
    return sqlite.insert(model)


class JsonHasAny(FunctionElement[bool]):
    """`JsonHasAny(column, *names)`: the JSON array in `column` holds any of `names`, in one
    condition whatever the number of names (Postgres `?|` on JSONB, SQLite `json_each` + IN)."""

    type = Boolean()
    inherit_cache = True
    name = "json_has_any"
    # A condition on both databases: no `= 1` where the database has no boolean type.
    _is_implicitly_boolean = True

    def __init__(self, column: Any, *names: str) -> None:
        super().__init__(column, *(literal(name, Text) for name in names))


def _has_any_parts(element: JsonHasAny) -> tuple[Any, list[Any]]:
    column, *names = element.clauses
    return column, names


@compiles(JsonHasAny, "postgresql")
def _has_any_on_postgres(element: JsonHasAny, compiler: SQLCompiler, **kw: Any) -> str:
    column, names = _has_any_parts(element)
    clause = cast(column, postgresql.JSONB).has_any(postgresql.array(names, type_=Text))
    return compiler.process(clause, **kw)


@compiles(JsonHasAny)
def _has_any_elsewhere(element: JsonHasAny, compiler: SQLCompiler, **kw: Any) -> str:
    column, names = _has_any_parts(element)
    values = func.json_each(column).table_valued("value")
    clause = exists(select(1).select_from(values).where(values.c.value.in_(names)))
    return compiler.process(clause, **kw)
