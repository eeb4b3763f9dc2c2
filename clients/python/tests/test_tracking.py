"""plx_client.tracking against a real plx: batching, retries across server restarts (every point
stored exactly once), a full buffer that spills to disk, and nothing raised into the caller."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Server, unique, wait_until

from plx_client import Client, tracking

PY = sys.executable


def steps(c: Client, project: str, exp_id: int) -> list[int]:
    return [int(p.values["step"]) for p in c.experiment_metrics(project, exp_id)]


@pytest.fixture(autouse=True)
def _no_leftover_run():
    yield
    run = tracking.current()
    if run is not None:
        run.finish(timeout=5)


def test_tracking_only_experiment(server: Server, caplog):
    with server.client() as c:
        project = c.create_project(unique("t")).name
    run = tracking.init(
        project,
        name="offline",
        params={"lr": 0.01},
        url=server.url,
        token=server.token,
        batch_size=500,
    )
    tracking.log_params(layers=3)
    tracking.log_status("running", message="warming up")
    with caplog.at_level(logging.WARNING, logger="plx_client.tracking"):
        for i in range(2500):
            tracking.log_metrics(step=i, loss=1 / (i + 1))
        tracking.log_metrics(step=2500, loss=float("nan"), acc=0.5)  # NaN is left out, said so
        tracking.log_metrics(step=2501, bad=object())
    tracking.finish()
    assert tracking.current() is None
    assert "not a finite number" in caplog.text
    with server.client() as c:
        got = steps(c, project, run.experiment_id)
        assert got == list(range(2502))  # 2501 keeps its step (a value too), not `bad`
        exp = c.get_experiment(project, run.experiment_id)
        assert exp.last_status == "succeeded" and exp.declarations == {"lr": 0.01, "layers": 3}
        assert exp.last_metric["acc"] == 0.5
        messages = [s.message for s in c.experiment_statuses(project, run.experiment_id)]
        assert "warming up" in messages


def test_a_crash_in_reporting_never_reaches_the_training_loop(caplog):
    class Broken:
        def append(self, item):
            raise RuntimeError("boom")

        def __len__(self):
            return 0

    client = Client("http://127.0.0.1:9", "t", username="u")
    run = tracking.Run(client, "u/p", 1, managed=True)
    run._queue = Broken()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="plx_client.tracking"):
        for i in range(3):
            run.log_metrics(i, loss=1.0)  # no exception
        run.log_params(a=1)  # plx unreachable: logged, not raised
    assert "log_metrics failed" in caplog.text and "log_params failed" in caplog.text
    run._closed = True
    run._stop.set()


def test_full_buffer_spills_then_everything_arrives_once(new_server, caplog, tmp_path: Path):
    srv = new_server()
    with srv.client() as c:
        project = c.create_project(unique("t")).name
    run = tracking.init(
        project,
        url=srv.url,
        token=srv.token,
        max_buffer=50,
        block_seconds=0.05,
        flush_interval=0.05,
        batch_size=20,
        spill_dir=tmp_path,
        max_backoff=0.5,
    )
    srv.kill()
    with caplog.at_level(logging.WARNING, logger="plx_client.tracking"):
        started = time.monotonic()
        for i in range(300):
            run.log_metrics(step=i, x=i)
        blocked = time.monotonic() - started
        assert run.spill_path.exists()  # past the buffer: on disk, not dropped
    assert "buffer full" in caplog.text and "spilling" in caplog.text
    assert blocked < 2  # blocked briefly once, then spilled
    srv.start()
    run.finish()
    with srv.client() as c:
        assert sorted(steps(c, project, run.experiment_id)) == list(range(300))
        assert c.get_experiment(project, run.experiment_id).last_status == "succeeded"
    assert run.stored == 300 and not run.spill_path.exists()


def test_server_gone_at_finish_saves_points_for_resend(new_server, tmp_path: Path, caplog):
    srv = new_server()
    with srv.client() as c:
        project = c.create_project(unique("t")).name
    run = tracking.init(project, url=srv.url, token=srv.token, spill_dir=tmp_path, max_backoff=0.2)
    srv.kill()
    for i in range(10):
        run.log_metrics(step=i)  # never raises, plx being down
    with caplog.at_level(logging.WARNING, logger="plx_client.tracking"):
        run.finish(timeout=1)
    assert "could not be sent" in caplog.text
    assert len(run.spill_path.read_text().splitlines()) == 10
    srv.start()
    env = {"PLX_API_URL": srv.url, "PLX_TOKEN": srv.token, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [PY, "-m", "plx_client", "resend", str(run.spill_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "sent 10 points" in out.stdout
    with srv.client() as c:
        assert steps(c, project, run.experiment_id) == list(range(10))


def _reached(srv: Server, mark: Path, project: str, exp_id: int) -> bool:
    if mark.exists():
        return True
    with srv.client() as c:
        exp = c.get_experiment(project, exp_id)
        history = [(s.status, s.message) for s in c.experiment_statuses(project, exp_id)]
        assert exp.last_status not in ("failed", "stopped", "succeeded"), (
            history,
            c.logs(project, exp_id),
        )
    return False


REPORTER = """
import sys, time
from pathlib import Path
from plx_client import tracking
marks = Path(sys.argv[1])
for i in range(10_000):
    tracking.log_metrics(step=i, loss=1.0 / (i + 1))
    if i % 100 == 0:
        time.sleep(0.1)  # about 10 s of training
    if i in (2000, 6000):
        (marks / str(i)).touch()  # the test kills the server now, while we go on logging
"""


def test_10k_points_across_two_server_kills_stored_exactly_once(new_server, tmp_path: Path):
    """A script run AS an experiment on the local runtime reports 10,000 points while the server
    is killed (SIGKILL) and restarted on the same port twice, mid-reporting."""
    srv = new_server()
    script = tmp_path / "report.py"
    script.write_text(REPORTER)
    with srv.client() as c:
        project = c.create_project(unique("k")).name
        cmd = f"{PY} {script} {tmp_path}"
        exp = c.create_experiment(
            project, {"version": 1, "kind": "experiment", "run": {"cmd": cmd}}
        )
    for mark in ("2000", "6000"):
        wait_until(lambda m=mark: _reached(srv, tmp_path / m, project, exp.id), timeout=180)
        srv.kill()
        time.sleep(1.0)  # the script keeps logging into its buffer meanwhile
        srv.start()
    with srv.client() as c:
        assert c.wait(project, exp.id, timeout=180) == "succeeded", c.logs(project, exp.id)
        got = steps(c, project, exp.id)
        log = c.logs(project, exp.id)
    assert len(got) == 10_000 and sorted(got) == list(range(10_000))  # none lost, none twice
    # The sender did meet the dead server, and said so (the run's stderr is its log).
    assert "retrying with backoff" in log and "no point lost" in log, log
