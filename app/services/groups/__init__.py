"""Experiment groups, one module per job; the API and the reconciler share these functions.

- `create`: validate and plan a group file, store, change and delete a group;
- `materialise`: insert the experiments the sweep suggests, in idempotent batches;
- `release`: let held experiments start within the concurrency;
- `stop`: stop a group's experiments in bulk, record the sweep's decisions;
- `counters`, `reads`: counters and lists for the API.

Restarts, resumes and copies of a group's experiment (and experiments created in a group through
the API) join the group without a suggestion index, so they never count against the plan nor
collide with UNIQUE(group, suggestion_index); they are held like the planned ones and released in
id order within the same concurrency (v0 started them at once, #706). The group's `succeeded`
waits for them, and a group that is already over still releases its held clones.

Row locks follow one order: the group, then its experiments by ascending id (bulk updates lock
through an ordered FOR NO KEY UPDATE subquery), then an experiment's jobs.
"""

from app.services.groups.counters import count_unfinished, experiment_counts, has_tensorboard
from app.services.groups.create import (
    CheckedGroup,
    ProjectGroup,
    bookmark_group,
    check_group,
    create_group,
    delete_group,
    get_group,
    update_group,
)
from app.services.groups.materialise import (
    BATCH_SIZE,
    INDEXED,
    Existing,
    IndexedCursor,
    insert_suggestions,
    materialise,
    materialise_indexed,
    read_trials,
)
from app.services.groups.reads import (
    GROUP_FIELDS,
    describe_group_detail,
    describe_groups,
    list_decisions,
    list_groups,
    list_metrics,
    list_statuses,
)
from app.services.groups.release import held_clones_of, release_experiments, starts_experiments
from app.services.groups.states import DONE, GROUP_ACTIVE, PENDING, RUNNING
from app.services.groups.stop import (
    locked_in_id_order,
    record_decision,
    request_stop,
    stop_group,
    stop_pending_experiments,
)

__all__ = [
    "BATCH_SIZE",
    "DONE",
    "GROUP_ACTIVE",
    "GROUP_FIELDS",
    "INDEXED",
    "PENDING",
    "RUNNING",
    "CheckedGroup",
    "Existing",
    "IndexedCursor",
    "ProjectGroup",
    "bookmark_group",
    "check_group",
    "count_unfinished",
    "create_group",
    "delete_group",
    "describe_group_detail",
    "describe_groups",
    "experiment_counts",
    "get_group",
    "has_tensorboard",
    "held_clones_of",
    "insert_suggestions",
    "list_decisions",
    "list_groups",
    "list_metrics",
    "list_statuses",
    "locked_in_id_order",
    "materialise",
    "materialise_indexed",
    "read_trials",
    "record_decision",
    "release_experiments",
    "request_stop",
    "starts_experiments",
    "stop_group",
    "stop_pending_experiments",
    "update_group",
]
