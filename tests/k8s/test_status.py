"""Pod / Deployment → observed status (polyaxon-v0.md 3.2 and the decisions in status.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.k8s.status import deployment_status, pod_status

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
MAIN = "polyaxon-job"


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(phase="Pending", state=None, conditions=None, init=None, **meta) -> dict:
    status = {"phase": phase, "conditions": conditions or []}
    if state is not None:
        status["containerStatuses"] = [{"name": MAIN, "state": state}]
    if init is not None:
        status["initContainerStatuses"] = [{"name": "polyaxon-job-init", "state": init}]
    return {"metadata": {"name": "plx-job-1", **meta}, "spec": {"nodeName": "n1"},
            "status": status}


def scheduled(at: datetime = NOW) -> list[dict]:
    return [{"type": "PodScheduled", "status": "True", "lastTransitionTime": iso(at)}]


def test_just_created_is_scheduled():
    assert pod_status(pod(conditions=None), MAIN, now=NOW).status == "scheduled"


def test_container_creating_is_building():
    observed = pod_status(pod(state={"waiting": {"reason": "ContainerCreating"}},
                              conditions=scheduled()), MAIN, now=NOW)
    assert (observed.status, observed.message) == ("building", "ContainerCreating")


def test_image_pull_backoff_is_building_then_failed_after_the_limit():
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling x"}}
    fresh = pod(state=waiting, conditions=scheduled(NOW - timedelta(seconds=10)))
    assert pod_status(fresh, MAIN, now=NOW, stuck_timeout=60).status == "building"
    stuck = pod(state=waiting, conditions=scheduled(NOW - timedelta(seconds=61)))
    observed = pod_status(stuck, MAIN, now=NOW, stuck_timeout=60)
    assert observed.status == "failed"
    assert observed.message.startswith("ImagePullBackOff: Back-off pulling x")


def test_invalid_image_name_fails_at_once():
    observed = pod_status(pod(state={"waiting": {"reason": "InvalidImageName"}},
                              conditions=scheduled()), MAIN, now=NOW)
    assert observed.status == "failed" and "InvalidImageName" in observed.message


def test_unschedulable_is_warning():
    cond = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient cpu."}]
    observed = pod_status(pod(conditions=cond), MAIN, now=NOW)
    assert observed.status == "warning"
    assert observed.message == "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."


def test_exit_codes_and_oom():
    term = {"terminated": {"exitCode": 2, "reason": "Error", "message": "boom\n"}}
    observed = pod_status(pod("Failed", term, scheduled()), MAIN, now=NOW)
    assert (observed.status, observed.exit_code, observed.message) == (
        "failed", 2, "exit code 2: boom")
    oom = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    observed = pod_status(pod("Failed", oom, scheduled()), MAIN, now=NOW)
    assert observed.message == "OOMKilled (exit code 137)"
    ok = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": iso(NOW)}}
    observed = pod_status(pod("Succeeded", ok, scheduled()), MAIN, now=NOW)
    assert observed.status == "succeeded" and observed.finished_at == NOW


def test_failed_init_container_is_named():
    init = {"terminated": {"exitCode": 1, "reason": "Error"}}
    observed = pod_status(pod("Failed", None, scheduled(), init=init), MAIN, now=NOW)
    assert observed.status == "failed"
    assert observed.message == "init container polyaxon-job-init: exit code 1"


def test_evicted_pod_fails_with_the_reason():
    evicted = pod("Failed", None, scheduled())
    evicted["status"].update(reason="Evicted", message="The node was low on memory.")
    assert pod_status(evicted, MAIN, now=NOW).message == "The node was low on memory."


def test_stop_requested_wins_unless_the_run_had_finished_before():
    killed = {"terminated": {"exitCode": 143, "reason": "Error", "finishedAt": iso(NOW)}}
    observed = pod_status(pod("Failed", killed, scheduled(), deletionTimestamp=iso(NOW)),
                          MAIN, now=NOW, stop_requested_at=NOW - timedelta(seconds=1))
    assert observed.status == "stopped"
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": iso(NOW)}}
    observed = pod_status(pod("Succeeded", done, scheduled()), MAIN, now=NOW,
                          stop_requested_at=NOW + timedelta(seconds=30))
    assert observed.status == "succeeded"


def test_deletion_without_a_stop_request_keeps_the_status():
    running = {"running": {"startedAt": iso(NOW)}}
    observed = pod_status(pod("Running", running, scheduled(), deletionTimestamp=iso(NOW)),
                          MAIN, now=NOW)
    assert observed.status == "running" and observed.started_at == NOW


def deployment(**status) -> dict:
    return {"metadata": {"name": "plx-tensorboard-1"}, "status": status}


def test_deployment_running_when_available_and_failed_on_crash_loop():
    container = "polyaxon-tensorboard"
    running = pod("Running", {"running": {"startedAt": iso(NOW)}}, scheduled())
    running["status"]["containerStatuses"][0]["name"] = container
    observed = deployment_status(deployment(availableReplicas=1), [running], container, now=NOW)
    assert observed.status == "running" and observed.details["pod"] == "plx-job-1"
    not_ready = deployment_status(deployment(), [running], container, now=NOW)
    assert not_ready.status == "building"
    crash = pod("Running", {"waiting": {"reason": "CrashLoopBackOff"}}, scheduled())
    status = crash["status"]["containerStatuses"][0]
    status.update(name=container, lastState={"terminated": {"exitCode": 1, "reason": "Error"}})
    observed = deployment_status(deployment(), [crash], container, now=NOW)
    assert observed.status == "failed" and observed.exit_code == 1
    assert observed.message == "CrashLoopBackOff, last exit code 1"


def test_deployment_conditions():
    stuck = deployment(conditions=[{"type": "Progressing", "status": "False",
                                    "reason": "ProgressDeadlineExceeded", "message": "slow"}])
    assert deployment_status(stuck, [], "c", now=NOW).status == "failed"
    quota = deployment(conditions=[{"type": "ReplicaFailure", "status": "True",
                                    "message": "exceeded quota: compute"}])
    observed = deployment_status(quota, [], "c", now=NOW)
    assert (observed.status, observed.message) == ("warning", "exceeded quota: compute")
    assert deployment_status(deployment(), [], "c", now=NOW).status == "scheduled"
    stopping = deployment_status(deployment(availableReplicas=1), [], "c", now=NOW,
                                 stop_requested_at=NOW)
    assert stopping.status == "stopped"
