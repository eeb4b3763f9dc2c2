"""Read a polyaxonfile sent as `content`: YAML text, a JSON object, or the Python repr of a dict.

polyaxon-cli 0.3.9 sends a group's `content` as `str(spec_dict)` (`{'version': 1, ...}`), while
HTTP users send YAML text or a JSON object. The repr is read with `ast.literal_eval`, which only
builds literals: nothing is ever evaluated, called or imported. A Python expression that is not a
literal (a call, an attribute, a subscript, a lambda, ...) is refused rather than read as YAML.
No I/O here; errors are `SpecError`s under the `content` path (the routers answer 400).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

from app.logic.errors import SpecError
from app.logic.polyaxonfile import load_content

FIELD = "content"
MAX_CONTENT_CHARS = 1_000_000

# Nodes a Python literal (or a bare-word YAML flow mapping such as `{kind: group}`) is made of.
# Anything else in a text that parses as Python is code, not data.
_DATA_NODES = (
    ast.Expression,
    ast.Dict,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.UnaryOp,
    ast.USub,
    ast.UAdd,
)


def parse_content(content: Any) -> dict[str, Any]:
    """The polyaxonfile mapping in `content`, JSON-safe; SpecError when it is not one.

    Accepts a mapping (a JSON object body) or text: JSON, the Python repr of a dict (exact, so
    `None`, `1e-05` and tuples survive, unlike a YAML read of the repr), or YAML.
    """
    if isinstance(content, Mapping):
        return _as_mapping(content, "a JSON object")
    if not isinstance(content, str):
        raise SpecError(FIELD, f"expected YAML text or an object, got {_type_name(content)}")
    if len(content) > MAX_CONTENT_CHARS:
        raise SpecError(FIELD, f"too long (more than {MAX_CONTENT_CHARS} characters)")
    text = content.strip()
    if not text:
        raise SpecError(FIELD, "is empty")
    if text[0] in "{[":
        data = _from_json(text)
        if data is not None:
            return _as_mapping(data, "JSON")
        data = _from_python_literal(text)
        if data is not None:
            return _as_mapping(data, "a Python literal")
    return _load(text)


def _from_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _from_python_literal(text: str) -> Any:
    """The literal's value; None when the text is not Python (then it may be YAML).

    Raises SpecError for Python code that is not a literal.
    """
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in ast.walk(tree):
        if not isinstance(node, _DATA_NODES):
            raise SpecError(
                FIELD,
                f"a Python expression that is not a literal (`{type(node).__name__}` found): "
                "send YAML, JSON, or the repr of a dict of plain values",
            )
    try:
        return ast.literal_eval(tree)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        # Bare words (`{kind: group}`): not a Python literal, but a valid YAML flow mapping.
        return None


def _load(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """`load_content` with its errors named after the content field."""
    try:
        return load_content(text)
    except SpecError as exc:
        raise exc.prefixed(FIELD) from None
    except RecursionError:
        raise SpecError(FIELD, "nested too deeply") from None


def _as_mapping(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SpecError(
            FIELD, f"{source} must be a mapping of polyaxonfile sections, got {_type_name(data)}"
        )
    return _load(data)


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), f"a value of type `{type(value).__name__}`")
