"""The v0 list `query` grammar (polyaxon-v0.md 4.3), parsed into plain values. No I/O.

    query   := expr ("," expr)*            expressions are ANDed
    expr    := field ":" operation          split on the *first* ":" (so times may hold ":")
    value   := ["~"] v ("|" v)*             =, IN; "~" negates (NOT IN)
    scalar  := ["~"] [op] number            op in < <= =< > >= => =
    date    := ["~"] [op] date | date ".." date
    bool    := true | false | 1 | 0

Fields are declared per resource; `metric.<k>` and `declarations.<k>` style prefixes address keys
of JSON columns. Every problem raises SpecError naming the expression.

A query is bounded (expressions, alternatives) before it reaches SQL: SQLite refuses expression
trees deeper than 1,000 nodes, and a long one is slow to compile on either database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import Enum

from app.logic.errors import SpecError


class FieldKind(Enum):
    VALUE = "value"
    SCALAR = "scalar"
    DATETIME = "datetime"
    BOOL = "bool"
    TAGS = "tags"


@dataclass(frozen=True)
class Condition:
    field: str  # e.g. "status", or "metric" for "metric.loss"
    key: str | None  # JSON key for prefixed fields
    op: str  # eq | in | lt | lte | gt | gte | range
    values: tuple[object, ...]
    negate: bool = False


_SCALAR_OPS = (
    ("<=", "lte"),
    ("=<", "lte"),
    (">=", "gte"),
    ("=>", "gte"),
    ("<", "lt"),
    (">", "gt"),
    ("=", "eq"),
)
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
MAX_EXPRESSIONS = 50  # `a:1,b:2,...`
MAX_VALUES = 1_000  # alternatives (`a|b|...`) over the whole query; each field compiles to one IN
MAX_JSON_KEY_CHARS = 256


def parse_query(
    query: str,
    fields: Mapping[str, FieldKind],
    prefixed: Mapping[str, FieldKind] | None = None,
) -> list[Condition]:
    """Parse `query` against the allowed `fields` and JSON-key `prefixed` fields."""
    if "\x00" in query:
        raise SpecError("query", "must not contain NUL characters")
    expressions = query.split(",")
    if len(expressions) > MAX_EXPRESSIONS:
        raise SpecError(
            "query", f"too many expressions ({len(expressions)}; at most {MAX_EXPRESSIONS})"
        )
    conditions: list[Condition] = []
    for raw in expressions:
        expr = raw.strip()
        if not expr:
            raise SpecError("query", f"empty expression in `{_short(query)}`")
        conditions.append(_parse_expression(expr, fields, prefixed or {}))
    values = sum(len(c.values) for c in conditions)
    if values > MAX_VALUES:
        raise SpecError("query", f"too many values ({values}; at most {MAX_VALUES})")
    return conditions


def _short(text: str, limit: int = 200) -> str:
    """Error messages quote at most `limit` characters of the user's text."""
    return text if len(text) <= limit else text[:limit] + "..."


def _parse_expression(
    expr: str, fields: Mapping[str, FieldKind], prefixed: Mapping[str, FieldKind]
) -> Condition:
    if ":" not in expr:
        raise SpecError("query", f"expression `{_short(expr)}` must look like field:operation")
    name, operation = (part.strip() for part in expr.split(":", 1))
    field, key, kind = _resolve_field(name, fields, prefixed)
    if not operation:
        raise SpecError("query", f"expression `{_short(expr)}` has no operation")
    negate = operation.startswith("~")
    if negate:
        operation = operation[1:].strip()
    if not operation:
        raise SpecError("query", f"expression `{_short(expr)}` has no value after `~`")
    parse = {
        FieldKind.VALUE: _parse_value,
        FieldKind.TAGS: _parse_value,
        FieldKind.SCALAR: _parse_scalar,
        FieldKind.DATETIME: _parse_datetime,
        FieldKind.BOOL: _parse_bool,
    }[kind]
    op, values = parse(name, operation)
    return Condition(field=field, key=key, op=op, values=values, negate=negate)


def _resolve_field(
    name: str, fields: Mapping[str, FieldKind], prefixed: Mapping[str, FieldKind]
) -> tuple[str, str | None, FieldKind]:
    if name in fields:
        return name, None, fields[name]
    prefix, dot, key = name.partition(".")
    if dot and prefix in prefixed:
        if not key:
            raise SpecError("query", f"field `{name}` needs a key after `{prefix}.`")
        if len(key) > MAX_JSON_KEY_CHARS:
            raise SpecError("query", f"the key of `{_short(name)}` is too long")
        return prefix, key, prefixed[prefix]
    allowed = sorted([*fields, *(f"{p}.<key>" for p in prefixed)])
    raise SpecError("query", f"unknown field `{_short(name)}`; allowed: {', '.join(allowed)}")


def _parse_value(name: str, operation: str) -> tuple[str, tuple[object, ...]]:
    if operation.count("|") >= MAX_VALUES:
        raise SpecError("query", f"`{name}` has more than {MAX_VALUES} values")
    # Repeats are dropped: `a|a|a` is one value.
    values = tuple(dict.fromkeys(v.strip() for v in operation.split("|")))
    if any(not v for v in values):
        raise SpecError("query", f"`{name}` has an empty value in `{_short(operation)}`")
    return ("in", values) if len(values) > 1 else ("eq", values)


def _parse_scalar(name: str, operation: str) -> tuple[str, tuple[object, ...]]:
    op, text = "eq", operation
    for token, op_name in _SCALAR_OPS:
        if operation.startswith(token):
            op, text = op_name, operation[len(token) :].strip()
            break
    try:
        number = float(text)
    except ValueError:
        raise SpecError("query", f"`{name}` expects a number, got `{_short(text)}`") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise SpecError("query", f"`{name}` expects a finite number, got `{_short(text)}`")
    return op, (number,)


def parse_datetime_value(text: str) -> datetime:
    """`2018-10-10`, `2018-10-10 12`, `2018-10-10 12:30`, or full ISO-8601; naive means UTC."""
    text = text.strip()
    candidates = [text]
    if len(text) == 13 and text[10] in " T":  # "YYYY-MM-DD HH"
        candidates.append(text + ":00")
    for candidate in candidates:
        try:
            value = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    except ValueError:
        raise SpecError("query", f"`{_short(text)}` is not a date or datetime") from None


def _parse_datetime(name: str, operation: str) -> tuple[str, tuple[object, ...]]:
    if ".." in operation:
        start, _, end = operation.partition("..")
        low, high = parse_datetime_value(start), parse_datetime_value(end)
        if high < low:
            raise SpecError("query", f"`{name}` range `{_short(operation)}` ends before it starts")
        return "range", (low, high)
    op, text = "eq", operation
    for token, op_name in _SCALAR_OPS:
        if operation.startswith(token):
            op, text = op_name, operation[len(token) :]
            break
    return op, (parse_datetime_value(text),)


def _parse_bool(name: str, operation: str) -> tuple[str, tuple[object, ...]]:
    value = _BOOLS.get(operation.lower())
    if value is None:
        raise SpecError("query", f"`{name}` expects true or false, got `{_short(operation)}`")
    return "eq", (value,)


SortKey = tuple[str, str | None, bool]


def parse_sort(sort: str, allowed: set[str], prefixed: set[str] | None = None) -> list[SortKey]:
    """`-created_at,metric.loss` -> [(field, json_key, descending)]; unknown fields are dropped."""
    result: list[SortKey] = []
    for raw in sort.split(","):
        item = raw.strip()
        descending = item.startswith("-")
        name = item.lstrip("-+").strip()
        if name in allowed:
            result.append((name, None, descending))
            continue
        prefix, dot, key = name.partition(".")
        if dot and key and prefixed and prefix in prefixed:
            result.append((prefix, key, descending))
    return result
