"""Experiment routes under /api/v1/{username}/{project}/experiments: the routes every run has
(app.routers.runs), then list, create, bulk stop and delete, clones, metrics and replicas."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.deps import (
    WAKE,
    AuthDep,
    ListDep,
    ProjectRead,
    ProjectWrite,
    SessionDep,
    SettingsDep,
    run_dependency,
    run_token_route,
    wake_after_commit,
)
from app.kinds import EXPERIMENT
from app.routers.logfiles import LOG_ANSWER, TailQuery, log_response
from app.routers.runs import CLONE_SUMMARIES, NO_CONTENT, STOPPING, RunRoutes, add_run_routes
from app.schemas.common import Detail, Page, RowId
from app.schemas.experiments import (
    CloneBody,
    ExperimentCreate,
    ExperimentDetailOut,
    ExperimentFilters,
    ExperimentJobDetailOut,
    ExperimentJobOut,
    ExperimentOut,
    IdsBody,
    MetricOut,
    RunUpdate,
)
from app.schemas.statuses import JobStatusOut
from app.services import experiments as service
from app.services import logs, runs
from app.services import metrics as metrics_service
from app.services.runs import RunAccess
from app.services.users import Principal

router = APIRouter(prefix="/api/v1/{username}/{project}", tags=["experiments"])
# Rows leave out what they do not carry (`?metrics=true` / `?declarations=true` lists).
DETAIL: dict[str, Any] = {
    "response_model": ExperimentDetailOut,
    "response_model_exclude_unset": True,
}
ONE = "/experiments/{exp_id}"
ExperimentRead = Annotated[RunAccess, run_dependency(EXPERIMENT)]
ExperimentWrite = Annotated[RunAccess, run_dependency(EXPERIMENT, "write")]
ExperimentSelf = Annotated[RunAccess, run_dependency(EXPERIMENT, "run_write")]
own_run = run_token_route(EXPERIMENT.kind, id_param=EXPERIMENT.id_param)


async def render(session: SessionDep, ra: RunAccess, principal: Principal) -> ExperimentDetailOut:
    """The detail of `ra.run`, with the facts its lookup brought or one more query for them."""
    facts = ra.facts or await runs.experiment_facts(session, ra.run, principal.user.id)
    return ExperimentDetailOut.from_facts(ra.run, ra.project_unique, facts)


@router.get(
    "/experiments",
    summary="List the project's experiments",
    response_model=Page[ExperimentOut],
    response_model_exclude_unset=True,
)
async def list_project_experiments(
    access: ProjectRead,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
    filters: Annotated[ExperimentFilters, Depends()],
) -> Any:
    return await service.experiment_page(session, access, principal.user, params, filters)


@router.post("/experiments", summary="Create an experiment", status_code=201, **DETAIL)
async def create_experiment(
    access: ProjectWrite,
    body: ExperimentCreate,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
) -> Any:
    fields = body.model_dump(exclude={"experiment_group"})
    exp = await service.create_experiment(
        session, access, principal.user, **fields, group_id=body.experiment_group
    )
    if service.owes_reconcile(exp):
        wake_after_commit(session, request)
    facts = runs.new_experiment_facts(principal.user.username)
    return ExperimentDetailOut.from_facts(exp, access.unique_name, facts)


@router.post(
    "/experiments/stop",
    summary="Stop several experiments",
    response_model=Detail,
    dependencies=[WAKE],
)
async def stop_many(access: ProjectWrite, body: IdsBody, session: SessionDep) -> Detail:
    await runs.stop_runs(session, access, EXPERIMENT, body.ids)
    return STOPPING


@router.post(
    "/experiments/delete", summary="Delete several experiments", dependencies=[WAKE], **NO_CONTENT
)
async def delete_many(access: ProjectWrite, body: IdsBody, session: SessionDep) -> Response:
    await runs.delete_project_runs(session, access, EXPERIMENT, body.ids)
    return Response(status_code=204)


add_run_routes(router, EXPERIMENT, RunRoutes(ExperimentDetailOut, render, RunUpdate, DETAIL))


def add_clone_route(strategy: str) -> None:
    @router.post(
        f"{ONE}/{strategy}",
        summary=CLONE_SUMMARIES[strategy].format(EXPERIMENT.label),
        status_code=201,
        dependencies=[WAKE],
        **DETAIL,
    )
    async def clone(
        ra: ExperimentWrite,
        session: SessionDep,
        principal: AuthDep,
        body: CloneBody | None = None,
    ) -> Any:
        exp = await service.clone_experiment(
            session, ra.access, principal.user, ra.run, strategy=strategy, body=body
        )
        return await render(session, RunAccess(ra.access, exp, EXPERIMENT.kind), principal)


for clone_strategy in EXPERIMENT.clones:
    add_clone_route(clone_strategy)


@router.get(
    ONE + "/metrics", summary="All metric points, oldest first", response_model=Page[MetricOut]
)
@own_run
async def list_metrics(ra: ExperimentRead, session: SessionDep, params: ListDep) -> Any:
    found = await metrics_service.list_metrics(session, ra.run, params)
    return Page.of(found, metrics_service.metric_out)


@router.post(
    ONE + "/metrics",
    summary="Post one metric point or a list",
    status_code=201,
    response_model=MetricOut | None,
    responses={201: {"description": "The point (object body), or an empty body (list body)"}},
)
@own_run
async def post_metrics(
    ra: ExperimentSelf,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[Any, Body()] = None,
    dedupe: Annotated[
        bool, Query(description="skip points already stored (same created_at and values)")
    ] = False,
) -> Any:
    points = metrics_service.validate_points(body, limit=settings.max_metrics_per_request)
    row = await metrics_service.add_metrics(session, ra.run, points, dedupe=dedupe)
    return Response(status_code=201) if row is None else row


def _unique(ra: RunAccess) -> str:
    return EXPERIMENT.unique_name(ra.project_unique, ra.run.id, ra.run.experiment_group_id)


@router.get(
    ONE + "/jobs", summary="The experiment's replicas", response_model=Page[ExperimentJobOut]
)
async def list_jobs(ra: ExperimentRead, session: SessionDep, params: ListDep) -> Any:
    found = await service.list_replicas(session, ra.run, params)
    return Page.of(found, lambda job: ExperimentJobOut.from_row(job, _unique(ra)))


@router.get(ONE + "/jobs/{job_id}", summary="One replica", response_model=ExperimentJobDetailOut)
async def get_job(ra: ExperimentRead, job_id: RowId, session: SessionDep) -> Any:
    job = await service.get_replica(session, ra.run, job_id)
    return ExperimentJobDetailOut.from_row(job, _unique(ra))


@router.get(
    ONE + "/jobs/{job_id}/statuses",
    summary="A replica's statuses",
    response_model=Page[JobStatusOut],
)
async def list_job_statuses(
    ra: ExperimentRead, job_id: RowId, session: SessionDep, params: ListDep
) -> Any:
    found = await service.list_replica_statuses(session, ra.run, job_id, params)
    return Page.of(found, JobStatusOut.from_row)


@router.get(ONE + "/jobs/{job_id}/logs", summary="A replica's log", **LOG_ANSWER)
async def get_job_logs(
    ra: ExperimentRead,
    job_id: RowId,
    session: SessionDep,
    settings: SettingsDep,
    tail: TailQuery = None,
) -> StreamingResponse:
    job = await service.get_replica(session, ra.run, job_id)
    return log_response(logs.read_replica_log(settings, job, tail=tail))


@router.post(
    ONE + "/jobs/{job_id}/_heartbeat",
    summary="A replica is alive (counts for its experiment)",
    response_model=Detail,
)
@own_run
async def job_heartbeat(ra: ExperimentSelf, job_id: RowId, session: SessionDep) -> Detail:
    await service.replica_heartbeat(session, ra.run, job_id)
    return Detail(detail="ok")
