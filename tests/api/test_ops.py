"""/metrics, request ids and JSON access logs."""

from __future__ import annotations

import json
import logging

from app.observability import AccessLogFormatter, access_log, access_record
from app.reconciler.loop import Reconciler
from app.runtimes.fake import FakeRuntime


class _Lines(logging.Handler):
    """The lines the access log writes, formatted as on stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(AccessLogFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_metrics_count_requests_by_route_template_and_runs_by_status(client, owner, app):
    r = await client.post("/api/v1/projects", json={"name": "p"}, headers=owner.headers)
    assert r.status_code == 201
    config = "version: 1\nkind: experiment\nrun:\n  cmd: echo hi\n"
    for _ in range(2):
        r = await client.post(
            "/api/v1/alice/p/experiments", json={"config": config}, headers=owner.headers
        )
        assert r.status_code == 201
    for missing in (98, 99):
        r = await client.get(f"/api/v1/alice/p/experiments/{missing}", headers=owner.headers)
        assert r.status_code == 404
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = _samples(r.text)
    route = "/api/v1/{username}/{project}/experiments/{exp_id}"
    assert samples[f'plx_http_requests_total{{method="GET",route="{route}",status="404"}}'] == 2
    create = "/api/v1/{username}/{project}/experiments"
    assert samples[f'plx_http_requests_total{{method="POST",route="{create}",status="201"}}'] == 2
    assert (
        samples[f'plx_http_request_duration_seconds_count{{method="POST",route="{create}"}}'] == 2
    )
    assert samples['plx_runs{kind="experiment",status="created"}'] == 2
    assert samples["plx_reconciler_up"] == 0  # the test app runs no reconciler
    assert samples["plx_lease_takeovers_total"] == 0
    # No per-object series: raw paths never become labels.
    assert "/experiments/98" not in r.text


async def test_metrics_report_reconcile_passes_and_lag(client, app, settings):
    rec = Reconciler(settings, app.state.sessionmaker, FakeRuntime(), steps=[])
    app.state.reconciler = rec
    await rec.reconcile_once()
    await rec.reconcile_once()
    samples = _samples((await client.get("/metrics")).text)
    assert samples["plx_reconcile_passes_total"] == 2
    assert 0 <= samples["plx_reconcile_lag_seconds"] < 5


async def test_request_id_in_and_out_and_json_access_log(client):
    handler = _Lines()
    access_log.addHandler(handler)
    try:
        r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        r = await client.get("/healthz/", headers={"X-Request-ID": "bad id\twith spaces"})
        generated = r.headers["x-request-id"]
        assert len(generated) == 32 and generated != "abc-123"
        r = await client.get("/api/v1/nobody/nothing/experiments")
        assert r.status_code == 401 and r.headers["x-request-id"]
    finally:
        access_log.removeHandler(handler)
    entries = [json.loads(line) for line in handler.lines]
    assert [e["request_id"] for e in entries[:2]] == ["abc-123", generated]
    first = entries[0]
    assert first["method"] == "GET" and first["route"] == "/healthz" and first["status"] == 200
    assert first["duration_ms"] >= 0 and first["ts"].endswith("+00:00")
    assert entries[2]["status"] == 401
    # Refused before routing (no credentials: the body is never read), like a 413 or a 429.
    assert entries[2]["route"] == "<unmatched>"


def test_access_line_is_the_json_dumps_of_the_entry():
    cases = [
        ("abc-123", "GET", "/healthz", "/healthz", 200, 0.0012345, ("127.0.0.1", 5000)),
        ("f" * 32, "POST", '/a/"q"\\é\n☃', "<unmatched>", 413, 1.5, None),
        ("x", "DELETE", "/", "/", 500, 0.0, []),
    ]
    for request_id, method, path, route, status, seconds, client in cases:
        record = access_record(request_id, method, path, route, status, seconds, client)
        line = AccessLogFormatter().format(record)
        ts = json.loads(line)["ts"]
        assert ts.endswith("+00:00")
        expected = {
            "ts": ts,
            "level": "info",
            "msg": "request",
            "request_id": request_id,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": client[0] if client else None,
        }
        assert line == json.dumps(expected)


def test_request_metrics_of_two_apps_are_apart():
    from prometheus_client import generate_latest

    from app.observability import RequestMetrics

    first, second = RequestMetrics(), RequestMetrics()
    first.observe("GET", "/healthz", 200, 0.002)
    first.count_rejected("rate_limit")
    text = generate_latest(first.registry).decode()
    assert 'plx_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert (
        'plx_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"} 1.0'
        in text
    )
    assert 'plx_http_rejected_total{reason="rate_limit"} 1.0' in text
    assert "/healthz" not in generate_latest(second.registry).decode()
