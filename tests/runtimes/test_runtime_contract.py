"""One contract, every runtime: what the reconciler relies on, checked against the local runtime
(real processes), the fake one, and the Kubernetes one (the real kubernetes-asyncio client over
HTTP to the fake API server and its kubelet), as optuna runs one storage suite over every backend.

Each backend is a small harness around its runtime: how to make a spec whose workload runs until
told, how to tell it to end with an exit code, and how many instances of a key exist. The tests
use only the `Runtime` interface besides.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from app.k8s.manifests import KEY_LABEL, object_name, safe_label_value
from app.k8s.runtime import KubernetesRuntime
from app.runtimes.base import Capabilities, Runtime, WorkloadSpec, WorkloadState
from app.runtimes.fake import FakeRuntime
from app.runtimes.local import LocalRuntime
from tests.k8s.fake_apiserver import FakeApiServer, FakeKubelet, PodScript

NAMESPACE = "plx"
MARKER = "contract-says-hello"
TIMEOUT = 10.0


class Notified:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


class Backend:
    """A runtime and the means to drive its workloads from outside."""

    expected: Capabilities
    runtime: Runtime
    notified: Notified

    def spec(self, key: str, run_id: int) -> WorkloadSpec:
        return WorkloadSpec(
            key=key,
            kind="job",
            run_id=run_id,
            uuid=f"{run_id:032x}",
            unique_name=f"root.quick-start.jobs.{run_id}",
            username="root",
            project="quick-start",
            role="main",
            command=self.command(key),
            image="python:3.11-slim",
            env={"PLX_JOB_ID": str(run_id)},
            outputs_path=f"/plx/outputs/root/quick-start/jobs/{run_id}",
        )

    def command(self, key: str) -> str:
        return f"echo {MARKER}; sleep 30"

    async def finish(self, spec: WorkloadSpec, exit_code: int) -> None:
        """End the running workload of `spec` with this exit code."""
        raise NotImplementedError

    def instances(self, key: str) -> int:
        """How many workloads of `key` exist behind the runtime (processes, pods, entries)."""
        raise NotImplementedError


class LocalBackend(Backend):
    expected = Capabilities(local_processes=True, builds_images=False)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.notified = Notified()
        self.runtime = LocalRuntime(
            root / "state", notify=self.notified, poll_interval=0.02, sweep_grace=0.5
        )

    def command(self, key: str) -> str:
        # Runs until the test writes the exit code it wants into `go`.
        go = self.root / "runs" / key / "go"
        return f'echo {MARKER}; while [ ! -s "{go}" ]; do sleep 0.02; done; exit "$(cat "{go}")"'

    def spec(self, key: str, run_id: int) -> WorkloadSpec:
        runs = self.root / "runs" / key
        return dataclasses.replace(
            super().spec(key, run_id),
            workdir=str(runs / "code"),
            outputs_path=str(runs / "outputs"),
            log_path=str(runs / "logs" / "output.log"),
        )

    async def finish(self, spec: WorkloadSpec, exit_code: int) -> None:
        (self.root / "runs" / spec.key / "go").write_text(str(exit_code))

    def instances(self, key: str) -> int:
        state_dir = f"{self.root / 'state' / key}\0".encode()
        count = 0
        for name in os.listdir("/proc"):
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes() if name.isdigit() else b""
            except OSError:
                continue
            count += state_dir in cmdline  # the wrapper: one per workload
        return count


class FakeBackend(Backend):
    expected = Capabilities(keeps_logs=True)

    def __init__(self) -> None:
        self.notified = Notified()
        self.fake = FakeRuntime(self.notified)
        self.runtime = self.fake

    async def finish(self, spec: WorkloadSpec, exit_code: int) -> None:
        self.fake.logs[spec.key] = f"{MARKER}\n"  # what its command printed
        status = "succeeded" if exit_code == 0 else "failed"
        self.fake.set_status(spec.key, status, exit_code=exit_code)

    def instances(self, key: str) -> int:
        return self.fake.starts[key]


class KubernetesBackend(Backend):
    expected = Capabilities(in_cluster=True, keeps_logs=True, notebook_drain_seconds=60)

    def __init__(self, api: FakeApiServer, kubelet: FakeKubelet, client: ApiClient) -> None:
        self.api = api
        self.kubelet = kubelet
        self.notified = Notified()
        self.runtime = KubernetesRuntime(
            namespace=NAMESPACE, notify=self.notified, api_client=client, resync_seconds=1.0
        )

    def spec(self, key: str, run_id: int) -> WorkloadSpec:
        spec = super().spec(key, run_id)
        self.kubelet.script(object_name(spec), PodScript(outcome="run"))
        return spec

    async def finish(self, spec: WorkloadSpec, exit_code: int) -> None:
        self.kubelet.finish(object_name(spec), exit_code)

    def instances(self, key: str) -> int:
        return len(self.api.list("pods", NAMESPACE, f"{KEY_LABEL}={safe_label_value(key)}"))


@pytest.fixture(params=["local", "fake", "kubernetes"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made: Backend
    if request.param == "local":
        if not Path("/proc/self/stat").exists():
            pytest.skip("the local runtime needs Linux /proc")
        made = LocalBackend(tmp_path)
        await made.runtime.setup()
        yield made
        for key, state in (await made.runtime.list_workloads()).items():
            if not state.done:
                await made.runtime.stop(key, grace_seconds=0.2)
        await made.runtime.aclose()
    elif request.param == "fake":
        made = FakeBackend()
        await made.runtime.setup()
        yield made
        await made.runtime.aclose()
    else:
        api = FakeApiServer()
        await api.start()
        kubelet = FakeKubelet(api, step=0.01, run_seconds=0.05)
        kubelet.start()
        client = ApiClient(configuration=Configuration(host=api.host))
        made = KubernetesBackend(api, kubelet, client)
        await made.runtime.setup()
        yield made
        await made.runtime.aclose()
        await client.close()
        await kubelet.stop()
        await api.close()


async def wait_for(
    probe: Callable[[], Awaitable[Any]], check: Callable[[Any], bool], timeout: float = TIMEOUT
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    value = await probe()
    while not check(value):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; last value: {value!r}")
        await asyncio.sleep(0.02)
        value = await probe()
    return value


async def wait_status(runtime: Runtime, key: str, *statuses: str) -> WorkloadState:
    return await wait_for(
        lambda: runtime.observe(key), lambda s: s is not None and s.status in statuses
    )


async def started(backend: Backend, key: str, run_id: int) -> WorkloadSpec:
    spec = backend.spec(key, run_id)
    first = await backend.runtime.start(spec)
    assert first.key == key and not first.done
    await wait_status(backend.runtime, key, "running")
    return spec


# -- the contract ----------------------------------------------------------------------------


async def test_declares_its_capabilities(backend: Backend) -> None:
    caps = backend.runtime.capabilities
    assert isinstance(caps, Capabilities) and caps == backend.expected
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.builds_images = not caps.builds_images  # type: ignore[misc]
    capacity = backend.runtime.capacity
    assert capacity is None or capacity > 0


async def test_a_started_workload_is_observed_running_then_succeeded(backend: Backend) -> None:
    runtime = backend.runtime
    spec = await started(backend, "job-1-0000000a", 1)
    listed = await runtime.list_workloads()
    assert listed[spec.key].status == "running" and not listed[spec.key].done
    notified = backend.notified.count
    await backend.finish(spec, 0)
    done = await wait_status(runtime, spec.key, "succeeded", "failed")
    assert done.status == "succeeded" and done.done and done.exit_code == 0
    assert done.finished_at is not None and done.error is None
    assert (await runtime.list_workloads())[spec.key].status == "succeeded"
    await wait_for(lambda: _value(backend.notified.count), lambda n: n > notified)


async def test_an_exit_code_fails_the_workload_with_it(backend: Backend) -> None:
    spec = await started(backend, "job-2-0000000b", 2)
    await backend.finish(spec, 3)
    done = await wait_status(backend.runtime, spec.key, "succeeded", "failed")
    assert done.status == "failed" and done.exit_code == 3 and done.done


async def test_a_stopped_workload_reads_stopped_and_a_second_stop_changes_nothing(
    backend: Backend,
) -> None:
    runtime = backend.runtime
    spec = await started(backend, "job-3-0000000c", 3)
    await runtime.stop(spec.key, grace_seconds=0.5)
    stopped = await wait_status(runtime, spec.key, "stopped", "failed", "succeeded")
    assert stopped.status == "stopped" and stopped.done
    await runtime.stop(spec.key, grace_seconds=0.5)
    assert (await runtime.observe(spec.key)).status == "stopped"  # type: ignore[union-attr]
    await runtime.stop("job-404-00000000", grace_seconds=0.5)  # unknown: a no-op


async def test_a_stop_of_a_finished_workload_keeps_how_it_ended(backend: Backend) -> None:
    spec = await started(backend, "job-4-0000000d", 4)
    await backend.finish(spec, 0)
    await wait_status(backend.runtime, spec.key, "succeeded")
    await backend.runtime.stop(spec.key, grace_seconds=0.5)
    assert (await backend.runtime.observe(spec.key)).status == "succeeded"  # type: ignore[union-attr]


async def test_starting_the_same_key_again_adopts_the_workload(backend: Backend) -> None:
    runtime = backend.runtime
    spec = await started(backend, "job-5-0000000e", 5)
    again = await runtime.start(spec)
    assert again.key == spec.key and not again.done
    assert backend.instances(spec.key) == 1
    await backend.finish(spec, 0)
    await wait_status(runtime, spec.key, "succeeded")
    assert backend.instances(spec.key) <= 1


async def test_logs_hold_what_the_workload_printed(backend: Backend) -> None:
    spec = await started(backend, "job-6-0000000f", 6)
    await backend.finish(spec, 0)
    await wait_status(backend.runtime, spec.key, "succeeded")
    if backend.runtime.capabilities.keeps_logs:
        logs = await backend.runtime.read_logs(spec.key)
    else:
        logs = Path(spec.log_path).read_text()
    assert logs is not None and MARKER in logs


async def test_cleanup_forgets_a_finished_workload_and_may_be_repeated(backend: Backend) -> None:
    runtime = backend.runtime
    spec = await started(backend, "job-7-00000010", 7)
    await backend.finish(spec, 0)
    await wait_status(runtime, spec.key, "succeeded")
    await runtime.cleanup(spec.key)
    await wait_for(lambda: runtime.observe(spec.key), lambda state: state is None)
    assert spec.key not in await runtime.list_workloads()
    await runtime.cleanup(spec.key)
    await runtime.cleanup("job-404-00000000")


async def test_an_unknown_key_is_not_observed(backend: Backend) -> None:
    assert await backend.runtime.observe("job-404-00000000") is None
    assert "job-404-00000000" not in await backend.runtime.list_workloads()


async def _value(value: Any) -> Any:
    return value
