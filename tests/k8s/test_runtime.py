"""KubernetesRuntime end to end: the real client against the fake API server and kubelet."""

from __future__ import annotations

import pytest

from app.k8s.manifests import KEY_LABEL, MANAGED_SELECTOR, object_name, safe_label_value
from app.k8s.runtime import KubernetesRuntime
from app.runtimes.base import Resources, RuntimeError_
from tests.k8s.conftest import NAMESPACE, make_spec, wait_for, wait_status
from tests.k8s.fake_apiserver import FakeApiServer, FakeKubelet, PodScript


def pods_of(api: FakeApiServer, key: str) -> list[dict]:
    return api.list("pods", NAMESPACE, f"{KEY_LABEL}={safe_label_value(key)}")


async def test_job_lifecycle_seen_through_the_watch(runtime, kubelet, notified):
    spec = make_spec("job-1")
    kubelet.script(object_name(spec), PodScript(outcome="run"))
    first = await runtime.start(spec)
    assert first.key == "job-1" and first.status in ("scheduled", "building")
    running = await wait_status(runtime, "job-1", "running")
    assert running.details["pod"] == object_name(spec)
    assert running.details["node"] == "fake-node-1"
    assert running.started_at is not None
    kubelet.finish(object_name(spec), 0)
    done = await wait_status(runtime, "job-1", "succeeded")
    assert done.exit_code == 0 and done.done and done.finished_at is not None
    assert notified.count >= 3
    assert (await runtime.list_workloads())["job-1"].status == "succeeded"
