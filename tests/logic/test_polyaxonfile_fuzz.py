"""Hypothesis fuzz of the polyaxonfile validator: for any input, `parse_polyaxonfile` (and the
group content reader in front of it) returns or raises SpecError, within bounded time and
memory. The generator aims at the sizes that once ran away: huge ranges, matrices, numbers at
the float limits, templates that format, repeat or concatenate, YAML aliases, deep nesting."""

from __future__ import annotations

import os
import time
import tracemalloc
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.logic.content import parse_content
from app.logic.errors import SpecError
from app.logic.polyaxonfile import parse_polyaxonfile
from app.logic.specs import KINDS

EXAMPLES = int(os.environ.get("PLX_FUZZ_EXAMPLES") or (150 if os.environ.get("CI") else 30))
# Generous for a shared CI machine under tracemalloc; a runaway input takes minutes or GBs.
MAX_SECONDS = 5.0
MAX_PEAK_BYTES = 64 * 1024 * 1024

HUGE_INTS = st.sampled_from([0, 1, -1, 2, 10**9, 10**18, 2**63, 10**30, 10**308, 10**400])
EDGE_FLOATS = st.sampled_from([0.0, 1e-308, 5e-324, 0.5, 1e9, 1e300, 1.7976931348623157e308])
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6),
    HUGE_INTS,
    HUGE_INTS.map(lambda n: -n),
    st.floats(allow_nan=False, allow_infinity=False),
    EDGE_FLOATS,
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=30))
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=10), children, max_size=5),
    ),
    max_leaves=30,
)

RANGE_OPTIONS = ["range", "linspace", "logspace", "geomspace"]
DISTRIBUTIONS = ["uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal",
                 "lognormal", "qlognormal"]  # fmt: skip


@st.composite
def matrix_entry(draw: st.DrawFn) -> Any:
    option = draw(st.sampled_from([*RANGE_OPTIONS, *DISTRIBUTIONS, "values", "pvalues", "x"]))
    if option == "values":
        return {"values": draw(st.lists(SCALARS, max_size=6))}
    if option == "pvalues":
        return {"pvalues": draw(st.lists(st.tuples(SCALARS, NUMBERS).map(list), max_size=4))}
    parts = draw(st.lists(NUMBERS, min_size=1, max_size=4))
    shape = draw(st.sampled_from(["text", "list", "dict"]))
    if shape == "text":
        return {option: ":".join(str(p) for p in parts)}
    if shape == "list":
        return {option: parts}
    keys = ["start", "stop", "num", "step", "base", "low", "high", "q", "loc", "scale", "size"]
    return {option: dict(zip(draw(st.permutations(keys)), parts, strict=False))}


@st.composite
def hptuning(draw: st.DrawFn) -> Any:
    matrix = draw(st.dictionaries(st.text(min_size=1, max_size=8), matrix_entry(), max_size=4))
    section: dict[str, Any] = {"matrix": matrix}
    algorithm = draw(st.sampled_from(["none", "grid", "random", "hyperband", "bo"]))
    if algorithm == "grid":
        section["grid_search"] = {"n_experiments": draw(st.one_of(st.none(), HUGE_INTS))}
    elif algorithm == "random":
        section["random_search"] = {"n_experiments": draw(HUGE_INTS)}
    elif algorithm == "hyperband":
        section["hyperband"] = {
            "max_iter": draw(HUGE_INTS),
            "eta": draw(st.one_of(NUMBERS, st.just(1.0000001))),
            "resource": {"name": "steps", "type": "int"},
            "metric": {"name": "loss"},
        }
    elif algorithm == "bo":
        section["bo"] = {
            "n_initial_trials": draw(HUGE_INTS),
            "n_iterations": draw(HUGE_INTS),
            "metric": {"name": "loss"},
            "utility_function": {
                "acquisition_function": "ucb",
                "kappa": 1,
                "n_warmup": draw(HUGE_INTS),
            },
        }
    if draw(st.booleans()):
        section["concurrency"] = draw(HUGE_INTS)
    return section


TEMPLATE_PIECES = [
    "'%200000000d' % 1", "'%.99999999f' % 1.0", "'%s' % x", "'a' * 100000", "x * 10000",
    "x ~ x ~ x ~ x", "[x, x, x, x]|join", "[x, x, x]|tojson", "x[1:]", "x + x", "2 ** 100000",
    "x|length", "y", "y.z", "(((((1)))))", "x|upper", "[x] * 10000", "1 / 0",
]  # fmt: skip


@st.composite
def template(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.sampled_from(TEMPLATE_PIECES), min_size=1, max_size=4))
    joiner = draw(st.sampled_from([" ~ ", " + ", " * ", "|join ~ "]))
    text = "{{ " + joiner.join(pieces) + " }}"
    return text * draw(st.integers(1, 3))


@st.composite
def polyaxonfile(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": draw(st.one_of(st.just(1), SCALARS)),
        "kind": draw(st.one_of(st.sampled_from(KINDS), st.text(max_size=8))),
    }
    x = draw(st.one_of(st.just("x" * 50_000), st.text(max_size=20)))
    data["declarations"] = draw(st.one_of(st.none(), st.just({"x": x, "y": {"z": 1}}), JSON))
    if draw(st.booleans()):
        data["run"] = {"cmd": draw(st.one_of(template(), st.text(max_size=20), JSON))}
    if draw(st.booleans()):
        data["build"] = draw(
            st.one_of(st.just({"image": "python:3.11-slim"}), st.just({"image": "{{ x }}"}), JSON)
        )
    if draw(st.booleans()) or data["kind"] == "group":
        data["hptuning"] = draw(hptuning())
    for section in draw(st.lists(st.sampled_from(["environment", "logging", "tags"]), max_size=2)):
        data[section] = draw(JSON)
    return data


YAML_BOMB = (
    "version: 1\nkind: group\n"
    "declarations:\n  a: &a ['xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'xxxxxxxxxxxxxxxxxxxxxx']\n"
    "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "  f: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
)
TEXTS = st.one_of(
    st.text(max_size=200),
    st.just(YAML_BOMB),
    st.integers(1, 2_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 2_000).map(lambda n: "{a: " * n + "1" + "}" * n),
    polyaxonfile().map(repr),  # what polyaxon-cli 0.3.9 sends as a group's content
)


def _bounded(call: Any) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        call()
    except SpecError:
        pass
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, elapsed
    assert peak < MAX_PEAK_BYTES, peak


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(data=polyaxonfile())
def test_any_polyaxonfile_is_validated_in_bounded_time_and_memory(data):
    _bounded(lambda: parse_polyaxonfile(data))


@FUZZ
@given(text=TEXTS)
def test_any_group_content_is_read_in_bounded_time_and_memory(text):
    _bounded(lambda: parse_polyaxonfile(parse_content(text), expected_kind="group"))
