"""The OpenAPI document: summaries and tags on every route, the token scheme, the docs page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

METHODS = {"get", "post", "put", "patch", "delete"}


async def test_every_route_has_summary_and_tag(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            if not operation.get("summary"):
                missing.append(f"{method.upper()} {path}: summary")
            tags = operation.get("tags") or []
            if not tags:
                missing.append(f"{method.upper()} {path}: tag")
    assert missing == []
    assert "/api/v1/projects" in spec["paths"]
    declared = {tag["name"] for tag in spec["tags"]}
    used = {t for ops in spec["paths"].values() for op in ops.values() for t in op.get("tags", [])}
    assert used - declared == set(), "tags without a description in app/main.py TAGS"


async def test_token_security_scheme_declared_and_used(client):
    spec = (await client.get("/openapi.json/")).json()
    schemes = spec["components"]["securitySchemes"]
    [(name, scheme)] = [(n, s) for n, s in schemes.items() if s.get("type") == "apiKey"]
    assert scheme["in"] == "header" and scheme["name"] == "Authorization"
    project_get = spec["paths"]["/api/v1/{username}/{project}"]["get"]
    assert {name: []} in project_get["security"]
    # Logging in needs no token.
    assert "security" not in spec["paths"]["/api/v1/users/token"]["post"]


async def test_docs_page_served(client):
    r = await client.get("/docs")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    assert "swagger-ui" in r.text.lower() and "/openapi.json" in r.text
