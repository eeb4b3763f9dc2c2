"""Issue 16.2 at the API: `environment.secret_refs` / `configmap_refs` only from the operator's
allow-list (PLX_K8S_ALLOWED_SECRETS / PLX_K8S_ALLOWED_CONFIGMAPS, empty by default), checked for
every polyaxonfile kind at create and at plan time: 400 naming the reference, nothing stored."""

from __future__ import annotations

from typing import Any

import pytest

BASE = "/api/v1/alice/foo"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"k8s_allowed_secrets": ["team-s3"], "k8s_allowed_configmaps": ["team-conf"]}


def _env(secret: str = "team-s3", configmap: str = "team-conf") -> dict[str, Any]:
    return {"secret_refs": [secret], "configmap_refs": [configmap]}


def _file(kind: str, environment: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"version": 1, "kind": kind, "environment": environment}
    if kind in ("job", "build", "notebook", "tensorboard"):
        body["build"] = {"image": "python:3.12"}
    if kind in ("experiment", "group", "job"):
        body["run"] = {"cmd": "python train.py"}
    if kind == "group":
        body["hptuning"] = {"matrix": {"lr": {"values": [0.1, 0.2]}}}
    return body


# (route, body builder): every route that takes a polyaxonfile.
ROUTES = {
    "experiment": ("/experiments", lambda f: {"config": f}),
    "job": ("/jobs", lambda f: {"config": f}),
    "build": ("/builds", lambda f: {"config": f}),
    "group": ("/groups", lambda f: {"content": f}),
    "group plan": ("/groups/plan", lambda f: {"content": f}),
    "notebook": ("/notebook/start", lambda f: {"config": f}),
    "tensorboard": ("/tensorboard/start", lambda f: {"config": f}),
}


async def _count(client, owner, what: str) -> int:
    r = await client.get(f"{BASE}/{what}", headers=owner.headers)
    return r.json()["count"]


async def test_refs_outside_the_allow_list_are_400_naming_them(client, owner):
    r = await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    assert r.status_code == 201
    for name, (path, body) in ROUTES.items():
        kind = name.split()[0]
        for environment, named in (
            (_env(secret="plx-database"), "`plx-database`"),
            (_env(configmap="kube-root-ca.crt"), "`kube-root-ca.crt`"),
        ):
            data = body(_file(kind, environment))
            r = await client.post(BASE + path, json=data, headers=owner.headers)
            assert r.status_code == 400, (name, r.text)
            detail = r.json()["detail"]
            assert named in detail and "environment." in detail, (name, detail)
            assert "PLX_K8S_ALLOWED_" in detail
    # Nothing was stored.
    for what in ("experiments", "jobs", "builds", "groups", "tensorboards"):
        assert await _count(client, owner, what) == 0
    assert (await client.get(f"{BASE}/notebook", headers=owner.headers)).status_code == 404
    # What the operator allowed passes.
    for name, (path, body) in ROUTES.items():
        data = body(_file(name.split()[0], _env()))
        r = await client.post(BASE + path, json=data, headers=owner.headers)
        assert r.status_code in (200, 201), (name, r.text)


async def test_the_default_allow_list_is_empty(client, owner, settings):
    settings.k8s_allowed_secrets, settings.k8s_allowed_configmaps = [], []
    await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    r = await client.post(
        f"{BASE}/experiments",
        json={"config": _file("experiment", {"secret_refs": ["team-s3"]})},
        headers=owner.headers,
    )
    assert r.status_code == 400 and "`team-s3`" in r.json()["detail"]
    # YAML text and a distributed experiment's environment go through the same check.
    content = (
        "version: 1\nkind: group\nhptuning: {matrix: {lr: {values: [1, 2]}}}\n"
        "environment: {configmap_refs: [x], tensorflow: {n_workers: 1}}\nrun: {cmd: echo}\n"
    )
    r = await client.post(f"{BASE}/groups/plan", json={"content": content}, headers=owner.headers)
    assert r.status_code == 400 and "`x`" in r.json()["detail"]
    r = await client.post(f"{BASE}/experiments", json={"config": _file("experiment", {})},
                          headers=owner.headers)
    assert r.status_code == 201, r.text


async def test_the_settings_read_comma_separated_names(monkeypatch):
    from app.config import Settings

    monkeypatch.setenv("PLX_K8S_ALLOWED_SECRETS", "a, b,,c")
    monkeypatch.delenv("PLX_K8S_ALLOWED_CONFIGMAPS", raising=False)
    settings = Settings()
    assert settings.k8s_allowed_secrets == ["a", "b", "c"]
    assert settings.k8s_allowed_configmaps == []


async def test_a_tensorboard_reads_its_experiments_outputs_only(app, client, owner, settings):
    """What the reconciler asks of the runtime: the experiments' outputs as read-only paths
    (mounted read-only on Kubernetes, app/k8s/manifests.py), no outputs of its own."""
    from app.reconciler.loop import Reconciler
    from app.reconciler.plugins import reconcile_plugins
    from app.runtimes.fake import FakeRuntime
    from app.services.runs import outputs_path

    await client.post("/api/v1/projects", json={"name": "foo"}, headers=owner.headers)
    ids = []
    for _ in range(2):
        r = await client.post(f"{BASE}/experiments", json={"config": _file("experiment", {})},
                              headers=owner.headers)
        ids.append(r.json()["id"])
    r = await client.post(f"{BASE}/experiments/{ids[1]}/tensorboard/start", headers=owner.headers)
    assert r.status_code == 201, r.text
    runtime = FakeRuntime()
    await Reconciler(settings, app.state.sessionmaker, runtime, steps=[reconcile_plugins]) \
        .reconcile_once()
    (spec,) = runtime.specs.values()
    assert spec.read_only_paths == (str(outputs_path(settings, "experiment", ids[1])),)
    assert spec.outputs_path == ""
