"""Reading groups for the API: lists, and what a group's serialiser needs beyond its row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.logic.query import FieldKind
from app.models import (
    Experiment,
    ExperimentGroup,
    ExperimentGroupStatus,
    ExperimentMetric,
    GroupDecision,
    User,
)
from app.services.groups.counters import experiment_counts, has_tensorboard
from app.services.groups.create import ProjectGroup
from app.services.groups.states import BOOKMARK
from app.services.listing import FieldMap, ListParams, apply_query, apply_sort, paginate
from app.services.projects import ProjectAccess, bookmarked_ids

# count, rows of one page, next and previous page URLs (app.services.listing.paginate)
Listed = tuple[int, list[Any], str | None, str | None]
# The fields a group's serialiser takes beside its row (app.schemas.groups.GroupOut.from_row).
Facts = dict[str, Any]

GROUP_FIELDS = FieldMap.for_run(
    ExperimentGroup,
    {
        "search_algorithm": (FieldKind.VALUE, ExperimentGroup.search_algorithm),
        "concurrency": (FieldKind.SCALAR, ExperimentGroup.concurrency),
    },
)


async def _creators(
    session: AsyncSession, access: ProjectAccess, groups: Sequence[ExperimentGroup]
) -> dict[int, str]:
    """The usernames of the groups' creators; the project's owner is known already."""
    names = {access.owner.id: access.owner.username}
    others = {g.user_id for g in groups} - names.keys()
    if others:
        rows = await session.execute(select(User.id, User.username).where(User.id.in_(others)))
        names.update(dict(rows.tuples().all()))
    return names


async def describe_groups(
    session: AsyncSession, access: ProjectAccess, viewer: User, groups: Sequence[ExperimentGroup]
) -> list[Facts]:
    """Per group: its project's and creator's names, and whether `viewer` bookmarked it."""
    marked = await bookmarked_ids(session, viewer, BOOKMARK, [g.id for g in groups])
    creators = await _creators(session, access, groups)
    return [
        {
            "project": access.unique_name,
            "user": creators.get(g.user_id, ""),
            "bookmarked": g.id in marked,
        }
        for g in groups
    ]


async def describe_group_detail(session: AsyncSession, group: ProjectGroup, viewer: User) -> Facts:
    """The facts of the group, with its experiment counters and tensorboard."""
    (facts,) = await describe_groups(session, group.access, viewer, [group.row])
    facts["has_tensorboard"] = await has_tensorboard(session, group.row.id)
    facts.update(await experiment_counts(session, group.row.id))
    return facts


async def list_groups(
    session: AsyncSession, access: ProjectAccess, viewer: User, params: ListParams
) -> Listed:
    """A page of the project's groups, each as (row, facts)."""
    stmt = select(ExperimentGroup).where(ExperimentGroup.project_id == access.project.id)
    stmt = apply_query(stmt, params.query, GROUP_FIELDS)
    count, rows, next_url, previous = await paginate(
        session, apply_sort(stmt, params.sort, GROUP_FIELDS), params
    )
    facts = await describe_groups(session, access, viewer, rows)
    return count, list(zip(rows, facts, strict=True)), next_url, previous


async def _oldest_first(
    session: AsyncSession,
    model: type[ExperimentGroupStatus | GroupDecision],
    group_id: int,
    params: ListParams,
) -> Listed:
    stmt = (
        select(model)
        .where(model.experiment_group_id == group_id)
        .order_by(model.created_at, model.id)
    )
    return await paginate(session, stmt, params)


async def list_statuses(
    session: AsyncSession, group: ExperimentGroup, params: ListParams
) -> Listed:
    return await _oldest_first(session, ExperimentGroupStatus, group.id, params)


async def list_decisions(
    session: AsyncSession, group: ExperimentGroup, params: ListParams
) -> Listed:
    return await _oldest_first(session, GroupDecision, group.id, params)


async def list_metrics(session: AsyncSession, group: ExperimentGroup, params: ListParams) -> Listed:
    stmt = (
        select(ExperimentMetric)
        .join(Experiment, Experiment.id == ExperimentMetric.experiment_id)
        .where(Experiment.experiment_group_id == group.id)
        .order_by(ExperimentMetric.created_at, ExperimentMetric.id)
    )
    return await paginate(session, stmt, params)
