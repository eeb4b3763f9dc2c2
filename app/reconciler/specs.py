"""The workload specs of a run: what the runtime is asked to start, built from its rows.

One spec per workload: an experiment has one per replica, every other run one. What differs
between runtimes follows the runtime's `Capabilities`, never its name: a runtime whose workloads
run in a cluster gets registry images (builds push there) and the pod names replicas reach each
other by; one whose workloads are local processes gets a writable copy of the code version.
The scheduling, image and cluster fields of a run's config come from `workload_fields`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.kinds import KINDS, Kind
from app.logic.polyaxonfile import experiment_spec_for
from app.models import BuildJob, CodeReference, ExperimentJob, Project, User
from app.reconciler.workload_fields import build_fields, image_name, run_fields
from app.runtimes.base import Capabilities, WorkloadSpec
from app.services.code import run_workdir
from app.services.logs import remember_secrets
from app.services.runs import log_path, outputs_path, run_dir, workload_key

# The kinds whose workloads run the project's code in a directory of their own (local runtime).
RUNS_IN_CHECKOUT = frozenset({Kind.EXPERIMENT, Kind.JOB})


@dataclass(frozen=True)
class RunOwner:
    """The project a run belongs to and its owner, read once for all the runs of a start."""

    project: Project
    user: User

    @property
    def project_unique(self) -> str:
        return f"{self.user.username}.{self.project.name}"


@dataclass(frozen=True)
class Placement:
    """Where one workload of a run sits: its key, name, role, paths."""

    key: str
    unique_name: str
    role: str
    index: int
    outputs: Path
    logs: Path
    group_id: int | None


def run_env(
    settings: Settings,
    *,
    kind: str,
    run_id: int,
    unique_name: str,
    username: str,
    project: str,
    token: str,
    declarations: dict[str, Any] | None,
    outputs: Path,
    group_id: int | None = None,
    log_file: Path | None = None,
) -> dict[str, str]:
    """PLX_* of contract.md 3 and the POLYAXON_* an in-cluster polyaxon-client 0.3.9 reads."""
    api_url = (settings.api_url or "http://127.0.0.1:8000").rstrip("/")
    decl = json.dumps(declarations or {})
    env = {
        "PLX_API_URL": api_url,
        "PLX_TOKEN": token,
        "PLX_USERNAME": username,
        "PLX_PROJECT": project,
        "PLX_DECLARATIONS": decl,
        "PLX_OUTPUTS_PATH": str(outputs),
        "POLYAXON_IN_CLUSTER": "true",
        "POLYAXON_API_HTTP_HOST": api_url,
        "POLYAXON_API_WS_HOST": re.sub(r"^http", "ws", api_url),
        "POLYAXON_API_VERSION": "v1",
        "POLYAXON_SECRET_USER_TOKEN": token,
        "POLYAXON_RUN_OUTPUTS_PATH": str(outputs),
        "POLYAXON_DECLARATIONS": decl,
    }
    if log_file is not None:
        env["PLX_LOG_PATH"] = str(log_file)
    project_unique = f"{username}.{project}"
    info: dict[str, Any] = {"project_name": project_unique}
    if kind == Kind.EXPERIMENT:
        env["PLX_EXPERIMENT_ID"] = str(run_id)
        info.update(experiment_name=unique_name, experiment_uuid=None)
        if group_id is not None:
            env["PLX_GROUP_ID"] = str(group_id)
            info["experiment_group_name"] = f"{project_unique}.{group_id}"
        env["POLYAXON_EXPERIMENT_INFO"] = json.dumps(info)
    else:
        env["PLX_JOB_ID"] = str(run_id)
        info.update(job_name=unique_name)
        env["POLYAXON_JOB_INFO"] = json.dumps(info)
    return env


def _placement(
    settings: Settings, kind: str, row: Any, owner: RunOwner, job: ExperimentJob | None
) -> Placement:
    if kind == Kind.EXPERIMENT and job is not None:
        group = row.experiment_group_id
        source = (row.run_env or {}).get("outputs_from", row.id)  # a copy reads its original's
        return Placement(
            key=workload_key(kind, row, job.role, job.replica_index),
            unique_name=KINDS[Kind.EXPERIMENT].unique_name(owner.project_unique, row.id, group),
            role=job.role,
            index=job.replica_index,
            outputs=outputs_path(settings, kind, source),
            logs=log_path(settings, kind, row.id, f"{job.role}-{job.replica_index}"),
            group_id=group,
        )
    return Placement(
        key=workload_key(kind, row),
        unique_name=KINDS[Kind(kind)].unique_name(owner.project_unique, row.id),
        role="main",
        index=0,
        outputs=outputs_path(settings, kind, row.id),
        logs=log_path(settings, kind, row.id),
        group_id=None,
    )


def _command(kind: str, row: Any) -> str | None:
    """The command of `run.cmd` (a list joined by `&&`); an experiment's rendered with its
    declarations."""
    config = row.config or {}
    cmd = (config.get("run") or {}).get("cmd")
    if kind == Kind.EXPERIMENT and isinstance(cmd, str | list):
        rendered, _ = experiment_spec_for(config, row.declarations or {})
        return rendered.command
    return " && ".join(cmd) if isinstance(cmd, list) else cmd


def _build_fields(settings: Settings, caps: Capabilities, row: Any, project: Project) -> dict:
    if caps.in_cluster:
        return build_fields(
            row, registry=settings.k8s_registry, project=project.name, project_id=project.id
        )
    build_config = (row.config or {}).get("build") or {}
    return {"image": build_config.get("image"), "dockerfile": build_config.get("dockerfile")}


def _run_fields(
    settings: Settings,
    caps: Capabilities,
    kind: str,
    row: Any,
    project: Project,
    job: ExperimentJob | None,
    build: BuildJob | None,
) -> dict:
    image, pod_name = None, None
    if caps.in_cluster:
        if build is not None:
            image = image_name(settings.k8s_registry, project.name, project.id, build.uuid)
        uuid = row.uuid

        def pod_name(role: str, index: int) -> str:
            return f"plxjob-{role}{index}-{uuid}"  # the replica's pod and service (v0 7.1)

    return run_fields(
        row,
        kind=kind,
        role=job.role if job is not None else "main",
        index=job.replica_index if job is not None else 0,
        replica_resources=job.resources if job is not None else None,
        image=image,
        pod_name=pod_name,
    )


@dataclass(frozen=True)
class RunStart:
    """What the start of one run read for its specs: its owner, token and succeeded build."""

    owner: RunOwner
    token: str
    build: BuildJob | None = None


def workload_spec(
    settings: Settings,
    caps: Capabilities,
    kind: str,
    row: Any,
    *,
    start: RunStart,
    job: ExperimentJob | None,
) -> WorkloadSpec:
    """The spec of one workload of a run (`job`: the experiment's replica, else None)."""
    owner, token = start.owner, start.token
    place = _placement(settings, kind, row, owner, job)
    env = run_env(
        settings,
        kind=kind,
        run_id=row.id,
        unique_name=place.unique_name,
        username=owner.user.username,
        project=owner.project.name,
        token=token,
        declarations=getattr(row, "declarations", None),
        outputs=place.outputs,
        group_id=place.group_id,
    )
    remember_secrets(settings, kind, row.id, [token])  # masked in its logs (services.logs)
    if kind == Kind.BUILD:
        extra = _build_fields(settings, caps, row, owner.project)
    else:
        extra = _run_fields(settings, caps, kind, row, owner.project, job, start.build)
    env.update(extra.pop("env", {}))
    return WorkloadSpec(
        key=place.key,
        kind=kind,  # type: ignore[arg-type]
        run_id=row.id,
        uuid=row.uuid,
        unique_name=place.unique_name,
        username=owner.user.username,
        project=owner.project.name,
        role=place.role,
        replica_index=place.index,
        command=_command(kind, row),
        env=env,
        outputs_path=str(place.outputs),
        log_path=str(place.logs),
        group_id=place.group_id,
        **extra,
    )


async def with_code(
    session: AsyncSession,
    settings: Settings,
    caps: Capabilities,
    kind: str,
    row: Any,
    specs: list[WorkloadSpec],
) -> list[WorkloadSpec]:
    """Point the specs at the run's own code version (local processes: a writable copy of it)."""
    code = row.code_reference_id and await session.get(CodeReference, row.code_reference_id)
    if not code:
        return specs
    specs = [replace(spec, code_reference=code.commit) for spec in specs]
    if not caps.local_processes or kind not in RUNS_IN_CHECKOUT:
        return specs
    workdir = await run_workdir(settings, row.project_id, code, run_dir(settings, kind, row.id))
    return [replace(spec, workdir=str(workdir)) for spec in specs]
