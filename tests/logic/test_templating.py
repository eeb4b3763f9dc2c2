"""Templating of polyaxonfile values as v0 did it, inside a narrowed Jinja2 sandbox."""

from __future__ import annotations

import math
import os
import tempfile
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.logic.errors import SpecError
from app.logic.templating import (
    MAX_RENDER_PASSES,
    literal,
    merge_declarations,
    render_declarations,
    render_sections,
    render_value,
    sanitize_cmd,
)

CONTEXT = {"lr": 0.1, "steps": 500, "layers": [64, 32], "opt": {"name": "adam"}, "act": "relu"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", 0.1),
        ("3", 3),
        ("-2", -2),
        ("[1, 2]", [1, 2]),
        ("{'a': 1}", {"a": 1}),
        ("True", True),
        ("None", None),
        ("'quoted'", "quoted"),
        ("relu", "relu"),
        ("python train.py", "python train.py"),
        ("tensorflow/tensorflow:1.4.1-py3", "tensorflow/tensorflow:1.4.1-py3"),
        # not JSON-like: kept as the text
        ("(1, 2)", "(1, 2)"),
        ("0, 1", "0, 1"),
        ("{1, 2}", "{1, 2}"),
        ("b'x'", "b'x'"),
        ("1j", "1j"),
        ("...", "..."),
        ("1e999", "1e999"),
        ("[" * 500 + "]" * 500, "[" * 500 + "]" * 500),
    ],
)
def test_literal_typing(text: str, expected: object) -> None:
    assert literal(text) == expected
    assert type(literal(text)) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ lr }}", 0.1),  # a value rendered alone comes back typed
        ("{{ steps }}", 500),
        ("{{ layers }}", [64, 32]),
        ("{{ opt }}", {"name": "adam"}),
        ("{{ opt.name }}", "adam"),
        ("{{ opt['name'] }}", "adam"),
        ("{{ layers[0] }}", 64),
        ("--lr={{ lr }}", "--lr=0.1"),
        ("{{ missing }}", ""),  # undefined renders as the empty string
        ("--x={{ missing }}", "--x="),
        ("--x={{ missing.deeper }}", "--x="),
        ("{{ act|upper }}", "RELU"),
        ("{{ layers|join(',') }}", "64,32"),
        ("{{ missing|default('sgd') }}", "sgd"),
        ("{{ lr * 10 }}", 1.0),
        ("{{ 'a' if lr > 0.05 else 'b' }}", "a"),
        ("{% if steps > 100 %}long{% endif %}", "long"),
        ("{{ opt|tojson }}", {"name": "adam"}),
        ("{# a comment #}x", "x"),
    ],
)
def test_render_value(template: str, expected: object) -> None:
    assert render_value(template, CONTEXT, "run.cmd") == expected


def test_render_value_walks_mappings_and_lists() -> None:
    value = {"cmd": ["a {{ act }}", "{{ steps }}"], "n": 3, "flag": True}
    assert render_value(value, CONTEXT, "run") == {"cmd": ["a relu", 500], "n": 3, "flag": True}


def test_declarations_are_rendered_against_themselves() -> None:
    declarations = {"base": 8, "width": "{{ base }}0", "label": "w{{ width }}", "x": "0.5"}
    assert render_declarations(declarations) == {
        "base": 8,
        "width": 80,
        "label": "w80",  # a chain settles over several passes, as v0's recursion did
        "x": 0.5,
    }


def test_self_referencing_template_is_an_error() -> None:
    with pytest.raises(SpecError) as info:
        render_declarations({"a": "x{{ a }}"})
    assert info.value.problems == [
        ("declarations.a", "template does not settle (does a value refer to itself?)")
    ]
    assert MAX_RENDER_PASSES >= 2


def test_static_declarations_win_over_matrix_values() -> None:
    merged = merge_declarations(
        {"lr": 0.5, "batch": 32, "opt": {"name": "sgd", "momentum": 0.9}},
        {"lr": 0.01, "opt": {"name": "adam"}},
    )
    assert merged == {"lr": 0.01, "batch": 32, "opt": {"name": "adam", "momentum": 0.9}}


def test_hptuning_and_header_are_not_templated() -> None:
    data = {
        "version": 1,
        "kind": "group",
        "hptuning": {"matrix": {"lr": {"values": ["{{ lr }}"]}}},
        "run": {"cmd": "train --lr={{ lr }}"},
        "tags": ["{{ act }}"],
        "declarations": {"lr": "{{ nope }}"},
    }
    rendered = render_sections(data, CONTEXT)
    assert rendered["hptuning"] == data["hptuning"]
    assert rendered["declarations"] == data["declarations"]
    assert rendered["run"] == {"cmd": "train --lr=0.1"}
    assert rendered["tags"] == ["relu"]


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("python3 model.py --lr=0.1", "python3 model.py --lr=0.1"),
        ("python3  model.py \\\n  --lr=0.1\n  --steps=5", "python3 model.py --lr=0.1 --steps=5"),
        ("echo 'a    b'", "echo 'a b'"),  # v0 collapsed whitespace inside quotes too
        ("\\python\\ x", "python x"),
        (
            ["pip install -r req.txt", "python  train.py"],
            "pip install -r req.txt && python train.py",
        ),
        (["a"], "a"),
    ],
)
def test_sanitize_cmd(cmd: str | list[str], expected: str) -> None:
    assert sanitize_cmd(cmd) == expected


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ ''.__class__ }}", "unsafe template: access to attribute `__class__` is not allowed"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe template:"),
        ("{{ opt.__class__ }}", "unsafe template: access to attribute `__class__`"),
        ("{{ opt['__class__'] }}", "unsafe template: access to attribute `__class__`"),
        ("{{ act['__class__'] }}", "unsafe template: access to attribute `__class__`"),
        ("{{ layers|sort(attribute='__class__') }}", "unsafe template: access to attribute"),
        ("{{ act|attr('__class__') }}", "No filter named 'attr'"),
        ("{{ act.upper() }}", "unsafe template: `Call` is not allowed"),
        ("{{ cycler.__init__.__globals__ }}", "unsafe template: access to attribute `__"),
        ("{{ range(10) }}", "unsafe template: `Call` is not allowed"),
        ("{{ self }}", "unsafe template: the name `self` is not allowed"),
        ("{% for x in layers %}{{ x }}{% endfor %}", "unsafe template: `For` is not allowed"),
        ("{% set x = 1 %}", "unsafe template: `Assign` is not allowed"),
        ("{% macro m() %}{% endmacro %}", "unsafe template: `Macro` is not allowed"),
        ("{% include 'x' %}", "unsafe template: `Include` is not allowed"),
        ("{{ 'a' * 100000 }}", "unsafe template: `*` result too large"),
        ("{{ 2 ** 100000 }}", "unsafe template: `**` result too large"),
        ("{{ act ** 2 }}", "unsafe template: `**` needs two numbers"),
        ("{{ act|center(1000000000) }}", "No filter named 'center'"),
        ("{{ 1 / 0 }}", "template could not be rendered: division by zero"),
        ("{{ missing + 1 }}", "template could not be rendered: 'missing' is undefined"),
        ("{{ unclosed", "template could not be rendered: unexpected"),
    ],
)
def test_hostile_or_broken_templates_are_spec_errors_with_path(template: str, reason: str) -> None:
    with pytest.raises(SpecError) as info:
        render_value({"cmd": [template]}, CONTEXT, "run")
    [(path, got)] = info.value.problems
    assert path == "run.cmd.0"
    assert reason in got


_CANARY = os.path.join(tempfile.gettempdir(), f"plx-canary-{uuid.uuid4().hex}")
_ROOTS = [
    "''",
    "()",
    "[]",
    "{}",
    "act",
    "opt",
    "layers",
    "lr",
    "missing",
    "cycler",
    "lipsum",
    "namespace",
    "joiner",
    "range",
    "dict",
    "config",
    "request",
    "self",
    "loop",
    "g",
]
_STEPS = [".__class__", ".__mro__", ".__base__", ".__bases__", "[1]", "[-1]", ".__subclasses__()",
          ".__init__", ".__globals__", "['__builtins__']", "['__import__']", "('os')",
          ".system", f"('touch {_CANARY}')", "|attr('__class__')", "|list", ".mro()",
          ".__dict__", ".func_globals", ".gi_frame", ".f_back", ".__code__", ".items()",
          ".keys", ".format", "('{0.__class__}')", "|map('upper')", "|string", "|first",
          ".popen", "|join", ".__getitem__", ".__reduce_ex__(2)"]  # fmt: skip
_LEAK_MARKERS = ("<class", "<function", "<built-in", "<bound", "<generator", "<module",
                 " at 0x", "object at", "<method", "<jinja2", "<Template")  # fmt: skip


@st.composite
def hostile_templates(draw: st.DrawFn) -> str:
    expression = draw(st.sampled_from(_ROOTS)) + "".join(
        draw(st.lists(st.sampled_from(_STEPS), min_size=1, max_size=6))
    )
    shape = draw(st.sampled_from(["{{ %s }}", "x{{ %s }}y", "{%% if %s %%}1{%% endif %%}"]))
    return shape % expression


@settings(max_examples=300, deadline=None)
@given(template=hostile_templates())
def test_templates_never_execute_or_leak_internals(template: str) -> None:
    try:
        rendered = render_value(template, CONTEXT, "run.cmd")
    except SpecError as exc:
        assert all(path == "run.cmd" for path, _ in exc.problems)
    else:
        text = str(rendered)
        assert not any(marker in text for marker in _LEAK_MARKERS), text
    assert not os.path.exists(_CANARY)


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="{}%#"), max_size=20
)
_JSON_LEAVES = (
    st.none() | st.booleans() | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | _TEXT
)  # fmt: skip
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)


@given(value=_JSON)
def test_literal_typing_round_trips_json_values(value: object) -> None:
    assert literal(repr(value)) == value


@given(value=_JSON.filter(lambda v: not isinstance(v, str)))
def test_a_value_rendered_alone_keeps_its_type(value: object) -> None:
    rendered = render_value("{{ v }}", {"v": value}, "declarations.x")
    assert rendered == value
    if isinstance(value, float) and not math.isnan(value):
        assert isinstance(rendered, float)
