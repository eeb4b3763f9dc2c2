"""Matrix sizes are arithmetic: a huge `range`/`linspace`/`logspace`/`geomspace`, or a matrix
whose values add up past the allowed number, is refused before any list is built, in the
validator of every polyaxonfile kind."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.logic.errors import SpecError
from app.logic.hptuning import parse_hptuning
from app.logic.matrix import DEFAULT_MAX_VALUES, MatrixParam
from app.logic.polyaxonfile import parse_polyaxonfile

HUGE = {
    "range": "0:1000000000:1",
    "linspace": "0:1:1000000000",
    "logspace": "0:1:1000000000",
    "geomspace": "1:2:1000000000",
}


def _bounded(call, *, seconds: float = 1.0, peak_bytes: int = 20 * 1024 * 1024):
    tracemalloc.start()
    started = time.monotonic()
    try:
        return call()
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < seconds, elapsed
        assert peak < peak_bytes, peak


def _group(matrix: dict, **hptuning) -> dict:
    return {
        "version": 1,
        "kind": "group",
        "hptuning": {"matrix": matrix, **hptuning},
        "run": {"cmd": "echo"},
    }


@pytest.mark.parametrize("option", sorted(HUGE))
def test_huge_range_options_are_refused_without_building_them(option):
    content = _group({"lr": {option: HUGE[option]}})
    with pytest.raises(SpecError) as info:
        _bounded(lambda: parse_polyaxonfile(content))
    message = str(info.value)
    assert "hptuning.matrix.lr" in message and "1000000000 values" in message, message
    assert f"the {DEFAULT_MAX_VALUES} allowed" in message


def test_the_bound_is_the_callers():
    content = _group({"lr": {"linspace": "0:1:200"}})
    with pytest.raises(SpecError, match="200 values, more than the 100 allowed"):
        parse_polyaxonfile(content, max_values=100)
    parse_polyaxonfile(content, max_values=200)
    # Stored content is read back unbounded, still without building anything.
    big = _group({"lr": {"linspace": "0:1:1000000000"}}, random_search={"n_experiments": 2})
    parsed = _bounded(lambda: parse_polyaxonfile(big, max_values=None))
    assert parsed.hptuning.matrix["lr"].length == 1_000_000_000


def test_the_values_of_all_params_add_up():
    matrix = {name: {"linspace": "0:1:40000"} for name in ("a", "b", "c")}
    content = _group(matrix, random_search={"n_experiments": 10})
    with pytest.raises(SpecError, match="the matrix defines 120000 values"):
        _bounded(lambda: parse_polyaxonfile(content))
    with pytest.raises(SpecError, match="120000 values"):
        parse_hptuning(content["hptuning"], max_values=DEFAULT_MAX_VALUES)


@pytest.mark.parametrize("kind", ["experiment", "job", "build", "notebook", "tensorboard"])
def test_every_kind_with_a_matrix_is_refused_quickly(kind):
    content = {
        "version": 1,
        "kind": kind,
        "build": {"image": "python:3.11-slim"},
        "run": {"cmd": "echo"},
        "hptuning": {"matrix": {"lr": {"linspace": "0:1:1000000000"}}},
    }
    if kind in ("build", "notebook", "tensorboard"):
        del content["run"]
    with pytest.raises(SpecError, match="hptuning"):
        _bounded(lambda: parse_polyaxonfile(content))


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"linspace": "-1e308:1e308:5"}, "too wide"),
        ({"range": "-1e308:1e308:1e300"}, "too wide"),
        ({"range": [0, 10**400, 1]}, "too large"),
        ({"logspace": "0:400:5"}, "too large"),
        ({"logspace": "-2000:0:5:0.5"}, "too large"),
        ({"uniform": "-1e308:1e308"}, "too wide"),
        ({"loguniform": "0:1000"}, "exp(high) overflows"),
        ({"lognormal": "0:100"}, "exp overflows"),
        ({"normal": "0:1e307"}, "scale is too large"),
        ({"uniform": {"low": 0, "high": 1, "size": 10**9}}, "at most 1000"),
    ],
)
def test_options_whose_values_would_overflow_are_refused(entry, words):
    with pytest.raises(SpecError, match=words.replace("(", r"\(").replace(")", r"\)")):
        _bounded(
            lambda: parse_hptuning({"matrix": {"lr": entry}, "random_search": {"n_experiments": 1}})
        )


@pytest.mark.parametrize(
    "hyperband, words",
    [
        ({"max_iter": 81, "eta": 1.0000001}, "brackets"),
        ({"max_iter": 10**30, "eta": 3}, "less than or equal"),
    ],
)
def test_hyperband_plans_stay_small(hyperband, words):
    section = {
        **hyperband,
        "resource": {"name": "steps", "type": "int"},
        "metric": {"name": "loss", "optimization": "minimize"},
    }
    with pytest.raises(SpecError, match=words):
        _bounded(
            lambda: parse_hptuning({"matrix": {"lr": {"values": [1, 2]}}, "hyperband": section})
        )


def test_int_ranges_beyond_int64_are_exact():
    values = MatrixParam.model_validate({"range": [10**30, 10**30 + 3, 1]}).to_values()
    assert values == (10**30, 10**30 + 1, 10**30 + 2)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(-(10**6), 10**6),
    width=st.integers(1, 10**6),
    step=st.integers(1, 10**5),
)
def test_int_range_count_is_the_length_of_arange(start, width, step):
    param = MatrixParam.model_validate(
        {"range": [start, start + width, step]}, context={"max_values": None}
    )
    assert param.length == len(np.arange(start, start + width, step))
    assert param.length == len(param.to_values())


@settings(max_examples=300, deadline=None)
@given(
    start=st.floats(-1e6, 1e6, allow_nan=False),
    width=st.floats(1e-3, 1e3, allow_nan=False),
    step=st.floats(1e-2, 1e3, allow_nan=False),
)
def test_float_range_count_is_the_length_of_arange(start, width, step):
    if start + width <= start:
        return
    param = MatrixParam.model_validate(
        {"range": [start, start + width, step]}, context={"max_values": None}
    )
    assert param.length == len(np.arange(start, start + width, step))
    assert param.length == len(param.to_values())


def test_one_long_string_behind_many_references_is_bounded():
    # A YAML alias of one long string, used many times, is stored and rendered once per use.
    text = "y" * 200_000
    content = {"version": 1, "kind": "experiment", "declarations": {"b": [text] * 60}}
    with pytest.raises(SpecError, match="more than 10000000 characters"):
        _bounded(lambda: parse_polyaxonfile(content))
    yaml_text = "version: 1\nkind: experiment\ndeclarations:\n  a: &x " + "z" * 100_000
    yaml_text += "\n  b: [" + ", ".join(["*x"] * 120) + "]\n"
    with pytest.raises(SpecError, match="characters"):
        parse_polyaxonfile(yaml_text)
