"""The run kinds' descriptions (app.kinds) drive the routes and the names the API answers with."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.kinds import BUILD, EXPERIMENT, GROUP, JOB, NOTEBOOK, RUNS, TENSORBOARD, kind_of
from app.main import create_app
from app.models import Experiment

SHARED = (
    ("", "GET"),
    ("", "PATCH"),
    ("", "PUT"),
    ("", "DELETE"),
    ("/stop", "POST"),
    ("/statuses", "GET"),
    ("/statuses", "POST"),
    ("/logs", "GET"),
    ("/logs", "POST"),
    ("/_heartbeat", "POST"),
    ("/bookmark", "POST"),
    ("/unbookmark", "DELETE"),
)


def test_every_run_kind_gets_the_shared_routes_and_its_clones(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/plx.db")
    routes = {
        (path, method.upper())
        for path, operations in create_app(settings).openapi()["paths"].items()
        for method in operations
    }
    for kind in RUNS:
        one = f"/api/v1/{{username}}/{{project}}/{kind.segment}/{{{kind.id_param}}}"
        for suffix, method in SHARED:
            assert (one + suffix, method) in routes, (kind.kind, suffix, method)
        for strategy in kind.clones:
            assert (f"{one}/{strategy}", "POST") in routes
    assert ("/api/v1/{username}/{project}/builds/{run_id}/restart", "POST") not in routes


def test_unique_names_follow_each_kinds_format() -> None:
    assert EXPERIMENT.unique_name("alice.p", 7) == "alice.p.7"
    assert EXPERIMENT.unique_name("alice.p", 7, group_id=3) == "alice.p.3.7"
    assert GROUP.unique_name("alice.p", 3) == "alice.p.3"
    assert JOB.unique_name("alice.p", 5) == "alice.p.jobs.5"
    assert BUILD.unique_name("alice.p", 5) == "alice.p.builds.5"
    assert TENSORBOARD.unique_name("alice.p", 2) == "alice.p.tensorboards.2"
    assert NOTEBOOK.unique_name("alice.p", 2) == "alice.p.notebooks.2"


def test_kind_of_a_row_is_its_models_description() -> None:
    assert kind_of(Experiment()) is EXPERIMENT
