"""Status values, sets and transition rules for experiments, jobs and groups (polyaxon-v0.md 3).

Pure tables and predicates. The one service that writes statuses asks `can_transition` first and
treats a refused transition as a silent no-op, as v0's `set_status` did.

Transitions follow the 0.5 semantics: done statuses are terminal (0.3.0 let `unknown` overwrite
them). `resuming` in v0 was reachable from `succeeded`/`stopped`; here a resume or restart is a new
experiment (a clone), so the original's done status never changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Status(StrEnum):
    CREATED = "created"
    RESUMING = "resuming"
    WARNING = "warning"
    BUILDING = "building"
    SCHEDULED = "scheduled"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    UNKNOWN = "unknown"
    UNSCHEDULABLE = "unschedulable"


StatusTable = Literal["experiment", "job", "group"]
"""`job` covers jobs, builds, tensorboards, notebooks and the jobs (pods) of an experiment."""

S = Status

# The one definition of the status sets. Everything else (rules, services, the reconciler, SQL
# `IN (...)` lists) derives from these. Iterate them through `sorted()` where order shows (SQL
# text, cached statements): a frozenset's order changes with the process's hash seed.
DONE: frozenset[Status] = frozenset({S.SUCCEEDED, S.FAILED, S.STOPPED})
"""Terminal for every table: no status follows a done one."""
EXPERIMENT_PENDING: frozenset[Status] = frozenset({S.CREATED, S.RESUMING})
EXPERIMENT_RUNNING: frozenset[Status] = frozenset({S.BUILDING, S.SCHEDULED, S.STARTING, S.RUNNING})
JOB_PENDING: frozenset[Status] = frozenset({S.CREATED})
JOB_RUNNING: frozenset[Status] = frozenset({S.BUILDING, S.SCHEDULED, S.RUNNING})
"""Also what `has_tensorboard` / `has_notebook` mean: a plugin job in one of these."""
GROUP_PENDING: frozenset[Status] = frozenset({S.CREATED})
GROUP_RUNNING: frozenset[Status] = frozenset({S.RUNNING})

_Allowed = dict[Status, frozenset[Status | None]]


@dataclass(frozen=True)
class StatusRules:
    values: frozenset[Status]
    pending: frozenset[Status]
    running: frozenset[Status]
    done: frozenset[Status]
    # new status -> the current statuses it may follow (None = no status yet)
    allowed_from: _Allowed
    # the statuses whose first occurrence sets started_at
    starts_clock: frozenset[Status]


def _fs(*values: Status | None) -> frozenset[Status | None]:
    return frozenset(values)


def _rules(
    *,
    pending: frozenset[Status],
    running: frozenset[Status],
    detours: frozenset[Status] = frozenset(),
    moves: _Allowed,
    starts_clock: frozenset[Status],
) -> StatusRules:
    """A table's rules. Unless `moves` says otherwise, a done status may follow any status not
    done, and a detour (warning, unknown...) any status not done but itself."""
    values = pending | running | DONE | detours
    not_done = values - DONE
    allowed: _Allowed = {done: frozenset(not_done) for done in DONE}
    allowed |= {detour: frozenset(not_done - {detour}) for detour in detours}
    allowed |= moves
    return StatusRules(values, pending, running, DONE, allowed, starts_clock)


def _experiment_rules() -> StatusRules:
    return _rules(
        pending=EXPERIMENT_PENDING,
        running=EXPERIMENT_RUNNING,
        detours=frozenset({S.WARNING, S.UNKNOWN}),
        moves={
            S.CREATED: _fs(None),
            S.RESUMING: _fs(S.CREATED, S.WARNING),
            S.BUILDING: _fs(S.CREATED, S.RESUMING, S.WARNING, S.UNKNOWN),
            S.SCHEDULED: _fs(S.CREATED, S.RESUMING, S.BUILDING, S.WARNING, S.UNKNOWN),
            S.STARTING: _fs(S.CREATED, S.RESUMING, S.BUILDING, S.SCHEDULED, S.WARNING),
            S.RUNNING: _fs(
                S.CREATED, S.RESUMING, S.BUILDING, S.SCHEDULED, S.STARTING, S.WARNING, S.UNKNOWN
            ),
        },
        # v0 set it at `starting`; a local run may go straight to `running`.
        starts_clock=frozenset({S.STARTING, S.RUNNING}),
    )


def _job_rules() -> StatusRules:
    # warning/unknown/unschedulable are detours a pod can come back from.
    detours = (S.WARNING, S.UNKNOWN, S.UNSCHEDULABLE)
    return _rules(
        pending=JOB_PENDING,
        running=JOB_RUNNING,
        detours=frozenset(detours),
        moves={
            S.CREATED: _fs(None),
            # a pod seen waiting after being scheduled maps back to `building` (v0 pod monitor)
            S.BUILDING: _fs(None, S.CREATED, S.SCHEDULED, *detours),
            S.SCHEDULED: _fs(S.CREATED, S.BUILDING, *detours),
            S.RUNNING: _fs(S.CREATED, S.BUILDING, S.SCHEDULED, *detours),
        },
        starts_clock=JOB_RUNNING,
    )


def _group_rules() -> StatusRules:
    return _rules(
        pending=GROUP_PENDING,
        running=GROUP_RUNNING,
        moves={
            S.CREATED: _fs(None),
            S.RUNNING: _fs(S.CREATED),
            S.SUCCEEDED: _fs(S.RUNNING),  # a group that never ran did not succeed
        },
        starts_clock=GROUP_RUNNING,
    )


RULES: dict[StatusTable, StatusRules] = {
    "experiment": _experiment_rules(),
    "job": _job_rules(),
    "group": _group_rules(),
}


def rules_for(table: StatusTable) -> StatusRules:
    try:
        return RULES[table]
    except KeyError:
        raise ValueError(f"unknown status table `{table}`") from None


def can_transition(table: StatusTable, current: str | None, new: str) -> bool:
    """Whether `new` may follow `current` (None = no status yet). Plain strings are welcome
    (a stored `last_status`, a client's value): a value that is no Status is never allowed."""
    rules = rules_for(table)
    return new in rules.values and current in rules.allowed_from[Status(new)]


def is_done(status: str | None) -> bool:
    return status in DONE


def is_running(table: StatusTable, status: str | None) -> bool:
    return status in rules_for(table).running


def experiment_status_from_jobs(
    job_statuses: Iterable[str], master_status: str | None = None
) -> Status | None:
    """The experiment status its jobs imply (v0 `jobs_status` + `calculated_status`).

    A done master wins. Returns None when there is nothing to derive from (no jobs yet):
    v0's `all([])` would have called that `succeeded`.
    """
    if master_status in DONE:
        return Status(master_status)
    present = set(job_statuses)
    if not present:
        return None
    if S.UNKNOWN in present:
        return S.UNKNOWN
    # an unschedulable job shows on the experiment as `warning` (0.4+)
    if present & {S.UNSCHEDULABLE, S.WARNING}:
        return S.WARNING
    if S.STOPPED in present:
        return S.STOPPED
    if present == {S.SUCCEEDED}:
        return S.SUCCEEDED
    if S.FAILED in present:
        return S.FAILED
    if present & {S.CREATED, S.BUILDING}:
        return S.STARTING
    if present & {S.SCHEDULED, S.RUNNING}:
        return S.RUNNING
    return S.UNKNOWN


@dataclass(frozen=True)
class ClockUpdate:
    """Which timestamps a status change sets; the caller fills in the times."""

    set_started_at: bool = False
    set_finished_at: bool = False
    # finished with no started_at yet: v0 set started_at = created_at (signals/run_time.py)
    started_at_from_created_at: bool = False


def clock_update(
    table: StatusTable, new: Status, *, has_started_at: bool, has_finished_at: bool
) -> ClockUpdate:
    """started_at at the first running-like status, finished_at at the first done status."""
    rules = rules_for(table)
    if new in rules.done:
        if has_finished_at:
            return ClockUpdate()
        return ClockUpdate(set_finished_at=True, started_at_from_created_at=not has_started_at)
    if new in rules.starts_clock and not has_started_at:
        return ClockUpdate(set_started_at=True)
    return ClockUpdate()
