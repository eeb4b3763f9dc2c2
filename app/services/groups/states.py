"""The status sets the group services compare experiments and groups with (app.logic.statuses)."""

from __future__ import annotations

from app.kinds import GROUP
from app.logic.statuses import rules_for

EXPERIMENT_RULES = rules_for("experiment")
GROUP_RULES = rules_for("group")

# Sorted tuples: a statement's IN list comes out the same on every run.
PENDING = tuple(sorted(EXPERIMENT_RULES.pending))
RUNNING = tuple(sorted(EXPERIMENT_RULES.running))
DONE = tuple(sorted(EXPERIMENT_RULES.done))
# A group the group step still drives: created or running.
GROUP_ACTIVE = tuple(sorted(GROUP_RULES.pending | GROUP_RULES.running))
# A tensorboard (a job-like run) that is up.
PLUGIN_RUNNING = rules_for("job").running

# Bookmark.content_type of a group.
BOOKMARK: str = GROUP.bookmark or "experiment_group"
