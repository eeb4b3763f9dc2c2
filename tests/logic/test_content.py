"""`parse_content`: a group's `content` as YAML text, a JSON object or a Python dict repr."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.logic.content import parse_content
from app.logic.errors import SpecError

CLI_CONTENT = (
    "{'version': 1, 'kind': 'group', 'hptuning': {'concurrency': 2, 'random_search': "
    "{'n_experiments': 4}, 'matrix': {'learning_rate': {'linspace': '0.001:0.1:5'}, "
    "'activation': {'values': ['relu', 'sigmoid']}}}, 'declarations': {'batch_size': 128}, "
    "'build': {'image': 'python:3.11-slim'}, 'run': {'cmd': 'python model.py "
    "--batch_size={{ batch_size }} --lr={{ learning_rate }}'}}"
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
specs = st.dictionaries(st.text(max_size=8), values, max_size=5)


def test_cli_repr_is_read_exactly():
    data = parse_content(CLI_CONTENT)
    assert data["hptuning"]["matrix"]["activation"] == {"values": ["relu", "sigmoid"]}
    assert data["run"]["cmd"].endswith("--lr={{ learning_rate }}")


def test_repr_keeps_none_small_floats_and_tuples_that_yaml_would_lose():
    data = parse_content("{'grid_search': {'n_experiments': None}, 'lr': 1e-05, 'xs': (1, 2)}")
    assert data == {"grid_search": {"n_experiments": None}, "lr": 1e-05, "xs": [1, 2]}


def test_yaml_text_json_text_and_objects():
    assert parse_content("version: 1\nkind: group\n") == {"version": 1, "kind": "group"}
    assert parse_content('{"version": 1, "a": null, "b": true}') == {
        "version": 1,
        "a": None,
        "b": True,
    }
    assert parse_content("{kind: group, version: 1}") == {"kind": "group", "version": 1}
    assert parse_content({"version": 1}) == {"version": 1}


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{'a': __import__('os').system('true')}", "not a literal (`Call`"),
        ("{'a': (lambda: 1)}", "not a literal (`Lambda`"),
        ("{'a': open.__doc__}", "not a literal (`Attribute`"),
        ("{'a': [x for x in 'ab']}", "not a literal (`ListComp`"),
        ("{'a': {1: 2}['b']}", "not a literal (`Subscript`"),
        ("{'a': 2 ** 999999}", "not a literal (`BinOp`"),
        ("[1, 2]", "must be a mapping"),
        ("['version', 1]", "must be a mapping"),
        ("'just a string'", "must be a mapping"),
        ("{'a': {1, 2}}", "unsupported value of type `set`"),
        ("{'a': b'x'}", "unsupported value of type `bytes`"),
        ("{1: 'x'}", "keys must be strings"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("version: [1", "invalid YAML"),
    ],
)
def test_bad_content_is_a_spec_error(content, reason):
    with pytest.raises(SpecError) as err:
        parse_content(content)
    assert reason in err.value.message and err.value.message.startswith("content")


@pytest.mark.parametrize("content", [5, 1.5, None, ["version", 1], True])
def test_content_of_the_wrong_type(content):
    with pytest.raises(SpecError, match="content"):
        parse_content(content)


def test_code_in_content_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    payloads = [
        f"{{'a': __import__('pathlib').Path({str(marker)!r}).touch()}}",
        f"{{'a': [__import__('os').system('touch {marker}')]}}",
        f"{{'a': (lambda: open({str(marker)!r}, 'w'))()}}",
    ]
    for payload in payloads:
        with pytest.raises(SpecError):
            parse_content(payload)
    assert not marker.exists()


def test_deep_nesting_is_refused_cleanly():
    for text in ("[" * 100_000, "{'a': " * 5_000 + "1" + "}" * 5_000):
        with pytest.raises(SpecError):
            parse_content(text)


@settings(max_examples=200, deadline=None)
@given(specs)
def test_repr_json_and_yaml_of_a_dict_read_back_equal(spec):
    assert parse_content(repr(spec)) == spec
    assert parse_content(json.dumps(spec)) == spec
    assert parse_content(spec) == spec
    if spec:
        assert parse_content(yaml.safe_dump(spec)) == spec


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.text(alphabet="{}[]()'\":,._ abxyz019=+-*/\\\n", max_size=80),
        st.builds(lambda s: "{'k': " + s + "}", st.text(max_size=40)),
    )
)
def test_any_text_gives_a_mapping_or_a_spec_error(text):
    try:
        data = parse_content(text)
    except SpecError as exc:
        assert exc.message.startswith("content")
    else:
        assert isinstance(data, dict)
