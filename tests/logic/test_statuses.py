"""Status tables, transitions, derived experiment status and clock rules (polyaxon-v0.md 3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.logic.statuses import (
    DONE,
    EXPERIMENT_PENDING,
    EXPERIMENT_RUNNING,
    GROUP_PENDING,
    GROUP_RUNNING,
    JOB_PENDING,
    JOB_RUNNING,
    RULES,
    Status,
    can_transition,
    clock_update,
    experiment_status_from_jobs,
    is_done,
    is_running,
    rules_for,
)

TABLES = ("experiment", "job", "group")


@pytest.mark.parametrize(
    ("table", "values"),
    [
        (
            "experiment",
            "created resuming warning building scheduled starting running succeeded failed "
            "stopped unknown",
        ),
        (
            "job",
            "created building scheduled running succeeded failed stopped unknown warning "
            "unschedulable",
        ),
        ("group", "created running succeeded failed stopped"),
    ],
)
def test_value_sets(table: str, values: str) -> None:
    assert rules_for(table).values == set(values.split())


def test_sets_from_v0() -> None:
    assert rules_for("experiment").pending == {"created", "resuming"}
    assert rules_for("experiment").running == {"building", "scheduled", "starting", "running"}
    assert rules_for("job").running == {"building", "scheduled", "running"}
    assert not is_running("job", "created")
    assert DONE == {"succeeded", "failed", "stopped"}
    assert rules_for("group").done == {"succeeded", "failed", "stopped"}


def test_the_named_sets_are_the_rules_sets() -> None:
    named = {
        "experiment": (EXPERIMENT_PENDING, EXPERIMENT_RUNNING),
        "job": (JOB_PENDING, JOB_RUNNING),
        "group": (GROUP_PENDING, GROUP_RUNNING),
    }
    for table, (pending, running) in named.items():
        rules = rules_for(table)
        assert (rules.pending, rules.running, rules.done) == (pending, running, DONE)
        # pending, running and done never overlap, and every value is a Status member
        assert not (pending & running or pending & DONE or running & DONE)
        assert all(isinstance(v, Status) for v in rules.values)


def test_a_done_master_is_returned_as_a_status_member() -> None:
    derived = experiment_status_from_jobs(["running"], "stopped")
    assert derived is Status.STOPPED


def test_unknown_table_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown status table `pipeline`"):
        rules_for("pipeline")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("table", "current", "new", "allowed"),
    [
        # experiment, normal life
        ("experiment", None, "created", True),
        ("experiment", "created", "building", True),
        ("experiment", "building", "scheduled", True),
        ("experiment", "scheduled", "starting", True),
        ("experiment", "starting", "running", True),
        ("experiment", "running", "succeeded", True),
        ("experiment", "created", "running", True),
        ("experiment", "unknown", "running", True),
        ("experiment", "created", "resuming", True),
        ("experiment", "running", "warning", True),
        ("experiment", "warning", "running", True),
        ("experiment", "running", "unknown", True),
        ("experiment", "created", "succeeded", True),
        # experiment, refused
        ("experiment", None, "running", False),
        ("experiment", "created", "created", False),
        ("experiment", "running", "building", False),
        ("experiment", "running", "starting", False),
        ("experiment", "unknown", "unknown", False),
        ("experiment", "succeeded", "unknown", False),  # the 0.3.0 bug, fixed in 0.5
        ("experiment", "succeeded", "resuming", False),  # resume is a new experiment here
        ("experiment", "stopped", "stopped", False),
        ("experiment", "failed", "stopped", False),
        ("experiment", "succeeded", "failed", False),
        ("experiment", "running", "unschedulable", False),  # a job-only value
        ("experiment", "running", "bogus", False),
        # job
        ("job", None, "created", True),
        ("job", None, "building", True),
        ("job", "scheduled", "building", True),
        ("job", "created", "scheduled", True),
        ("job", "building", "running", True),
        ("job", "unknown", "running", True),
        ("job", "unschedulable", "running", True),
        ("job", "scheduled", "unschedulable", True),
        ("job", "running", "failed", True),
        ("job", "running", "scheduled", False),
        ("job", "running", "building", False),
        ("job", None, "running", False),
        ("job", "stopped", "stopped", False),
        ("job", "failed", "running", False),
        ("job", "succeeded", "unknown", False),
        # group
        ("group", None, "created", True),
        ("group", "created", "running", True),
        ("group", "running", "succeeded", True),
        ("group", "created", "failed", True),
        ("group", "created", "stopped", True),
        ("group", "running", "stopped", True),
        ("group", "created", "succeeded", False),
        ("group", "stopped", "running", False),
        ("group", "stopped", "stopped", False),
        ("group", "succeeded", "stopped", False),
        ("group", "running", "done", False),  # 0.3.2+ name, not ours
    ],
)
def test_transitions(table: str, current: str | None, new: str, allowed: bool) -> None:
    assert can_transition(table, current, new) is allowed


@pytest.mark.parametrize("table", TABLES)
def test_done_states_are_terminal(table: str) -> None:
    rules = RULES[table]
    for done in rules.done:
        for new in rules.values:
            assert not can_transition(table, done, new), (done, new)


@pytest.mark.parametrize("table", TABLES)
def test_every_reachable_status_can_still_reach_a_done_state(table: str) -> None:
    rules = RULES[table]
    successors = {
        current: {new for new in rules.values if can_transition(table, current, new)}
        for current in (None, *rules.values)
    }
    reachable, frontier = set(), [None]
    while frontier:
        current = frontier.pop()
        for new in successors[current] - reachable:
            reachable.add(new)
            frontier.append(new)
    assert reachable == rules.values  # no dead value in the table
    for status in reachable - rules.done:
        assert successors[status] & rules.done, status


@given(table=st.sampled_from(TABLES), data=st.data())
def test_random_allowed_walks_stay_valid_and_never_leave_done(table: str, data) -> None:
    rules = RULES[table]
    ordered = sorted(rules.values)
    current: str | None = None
    for _ in range(data.draw(st.integers(1, 30))):
        options = [new for new in ordered if can_transition(table, current, new)]
        if not options:
            assert current in rules.done
            return
        new = data.draw(st.sampled_from(options))
        assert current not in rules.done
        current = new
    assert current in rules.values
    assert any(can_transition(table, current, d) for d in rules.done) or current in rules.done


def test_predicates() -> None:
    assert is_done("stopped") and not is_done("running") and not is_done(None)
    assert "resuming" in rules_for("experiment").pending
    assert is_running("experiment", "starting") and not is_running("group", "created")
    assert is_running("group", "running")


@pytest.mark.parametrize(
    ("jobs", "master", "expected"),
    [
        (["running", "unknown"], None, "unknown"),
        (["running", "unschedulable"], None, "warning"),
        (["running", "warning"], None, "warning"),
        (["running", "stopped"], None, "stopped"),
        (["succeeded", "succeeded"], None, "succeeded"),
        (["succeeded", "failed"], None, "failed"),
        (["running", "failed"], None, "failed"),
        (["created", "running"], None, "starting"),
        (["building", "scheduled"], None, "starting"),
        (["scheduled", "running"], None, "running"),
        (["running", "succeeded"], None, "running"),
        (["succeeded", "running"], "succeeded", "succeeded"),  # master done wins
        (["failed", "running", "unknown"], "failed", "failed"),
        (["running", "stopped"], "running", "stopped"),
        ([], None, None),
    ],
)
def test_experiment_status_from_jobs(jobs: list[str], master: str | None, expected) -> None:
    assert experiment_status_from_jobs(jobs, master) == expected


@pytest.mark.parametrize(
    ("table", "new", "started", "finished", "expected"),
    [
        ("experiment", "scheduled", False, False, (False, False, False)),
        ("experiment", "starting", False, False, (True, False, False)),
        ("experiment", "running", False, False, (True, False, False)),
        ("experiment", "running", True, False, (False, False, False)),
        ("experiment", "succeeded", True, False, (False, True, False)),
        ("experiment", "failed", False, False, (False, True, True)),
        ("experiment", "stopped", True, True, (False, False, False)),
        ("job", "building", False, False, (True, False, False)),
        ("job", "scheduled", False, False, (True, False, False)),
        ("job", "created", False, False, (False, False, False)),
        ("group", "running", False, False, (True, False, False)),
        ("group", "succeeded", True, False, (False, True, False)),
    ],
)
def test_clock_update(table, new, started, finished, expected) -> None:
    update = clock_update(table, new, has_started_at=started, has_finished_at=finished)
    got = (update.set_started_at, update.set_finished_at, update.started_at_from_created_at)
    assert got == expected
