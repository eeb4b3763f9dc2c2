"""One workload whose objects cannot be read into a state (a malformed pod) neither stops the
refresh of the others nor the watch that applies events: it is listed with its error (issue 15
item 4), and recovers when its objects change."""

from __future__ import annotations

from typing import Any

from app.k8s.manifests import KEY_ANNOTATION, KIND_ANNOTATION
from app.k8s.runtime import KubernetesRuntime


def _pod(key: str, status: Any, rv: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"pod-{key}",
            "resourceVersion": str(rv),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {KEY_ANNOTATION: key, KIND_ANNOTATION: "job"},
        },
        "status": status,
    }


RUNNING = {
    "phase": "Running",
    "containerStatuses": [
        {"name": "polyaxon-job", "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}
    ],
}


async def test_a_malformed_pod_is_listed_with_its_error_and_the_others_are_observed() -> None:
    runtime = KubernetesRuntime(namespace="plx", api_client=object())  # type: ignore[arg-type]
    runtime._pods.synced = runtime._deployments.synced = True
    good, bad = "job-1-aaaaaaaa", "job-2-bbbbbbbb"
    runtime._on_event(runtime._pods, {"type": "ADDED", "object": _pod(bad, ["not", "a", "map"], 1)})
    runtime._on_event(runtime._pods, {"type": "ADDED", "object": _pod(good, RUNNING, 2)})
    states = await runtime.list_workloads()
    assert states[good].status == "running" and states[good].error is None
    assert states[bad].status == "unknown" and states[bad].error
    # Fixed objects (a new version of the pod) are observed again.
    runtime._on_event(runtime._pods, {"type": "MODIFIED", "object": _pod(bad, RUNNING, 3)})
    assert (await runtime.observe(bad)).status == "running"
