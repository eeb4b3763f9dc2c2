"""Experiment routes under /api/v1/{username}/{project}/experiments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from app.deps import (
    AuthDep,
    ListDep,
    LogUsageDep,
    SessionDep,
    SettingsDep,
    run_token_route,
    wake_after_commit,
)
from app.models import Experiment
from app.routers.logfiles import LOG_ANSWER, TailQuery, log_response
from app.schemas.common import Detail, Page, RowId
from app.schemas.experiments import (
    CloneBody,
    ExperimentCreate,
    ExperimentDetailOut,
    ExperimentJobDetailOut,
    ExperimentJobOut,
    ExperimentOut,
    IdsBody,
    MetricOut,
    RunUpdate,
)
from app.schemas.statuses import ExperimentStatusOut, JobStatusOut, StatusCreate
from app.services import experiments as service
from app.services import logs, runs
from app.services import metrics as metrics_service
from app.services.jobs import stop_run, update_run
from app.services.projects import bookmarked_ids, get_project, set_bookmark

router = APIRouter(prefix="/api/v1/{username}/{project}", tags=["experiments"])
NO_CONTENT = {"status_code": status.HTTP_204_NO_CONTENT, "response_class": Response}
# Rows leave out what they do not carry (`?metrics=true` / `?declarations=true` lists).
DETAIL = {"response_model": ExperimentDetailOut, "response_model_exclude_unset": True}


async def _original_groups(session: Any, rows: list[Experiment]) -> dict[int, int | None]:
    """Group of each page row's original, in one query: `original` is its unique_name."""
    ids = {e.original_id for e in rows if e.original_id}
    if not ids:
        return {}
    found = await session.execute(
        select(Experiment.id, Experiment.experiment_group_id).where(Experiment.id.in_(ids))
    )
    return dict(found.all())


def _unique(project_unique: str, exp_id: RowId, group_id: RowId | None) -> str:
    return f"{project_unique}.{group_id}.{exp_id}" if group_id else f"{project_unique}.{exp_id}"


def _out(
    exp: Experiment,
    project_unique: str,
    *,
    bookmarked: bool = False,
    original_groups: dict[int, int | None] | None = None,
) -> dict[str, Any]:
    group = exp.experiment_group_id
    prefix = f"{project_unique}.{group}" if group else project_unique
    return {
        "id": exp.id,
        "uuid": exp.uuid,
        "name": exp.name,
        "unique_name": f"{prefix}.{exp.id}",
        "user": None,  # filled by the caller (the creator, not always the owner)
        "description": exp.description,
        "created_at": exp.created_at.isoformat(),
        "updated_at": exp.updated_at.isoformat(),
        "started_at": exp.started_at.isoformat() if exp.started_at else None,
        "finished_at": exp.finished_at.isoformat() if exp.finished_at else None,
        "last_status": exp.last_status,
        "original": (
            _unique(project_unique, exp.original_id, (original_groups or {}).get(exp.original_id))
            if exp.original_id
            else None
        ),
        "cloning_strategy": exp.cloning_strategy,
        "project": project_unique,
        "experiment_group": f"{project_unique}.{group}" if group else None,
        "build_job": f"{project_unique}.builds.{exp.build_job_id}" if exp.build_job_id else None,
        "tags": exp.tags,
        "last_metric": exp.last_metric,
        "declarations": exp.declarations,
        "bookmarked": bookmarked,
    }


async def _render(session, ra, principal, *, facts=None) -> dict[str, Any]:
    """The detail of `ra.run`; `facts` when the caller knows them (a row it just created)."""
    exp = ra.run
    if facts is None:
        facts = await runs.experiment_facts(session, exp, principal.user.id)
    originals = {exp.original_id: facts.original_group_id} if exp.original_id else None
    out = _out(exp, ra.project_unique, bookmarked=facts.bookmarked, original_groups=originals)
    out["user"] = facts.creator
    out.update(
        readme=exp.readme,
        config=exp.config,
        resources=exp.resources,
        run_env=exp.run_env,
        data_refs=exp.data_refs,
        num_jobs=facts.num_jobs,
        is_clone=exp.original_id is not None,
        is_managed=exp.is_managed,
        code_reference=exp.code_reference_id,
        has_tensorboard=facts.has_tensorboard,
    )
    if exp.last_metric:
        out["last_metric"] = {k: round(v, 7) for k, v in exp.last_metric.items()}
    return out


async def _get(session, principal, username, project, exp_id, **kw):
    return await runs.get_run(session, principal, username, project, "experiment", exp_id, **kw)


@router.get(
    "/experiments",
    summary="List the project's experiments",
    response_model=Page[ExperimentOut],
    response_model_exclude_unset=True,
)
async def list_experiments(
    username: str,
    project: str,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
    metrics: bool = False,
    declarations: bool = False,
    group: Annotated[int | None, Query()] = None,
    independent: bool = False,
) -> dict[str, Any]:
    access = await get_project(session, principal, username, project)
    count, rows, nxt, prev = await service.list_experiments(
        session, access, params, group=group, independent=independent
    )
    marked = await bookmarked_ids(session, principal.user, "experiment", [e.id for e in rows])
    names = await runs.usernames(session, (e.user_id for e in rows))
    originals = await _original_groups(session, rows)
    results = []
    for exp in rows:
        out = _out(exp, access.unique_name, bookmarked=exp.id in marked, original_groups=originals)
        out["user"] = names.get(exp.user_id, "")
        if metrics:
            keys = ("id", "uuid", "name", "unique_name", "last_metric", "started_at", "finished_at")
            out = {k: out[k] for k in keys}
        elif declarations:
            out = {k: out[k] for k in ("id", "uuid", "name", "unique_name", "declarations")}
        results.append(out)
    return {"count": count, "next": nxt, "previous": prev, "results": results}


@router.post("/experiments", summary="Create an experiment", status_code=201, **DETAIL)
async def create_experiment(
    username: str,
    project: str,
    body: ExperimentCreate,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
) -> dict[str, Any]:
    access = await get_project(session, principal, username, project, write=True)
    exp = await service.create_experiment(
        session,
        access,
        principal.user,
        config=body.config,
        declarations=body.declarations,
        name=body.name,
        description=body.description,
        tags=body.tags,
        group_id=body.experiment_group,
    )
    if body.run_env is not None:
        exp.run_env = body.run_env
    if exp.is_managed or exp.experiment_group_id is not None:
        # A tracking-only experiment (no `run`) never starts: no reconcile pass is owed.
        wake_after_commit(session, request)
    facts = runs.new_experiment_facts(principal.user.username)
    return await _render(session, runs.RunAccess(access, exp, "experiment"), principal, facts=facts)


@router.post("/experiments/stop", summary="Stop several experiments", response_model=Detail)
async def stop_many(
    username: str,
    project: str,
    body: IdsBody,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
) -> dict[str, Any]:
    access = await get_project(session, principal, username, project, write=True)
    for exp_id in sorted(set(body.ids)):  # rows locked by ascending id, as every writer does
        run = await session.get(Experiment, exp_id)
        if run is not None and run.project_id == access.project.id:
            await stop_run(session, run, message="Experiment was stopped.")
    wake_after_commit(session, request)
    return {"detail": "Stopping."}


@router.post("/experiments/delete", summary="Delete several experiments", **NO_CONTENT)
async def delete_many(
    username: str,
    project: str,
    body: IdsBody,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
) -> Response:
    access = await get_project(session, principal, username, project, write=True)
    found = [await session.get(Experiment, i) for i in body.ids]
    victims = [r for r in found if r is not None and r.project_id == access.project.id]
    await runs.delete_runs(session, "experiment", victims)
    wake_after_commit(session, request)
    return Response(status_code=204)


@router.get("/experiments/{exp_id}", summary="Get an experiment", **DETAIL)
@run_token_route("experiment", id_param="exp_id")
async def get_experiment(
    username: str, project: str, exp_id: RowId, session: SessionDep, principal: AuthDep
) -> dict[str, Any]:
    ra = await _get(session, principal, username, project, exp_id, facts_for=principal.user.id)
    return await _render(session, ra, principal, facts=ra.facts)


async def _update(username, project, exp_id, body, session, principal):
    # The tracking client updates its own experiment (log_tags, log_params, run_env).
    ra = await _get(session, principal, username, project, exp_id, run_write=True)
    changes = body.model_dump(exclude_unset=True, exclude={"merge"})
    await update_run(session, ra.run, "experiment", changes=changes, merge=body.merge)
    return await _render(session, ra, principal)


@router.patch("/experiments/{exp_id}", summary="Update an experiment", **DETAIL)
@run_token_route("experiment", id_param="exp_id")
async def patch_experiment(
    username: str,
    project: str,
    exp_id: RowId,
    body: RunUpdate,
    session: SessionDep,
    principal: AuthDep,
) -> dict[str, Any]:
    return await _update(username, project, exp_id, body, session, principal)


@router.put("/experiments/{exp_id}", summary="Update an experiment", **DETAIL)
@run_token_route("experiment", id_param="exp_id")
async def put_experiment(
    username: str,
    project: str,
    exp_id: RowId,
    body: RunUpdate,
    session: SessionDep,
    principal: AuthDep,
) -> dict[str, Any]:
    return await _update(username, project, exp_id, body, session, principal)


@router.delete("/experiments/{exp_id}", summary="Delete an experiment", **NO_CONTENT)
async def delete_experiment(
    username: str,
    project: str,
    exp_id: RowId,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
) -> Response:
    ra = await _get(session, principal, username, project, exp_id, write=True)
    await runs.delete_runs(session, "experiment", [ra.run])
    wake_after_commit(session, request)
    return Response(status_code=204)


@router.post("/experiments/{exp_id}/stop", summary="Stop an experiment", response_model=Detail)
async def stop_experiment(
    username: str,
    project: str,
    exp_id: RowId,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
) -> dict[str, Any]:
    ra = await _get(session, principal, username, project, exp_id, write=True)
    await stop_run(session, ra.run, message="Experiment was stopped.")
    wake_after_commit(session, request)
    return {"detail": "Stopping."}


async def _clone(strategy, username, project, exp_id, body, request, session, principal):
    ra = await _get(session, principal, username, project, exp_id, write=True)
    exp = await service.clone_experiment(
        session,
        ra.access,
        principal.user,
        ra.run,
        strategy=strategy,
        config=body.config if body else None,
        description=body.description if body else None,
    )
    wake_after_commit(session, request)
    return await _render(session, runs.RunAccess(ra.access, exp, "experiment"), principal)


@router.post(
    "/experiments/{exp_id}/restart",
    summary="Restart as a new experiment",
    status_code=201,
    **DETAIL,
)
async def restart(
    username: str,
    project: str,
    exp_id: RowId,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    body: CloneBody | None = None,
) -> dict[str, Any]:
    return await _clone("restart", username, project, exp_id, body, request, session, principal)


@router.post(
    "/experiments/{exp_id}/resume", summary="Resume in a new experiment", status_code=201, **DETAIL
)
async def resume(
    username: str,
    project: str,
    exp_id: RowId,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    body: CloneBody | None = None,
) -> dict[str, Any]:
    return await _clone("resume", username, project, exp_id, body, request, session, principal)


@router.post(
    "/experiments/{exp_id}/copy", summary="Copy into a new experiment", status_code=201, **DETAIL
)
async def copy(
    username: str,
    project: str,
    exp_id: RowId,
    request: Request,
    session: SessionDep,
    principal: AuthDep,
    body: CloneBody | None = None,
) -> dict[str, Any]:
    return await _clone("copy", username, project, exp_id, body, request, session, principal)


@router.get(
    "/experiments/{exp_id}/statuses",
    summary="Status history, oldest first",
    response_model=Page[ExperimentStatusOut],
)
@run_token_route("experiment", id_param="exp_id")
async def list_statuses(
    username: str,
    project: str,
    exp_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
) -> dict[str, Any]:
    ra = await _get(session, principal, username, project, exp_id)
    count, rows, nxt, prev = await runs.list_statuses(session, ra.run, params)
    results = [runs.status_out(r, "experiment") for r in rows]
    return {"count": count, "next": nxt, "previous": prev, "results": results}


@router.post(
    "/experiments/{exp_id}/statuses",
    summary="Report a status",
    status_code=201,
    response_model=ExperimentStatusOut,
)
@run_token_route("experiment", id_param="exp_id")
async def post_status(
    username: str,
    project: str,
    exp_id: RowId,
    body: StatusCreate,
    session: SessionDep,
    principal: AuthDep,
) -> dict[str, Any]:
    ra = await _get(session, principal, username, project, exp_id, run_write=True)
    row = await runs.post_status(
        session, ra.run, status=body.status, message=body.message, traceback=body.traceback
    )
    return runs.status_out(row, "experiment")


@router.get(
    "/experiments/{exp_id}/metrics",
    summary="All metric points, oldest first",
    response_model=Page[MetricOut],
)
@run_token_route("experiment", id_param="exp_id")
async def list_metrics(
    username: str,
    project: str,
    exp_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
) -> dict[str, Any]:
    ra = await _get(session, principal, username, project, exp_id)
    count, rows, nxt, prev = await metrics_service.list_metrics(session, ra.run, params)
    results = [metrics_service.metric_out(m) for m in rows]
    return {"count": count, "next": nxt, "previous": prev, "results": results}


@router.post(
    "/experiments/{exp_id}/metrics",
    summary="Post one metric point or a list",
    status_code=201,
    response_model=MetricOut | None,
    responses={201: {"description": "The point (object body), or an empty body (list body)"}},
)
@run_token_route("experiment", id_param="exp_id")
async def post_metrics(
    username: str,
    project: str,
    exp_id: RowId,
    session: SessionDep,
    settings: SettingsDep,
    principal: AuthDep,
    body: Annotated[Any, Body()] = None,
    dedupe: Annotated[
        bool, Query(description="skip points already stored (same created_at and values)")
    ] = False,
) -> Any:
    ra = await _get(session, principal, username, project, exp_id, run_write=True)
    points = metrics_service.validate_points(body, limit=settings.max_metrics_per_request)
    row = await metrics_service.add_metrics(session, ra.run, points, dedupe=dedupe)
    return Response(status_code=201) if row is None else row


@router.get("/experiments/{exp_id}/logs", summary="The run's log", **LOG_ANSWER)
@run_token_route("experiment", id_param="exp_id")
async def get_logs(
    username: str,
    project: str,
    exp_id: RowId,
    session: SessionDep,
    settings: SettingsDep,
    principal: AuthDep,
    tail: TailQuery = None,
) -> StreamingResponse:
    await _get(session, principal, username, project, exp_id)
    return log_response(logs.open_log(settings, "experiment", exp_id, tail=tail))


@router.post("/experiments/{exp_id}/logs", summary="Append log lines", response_model=Detail)
@run_token_route("experiment", id_param="exp_id")
async def post_logs(
    username: str,
    project: str,
    exp_id: RowId,
    session: SessionDep,
    settings: SettingsDep,
    principal: AuthDep,
    usage: LogUsageDep,
    body: Annotated[Any, Body()] = None,
) -> dict[str, str]:
    ra = await _get(session, principal, username, project, exp_id, run_write=True)
    await logs.append_log(
        session,
        settings,
        usage,
        kind="experiment",
        run_id=exp_id,
        owner_id=ra.access.project.user_id,
        body=body,
    )
    return {"detail": "Logged."}


@router.post("/experiments/{exp_id}/_heartbeat", summary="The run is alive", response_model=Detail)
@run_token_route("experiment", id_param="exp_id")
async def heartbeat(
    username: str, project: str, exp_id: RowId, session: SessionDep, principal: AuthDep
) -> dict[str, str]:
    ra = await _get(session, principal, username, project, exp_id, run_write=True)
    await runs.heartbeat(session, ra.run)
    return {"detail": "ok"}


def _job_out(job, exp_unique: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "uuid": job.uuid,
        "unique_name": f"{exp_unique}.{job.id}.{job.role}",
        "role": job.role,
        "experiment": job.experiment_id,
        "last_status": job.last_status,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "resources": job.resources,
        "node_scheduled": job.node_scheduled,
    }


@router.get(
    "/experiments/{exp_id}/jobs",
    summary="The experiment's replicas",
    response_model=Page[ExperimentJobOut],
)
async def list_jobs(
    username: str,
    project: str,
    exp_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
) -> dict[str, Any]:
    ra = await _get(session, principal, username, project, exp_id)
    unique = _out(ra.run, ra.project_unique)["unique_name"]
    count, rows, nxt, prev = await service.list_replicas(session, ra.run, params)
    return {
        "count": count,
        "next": nxt,
        "previous": prev,
        "results": [_job_out(j, unique) for j in rows],
    }


@router.get(
    "/experiments/{exp_id}/jobs/{job_id}",
    summary="One replica",
    response_model=ExperimentJobDetailOut,
)
async def get_job(
    username: str,
    project: str,
    exp_id: RowId,
    job_id: RowId,
    session: SessionDep,
    principal: AuthDep,
) -> dict[str, Any]:
    ra = await _get(session, principal, username, project, exp_id)
    job = await service.get_replica(session, ra.run, job_id)
    return {
        **_job_out(job, _out(ra.run, ra.project_unique)["unique_name"]),
        "definition": job.definition,
    }


@router.get(
    "/experiments/{exp_id}/jobs/{job_id}/statuses",
    summary="A replica's statuses",
    response_model=Page[JobStatusOut],
)
async def list_job_statuses(
    username: str,
    project: str,
    exp_id: RowId,
    job_id: RowId,
    session: SessionDep,
    principal: AuthDep,
    params: ListDep,
) -> dict[str, Any]:
    ra = await _get(session, principal, username, project, exp_id)
    job = await service.get_replica(session, ra.run, job_id)
    count, rows, nxt, prev = await runs.list_statuses(session, job, params)
    return {
        "count": count,
        "next": nxt,
        "previous": prev,
        "results": [runs.status_out(r, "job") for r in rows],
    }


@router.get("/experiments/{exp_id}/jobs/{job_id}/logs", summary="A replica's log", **LOG_ANSWER)
async def get_job_logs(
    username: str,
    project: str,
    exp_id: RowId,
    job_id: RowId,
    session: SessionDep,
    settings: SettingsDep,
    principal: AuthDep,
    tail: TailQuery = None,
) -> StreamingResponse:
    ra = await _get(session, principal, username, project, exp_id)
    job = await service.get_replica(session, ra.run, job_id)
    replica = f"{job.role}-{job.replica_index}"
    return log_response(logs.open_log(settings, "experiment", exp_id, replica, tail=tail))


@router.post(
    "/experiments/{exp_id}/jobs/{job_id}/_heartbeat",
    summary="A replica is alive (counts for its experiment)",
    response_model=Detail,
)
@run_token_route("experiment", id_param="exp_id")
async def job_heartbeat(
    username: str,
    project: str,
    exp_id: RowId,
    job_id: RowId,
    session: SessionDep,
    principal: AuthDep,
) -> dict[str, str]:
    ra = await _get(session, principal, username, project, exp_id, run_write=True)
    await service.get_replica(session, ra.run, job_id)
    await runs.heartbeat(session, ra.run)
    return {"detail": "ok"}


@router.post(
    "/experiments/{exp_id}/bookmark", summary="Bookmark", status_code=201, response_model=Detail
)
async def bookmark(
    username: str, project: str, exp_id: RowId, session: SessionDep, principal: AuthDep
) -> dict[str, str]:
    ra = await _get(session, principal, username, project, exp_id)
    await set_bookmark(session, principal.user, "experiment", ra.run.id, on=True)
    return {"detail": "Bookmarked."}


@router.delete("/experiments/{exp_id}/unbookmark", summary="Remove a bookmark", **NO_CONTENT)
async def unbookmark(
    username: str, project: str, exp_id: RowId, session: SessionDep, principal: AuthDep
) -> Response:
    ra = await _get(session, principal, username, project, exp_id)
    await set_bookmark(session, principal.user, "experiment", ra.run.id, on=False)
    return Response(status_code=204)
