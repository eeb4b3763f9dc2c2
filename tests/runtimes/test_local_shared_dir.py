"""Two local runtimes on one state directory (two replicas on one PLX_DATA_DIR): a workload
directory removed by one of them is a normal event for the other (issue 15 item 4), and one
workload whose files cannot be read never hides the others."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from app.runtimes.base import WorkloadSpec
from app.runtimes.local import PID_FILE, LocalRuntime, is_alive, read_json


def _spec(tmp_path: Path, run_id: int, command: str) -> WorkloadSpec:
    return WorkloadSpec(
        key=f"experiment-{run_id}-abcdef12-master-0",
        kind="experiment",
        run_id=run_id,
        uuid="abcdef12" * 4,
        unique_name=f"u.p.{run_id}",
        username="u",
        project="p",
        command=command,
        outputs_path=str(tmp_path / "outputs" / str(run_id)),
    )


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


@pytest.fixture
async def pair(tmp_path: Path):
    state = tmp_path / "runtime"
    one, two = LocalRuntime(state, poll_interval=60), LocalRuntime(state, poll_interval=60)
    await one.setup()
    await two.setup()
    yield one, two
    for runtime in (one, two):
        for key in list(await runtime.list_workloads()):
            await runtime.stop(key, grace_seconds=1)
        await runtime.aclose()


async def test_a_workload_cleaned_up_by_the_other_replica_is_simply_gone(
    pair: tuple[LocalRuntime, LocalRuntime], tmp_path: Path
) -> None:
    one, two = pair
    go = tmp_path / "go"
    spec = _spec(tmp_path, 1, f"while [ ! -e '{go}' ]; do sleep 0.01; done")
    other = _spec(tmp_path, 2, "sleep 30")
    await one.start(spec)
    await one.start(other)
    states = await two.list_workloads()
    assert {s.status for s in states.values()} == {"running"}  # adopted while running
    assert set(states) == {spec.key, other.key}
    go.touch()

    async def ended() -> bool:
        state = await one.observe(spec.key)
        return state is not None and state.done

    await _until(ended)
    pid = read_json(Path(one.state_dir) / spec.key / PID_FILE)
    await one.cleanup(spec.key)  # its run was recorded: the directory goes

    async def wrapper_gone() -> bool:  # it outlives its exit record by a moment
        return not is_alive(pid["pid"], pid["start_ticks"])

    await _until(wrapper_gone)
    # Before the fix every listing raised FileNotFoundError (exit.json.<pid>.tmp) from _settle.
    states = await two.list_workloads()
    assert set(states) == {other.key} and states[other.key].status == "running"
    assert await two.observe(spec.key) is None
    await two.cleanup(spec.key)  # harmless
    await two.stop(other.key, grace_seconds=1)  # the other workload is still fully managed
    assert (await one.observe(other.key)).status == "stopped"


async def test_a_known_end_stays_known_after_the_directory_goes(
    pair: tuple[LocalRuntime, LocalRuntime], tmp_path: Path
) -> None:
    one, two = pair
    spec = _spec(tmp_path, 3, "exit 3")
    await one.start(spec)

    async def ended() -> bool:
        state = await two.observe(spec.key)
        return state is not None and state.done

    await _until(ended)
    await one.cleanup(spec.key)
    state = (await two.list_workloads())[spec.key]
    assert state.status == "failed" and state.exit_code == 3


async def test_a_live_process_whose_directory_vanished_can_still_be_stopped(
    pair: tuple[LocalRuntime, LocalRuntime], tmp_path: Path
) -> None:
    one, _ = pair
    spec = _spec(tmp_path, 4, "sleep 30")
    await one.start(spec)
    pid = read_json(Path(one.state_dir) / spec.key / PID_FILE)
    shutil.rmtree(Path(one.state_dir) / spec.key)  # an operator, a full disk clean-up...
    assert (await one.observe(spec.key)).status == "running"
    await one.stop(spec.key, grace_seconds=1)  # the stop record cannot be written: still stops
    assert not is_alive(pid["pid"], pid["start_ticks"])
    assert await one.observe(spec.key) is None  # and then nothing is known of it any more


async def test_one_unreadable_workload_does_not_hide_the_others(
    pair: tuple[LocalRuntime, LocalRuntime], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, _ = pair
    good, bad = _spec(tmp_path, 5, "sleep 30"), _spec(tmp_path, 6, "sleep 30")
    await one.start(good)
    await one.start(bad)
    real = one._observe

    def observe(workload):
        if workload.key == bad.key:
            raise PermissionError(13, "Permission denied", str(workload.path))
        return real(workload)

    monkeypatch.setattr(one, "_observe", observe)
    states = await one.list_workloads()
    assert states[good.key].status == "running" and states[good.key].error is None
    assert states[bad.key].status == "unknown" and "Permission denied" in states[bad.key].error
    assert os.path.isdir(Path(one.state_dir) / bad.key)  # nothing was forgotten
