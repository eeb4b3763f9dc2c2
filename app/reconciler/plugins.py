"""The plugin step: make tensorboard and notebook workloads match their rows, level-triggered.

Each pass reads every live plugin row and every plugin workload, then: stops (and cleans) any
workload whose row is gone, done, or whose experiment / group was stopped, so nothing is left
running after a delete (v0 #549, #156); starts a workload for a live row without one (a fixed
port stored on the row first, so a crash between the two adopts instead of duplicating); and
copies the observed state (running + URL, or the end with its message) onto the row.

One plugin's trouble stays its own (app/reconciler/retries.py): a workload that cannot be
observed, started, stopped or recorded is retried with backoff while the others go on, told in
its row's status message, and its row failed once it has failed for PLX_WORKLOAD_RETRY_TIMEOUT.

A notebook pod on Kubernetes is deleted with its own grace period and not swept with grace 0
until that period has passed: its preStop hook uploads the workspace for a stop with `commit`
(app/k8s/manifests.py), and a forced deletion would kill the upload.
"""

from __future__ import annotations

import logging
import shlex
import socket
import time
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import select

from app.kinds import PLUGINS, Kind
from app.logic.plugin_access import plugin_prefix
from app.logic.statuses import Status
from app.models import (
    CodeReference,
    Experiment,
    ExperimentGroup,
    NotebookJob,
    Project,
    User,
)
from app.reconciler.retries import Failure, report, tracked
from app.runtimes.base import (
    NOTEBOOK_GRACE_MARGIN,
    NOTEBOOK_SNAPSHOT_TIMEOUT,
    CapacityError,
    Runtime,
    RuntimeError_,
    WorkloadSpec,
    WorkloadState,
)
from app.services import plugins as service
from app.services.code import code_checkout_path, prune_orphan_repos
from app.services.runs import outputs_path, workload_key
from app.services.statuses import set_status
from app.services.users import create_run_token

log = logging.getLogger(__name__)

# The plugin tables, by kind name (tensorboards, notebooks).
PLUGIN_MODELS: dict[str, type[Any]] = {plugin.kind.value: plugin.model for plugin in PLUGINS}
DEFAULT_PORTS: dict[str, int] = {Kind.TENSORBOARD: 6006, Kind.NOTEBOOK: 8888}
MAX_PLUGINS_PER_PASS = 500
# Notebook workloads being deleted gracefully (Kubernetes), per runtime: key -> monotonic time
# the deletion began. Lost on a restart, which is harmless: the Deployment is gone by then, so
# the workload is no longer listed, and its pod ends on its own.
_DRAINING: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Plan:
    """A frozen snapshot of one live plugin row and what it needs."""

    kind: str
    run_id: int
    uuid: str
    key: str
    username: str
    project: str
    project_id: int
    port: int | None
    token: str | None
    commit: str | None
    owner_stopped: str | None  # why the owner's stop ends this plugin, else None
    logdirs: tuple[tuple[str, str], ...]
    image: str | None = None  # `build.image` of the plugin's config (Kubernetes only)
    experiment_id: int | None = None  # a tensorboard's target, for its path behind the proxy
    group_id: int | None = None

    @property
    def prefix(self) -> str:
        """The path the plugin is served under, through plx's proxy."""
        return plugin_prefix(
            self.kind,
            self.username,
            self.project,
            experiment_id=self.experiment_id,
            group_id=self.group_id,
        )


def is_plugin_key(key: str) -> bool:
    return key.startswith(("tensorboard-", "notebook-"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _plans(session: Any, settings: Any) -> list[Plan]:
    plans: list[Plan] = []
    for kind, model in PLUGIN_MODELS.items():
        rows = (
            await session.execute(
                select(model, Project, User)
                .join(Project, Project.id == model.project_id)
                .join(User, User.id == Project.user_id)
                .where(model.last_status.is_not(None), model.last_status.not_in(service.DONE))
                .order_by(model.id)
                .limit(MAX_PLUGINS_PER_PASS)
            )
        ).all()
        for row, project, owner in rows:
            plans.append(await _plan(session, settings, kind, row, project, owner))
    return plans


async def _plan(
    session: Any, settings: Any, kind: str, row: Any, project: Project, owner: User
) -> Plan:
    commit = None
    if row.code_reference_id is not None:
        commit = await session.scalar(
            select(CodeReference.commit).where(CodeReference.id == row.code_reference_id)
        )
    owner_stopped = None
    logdirs: list[tuple[str, str]] = []
    if kind == Kind.TENSORBOARD:
        experiments = select(Experiment.id).where(Experiment.project_id == project.id)
        if row.experiment_id is not None:
            status = await session.scalar(
                select(Experiment.last_status).where(Experiment.id == row.experiment_id)
            )
            if status == Status.STOPPED:
                owner_stopped = "Its experiment was stopped."
            experiments = experiments.where(Experiment.id == row.experiment_id)
        elif row.experiment_group_id is not None:
            status = await session.scalar(
                select(ExperimentGroup.last_status).where(
                    ExperimentGroup.id == row.experiment_group_id
                )
            )
            if status == Status.STOPPED:
                owner_stopped = "Its group was stopped."
            experiments = experiments.where(
                Experiment.experiment_group_id == row.experiment_group_id
            )
        for experiment_id in await session.scalars(experiments.order_by(Experiment.id)):
            path = outputs_path(settings, Kind.EXPERIMENT, experiment_id)
            logdirs.append((str(experiment_id), str(path)))
    return Plan(
        kind=kind,
        run_id=row.id,
        uuid=row.uuid,
        key=workload_key(kind, row),
        username=owner.username,
        project=project.name,
        project_id=project.id,
        port=row.port,
        token=getattr(row, "token", None),
        commit=commit,
        owner_stopped=owner_stopped,
        logdirs=tuple(logdirs),
        image=_config_image(row.config),
        experiment_id=getattr(row, "experiment_id", None),
        group_id=getattr(row, "experiment_group_id", None),
    )


def _config_image(config: Any) -> str | None:
    """v0 plugin specs name their image as `build: {image: ...}`."""
    build = config.get("build") if isinstance(config, dict) else None
    image = build.get("image") if isinstance(build, dict) else None
    return image if isinstance(image, str) and image.strip() else None


async def reconcile_plugins(reconciler: Any) -> None:
    """Reconciler step: converge tensorboard and notebook workloads on their rows."""
    runtime = reconciler.runtime
    settings = reconciler.settings
    async with reconciler.session() as session:
        plans = await _plans(session, settings)
    workloads = {k: s for k, s in (await runtime.list_workloads()).items() if is_plugin_key(k)}
    wanted = {plan.key for plan in plans if plan.owner_stopped is None}
    retries = reconciler.retries
    for key, state in workloads.items():
        if key not in wanted and retries.due(key):
            await tracked(reconciler, key, "stop", _retire(runtime, settings, key, state))
    for plan in plans:
        if not retries.due(plan.key):
            continue  # failed lately: tried again after its delay, the others go on
        state = workloads.get(plan.key)
        if plan.owner_stopped is not None:
            what, action = (
                "record",
                _set(reconciler, plan, Status.STOPPED, message=plan.owner_stopped),
            )
        elif state is not None and state.error:
            failure = retries.failed(plan.key, "observe", state.error)
            await _report(reconciler, plan, failure)
            continue
        elif state is not None:
            what, action = "record the state of", _sync(reconciler, plan, state)
        else:
            what, action = "start", _start(reconciler, plan)

        async def tell(failure: Failure, plan: Plan = plan) -> None:
            await _report(reconciler, plan, failure)

        await tracked(reconciler, plan.key, what, action, on_failure=tell)
    async with reconciler.session() as session:
        await prune_orphan_repos(session, settings)


async def _retire(runtime: Any, settings: Any, key: str, state: WorkloadState) -> None:
    """Stop and clean up a plugin workload whose row is done, gone, or whose owner stopped."""
    if _drains(runtime, key):
        if await _drain_notebook(runtime, settings, key, state):
            return
    elif not state.done:
        await runtime.stop(key, grace_seconds=settings.stop_grace_seconds)
    await runtime.cleanup(key)


async def _report(reconciler: Any, plan: Plan, failure: Failure) -> None:
    async def load(session: Any) -> Any:
        return await session.get(PLUGIN_MODELS[plan.kind], plan.run_id)

    await report(reconciler, failure, load)


def _drains(runtime: Runtime, key: str) -> bool:
    """Whether this workload is a notebook the runtime drains before its cleanup."""
    drain = runtime.capabilities.notebook_drain_seconds
    return drain is not None and key.startswith(f"{Kind.NOTEBOOK}-")


def notebook_grace_seconds(runtime: Runtime, settings: Any) -> int:
    """The notebook's grace period on its stop (its preStop upload fits in it)."""
    drain = runtime.capabilities.notebook_drain_seconds
    if drain is None:
        drain = NOTEBOOK_SNAPSHOT_TIMEOUT + NOTEBOOK_GRACE_MARGIN
    return max(drain, int(settings.stop_grace_seconds))


async def _drain_notebook(runtime: Any, settings: Any, key: str, state: WorkloadState) -> bool:
    """Delete a notebook's objects with the pod's grace period; True while that period runs
    (no cleanup yet: its grace-0 sweep would cut the preStop hook's upload short)."""
    draining = _DRAINING.setdefault(runtime, {})
    grace = notebook_grace_seconds(runtime, settings)
    now = time.monotonic()
    if not state.done:
        await runtime.stop(key, grace_seconds=grace)
        draining.setdefault(key, now)
    began = draining.get(key)
    if began is not None and now - began < grace + 5:
        return True
    draining.pop(key, None)
    return False


async def _set(reconciler: Any, plan: Plan, status: Status, **values: Any) -> None:
    async with reconciler.session() as session:
        row = await session.get(PLUGIN_MODELS[plan.kind], plan.run_id)
        if row is None:
            return
        for name, value in values.pop("columns", {}).items():
            setattr(row, name, value)
        if row.last_status != status:
            await set_status(session, row, status, **values)


async def _sync(reconciler: Any, plan: Plan, state: WorkloadState) -> None:
    status = state.status
    columns = {"url": state.url} if state.url else {}
    message = state.message
    if state.status == Status.SUCCEEDED:
        message = message or f"The {plan.kind} process ended."
    await _set(reconciler, plan, status, message=message, columns=columns)


def _command(plan: Plan, program: str, port: int, workdir: Path, local: bool) -> str:
    """Served under the proxy's path (app/routers/plugin_proxy.py); locally only on loopback.
    No secret here: a command line is visible to every `ps` (the notebook's token goes in
    `JUPYTER_TOKEN`, see `_secrets`)."""
    host = "127.0.0.1" if local else "0.0.0.0"
    if plan.kind == Kind.TENSORBOARD:
        if len(plan.logdirs) == 1:
            logs = f"--logdir {shlex.quote(plan.logdirs[0][1])}"
        elif plan.logdirs:
            spec = ",".join(f"{name}:{path}" for name, path in plan.logdirs)
            logs = f"--logdir_spec {shlex.quote(spec)}"
        else:
            logs = f"--logdir {shlex.quote(str(workdir / 'empty'))}"
        prefix = shlex.quote(plan.prefix.rstrip("/"))
        return f"{shlex.quote(program)} {logs} --port {port} --host {host} --path_prefix {prefix}"
    return (
        f"{shlex.quote(program)} --no-browser --allow-root --port={port} --ip={host}"
        f" --ServerApp.base_url={shlex.quote(plan.prefix)}"
        f" --ServerApp.root_dir={shlex.quote(str(workdir))}"
    )


def _secrets(plan: Plan) -> dict[str, str]:
    """What the plugin needs to know but `ps` must not show: jupyter reads its token from the
    environment (never empty: jupyter would make one up, unknown to the proxy)."""
    return {"JUPYTER_TOKEN": plan.token} if plan.kind == Kind.NOTEBOOK and plan.token else {}


async def _start(reconciler: Any, plan: Plan) -> None:
    runtime = reconciler.runtime
    settings = reconciler.settings
    local = runtime.capabilities.local_processes
    program = service.find_executable(plan.kind) if local else service.EXTRAS[plan.kind][0]
    if program is None:
        await _set(reconciler, plan, Status.FAILED, message=service.missing_message(plan.kind))
        return
    port = plan.port
    if port is None:
        port = free_port() if local else DEFAULT_PORTS[plan.kind]
        # Stored before the start: a crash in between restarts with the same port and key.
        await _set(reconciler, plan, Status.CREATED, columns={"port": port})
    base = service.plugin_dir(settings, plan.kind, plan.run_id)
    spec = WorkloadSpec(
        key=plan.key,
        kind=plan.kind,  # type: ignore[arg-type]
        run_id=plan.run_id,
        uuid=plan.uuid,
        unique_name=f"{plan.username}.{plan.project}.{plan.kind}s.{plan.run_id}",
        username=plan.username,
        project=plan.project,
        role="main",
        code_reference=plan.commit,
        log_path=str(base / "logs" / "log.txt"),
        ports=[port],
        labels={"app": f"polyaxon-{plan.kind}", "role": "polyaxon-dashboard"},
    )
    if runtime.capabilities.in_cluster and plan.kind == Kind.NOTEBOOK:
        in_cluster = await _in_cluster_notebook(reconciler, plan, spec)
        if in_cluster is None:
            return
        spec = in_cluster
    else:
        spec = await _with_local_workdir(reconciler, plan, spec, program, port, local)
    try:
        state = await runtime.start(spec)
    except CapacityError as exc:  # a full runtime: it waits its turn
        log.info("plugin %s: start deferred: %s", plan.key, exc.message)
        return
    except RuntimeError_ as exc:
        if exc.retryable:
            raise  # retried with backoff (app/reconciler/retries.py), never given up on
        await _set(reconciler, plan, Status.FAILED, message=exc.message)
        return
    if state.error is None:
        await _sync(reconciler, plan, state)


async def _with_local_workdir(
    reconciler: Any, plan: Plan, spec: WorkloadSpec, program: str, port: int, local: bool
) -> WorkloadSpec:
    """A command run in a directory of this machine: the notebook's copy of the code, or an
    empty dir for a tensorboard with nothing to show yet (whose logdirs are outputs paths,
    valid in pods too when the outputs claim is mounted)."""
    settings = reconciler.settings
    base = service.plugin_dir(settings, plan.kind, plan.run_id)
    if plan.kind == Kind.NOTEBOOK:
        checkout = None
        if plan.commit is not None:
            checkout = await code_checkout_path(settings, plan.project_id, plan.commit)
        workdir = await anyio.to_thread.run_sync(
            service.prepare_notebook_workdir, settings, plan.run_id, checkout
        )
    else:
        workdir = base
        await anyio.to_thread.run_sync(lambda: (base / "empty").mkdir(parents=True, exist_ok=True))
    command = _command(plan, program, port, workdir, local)
    env = {**spec.env, **_secrets(plan)}
    # In a pod, the logdirs are the experiments' outputs, mounted read-only (app/k8s/manifests).
    reads = tuple(path for _, path in plan.logdirs)
    return replace(
        spec,
        command=command,
        workdir=str(workdir),
        image=plan.image,
        env=env,
        read_only_paths=reads,
    )


async def _in_cluster_notebook(
    reconciler: Any, plan: Plan, spec: WorkloadSpec
) -> WorkloadSpec | None:
    """A notebook pod fetches the project's code from the API with a token scoped to the
    notebook; jupyter reads its own token from `JUPYTER_TOKEN` (the manifests' command)."""
    settings = reconciler.settings
    async with reconciler.session() as session:
        row = await session.get(NotebookJob, plan.run_id)
        if row is None:
            return None
        user = await session.get(User, row.user_id)
        run_token = await create_run_token(session, user, kind=Kind.NOTEBOOK, run_id=row.id)
    env = {
        "PLX_API_URL": (settings.api_url or "http://127.0.0.1:8000").rstrip("/"),
        "PLX_TOKEN": run_token,
        "PLX_USERNAME": plan.username,
        "PLX_PROJECT": plan.project,
    }
    env.update(_secrets(plan))  # without a token, jupyter makes up its own (never an open one)
    env["PLX_PLUGIN_BASE_URL"] = plan.prefix  # jupyter's base_url (app/k8s/manifests.py)
    return replace(spec, env=env, image=plan.image)
