"""Logs of a public project never show a run's token: a real local run that prints its own
PLX_TOKEN (plain, embedded, in `env`, in a dict) is read by another user, whole and tailed;
posted lines are stored masked; projects follow PLX_DEFAULT_PROJECT_VISIBILITY."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from app.logic.masking import MASK, Masker, safe_cut, secret_prefix
from app.reconciler.loop import Reconciler
from app.reconciler.runs import reconcile_runs
from app.runtimes.local import LocalRuntime
from app.services.runs import log_path, outputs_path

# The run keeps its token where the test can read it, then prints it every way it can.
LEAKY = """version: 1
kind: experiment
run:
  cmd: >-
    printf %s "$PLX_TOKEN" > "$PLX_OUTPUTS_PATH/token" &&
    echo "my token is $PLX_TOKEN" &&
    echo "glued:x${PLX_TOKEN}y" &&
    env | grep -i token &&
    python3 -c 'import os; print({k: v for k, v in os.environ.items() if "TOKEN" in k})' &&
    echo "curl -H 'Authorization: token $POLYAXON_SECRET_USER_TOKEN' http://x/?token=$PLX_TOKEN" &&
    echo done
"""


async def _finished_run(client, app, owner, tmp_path: Path) -> tuple[str, str]:
    """A public project's experiment that ran LEAKY locally: (its API base, its token)."""
    r = await client.post(
        "/api/v1/projects", json={"name": "p", "is_public": True}, headers=owner.headers
    )
    assert r.status_code == 201
    r = await client.post(
        "/api/v1/alice/p/experiments", json={"config": LEAKY}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    exp_id = r.json()["id"]
    base = f"/api/v1/alice/p/experiments/{exp_id}"
    runtime = LocalRuntime(tmp_path / "runtime", max_parallel=1)
    rec = Reconciler(app.state.settings, app.state.sessionmaker, runtime, steps=[reconcile_runs])
    try:
        for _ in range(200):
            await rec.reconcile_once()
            status = (await client.get(base, headers=owner.headers)).json()["last_status"]
            if status in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.1)
    finally:
        await runtime.aclose()
    assert status == "succeeded", (await client.get(base + "/logs", headers=owner.headers)).text
    token = (outputs_path(app.state.settings, "experiment", exp_id) / "token").read_text()
    assert len(token) >= 20
    # The file on disk (server-private) holds what the run printed; the API must not show it.
    raw = log_path(app.state.settings, "experiment", exp_id, "master-0").read_text()
    assert token in raw
    return base, token


async def test_a_run_printing_its_own_token_never_shows_it_in_its_logs(
    client, app, owner, other, tmp_path
):
    base, token = await _finished_run(client, app, owner, tmp_path)
    for who in (other, owner):
        r = await client.get(base + "/logs", headers=who.headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert "done" in r.text and "my token is " + MASK in r.text
        assert token not in r.text and token[:8] not in r.text, r.text
        tail = await client.get(base + "/logs?tail=6", headers=who.headers)
        assert tail.status_code == 200 and token[:8] not in tail.text
        assert tail.text.splitlines()[-1] == "done"
    job = (await client.get(base + "/jobs", headers=owner.headers)).json()["results"][0]
    r = await client.get(f"{base}/jobs/{job['id']}/logs", headers=other.headers)
    assert r.status_code == 200 and "done" in r.text and token[:8] not in r.text


async def test_posted_lines_are_stored_masked(client, app, owner, tmp_path):
    base, token = await _finished_run(client, app, owner, tmp_path)
    path = log_path(app.state.settings, "experiment", int(base.rsplit("/", 1)[1]))
    before = path.read_text().count(token)  # the run's own output (written by the run itself)
    lines = [f"leak {token}", "PLX_TOKEN=whatever"]
    r = await client.post(base + "/logs", json=lines, headers=owner.headers)
    assert r.status_code == 200
    stored = path.read_text()
    assert f"leak {MASK}" in stored and "PLX_TOKEN=" + MASK in stored
    assert stored.count(token) == before  # the posted lines added none


async def test_named_secrets_are_masked_without_knowing_them(client, owner):
    r = await client.post("/api/v1/projects", json={"name": "q"}, headers=owner.headers)
    assert r.status_code == 201
    config = {"version": 1, "kind": "experiment"}
    r = await client.post(
        "/api/v1/alice/q/experiments", json={"config": config}, headers=owner.headers
    )
    base = f"/api/v1/alice/q/experiments/{r.json()['id']}"
    lines = [
        "PLX_TOKEN=abcdef0123456789abcdef",
        json.dumps({"POLYAXON_SECRET_USER_TOKEN": "zz9zz9zz9zz9zz9zz9"}),
        "GET /x?token=qq8qq8qq8qq8qq8qq8 Authorization: Token ww7ww7ww7ww7ww7ww7",
    ]
    assert (await client.post(base + "/logs", json=lines, headers=owner.headers)).status_code == 200
    text = (await client.get(base + "/logs", headers=owner.headers)).text
    for secret in ("abcdef0123", "zz9zz9", "qq8qq8", "ww7ww7"):
        assert secret not in text, text
    assert text.count(MASK) == 4


def test_masker_masks_known_prefixes_anywhere_and_cuts_outside_tokens():
    token = "0123456789abcdef0123456789abcdef01234567"
    masker = Masker([secret_prefix(token)])
    assert masker.mask(f"a{token}b {token}\n") == f"a{MASK} {MASK}\n"
    assert masker.mask("0123456789a") == "0123456789a"  # shorter than the prefix: no match
    assert secret_prefix("short") is None
    text = "x " + "a" * 50
    assert safe_cut(text, 30) == 2  # never inside the run of token characters


async def test_default_project_visibility_setting(client, app, owner, other):
    r = await client.post("/api/v1/projects", json={"name": "open"}, headers=owner.headers)
    assert r.json()["is_public"] is True  # the v0 default
    app.state.settings.default_project_visibility = "private"
    r = await client.post("/api/v1/projects", json={"name": "closed"}, headers=owner.headers)
    assert r.status_code == 201 and r.json()["is_public"] is False
    assert (await client.get("/api/v1/alice/closed", headers=other.headers)).status_code == 404
    r = await client.post(
        "/api/v1/projects", json={"name": "said", "is_public": True}, headers=owner.headers
    )
    assert r.json()["is_public"] is True  # a body that says wins
    r = await client.post(
        "/api/v1/projects", json={"name": "null", "is_public": None}, headers=owner.headers
    )
    assert r.status_code == 201 and r.json()["is_public"] is False
