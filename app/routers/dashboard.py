"""Reads the dashboard needs, documented in the OpenAPI like every route: downsampled metric
series of an experiment, and a group's experiments as points for parallel coordinates."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.deps import AuthDep, SessionDep
from app.schemas.common import RowId
from app.services import groups as groups_service
from app.services import projects as projects_service
from app.services import runs, series

router = APIRouter(prefix="/api/v1/{username}/{project}", tags=["dashboard"])


class SeriesOut(BaseModel):
    name: str
    count: int  # points of this series in the range, before downsampling
    x: list[float]
    y: list[float]


class ExperimentSeriesOut(BaseModel):
    experiment: int
    axis: Literal["step", "time"]
    total: int  # metric points the run has reported
    series: list[SeriesOut]


class GroupPointOut(BaseModel):
    id: int
    status: str | None
    declarations: dict[str, Any]
    metric: float | None
    iteration: int | None  # the search's iteration (hyperband: one per bracket and rung)
    original: int | None  # a promoted trial's parent, in the rung below


class RungOut(BaseModel):
    iteration: int
    bracket: int
    rung: int
    n_configs: int
    resource: float


class GroupPointsOut(BaseModel):
    count: int
    metric: str | None
    results: list[GroupPointOut]
    rungs: list[RungOut]  # hyperband's schedule; empty for other searches


@router.get(
    "/experiments/{exp_id}/metrics/series",
    summary="Metric series of an experiment, downsampled to at most `points` points each"
    " (lowest and highest point of each bucket kept); `x_min`/`x_max` zoom into a range",
    response_model=ExperimentSeriesOut,
)
async def experiment_series(
    username: str,
    project: str,
    exp_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    names: Annotated[str | None, Query(max_length=4096, description="comma-separated")] = None,
    points: Annotated[int, Query(ge=2, le=20_000)] = 1000,
    axis: Literal["step", "time"] = "step",
    x_min: float | None = None,
    x_max: float | None = None,
) -> dict[str, Any]:
    ra = await runs.get_run(session, principal, username, project, "experiment", exp_id)
    query = series.SeriesQuery(
        names=series.parse_names(names, ra.run.last_metric),
        points=points,
        axis=axis,
        x_min=x_min,
        x_max=x_max,
    )
    return await series.experiment_series(session, ra.run, query)


@router.get(
    "/groups/{group_id}/points",
    summary="A group's experiments with status, declarations and last value of `metric`,"
    " oldest first (parallel coordinates)",
    response_model=GroupPointsOut,
)
async def group_points(
    username: str,
    project: str,
    group_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    metric: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=20_000)] = 10_000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    access = await projects_service.get_project(session, principal, username, project)
    group = await groups_service.get_group(session, access, group_id)
    return await series.group_points(session, group, metric=metric, limit=limit, offset=offset)
