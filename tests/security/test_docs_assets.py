"""The docs pages load only same-origin assets (served by plx), under a CSP; every answer is
nosniff and HTML is never framed."""

from __future__ import annotations

import re

import pytest

PAGES = ["/docs", "/redoc"]


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


@pytest.mark.parametrize("page", PAGES)
async def test_docs_page_references_only_same_origin_assets_and_they_are_served(client, page):
    r = await client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = _asset_urls(r.text)
    assert any(u.endswith(".js") for u in urls)
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000
        assert asset.headers["x-content-type-options"] == "nosniff"
    # Nothing else on the page names another host (fonts, favicons, scripts).
    assert "http://" not in r.text and "https://" not in r.text


@pytest.mark.parametrize("page", PAGES)
async def test_docs_page_sends_csp_nosniff_and_no_framing(client, page):
    r = await client.get(page)
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert "frame-ancestors" in directives and directives["frame-ancestors"] == "'none'"
    scripts = directives["script-src"].split()
    assert "'self'" in scripts and "'unsafe-inline'" not in scripts
    assert not any(s.startswith("http") for s in scripts)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"


async def test_swagger_inline_script_is_allowed_by_its_hash(client):
    import base64
    import hashlib

    r = await client.get("/docs")
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    assert inline, "Swagger UI needs its initialiser"
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in r.headers["content-security-policy"]


async def test_json_answers_are_nosniff_too(client):
    for path in ("/healthz", "/openapi.json", "/api/v1/users"):
        r = await client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
