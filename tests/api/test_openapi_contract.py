"""The HTTP contract does not drift: every path, method, parameter, request body, status code and
response schema of `/openapi.json` equals the committed snapshot `openapi_contract.json`.

Schemas are compared with their `$ref`s inlined and without titles or descriptions, so renaming a
pydantic model or rewording a docstring is not a change of contract, while a field, a type, a
requirement or a status code is. After an intended change, regenerate with
`PLX_UPDATE_OPENAPI_CONTRACT=1 pytest tests/api/test_openapi_contract.py` and list it in the note.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from app.config import Settings
from app.main import create_app

SNAPSHOT = Path(__file__).with_name("openapi_contract.json")
METHODS = ("get", "post", "put", "patch", "delete")
PROSE = frozenset({"title", "description", "summary", "examples", "example"})


def _inline(node: Any, components: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(node, list):
        return [_inline(item, components, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:  # a recursive schema: name the cycle instead of unrolling it
            return {"recursive": name}
        return _inline(components[name], components, (*seen, name))
    return {
        key: _inline(value, components, seen)
        for key, value in sorted(node.items())
        if key not in PROSE
    }


def contract(spec: dict[str, Any]) -> dict[str, Any]:
    components = spec.get("components", {}).get("schemas", {})
    out: dict[str, Any] = {}
    for path, operations in sorted(spec["paths"].items()):
        for method in METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            parameters = sorted(
                (
                    {
                        "name": p["name"],
                        "in": p["in"],
                        "required": p.get("required", False),
                        "schema": _inline(p.get("schema", {}), components),
                    }
                    for p in operation.get("parameters", [])
                ),
                key=lambda p: (p["in"], p["name"]),
            )
            body = operation.get("requestBody")
            out[f"{method.upper()} {path}"] = {
                "parameters": parameters,
                "body": _inline(body, components) if body else None,
                "responses": {
                    code: _inline(answer.get("content", {}), components)
                    for code, answer in sorted(operation.get("responses", {}).items())
                },
                "security": bool(operation.get("security")),
            }
    return out


def current_contract(tmp_path: Path) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/plx.db")
    # Round-trip through JSON so tuples and lists compare alike.
    return json.loads(json.dumps(contract(create_app(settings).openapi())))


def test_openapi_contract_unchanged(tmp_path: Path) -> None:
    current = current_contract(tmp_path)
    if os.environ.get("PLX_UPDATE_OPENAPI_CONTRACT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    added = sorted(set(current) - set(expected))
    removed = sorted(set(expected) - set(current))
    assert (added, removed) == ([], []), f"operations added {added}, removed {removed}"
    changed = [op for op in expected if current[op] != expected[op]]
    assert changed == [], f"operations whose contract changed: {changed}"
