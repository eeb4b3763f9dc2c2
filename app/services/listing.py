"""List machinery shared by every list route: limit/offset pages, `sort`, and `query` filters.

Field maps say, per resource, which query fields exist and which SQL expression each one reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Select, and_, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from starlette.datastructures import URL

from app.dialects import JsonHasAny
from app.errors import BadRequest
from app.logic.errors import SpecError
from app.logic.query import Condition, FieldKind, parse_query, parse_sort

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
# Both databases hold 64-bit integers; a larger offset or id cannot match anything and must not
# reach the driver (OverflowError on SQLite, DataError on asyncpg).
MAX_OFFSET = 2**31 - 1
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class ListParams:
    limit: int
    offset: int
    sort: str | None
    query: str | None
    url: URL


RUN_TIMES = ("created_at", "updated_at", "started_at", "finished_at")


@dataclass(frozen=True)
class FieldMap:
    """Query and sort fields of one resource."""

    fields: Mapping[str, tuple[FieldKind, Any]]  # name -> (kind, column expression)
    json_fields: Mapping[str, tuple[FieldKind, Any]] = field(default_factory=dict)  # metric.<k>
    sortable: Mapping[str, Any] = field(default_factory=dict)  # name -> column
    json_sortable: Mapping[str, Any] = field(default_factory=dict)
    default_sort: Sequence[Any] = ()
    # Fields whose condition is not a simple comparison (e.g. `independent`).
    custom: Mapping[str, Callable[[Condition], ColumnElement[bool]]] = field(default_factory=dict)

    @classmethod
    def for_run(
        cls, model: Any, extra: Mapping[str, tuple[FieldKind, Any]] | None = None, **rest: Any
    ) -> FieldMap:
        """The fields every run kind and group has (id, name, status, tags, its four times,
        sortable by those times, newest first), with `extra` fields and other parts in `rest`."""
        fields = {
            "id": (FieldKind.VALUE, model.id),
            "name": (FieldKind.VALUE, model.name),
            "status": (FieldKind.VALUE, model.last_status),
            "tags": (FieldKind.TAGS, model.tags),
            **{name: (FieldKind.DATETIME, getattr(model, name)) for name in RUN_TIMES},
            **(extra or {}),
        }
        return cls(
            fields=fields,
            sortable={name: getattr(model, name) for name in RUN_TIMES},
            default_sort=(model.updated_at.desc(), model.id.desc()),
            **rest,
        )


def _compare(expr: Any, cond: Condition) -> ColumnElement[bool]:
    values = cond.values
    match cond.op:
        case "eq":
            return expr == values[0]
        case "in":
            return expr.in_(values)
        case "lt":
            return expr < values[0]
        case "lte":
            return expr <= values[0]
        case "gt":
            return expr > values[0]
        case "gte":
            return expr >= values[0]
        case "range":
            return expr.between(values[0], values[1])
    raise BadRequest(f"query: unsupported operation `{cond.op}` on `{cond.field}`")


def _typed_values(column: Any, cond: Condition) -> Condition:
    """Integer columns get integers: `id:abc` or `id:1e30` is a 400, not a driver error."""
    try:
        is_int = column.type.python_type is int
    except (AttributeError, NotImplementedError):
        return cond
    if not is_int or cond.op not in ("eq", "in"):
        return cond
    values = []
    for value in cond.values:
        try:
            number = int(str(value))
        except ValueError:
            raise BadRequest(f"query: `{cond.field}` expects an integer, got `{value}`") from None
        if not _INT64[0] <= number <= _INT64[1]:
            raise BadRequest(f"query: `{cond.field}` value `{value}` is out of range")
        values.append(number)
    return replace(cond, values=tuple(values))


def _condition(cond: Condition, fmap: FieldMap) -> ColumnElement[bool]:
    if cond.field in fmap.custom:
        clause = fmap.custom[cond.field](cond)
    elif cond.key is not None:
        kind, column = fmap.json_fields[cond.field]
        element = column[cond.key]
        expr = element.as_float() if kind is FieldKind.SCALAR else element.as_string()
        clause = _compare(expr, cond)
    else:
        kind, column = fmap.fields[cond.field]
        if kind is FieldKind.TAGS:
            # rows whose tags hold any of the values
            clause = JsonHasAny(column, *(str(tag) for tag in cond.values))
        else:
            clause = _compare(column, _typed_values(column, cond))
    # `~` means "not this"; rows where the value is NULL count as "not this" too.
    return not_(func.coalesce(clause, False)) if cond.negate else clause


def apply_query(stmt: Select[Any], query: str | None, fmap: FieldMap) -> Select[Any]:
    """`stmt` narrowed by the `query` filters, for either database (app.dialects compiles the
    differences)."""
    if not query:
        return stmt
    kinds = {name: kind for name, (kind, _) in fmap.fields.items()}
    kinds.update({name: FieldKind.BOOL for name in fmap.custom if name not in kinds})
    json_kinds = {name: kind for name, (kind, _) in fmap.json_fields.items()}
    try:
        conditions = parse_query(query, kinds, json_kinds)
    except SpecError as exc:
        raise BadRequest(exc.message) from None
    return stmt.where(and_(*(_condition(c, fmap) for c in conditions)))


def apply_sort(stmt: Select[Any], sort: str | None, fmap: FieldMap) -> Select[Any]:
    orderings: list[Any] = []
    if sort:
        for name, key, descending in parse_sort(sort, set(fmap.sortable), set(fmap.json_sortable)):
            if key is None:
                expr = fmap.sortable[name]
            else:
                expr = fmap.json_sortable[name][key].as_float()
            orderings.append(expr.desc().nulls_last() if descending else expr.asc().nulls_last())
    orderings.extend(fmap.default_sort)
    return stmt.order_by(*orderings)


def _page_url(url: URL, limit: int, offset: int) -> str:
    return str(url.include_query_params(limit=limit, offset=max(offset, 0)))


async def paginate(
    session: AsyncSession, stmt: Select[Any], params: ListParams, *, scalars: bool = True
) -> tuple[int, list[Any], str | None, str | None]:
    """Count the filtered rows and fetch one page; `next`/`previous` are absolute URLs."""
    count = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    page = stmt.limit(params.limit).offset(params.offset)
    result = await session.execute(page)
    rows = list(result.scalars().all() if scalars else result.all())
    total = int(count or 0)
    next_url = None
    if params.offset + params.limit < total:
        next_url = _page_url(params.url, params.limit, params.offset + params.limit)
    previous_url = None
    if params.offset > 0:
        previous_url = _page_url(params.url, params.limit, params.offset - params.limit)
    return total, rows, next_url, previous_url
