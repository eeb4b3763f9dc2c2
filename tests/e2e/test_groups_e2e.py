"""Groups under a real `plx server` with the local runtime: small sweeps of short commands."""

from __future__ import annotations

import signal
import time

import httpx

GROUPS = "/api/v1/admin/p/groups"


def grid(cmd: str, n: int, concurrency: int, extra: str = "") -> str:
    values = ", ".join(str(i) for i in range(n))
    return f"""
version: 1
kind: group
hptuning:
  concurrency: {concurrency}
  matrix: {{x: {{values: [{values}]}}}}
{extra}
run: {{cmd: "{cmd}"}}
"""


def wait_group(c: httpx.Client, gid: int, wanted: set[str], timeout: float = 60,
               max_running: int | None = None) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = c.get(f"{GROUPS}/{gid}").json()
        if max_running is not None:
            assert body["num_running_experiments"] <= max_running, body
        if body["last_status"] in wanted:
            return body
        time.sleep(0.1)
    raise AssertionError(f"group {gid} stayed {body.get('last_status')}: {body}")


def setup_project(c: httpx.Client) -> None:
    assert c.post("/api/v1/projects", json={"name": "p"}).status_code == 201


def test_random_sweep_within_concurrency_and_a_failing_grid_point(server):
    srv = server()
    with srv.client() as c:
        setup_project(c)
        content = """
version: 1
kind: group
hptuning:
  concurrency: 2
  random_search: {n_experiments: 4}
  matrix:
    lr: {values: [0.1, 0.2, 0.3, 0.4]}
    units: {values: [8, 16]}
run: {cmd: "sleep 0.2 && echo {{ lr }} {{ units }}"}
"""
        r = c.post(GROUPS, json={"content": content})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
        body = wait_group(c, gid, {"succeeded", "failed", "stopped"}, max_running=2)
        assert body["last_status"] == "succeeded"
        assert body["num_experiments"] == 4 and body["num_succeeded_experiments"] == 4
        exps = c.get(f"{GROUPS}/{gid}/experiments").json()["results"]
        points = {(e["declarations"]["lr"], e["declarations"]["units"]) for e in exps}
        assert len(points) == 4

        r = c.post(GROUPS, json={"content": grid("test {{ x }} != 1", 3, 3)})
        gid = r.json()["id"]
        body = wait_group(c, gid, {"succeeded", "failed", "stopped"})
        assert body["last_status"] == "succeeded"
        assert body["num_failed_experiments"] == 1 and body["num_succeeded_experiments"] == 2


def test_stop_ends_every_experiment(server):
    srv = server()
    with srv.client() as c:
        setup_project(c)
        gid = c.post(GROUPS, json={"content": grid("sleep 60", 4, 2)}).json()["id"]
        deadline = time.monotonic() + 30
        while c.get(f"{GROUPS}/{gid}").json()["num_running_experiments"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert c.post(f"{GROUPS}/{gid}/stop", json={}).status_code == 200
        deadline = time.monotonic() + 30
        while True:
            body = c.get(f"{GROUPS}/{gid}").json()
            if body["num_stopped_experiments"] == 4:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert body["last_status"] == "stopped"


def test_kill_during_run_then_restart_completes_exactly_once(server, tmp_path):
    data = tmp_path / "data"
    srv = server(data_dir=data)
    with srv.client() as c:
        setup_project(c)
        gid = c.post(GROUPS, json={"content": grid("sleep 0.5", 6, 2)}).json()["id"]
        deadline = time.monotonic() + 30
        while c.get(f"{GROUPS}/{gid}").json()["num_running_experiments"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    srv.kill(signal.SIGKILL)
    srv = server(data_dir=data)
    with srv.client() as c:
        body = wait_group(c, gid, {"succeeded", "failed", "stopped"})
        assert body["last_status"] == "succeeded", body
        assert body["num_experiments"] == 6 and body["num_succeeded_experiments"] == 6
        exps = c.get(f"{GROUPS}/{gid}/experiments", params={"declarations": "true"}).json()
        assert sorted(e["declarations"]["x"] for e in exps["results"]) == list(range(6))


def test_kill_during_materialisation_then_restart_has_no_duplicate_or_gap(server, tmp_path):
    data = tmp_path / "data"
    srv = server(data_dir=data)
    n = 3000
    # Tracking-only experiments (no `run`): only materialisation is exercised.
    content = f"version: 1\nkind: group\nhptuning:\n  matrix: {{x: {{range: '0:{n}:1'}}}}\n"
    with srv.client() as c:
        setup_project(c)
        r = c.post(GROUPS, json={"content": content})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
        deadline = time.monotonic() + 30
        while c.get(f"{GROUPS}/{gid}").json()["num_experiments"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    srv.kill(signal.SIGKILL)
    srv = server(data_dir=data)
    with srv.client() as c:
        deadline = time.monotonic() + 60
        while c.get(f"{GROUPS}/{gid}").json()["num_experiments"] < n:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1)  # a further pass must add nothing
        assert c.get(f"{GROUPS}/{gid}").json()["num_experiments"] == n
        seen = []
        for offset in range(0, n, 1000):
            page = c.get(f"{GROUPS}/{gid}/experiments",
                         params={"declarations": "true", "limit": 1000, "offset": offset})
            seen += [e["declarations"]["x"] for e in page.json()["results"]]
        assert sorted(seen) == list(range(n))


# YAML double-quoted scalar: `\\"` in this Python text is `\"` in YAML, a `"` for bash.
REPORT_LOSS = (
    'curl -sf -X POST -H \\"Authorization: token $PLX_TOKEN\\" '
    '-H \\"Content-Type: application/json\\" '
    "-d '{\\\"values\\\": {\\\"loss\\\": {{ lr }}}}' "
    '\\"$PLX_API_URL/api/v1/$PLX_USERNAME/$PLX_PROJECT/experiments/$PLX_EXPERIMENT_ID/metrics\\"'
)


def test_hyperband_and_bo_on_the_local_runtime(server):
    srv = server()
    hyperband = f"""
version: 1
kind: group
hptuning:
  concurrency: 4
  hyperband:
    max_iter: 9
    eta: 3
    resource: {{name: epochs, type: int}}
    metric: {{name: loss, optimization: minimize}}
  matrix: {{lr: {{uniform: '0:1'}}}}
run: {{cmd: "echo epochs={{{{ epochs }}}} && {REPORT_LOSS}"}}
"""
    bo = f"""
version: 1
kind: group
hptuning:
  concurrency: 3
  bo:
    n_initial_trials: 3
    n_iterations: 3
    metric: {{name: loss, optimization: minimize}}
    utility_function: {{acquisition_function: ucb, kappa: 1.0}}
  matrix: {{lr: {{uniform: '0:1'}}}}
run: {{cmd: "{REPORT_LOSS}"}}
"""
    with srv.client() as c:
        setup_project(c)
        hb = c.post(GROUPS, json={"content": hyperband})
        assert hb.status_code == 201, hb.text
        bo_group = c.post(GROUPS, json={"content": bo})
        assert bo_group.status_code == 201, bo_group.text
        body = wait_group(c, hb.json()["id"], {"succeeded", "failed", "stopped"}, timeout=120,
                          max_running=4)
        assert body["last_status"] == "succeeded"
        assert body["num_experiments"] == 22 and body["num_succeeded_experiments"] == 22
        exps = c.get(f"{GROUPS}/{hb.json()['id']}/experiments", params={"limit": 100}).json()
        epochs = sorted(e["declarations"]["epochs"] for e in exps["results"])
        assert epochs == [1] * 9 + [3] * 8 + [9] * 5
        body = wait_group(c, bo_group.json()["id"], {"succeeded", "failed", "stopped"},
                          timeout=120)
        assert body["last_status"] == "succeeded" and body["num_experiments"] == 6
        assert body["current_iteration"] == 4
