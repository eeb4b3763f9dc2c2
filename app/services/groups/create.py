"""Creating a group: validate and plan its polyaxonfile, store it, change it, delete it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, NotFound
from app.kinds import EXPERIMENT, GROUP
from app.logic.content import parse_content
from app.logic.errors import SpecError
from app.logic.hptuning import HPTuningConfig
from app.logic.polyaxonfile import PolyaxonFile, parse_polyaxonfile
from app.logic.statuses import Status
from app.logic.sweep_plan import SweepPlan, plan_sweep
from app.models import Bookmark, Experiment, ExperimentGroup, User
from app.models.base import utcnow
from app.schemas.groups import GroupCreate, GroupUpdate
from app.services.groups.states import BOOKMARK
from app.services.groups.stop import request_stop
from app.services.projects import ProjectAccess, set_bookmark
from app.services.statuses import lock_row, set_status
from app.services.unique_names import unique_name
from app.services.users import delete_run_tokens

REQUIRED_ON_UPDATE = ("concurrency", "content")


@dataclass(frozen=True)
class CheckedGroup:
    """A validated group file with its plan and the text to store as `content`."""

    file: PolyaxonFile
    hptuning: HPTuningConfig
    plan: SweepPlan
    content: str


@dataclass(frozen=True)
class ProjectGroup:
    """A group resolved under the project of the path, with the caller's access to it."""

    access: ProjectAccess
    row: ExperimentGroup


def check_group(content: str | Mapping[str, Any], *, max_experiments: int) -> CheckedGroup:
    """Validate a group polyaxonfile and plan it; refuse sweeps above `max_experiments`."""
    parsed = parse_polyaxonfile(
        parse_content(content), expected_kind="group", max_values=max_experiments
    )
    config = parsed.hptuning
    if config is None:
        raise SpecError("hptuning", "A matrix definition is required for group specification")
    plan = plan_sweep(config)
    if plan.total_experiments > max_experiments:
        raise BadRequest(
            f"content: the group would create {plan.total_experiments} experiments, more than "
            f"the {max_experiments} allowed (PLX_MAX_GROUP_EXPERIMENTS)."
        )
    text = content if isinstance(content, str) else json.dumps(content)
    return CheckedGroup(parsed, config, plan, text)


def _apply_file(group: ExperimentGroup, checked: CheckedGroup) -> None:
    """The columns a group derives from its polyaxonfile."""
    config = checked.hptuning
    group.content = checked.content
    group.spec = checked.file.to_dict()
    group.hptuning = config.to_dict()
    group.search_algorithm = config.search_algorithm
    group.concurrency = config.concurrency
    group.num_planned = checked.plan.total_experiments


async def create_group(
    session: AsyncSession,
    access: ProjectAccess,
    user: User,
    body: GroupCreate,
    *,
    max_experiments: int,
) -> ExperimentGroup:
    checked = check_group(body.content, max_experiments=max_experiments)
    config = checked.hptuning
    group = ExperimentGroup(
        user_id=user.id,
        project_id=access.project.id,
        name=body.name,
        description=body.description,
        readme=body.readme,
        tags=list(dict.fromkeys(body.tags))
        if body.tags is not None
        else (checked.file.tags or None),
        group_type="study",
        # The stored seed makes a re-run after a crash suggest the same points.
        seed=config.fixed_seed if config.fixed_seed is not None else secrets.randbelow(2**31),
        code_reference_id=access.project.code_reference_id,
    )
    _apply_file(group, checked)
    session.add(group)
    # No check before: two creates would both pass it; the constraint decides (issue 15).
    async with unique_name(session, GROUP.kind, body.name):
        await session.flush()
    await set_status(session, group, Status.CREATED)
    return group


async def get_group(session: AsyncSession, access: ProjectAccess, group_id: int) -> ExperimentGroup:
    group = await session.scalar(
        select(ExperimentGroup).where(
            ExperimentGroup.id == group_id, ExperimentGroup.project_id == access.project.id
        )
    )
    if group is None:
        raise NotFound()
    return group


async def update_group(
    session: AsyncSession,
    group: ExperimentGroup,
    body: GroupUpdate,
    *,
    max_experiments: int,
) -> ExperimentGroup:
    """Apply the fields the body sets (PATCH and PUT alike); `merge` adds tags instead."""
    changes = body.model_dump(exclude_unset=True, exclude={"merge"})
    for required in REQUIRED_ON_UPDATE:
        if required in changes and changes[required] is None:
            raise BadRequest(f"{required}: may not be null")
    if "content" in changes:
        await _replace_content(session, group, changes.pop("content"), max_experiments)
    if body.merge and changes.get("tags") is not None:
        changes["tags"] = list(dict.fromkeys([*(group.tags or []), *changes["tags"]]))
    if "concurrency" in changes:
        # Takes effect at the next group step: releases never exceed the new value.
        group.hptuning = {**(group.hptuning or {}), "concurrency": changes["concurrency"]}
    for key, value in changes.items():
        setattr(group, key, value)
    group.updated_at = utcnow()
    async with unique_name(session, GROUP.kind, changes.get("name")):
        await session.flush()
    return group


async def _replace_content(
    session: AsyncSession, group: ExperimentGroup, content: Any, max_experiments: int
) -> None:
    has_experiments = await session.scalar(
        select(Experiment.id).where(Experiment.experiment_group_id == group.id).limit(1)
    )
    if group.last_status != Status.CREATED or has_experiments is not None:
        raise BadRequest("content: the polyaxonfile of a group cannot change once it has started.")
    checked = check_group(content, max_experiments=max_experiments)
    seed = group.seed
    _apply_file(group, checked)
    fixed = checked.hptuning.fixed_seed
    group.seed = fixed if fixed is not None else seed


async def delete_group(session: AsyncSession, group: ExperimentGroup) -> None:
    """Rows cascade; the run step sees workloads without rows and stops them."""
    # The group before its experiments, as everywhere (see the package docstring).
    if await lock_row(session, group) is None:
        return
    await session.execute(
        delete(Bookmark).where(Bookmark.content_type == BOOKMARK, Bookmark.object_id == group.id)
    )
    await request_stop(session, group.id, None)
    members = select(Experiment.id).where(Experiment.experiment_group_id == group.id)
    await delete_run_tokens(session, EXPERIMENT.kind, members)
    await session.delete(group)
    await session.flush()


async def bookmark_group(session: AsyncSession, user: User, group_id: int, *, on: bool) -> None:
    await set_bookmark(session, user, BOOKMARK, group_id, on=on)
