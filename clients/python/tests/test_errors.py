"""Bad input raises the typed error carrying plx's own message."""

from __future__ import annotations

import pytest
from conftest import Server, unique

from plx_client import Client
from plx_client.errors import (
    BadRequest,
    NotFound,
    PlxConnectionError,
    PlxError,
    Unauthorized,
)
from plx_client.tracking import init


def test_unknown_project(server: Server):
    with server.client() as c:
        with pytest.raises(NotFound) as err:
            c.get_project("no-such-project")
        assert err.value.status_code == 404 and err.value.detail == "Not found."
        with pytest.raises(NotFound):
            list(c.list_experiments("no-such-project"))
        with pytest.raises(NotFound):
            c.create_experiment("no-such-project")


def test_wrong_token(server: Server):
    with Client(server.url, "not-a-token") as c:
        with pytest.raises(Unauthorized) as err:
            c.whoami()
    assert err.value.status_code == 401 and isinstance(err.value.detail, str)
    assert err.value.detail  # plx's message, e.g. "Invalid token."
    with pytest.raises(BadRequest) as bad:
        Client.login(server.url, "admin", "wrong-password", save=False)
    assert "credentials" in str(bad.value.detail).lower() or bad.value.detail


def test_invalid_polyaxonfile(server: Server):
    with server.client() as c:
        project = c.create_project(unique("p")).name
        with pytest.raises(BadRequest) as err:
            c.create_group(project, "version: 1\nkind: group\nhptuning: {matrix: 3}\n")
        assert err.value.status_code == 400 and "matrix" in str(err.value.detail)
        with pytest.raises(BadRequest) as err:
            c.plan_group(project, "version: 1\nkind: group\n  bad: [yaml")
        assert err.value.detail
        with pytest.raises(BadRequest):
            c.create_experiment(project, {"version": 1, "kind": "experiment", "run": 3})
        assert list(c.list_groups(project)) == []  # nothing half-created
        with pytest.raises(FileNotFoundError):
            c.create_group(project, "missing.yml")
        with pytest.raises(BadRequest) as err:
            c.create_project("bad name!")
        assert "name" in str(err.value.detail)


def test_duplicate_project_message(server: Server):
    with server.client() as c:
        name = unique("dup")
        c.create_project(name)
        with pytest.raises(BadRequest) as err:
            c.create_project(name)
        assert err.value.detail == f"A project with name `{name}` already exists."


def test_unreachable_server():
    with Client("http://127.0.0.1:9", "t") as c, pytest.raises(PlxConnectionError):
        c.whoami()


def test_tracking_init_errors_are_typed(server: Server):
    with pytest.raises(PlxError):
        init()  # not in a run and no project
    with pytest.raises(NotFound):
        init("admin/no-such-project", url=server.url, token=server.token)
