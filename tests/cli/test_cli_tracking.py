"""The unmodified polyaxon-client 0.3.9 tracking API, in-cluster mode, against a real `plx server`:
`Experiment(project=...).create()` (which sends every field of its schema, `"config": null`
among them), then log_params, log_tags, log_data_ref, log_metrics over steps, log_status and
succeeded(); the stored experiment, metrics, declarations and statuses are checked over HTTP."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import ADMIN, Server

pytestmark = pytest.mark.e2e

SCRIPT = """\
import sys, time
from polyaxon_client.tracking import Experiment

experiment = Experiment(project="{user}/tracking")
experiment.create(name="tracked", tags=["t1"], description="tracking only")
print("EXPERIMENT", experiment.experiment_id, flush=True)
experiment.log_params(lr=0.1, layers=3)
experiment.log_params(dropout=0.5)
experiment.log_tags(["t2"])
experiment.log_data_ref(data="abc", data_name="train")
for step in range(5):
    experiment.log_metrics(step=step, loss=1.0 / (step + 1), accuracy=step / 10)
    time.sleep(0.3)
experiment.log_status("running", message="training")
time.sleep(2.5)  # metrics go out from a 1 s background worker
experiment.succeeded()
time.sleep(1.5)  # so does the last status
"""


def _client_env(server: Server, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLX_", "POLYAXON_"))}
    outputs = home / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        POLYAXON_IN_CLUSTER="true",
        POLYAXON_API_HTTP_HOST=server.url,
        POLYAXON_API_WS_HOST=server.url.replace("http://", "ws://"),
        POLYAXON_SECRET_USER_TOKEN=server.token(),
        POLYAXON_RUN_OUTPUTS_PATH=str(outputs),
    )
    return env


@pytest.fixture(scope="module")
def tracked(polyaxon_bin: Path, plx_server: Server, tmp_path_factory) -> dict[str, Any]:
    r = plx_server.api("POST", "/api/v1/projects", json={"name": "tracking"})
    assert r.status_code == 201, r.text
    home = tmp_path_factory.mktemp("tracking-home")
    script = home / "track.py"
    script.write_text(textwrap.dedent(SCRIPT.format(user=ADMIN)))
    proc = subprocess.run(
        [str(polyaxon_bin.parent / "python"), str(script)],
        env=_client_env(plx_server, home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    exp_id = next(line.split()[1] for line in output.splitlines() if line.startswith("EXPERIMENT"))
    base = f"/api/v1/{ADMIN}/tracking/experiments/{exp_id}"
    return {
        "output": output,
        "experiment": plx_server.api("GET", base).json(),
        "metrics": plx_server.api("GET", base + "/metrics").json()["results"],
        "statuses": plx_server.api("GET", base + "/statuses").json()["results"],
    }


def test_create_with_null_config_makes_a_tracking_only_experiment(tracked):
    exp = tracked["experiment"]
    assert exp["name"] == "tracked", tracked["output"]
    assert exp["description"] == "tracking only"
    assert exp["config"] == {"version": 1, "kind": "experiment"}
    assert exp["is_managed"] is False
    assert exp["run_env"]["client_version"] == "0.3.9"  # sent with the create body


def test_params_tags_and_data_refs_are_merged(tracked):
    exp = tracked["experiment"]
    assert exp["declarations"] == {"lr": 0.1, "layers": 3, "dropout": 0.5}
    assert exp["tags"] == ["t1", "t2"]
    assert exp["data_refs"] and set(exp["data_refs"]) == {"train"}


def test_metrics_over_steps_are_stored_in_order(tracked):
    metrics = tracked["metrics"]
    assert [m["values"]["step"] for m in metrics] == [0, 1, 2, 3, 4], tracked["output"]
    assert [m["values"]["loss"] for m in metrics] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    last = tracked["experiment"]["last_metric"]
    assert last["step"] == 4 and last["accuracy"] == pytest.approx(0.4)


def test_statuses_follow_the_client(tracked):
    rows = [(s["status"], s["message"]) for s in tracked["statuses"]]
    assert rows == [("created", None), ("running", "training"), ("succeeded", None)], rows
    exp = tracked["experiment"]
    assert exp["last_status"] == "succeeded"
    assert exp["started_at"] and exp["finished_at"]
