"""LocalRuntime against real processes: statuses, logs, stop, and adoption after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from app.runtimes.base import RuntimeError_, WorkloadSpec, WorkloadState
from app.runtimes.local import LocalRuntime, read_proc_stat

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def make_spec(tmp_path: Path, key: str, command: str, **overrides: Any) -> WorkloadSpec:
    values: dict[str, Any] = {
        "key": key,
        "kind": "job",
        "run_id": 1,
        "uuid": "0" * 32,
        "unique_name": "root.quick-start.jobs.1",
        "username": "root",
        "project": "quick-start",
        "role": "main",
        "command": command,
        "workdir": str(tmp_path / "runs" / key / "code"),
        "outputs_path": str(tmp_path / "runs" / key / "outputs"),
        "log_path": str(tmp_path / "runs" / key / "logs" / "output.log"),
    }
    values.update(overrides)
    return WorkloadSpec(**values)


def live_group_members(pgid: int) -> list[int]:
    """Non-zombie processes whose process group is ``pgid``, read straight from /proc."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 1 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(name))
    return found


async def wait_for(
    runtime: LocalRuntime, key: str, check: Callable[[WorkloadState], bool], timeout: float = 5.0
) -> WorkloadState:
    deadline = time.monotonic() + timeout
    while True:
        state = await runtime.observe(key)
        assert state is not None, f"{key} vanished"
        if check(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} stayed {state}")
        await asyncio.sleep(0.02)


async def wait_done(runtime: LocalRuntime, key: str, timeout: float = 5.0) -> WorkloadState:
    return await wait_for(runtime, key, lambda state: state.done, timeout)


class Runtimes:
    """Builds runtimes on one state dir and, at the end, stops what they left running."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.made: list[LocalRuntime] = []
        self.notified = 0

    def _notify(self) -> None:
        self.notified += 1

    async def new(self, **kwargs: Any) -> LocalRuntime:
        kwargs.setdefault("poll_interval", 0.05)
        kwargs.setdefault("sweep_grace", 0.5)
        runtime = LocalRuntime(self.state_dir, notify=self._notify, **kwargs)
        await runtime.setup()
        self.made.append(runtime)
        return runtime

    async def close(self) -> None:
        cleaner = LocalRuntime(self.state_dir)
        for key, state in (await cleaner.list_workloads()).items():
            if not state.done:
                await cleaner.stop(key, grace_seconds=0.2)
        for runtime in self.made:
            await runtime.aclose()


@pytest.fixture
async def runtimes(tmp_path: Path) -> AsyncIterator[Runtimes]:
    made = Runtimes(tmp_path / "state")
    yield made
    await made.close()


@pytest.fixture
async def runtime(runtimes: Runtimes) -> LocalRuntime:
    return await runtimes.new()


# -- running ---------------------------------------------------------------------------------


async def test_env_is_the_spec_env_over_a_minimal_base(
    runtime: LocalRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLX_SERVER_SECRET", "must-not-leak")
    command = 'env > env.txt; python -c "import sys; print(sys.prefix)" > python.txt'
    spec = make_spec(tmp_path, "env-1", command, env={"PLX_TOKEN": "t0k", "LANG": "en_US.UTF-8"})

    await runtime.start(spec)
    state = await wait_done(runtime, "env-1")

    assert state.status == "succeeded"
    workdir = Path(spec.workdir or "")
    env = dict(line.split("=", 1) for line in (workdir / "env.txt").read_text().splitlines())
    assert env["PLX_TOKEN"] == "t0k"
    assert env["LANG"] == "en_US.UTF-8"  # the spec wins over the base
    assert env["HOME"]
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert "PLX_SERVER_SECRET" not in env
    assert "LC_CTYPE" not in env  # the wrapper's interpreter does not leak its locale coercion
    assert env["PWD"] == str(workdir)
    assert (workdir / "python.txt").read_text().strip() == sys.prefix  # the server's python


async def test_exit_zero_succeeds_and_creates_its_directories(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "ok-1", "exit 0", ports=[6006])

    started = await runtime.start(spec)
    state = await wait_done(runtime, "ok-1")

    assert started.status == "running"
    assert started.details["pid"] > 0
    assert state.status == "succeeded"
    assert state.exit_code == 0
    assert state.started_at is not None and state.finished_at is not None
    assert state.finished_at >= state.started_at
    assert state.url == "http://127.0.0.1:6006/"
    assert Path(spec.workdir or "").is_dir()
    assert Path(spec.outputs_path).is_dir()


async def test_exit_three_fails_with_the_code_in_the_message(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    await runtime.start(make_spec(tmp_path, "bad-1", "exit 3"))

    state = await wait_done(runtime, "bad-1")

    assert state.status == "failed"
    assert state.exit_code == 3
    assert state.message == "Process exited with code 3."


async def test_killed_by_a_signal_without_a_stop_fails_naming_the_signal(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    await runtime.start(make_spec(tmp_path, "oom-1", "kill -KILL $$"))

    state = await wait_done(runtime, "oom-1")

    assert state.status == "failed"
    assert state.message is not None and "SIGKILL" in state.message
    assert state.exit_code == 128 + signal.SIGKILL


async def test_stdout_and_stderr_are_appended_to_the_log(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "log-1", "echo to-stdout; echo to-stderr >&2")
    Path(spec.log_path).parent.mkdir(parents=True)
    Path(spec.log_path).write_text("earlier line\n")

    await runtime.start(spec)
    await wait_done(runtime, "log-1")

    assert Path(spec.log_path).read_text().splitlines() == [
        "earlier line",
        "to-stdout",
        "to-stderr",
    ]
    assert await runtime.read_logs("log-1") is None  # the log file is the source


async def test_an_unusable_workdir_is_refused_without_claiming_the_key(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    spec = make_spec(tmp_path, "bad-dir-1", "true", workdir=str(tmp_path / "a-file" / "code"))

    with pytest.raises(RuntimeError_) as raised:
        await runtime.start(spec)

    assert raised.value.retryable is False
    assert await runtime.observe("bad-dir-1") is None  # nothing was claimed, a retry may start


async def test_invalid_keys_and_missing_commands_or_dirs_are_refused(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError_):
        await runtime.start(make_spec(tmp_path, "../escape", "true"))
    with pytest.raises(RuntimeError_):
        await runtime.start(make_spec(tmp_path, "nocmd-1", None))
    with pytest.raises(RuntimeError_):
        await runtime.start(make_spec(tmp_path, "nodir-1", "true", workdir=None, outputs_path=""))
    assert await runtime.list_workloads() == {}


async def test_notify_is_called_when_a_workload_ends(runtimes: Runtimes, tmp_path: Path) -> None:
    woke = asyncio.Event()
    runtime = await runtimes.new()
    runtime.set_notify(woke.set)

    await runtime.start(make_spec(tmp_path, "wake-1", "sleep 0.1"))

    # Nobody observes: only the runtime's own watch can see the end.
    await asyncio.wait_for(woke.wait(), timeout=3)
    assert (await runtime.observe("wake-1")).status == "succeeded"  # type: ignore[union-attr]


async def test_what_the_command_leaves_in_its_group_is_swept_when_it_ends(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    started = await runtime.start(make_spec(tmp_path, "bg-1", "sleep 60 & echo started"))

    state = await wait_done(runtime, "bg-1")

    assert state.status == "succeeded"
    deadline = time.monotonic() + 3
    while live_group_members(started.details["pid"]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert live_group_members(started.details["pid"]) == []


# -- stopping --------------------------------------------------------------------------------


async def test_stop_ends_stopped_and_leaves_no_process_of_the_group(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    started = await runtime.start(make_spec(tmp_path, "stop-1", "sleep 60 & sleep 60"))
    pgid = started.details["pid"]
    await asyncio.sleep(0.2)
    assert len(live_group_members(pgid)) >= 3  # wrapper, bash and the two sleeps

    began = time.monotonic()
    await runtime.stop("stop-1", grace_seconds=5)

    assert time.monotonic() - began < 3
    assert live_group_members(pgid) == []
    state = await runtime.observe("stop-1")
    assert state is not None and state.status == "stopped"
    assert state.message is not None and "SIGTERM" in state.message


async def test_a_command_ignoring_sigterm_is_killed_after_the_grace(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    started = await runtime.start(make_spec(tmp_path, "stubborn-1", "trap '' TERM; sleep 60"))
    pgid = started.details["pid"]
    await asyncio.sleep(0.2)

    began = time.monotonic()
    await runtime.stop("stubborn-1", grace_seconds=0.3)
    took = time.monotonic() - began

    assert 0.3 <= took < 3
    assert live_group_members(pgid) == []
    state = await runtime.observe("stubborn-1")
    assert state is not None and state.status == "stopped"
    assert state.message is not None and "SIGKILL" in state.message


async def test_stop_is_a_no_op_for_unknown_and_finished_workloads(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    await runtime.stop("never-started", grace_seconds=0.1)
    await runtime.start(make_spec(tmp_path, "done-1", "exit 0"))
    await wait_done(runtime, "done-1")

    await runtime.stop("done-1", grace_seconds=0.1)

    state = await runtime.observe("done-1")
    assert state is not None and state.status == "succeeded"
    assert not (runtime.state_dir / "done-1" / "stop.json").exists()


# -- restarts --------------------------------------------------------------------------------


async def test_a_new_runtime_adopts_a_live_run_and_reports_its_true_exit(
    runtimes: Runtimes, tmp_path: Path
) -> None:
    first = await runtimes.new()
    started = await first.start(make_spec(tmp_path, "adopt-1", "sleep 0.7; exit 4"))
    await first.aclose()  # the server goes away; the run must not
    del first

    second = await runtimes.new()
    adopted = await second.observe("adopt-1")

    assert adopted is not None and adopted.status == "running"
    assert adopted.details["pid"] == started.details["pid"]
    assert adopted.started_at == started.started_at
    assert "adopt-1" in await second.list_workloads()
    final = await wait_done(second, "adopt-1")
    assert final.status == "failed"
    assert final.exit_code == 4
    assert final.message == "Process exited with code 4."


async def test_a_run_that_ended_while_no_runtime_existed_reports_its_real_exit(
    runtimes: Runtimes, tmp_path: Path
) -> None:
    first = await runtimes.new()
    started = await first.start(make_spec(tmp_path, "offline-1", "sleep 0.2; exit 5"))
    await first.aclose()
    del first
    pid = started.details["pid"]
    # Nobody reaps the wrapper now, as under a container PID 1 that is no init: it ends a zombie.
    deadline = time.monotonic() + 5
    while (stat := read_proc_stat(pid)) is not None and stat.state != "Z":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    second = await runtimes.new()
    state = await second.observe("offline-1")

    assert state is not None and state.status == "failed"
    assert state.exit_code == 5
    assert state.message == "Process exited with code 5."
    assert read_proc_stat(pid) is None  # it was our child: adoption reaped it


async def test_start_of_an_adopted_key_does_not_start_a_second_process(
    runtimes: Runtimes, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "once-1", "echo started >> starts.txt; sleep 0.5")
    first = await runtimes.new()
    started = await first.start(spec)
    again = await first.start(spec)
    await first.aclose()

    second = await runtimes.new()
    adopted = await second.start(spec)
    await wait_done(second, "once-1")

    assert again.details["pid"] == adopted.details["pid"] == started.details["pid"]
    assert (Path(spec.workdir or "") / "starts.txt").read_text() == "started\n"
    final = await second.start(spec)  # a finished key is reported, not run again
    assert final.status == "succeeded"
    assert (Path(spec.workdir or "") / "starts.txt").read_text() == "started\n"


async def test_an_adopted_run_can_be_stopped(runtimes: Runtimes, tmp_path: Path) -> None:
    first = await runtimes.new()
    started = await first.start(make_spec(tmp_path, "adopt-stop-1", "sleep 60"))
    await first.aclose()

    second = await runtimes.new()
    await second.stop("adopt-stop-1", grace_seconds=2)

    assert live_group_members(started.details["pid"]) == []
    state = await second.observe("adopt-stop-1")
    assert state is not None and state.status == "stopped"
    third = await runtimes.new()  # the stop marker makes the verdict survive restarts too
    assert (await third.observe("adopt-stop-1")).status == "stopped"  # type: ignore[union-attr]


async def test_a_reused_pid_is_never_adopted(runtimes: Runtimes) -> None:
    # A state dir whose pid now belongs to another process (this one), with another start time.
    path = runtimes.state_dir / "reused-1"
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"key": "reused-1", "ports": []}))
    (path / "pid.json").write_text(
        json.dumps({"pid": os.getpid(), "start_ticks": 1, "started_at": time.time() - 60})
    )

    runtime = await runtimes.new()
    state = await runtime.observe("reused-1")

    assert state is not None and state.status == "failed"
    assert state.message is not None and "vanished" in state.message


async def test_a_launch_interrupted_before_the_spawn_fails_once_its_claim_is_stale(
    runtimes: Runtimes,
) -> None:
    # The server died between claiming the key and spawning: a state dir with no pid.
    path = runtimes.state_dir / "claimed-1"
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"key": "claimed-1", "ports": []}))
    fresh = await runtimes.new()

    assert (await fresh.observe("claimed-1")).status == "scheduled"  # type: ignore[union-attr]

    old = time.time() - 60
    os.utime(path, (old, old))
    state = await fresh.observe("claimed-1")
    assert state is not None and state.status == "failed"
    assert state.message is not None and "never started" in state.message


async def test_a_run_killed_from_outside_without_a_record_fails_as_vanished(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    started = await runtime.start(make_spec(tmp_path, "gone-1", "sleep 60"))
    pgid = started.details["pid"]
    await asyncio.sleep(0.2)

    os.killpg(pgid, signal.SIGKILL)  # nobody asked plx: no stop marker, no exit record
    state = await wait_done(runtime, "gone-1")

    assert state.status == "failed"
    assert state.message is not None and "vanished" in state.message


# -- capacity and cleanup --------------------------------------------------------------------


async def test_capacity_is_max_parallel_and_a_full_runtime_refuses(
    runtimes: Runtimes, tmp_path: Path
) -> None:
    assert LocalRuntime(tmp_path / "other").capacity == os.cpu_count()
    runtime = await runtimes.new(max_parallel=1)
    assert runtime.capacity == 1
    await runtime.start(make_spec(tmp_path, "slot-1", "sleep 0.3"))

    with pytest.raises(RuntimeError_) as raised:
        await runtime.start(make_spec(tmp_path, "slot-2", "true"))

    assert raised.value.retryable is True
    assert await runtime.observe("slot-2") is None
    await wait_done(runtime, "slot-1")
    assert (await runtime.start(make_spec(tmp_path, "slot-2", "true"))).status == "running"


async def test_cleanup_forgets_only_finished_workloads(
    runtime: LocalRuntime, tmp_path: Path
) -> None:
    await runtime.start(make_spec(tmp_path, "keep-1", "sleep 0.3"))

    await runtime.cleanup("keep-1")
    assert (await runtime.observe("keep-1")).status == "running"  # type: ignore[union-attr]

    await wait_done(runtime, "keep-1")
    await runtime.cleanup("keep-1")
    await runtime.cleanup("keep-1")

    assert await runtime.observe("keep-1") is None
    assert not (runtime.state_dir / "keep-1").exists()
    assert "keep-1" not in await runtime.list_workloads()
