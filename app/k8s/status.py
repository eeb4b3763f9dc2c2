"""Pure mapping of Kubernetes objects to observed statuses (polyaxon-v0.md 3.2, plus ≥0.4).

Inputs are the objects as the API serves them (JSON dicts, camelCase): the watch hands us those,
and decoding every event into V1Pod models would cost several times the mapping itself.

Decisions beyond v0:
- A pod waiting on its image (ErrImagePull, ImagePullBackOff) or on a bad container config
  (CreateContainerConfigError: a missing secret / config map) is ``building`` with the reason in
  the message; when it has been stuck like that for ``stuck_timeout`` seconds after scheduling it
  is ``failed`` (v0 left such runs building forever). InvalidImageName fails at once.
- PodScheduled=False / Unschedulable → ``warning`` with the scheduler's message (still alive).
- ``stopped`` only when plx asked for the stop (and the run had not ended on its own before);
  a pod deleted by someone else keeps its status until it vanishes, and the reconciler then
  fails the run.
- Tensorboard / notebook Deployments: ``running`` when a replica is available; a crash-looping
  or exited container fails them (v0 restarted them silently forever).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.logic.statuses import Status
from app.runtimes.base import ObservedStatus

IMAGE_WAIT_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"})
FATAL_WAIT_REASONS = frozenset({"InvalidImageName", "ErrImageNeverPull"})
DEFAULT_STUCK_TIMEOUT = 300.0


@dataclass(frozen=True)
class Observed:
    status: ObservedStatus
    message: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def _container_status(pod: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in (pod.get("status") or {}).get(key) or []:
        if status.get("name") == name:
            return status
    return {}


def _exit_message(term: dict[str, Any], prefix: str = "") -> str:
    """ "OOMKilled", "exit code N", plus the container's termination message when it left one."""
    code = term.get("exitCode")
    reason = term.get("reason")
    text = "OOMKilled" if reason == "OOMKilled" else f"exit code {code}"
    if reason == "OOMKilled" and code is not None:
        text = f"OOMKilled (exit code {code})"
    if term.get("message"):
        text = f"{text}: {term['message'].strip()}"
    return f"{prefix}{text}"


def _pod_details(pod: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    details = {"pod": meta.get("name"), "phase": status.get("phase")}
    if spec.get("nodeName"):
        details["node"] = spec["nodeName"]
    if status.get("podIP"):
        details["pod_ip"] = status["podIP"]
    return details


def _failed_init(pod: dict[str, Any]) -> str | None:
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        term = (status.get("state") or {}).get("terminated")
        if term and term.get("exitCode"):
            return _exit_message(term, f"init container {status.get('name')}: ")
    return None


def _terminated(main: dict[str, Any], pod: dict[str, Any], details: dict) -> Observed | None:
    """The outcome of a finished main container, or of a pod that failed without one."""
    term = (main.get("state") or {}).get("terminated")
    phase = (pod.get("status") or {}).get("phase")
    started = parse_time(term.get("startedAt")) if term else None
    finished = parse_time(term.get("finishedAt")) if term else None
    if term:
        code = term.get("exitCode")
        if code == 0 and phase != "Failed":
            return Observed(Status.SUCCEEDED, None, 0, started, finished, details)
        return Observed(Status.FAILED, _exit_message(term), code, started, finished, details)
    if phase == "Succeeded":
        return Observed(Status.SUCCEEDED, None, 0, details=details)
    if phase == "Failed":
        status = pod.get("status") or {}
        message = _failed_init(pod) or status.get("message") or status.get("reason") or "failed"
        return Observed(Status.FAILED, message, details=details)
    return None


def _waiting(
    main: dict[str, Any], pod: dict[str, Any], details: dict, now: datetime, stuck: float
) -> Observed | None:
    waiting = (main.get("state") or {}).get("waiting")
    if not waiting:
        return None
    reason = waiting.get("reason") or "Waiting"
    message = f"{reason}: {waiting['message']}" if waiting.get("message") else reason
    if reason in FATAL_WAIT_REASONS:
        return Observed(Status.FAILED, message, details=details)
    if reason in IMAGE_WAIT_REASONS:
        scheduled = _condition(pod, "PodScheduled") or {}
        since = parse_time(scheduled.get("lastTransitionTime")) or parse_time(
            (pod.get("metadata") or {}).get("creationTimestamp")
        )
        if since is not None and (now - since).total_seconds() >= stuck:
            return Observed(Status.FAILED, f"{message} (for over {int(stuck)}s)", details=details)
    return Observed(Status.BUILDING, message, details=details)


def _stopped(details: dict[str, Any]) -> Observed:
    return Observed(Status.STOPPED, "Stopped by plx.", details=details)


def _finished_before(done: Observed | None, when: datetime) -> bool:
    """Did the run end on its own before plx asked to stop it? API times are whole seconds,
    hence the margin: a container killed by our stop must never read as its own failure."""
    if done is None or done.finished_at is None:
        return False
    return (when - done.finished_at).total_seconds() > 1.0


def pod_status(
    pod: dict[str, Any],
    container: str,
    *,
    stop_requested_at: datetime | None = None,
    now: datetime,
    stuck_timeout: float = DEFAULT_STUCK_TIMEOUT,
) -> Observed:
    """Observed status of one bare pod (restartPolicy Never) whose main container is
    ``container``."""
    status = pod.get("status") or {}
    details = _pod_details(pod)
    main = _container_status(pod, container)
    done = _terminated(main, pod, details)
    if stop_requested_at is not None and not _finished_before(done, stop_requested_at):
        return _stopped(details)
    if done is not None:
        return done
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        text = scheduled.get("message") or scheduled.get("reason") or "Not scheduled"
        if scheduled.get("reason") == "Unschedulable":
            return Observed(Status.WARNING, f"Unschedulable: {text}", details=details)
        return Observed(Status.BUILDING, text, details=details)
    waiting = _waiting(main, pod, details, now, stuck_timeout)
    if waiting is not None:
        return waiting
    running = (main.get("state") or {}).get("running")
    if running:
        return Observed(
            Status.RUNNING, started_at=parse_time(running.get("startedAt")), details=details
        )
    if scheduled is None:
        return Observed(Status.SCHEDULED, "Pending", details=details)
    if status.get("phase") == "Pending":
        return Observed(Status.BUILDING, status.get("reason") or "PodInitializing", details=details)
    return Observed(Status.UNKNOWN, status.get("reason") or status.get("phase"), details=details)


def _newest(pods: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The pod a Deployment is currently about: the newest one not being deleted."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not live:
        return None
    return max(live, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")


def _crashed(main: dict[str, Any], details: dict) -> Observed | None:
    """A Deployment restarts its container: an exit or a crash loop is a failure for plx."""
    state = main.get("state") or {}
    term = state.get("terminated")
    waiting = state.get("waiting") or {}
    if waiting.get("reason") == "CrashLoopBackOff":
        term = (main.get("lastState") or {}).get("terminated") or term
        message = "CrashLoopBackOff" + (f", last {_exit_message(term)}" if term else "")
        return Observed(
            Status.FAILED, message, term.get("exitCode") if term else None, details=details
        )
    if term:
        return Observed(Status.FAILED, _exit_message(term), term.get("exitCode"), details=details)
    return None


def deployment_status(
    deployment: dict[str, Any],
    pods: Iterable[dict[str, Any]],
    container: str,
    *,
    stop_requested_at: datetime | None = None,
    now: datetime,
    stuck_timeout: float = DEFAULT_STUCK_TIMEOUT,
) -> Observed:
    """Observed status of a tensorboard / notebook Deployment and its pods."""
    meta, status = deployment.get("metadata") or {}, deployment.get("status") or {}
    details: dict[str, Any] = {"deployment": meta.get("name")}
    if stop_requested_at is not None:
        return _stopped(details)
    progressing = _condition(deployment, "Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Observed(
            Status.FAILED, progressing.get("message") or "ProgressDeadlineExceeded", details=details
        )
    pod = _newest(pods)
    if (status.get("availableReplicas") or 0) >= 1:
        started = None
        if pod is not None:
            details.update(_pod_details(pod))
            running = (_container_status(pod, container).get("state") or {}).get("running")
            started = parse_time((running or {}).get("startedAt"))
        return Observed(Status.RUNNING, started_at=started, details=details)
    failure = _condition(deployment, "ReplicaFailure")
    if failure and failure.get("status") == "True":
        return Observed(
            Status.WARNING, failure.get("message") or failure.get("reason"), details=details
        )
    if pod is None:
        return Observed(Status.SCHEDULED, "Waiting for the deployment's pod.", details=details)
    details.update(_pod_details(pod))
    crashed = _crashed(_container_status(pod, container), details)
    if crashed is not None:
        return crashed
    observed = pod_status(pod, container, now=now, stuck_timeout=stuck_timeout)
    if observed.status == Status.RUNNING:
        # Running but not Ready yet: the server is still starting (readiness probe).
        return Observed(Status.BUILDING, "Starting (not ready yet).", details=observed.details)
    return Observed(
        observed.status,
        observed.message,
        observed.exit_code,
        observed.started_at,
        observed.finished_at,
        {**details, **observed.details},
    )
