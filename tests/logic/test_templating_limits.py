"""The template sandbox refuses operations that would build a huge value *before* building it:
`%` formatting with a huge width, repetition, concatenation and the copying filters over values
shared by reference, slices, printed expressions, and deeply nested expressions."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from app.logic.errors import SpecError
from app.logic.templating import render_value

LONG = "x" * 90_000
CONTEXT = {"a": LONG, "l": [LONG], "n": 3, "lr": 0.1}


def _many(expr: str, times: int = 150, sep: str = ",") -> str:
    return sep.join([expr] * times)


REFUSED = [
    ("{{ '%200000000d' % 1 }}", "`%` result too large"),
    ("{{ '%.200000000f' % 1.0 }}", "`%` result too large"),
    ("{{ '%*d' % (100000000, 1) }}", "`*` widths"),
    ("{{ '%s%s' % (a, a) }}", "`%` result too large"),
    ("{{ '{:>999999999}'.format(1) }}", "`Call` is not allowed"),
    ("{{ '%d'|format(1) }}", "No filter named 'format'"),
    ("{{ 'a' * 10**9 }}", "`*` result too large"),
    ("{{ l * 1000 }}", "`*` result too large"),
    ("{{ range(10**9) }}", "`Call` is not allowed"),
    ("{{ a + a }}", "`+` result too large"),
    ("{{ " + _many("a", sep="~") + " }}", "`~` result too large"),
    ("{{ [" + _many("a") + "]|join }}", "`join` result too large"),
    ("{{ [" + _many("a") + "]|tojson }}", "`tojson` result too large"),
    ("{{ [" + _many("a") + "]|string }}", "`string` result too large"),
    ("{{ [" + _many("l") + "]|sum(start=[]) }}", "`sum` result too large"),
    ("{{ [" + _many("a") + "] }}", "printed value result too large"),
    ("{{ [" + _many("a[1:]") + "]|length }}", "slice result too large"),
    ("{{ " + _many("l", 200, "+") + " }}", "nested deeper than"),
    ("{{ " + _many("1", 300, "*") + " }}", "nested deeper than"),
    ("{{ " + "(" * 300 + "1" + ")" * 300 + " }}", "recursion"),
    ("{{ a }}" * 200, "longer than 100000 characters"),
]


def _render(template: str):
    return render_value({"cmd": template}, CONTEXT, "run")


@pytest.mark.parametrize("template, reason", REFUSED, ids=lambda v: str(v)[:40])
def test_value_building_operations_are_refused_before_allocating(template, reason):
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(SpecError) as info:
            _render(template)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    [(path, message)] = info.value.problems
    assert path == "run.cmd" and reason in message, message
    assert len(message) < 1_000
    assert peak < 30 * 1024 * 1024, peak
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{ '%s-%05.2f' % ('lr', lr) }}", "lr-00.10"),
        ("{{ '%(n)d' % {'n': n} }}", 3),
        ("{{ 'v' ~ n ~ '-' ~ lr }}", "v3-0.1"),
        ("{{ a[:3] ~ a[-2:] }}", "xxxxx"),
        ("{{ [n, n]|join(',') }}", "3,3"),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ n + 1 }}", 4),
        ("{{ [1] + [2] }}", [1, 2]),
    ],
)
def test_ordinary_templates_still_render(template, expected):
    assert _render(template) == {"cmd": expected}
