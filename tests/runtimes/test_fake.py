"""FakeRuntime, the reconciler tests' stand-in, and the make_runtime factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.composition import make_runtime
from app.runtimes.base import RuntimeError_, WorkloadSpec
from app.runtimes.fake import FakeRuntime
from app.runtimes.local import LocalRuntime


def make_spec(key: str = "experiment-1-master-0", **overrides: Any) -> WorkloadSpec:
    values: dict[str, Any] = {
        "key": key,
        "kind": "experiment",
        "run_id": 1,
        "uuid": "1" * 32,
        "unique_name": "root.quick-start.1",
        "username": "root",
        "project": "quick-start",
        "command": "python train.py",
    }
    values.update(overrides)
    return WorkloadSpec(**values)


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def fake(wakes: Wakes) -> FakeRuntime:
    return FakeRuntime(notify=wakes)


async def test_start_records_the_spec_and_reports_running(fake: FakeRuntime, wakes: Wakes) -> None:
    spec = make_spec(ports=[8888])

    state = await fake.start(spec)

    assert state.status == "running"
    assert state.started_at is not None
    assert state.url == "http://127.0.0.1:8888/"
    assert fake.specs[spec.key] is spec
    assert await fake.observe(spec.key) == state
    assert wakes.count == 1


async def test_starting_a_key_again_adopts_and_is_not_counted_as_a_start(
    fake: FakeRuntime,
) -> None:
    spec = make_spec()
    first = await fake.start(spec)

    again = await fake.start(spec)

    assert again == first
    assert fake.starts[spec.key] == 1
    assert fake.start_calls[spec.key] == 2


async def test_set_status_drives_the_state_and_wakes_the_reconciler(
    fake: FakeRuntime, wakes: Wakes
) -> None:
    spec = make_spec()
    await fake.start(spec)

    fake.set_status(spec.key, "failed", exit_code=3)

    state = await fake.observe(spec.key)
    assert state is not None and state.done
    assert state.status == "failed"
    assert state.exit_code == 3
    assert state.message == "Process exited with code 3."
    assert state.finished_at is not None
    assert wakes.count == 2
    with pytest.raises(KeyError):
        fake.set_status("nobody", "running")


async def test_initial_status_is_configurable(wakes: Wakes) -> None:
    fake = FakeRuntime(notify=wakes, initial_status="scheduled")

    state = await fake.start(make_spec())

    assert state.status == "scheduled"
    assert not state.done


async def test_stop_ends_the_workload_stopped_by_default(fake: FakeRuntime) -> None:
    spec = make_spec()
    await fake.start(spec)

    await fake.stop(spec.key, grace_seconds=3)

    state = await fake.observe(spec.key)
    assert state is not None and state.status == "stopped"
    assert fake.stop_requests == [(spec.key, 3)]


async def test_stop_can_leave_the_end_to_the_test(wakes: Wakes) -> None:
    fake = FakeRuntime(notify=wakes, stop_immediately=False)
    spec = make_spec()
    await fake.start(spec)

    await fake.stop(spec.key)

    assert (await fake.observe(spec.key)).status == "running"  # type: ignore[union-attr]
    assert fake.stop_requests == [(spec.key, 10.0)]
    fake.set_status(spec.key, "stopped")
    assert (await fake.observe(spec.key)).status == "stopped"  # type: ignore[union-attr]


async def test_stop_is_a_no_op_for_unknown_and_finished_workloads(fake: FakeRuntime) -> None:
    spec = make_spec()
    await fake.start(spec)
    fake.set_status(spec.key, "succeeded", exit_code=0)

    await fake.stop(spec.key)
    await fake.stop("unknown")

    assert (await fake.observe(spec.key)).status == "succeeded"  # type: ignore[union-attr]
    assert fake.stop_requests == []


async def test_list_workloads_is_a_snapshot_of_every_workload(fake: FakeRuntime) -> None:
    await fake.start(make_spec("a"))
    await fake.start(make_spec("b"))
    fake.set_status("b", "succeeded", exit_code=0)

    listed = await fake.list_workloads()
    await fake.start(make_spec("c"))

    assert {key: state.status for key, state in listed.items()} == {
        "a": "running",
        "b": "succeeded",
    }


async def test_cleanup_removes_only_finished_workloads(fake: FakeRuntime) -> None:
    await fake.start(make_spec("live"))
    await fake.start(make_spec("done"))
    fake.set_status("done", "failed", exit_code=1)

    await fake.cleanup("live")
    await fake.cleanup("done")
    await fake.cleanup("unknown")

    assert await fake.observe("live") is not None
    assert await fake.observe("done") is None
    assert fake.cleaned == ["done"]


async def test_a_full_fake_refuses_with_a_retryable_error(wakes: Wakes) -> None:
    fake = FakeRuntime(notify=wakes, capacity=1)
    await fake.start(make_spec("a"))

    with pytest.raises(RuntimeError_) as raised:
        await fake.start(make_spec("b"))

    assert raised.value.retryable
    assert fake.capacity == 1
    fake.set_status("a", "succeeded", exit_code=0)
    assert (await fake.start(make_spec("b"))).status == "running"


async def test_an_injected_start_failure_happens_once(fake: FakeRuntime) -> None:
    spec = make_spec()
    fake.fail_next_start(spec.key, RuntimeError_("quota", retryable=False))

    with pytest.raises(RuntimeError_) as raised:
        await fake.start(spec)

    assert raised.value.message == "quota"
    assert await fake.observe(spec.key) is None
    assert fake.starts[spec.key] == 0
    assert (await fake.start(spec)).status == "running"
    assert fake.starts[spec.key] == 1


async def test_a_vanished_workload_is_no_longer_observed(fake: FakeRuntime, wakes: Wakes) -> None:
    await fake.start(make_spec("a"))

    fake.vanish("a")

    assert await fake.observe("a") is None
    assert await fake.list_workloads() == {}
    assert wakes.count == 2


async def test_logs_setup_and_close_are_recorded(fake: FakeRuntime) -> None:
    fake.logs["a"] = "epoch 1\n"

    await fake.setup()
    await fake.aclose()

    assert await fake.read_logs("a") == "epoch 1\n"
    assert await fake.read_logs("b") is None
    assert fake.setup_calls == 1
    assert fake.closed


# -- make_runtime ----------------------------------------------------------------------------


def test_make_runtime_builds_each_runtime_by_name(tmp_path: Path) -> None:
    local = make_runtime("local", state_dir=tmp_path, max_parallel=3)
    fake = make_runtime("fake", capacity=2)
    kubernetes = make_runtime("kubernetes", namespace="plx")

    assert isinstance(local, LocalRuntime) and local.capacity == 3
    assert isinstance(fake, FakeRuntime) and fake.capacity == 2
    assert kubernetes.name == "kubernetes"


def test_make_runtime_refuses_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="docker"):
        make_runtime("docker")
