"""The v0 list query grammar (polyaxon-v0.md 4.3) and sort parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.logic.errors import SpecError
from app.logic.query import Condition, FieldKind, parse_datetime_value, parse_query, parse_sort

FIELDS = {
    "status": FieldKind.VALUE,
    "name": FieldKind.VALUE,
    "tags": FieldKind.TAGS,
    "started_at": FieldKind.DATETIME,
    "id": FieldKind.SCALAR,
    "is_public": FieldKind.BOOL,
}
PREFIXED = {"metric": FieldKind.SCALAR, "declarations": FieldKind.VALUE}


def parse(query: str) -> list[Condition]:
    return parse_query(query, FIELDS, PREFIXED)


def test_value_equality_and_in():
    assert parse("status:running") == [Condition("status", None, "eq", ("running",))]
    assert parse("status: running | failed") == [
        Condition("status", None, "in", ("running", "failed"))
    ]


def test_negation():
    assert parse("status:~created|running") == [
        Condition("status", None, "in", ("created", "running"), negate=True)
    ]
    assert parse("id:~>3") == [Condition("id", None, "gt", (3.0,), negate=True)]


def test_expressions_are_anded_in_order():
    conditions = parse("status:running, name:foo,tags:a|b")
    assert [c.field for c in conditions] == ["status", "name", "tags"]
    assert conditions[2].op == "in" and conditions[2].values == ("a", "b")


@pytest.mark.parametrize(
    "text, op, number",
    [
        ("<0.5", "lt", 0.5),
        ("<=1", "lte", 1.0),
        ("=<1", "lte", 1.0),
        (">2", "gt", 2.0),
        (">=2", "gte", 2.0),
        ("=>2", "gte", 2.0),
        ("=3", "eq", 3.0),
        ("3", "eq", 3.0),
        ("-1e-3", "eq", -0.001),
    ],
)
def test_scalar_operators(text, op, number):
    assert parse(f"metric.loss:{text}") == [Condition("metric", "loss", op, (number,))]


def test_datetime_split_on_first_colon_and_ranges():
    [cond] = parse("started_at:>=2018-10-10 12:30")
    assert cond.op == "gte"
    assert cond.values == (datetime(2018, 10, 10, 12, 30, tzinfo=UTC),)
    [cond] = parse("started_at:2018-10-10..2018-10-12")
    assert cond.op == "range"
    assert cond.values == (datetime(2018, 10, 10, tzinfo=UTC), datetime(2018, 10, 12, tzinfo=UTC))


def test_datetime_forms():
    assert parse_datetime_value("2018-10-10") == datetime(2018, 10, 10, tzinfo=UTC)
    assert parse_datetime_value("2018-10-10 12") == datetime(2018, 10, 10, 12, tzinfo=UTC)
    aware = parse_datetime_value("2018-10-10T12:00:00+02:00")
    assert aware.utcoffset() == timedelta(hours=2)
    assert aware == datetime(2018, 10, 10, 10, tzinfo=UTC)
    assert parse_datetime_value("2018-10-10T12:00:00").tzinfo == UTC
    assert isinstance(aware.tzinfo, timezone)


@pytest.mark.parametrize("text, value", [("true", True), ("1", True), ("False", False),
                                         ("0", False)])
def test_bools(text, value):
    assert parse(f"is_public:{text}") == [Condition("is_public", None, "eq", (value,))]


@pytest.mark.parametrize(
    "query, words",
    [
        ("color:red", ["unknown field `color`", "status"]),
        ("status", ["field:operation"]),
        ("status:", ["no operation"]),
        ("status:~", ["no value"]),
        ("status:a||b", ["empty value"]),
        ("status:running,", ["empty expression"]),
        (",", ["empty expression"]),
        ("id:>abc", ["expects a number", "abc"]),
        ("id:nan", ["finite"]),
        ("metric.loss:inf", ["finite"]),
        ("metric.:1", ["needs a key"]),
        ("started_at:yesterday", ["not a date"]),
        ("started_at:2018-10-12..2018-10-10", ["ends before it starts"]),
        ("is_public:maybe", ["true or false", "maybe"]),
        ("name:a\x00b", ["NUL"]),
    ],
)
def test_malformed_queries_name_the_problem(query, words):
    with pytest.raises(SpecError) as info:
        parse(query)
    message = str(info.value)
    assert message.startswith("query")
    for word in words:
        assert word in message


def test_prefixed_field_without_prefixes_is_unknown():
    with pytest.raises(SpecError, match="unknown field `metric.loss`"):
        parse_query("metric.loss:<1", FIELDS)


def test_sort():
    allowed = {"created_at", "name"}
    assert parse_sort("-created_at, name", allowed) == [
        ("created_at", None, True),
        ("name", None, False),
    ]
    assert parse_sort("+name", allowed) == [("name", None, False)]
    assert parse_sort("-metric.loss", allowed, {"metric"}) == [("metric", "loss", True)]
    # Unknown fields are dropped, as v0's ordering filter did.
    assert parse_sort("bogus,-metric.,metric.x", allowed) == []
