"""Reads the dashboard needs, documented in the OpenAPI like every route: downsampled metric
series of an experiment, and a group's experiments as points for parallel coordinates."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from app.deps import AuthDep, SessionDep
from app.routers.groups import GroupRead
from app.schemas.common import RowId
from app.schemas.dashboard import ExperimentSeriesOut
from app.schemas.groups import GroupPointsOut
from app.services import runs, series

router = APIRouter(prefix="/api/v1/{username}/{project}", tags=["dashboard"])


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
    group: GroupRead,
    session: SessionDep,
    metric: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=20_000)] = 10_000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    return await series.group_points(session, group.row, metric=metric, limit=limit, offset=offset)
