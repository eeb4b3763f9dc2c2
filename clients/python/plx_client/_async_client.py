"""The plx API client. `_sync_client.py` is generated from this file (tools/unasync.py)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import tarfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

try:  # optional: the `ws` extra, for following logs over plx's WebSocket stream
    from websockets.asyncio.client import connect as _ws_connect
    from websockets.exceptions import WebSocketException
except ImportError:  # pragma: no cover - depends on the environment
    _ws_connect = None  # type: ignore[assignment]

    class WebSocketException(Exception):  # type: ignore[no-redef]
        pass


from plx_client import config as _config
from plx_client.errors import NotFound, PlxConnectionError, PlxError, error_for
from plx_client.models import (
    DONE_STATUSES,
    Build,
    BuildDetail,
    CodeReference,
    Experiment,
    ExperimentDetail,
    ExperimentJob,
    ExperimentSeries,
    ExperimentStatus,
    Group,
    GroupDecision,
    GroupDetail,
    GroupMetric,
    GroupPoints,
    GroupStatus,
    Job,
    JobDetail,
    JobStatus,
    Metric,
    Notebook,
    Project,
    ProjectDetail,
    Repo,
    SweepPlan,
    Tensorboard,
    User,
)

M = TypeVar("M", bound=BaseModel)
RunKind = Literal["experiments", "jobs", "builds"]
# What a group is created from: a path to a polyaxonfile, its YAML text, or the parsed dict.
Polyaxonfile = str | os.PathLike[str] | Mapping[str, Any]
# What code is uploaded from: a directory, a .tar.gz file, or the .tar.gz bytes.
CodeSource = str | os.PathLike[str] | bytes
TRACKING_CONFIG = {"version": 1, "kind": "experiment"}
_SKIP_DIRS = {".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache"}


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def polyaxonfile_text(source: Polyaxonfile) -> str:
    """The YAML text plx expects (JSON is YAML, so a dict is sent as JSON)."""
    if isinstance(source, Mapping):
        return json.dumps(source)
    if isinstance(source, os.PathLike):
        return Path(source).read_text()
    if "\n" not in source and source.strip().endswith((".yml", ".yaml", ".json")):
        return Path(source).read_text()  # a path (raises FileNotFoundError if missing)
    return source


def code_archive(source: CodeSource) -> bytes:
    """A .tar.gz of `source`: bytes as they are, a file's bytes, or a directory packed here."""
    if isinstance(source, bytes):
        return source
    path = Path(source)
    if path.is_file():
        return path.read_bytes()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or directory")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for item in sorted(path.rglob("*")):
            rel = item.relative_to(path)
            if _SKIP_DIRS.intersection(rel.parts) or item.is_dir():
                continue
            tar.add(item, arcname=str(rel), recursive=False)
    return buf.getvalue()


class AsyncClient:
    """plx's REST API. `project` arguments are `"owner/name"` or `"name"` (the caller's).

    `url` and `token` default to PLX_API_URL and PLX_TOKEN, then to the file `Client.login`
    writes (`~/.plx/client.json`, or `$PLX_CONFIG`). Errors are `plx_client.errors.PlxError`
    subclasses carrying plx's `detail`. Lists are iterators that fetch pages as they go.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        username: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, self.token = _config.resolve(url, token)
        self._username = (
            username or os.environ.get("PLX_USERNAME") or _config.read_config().get("username")
        )
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing -----------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise PlxConnectionError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise error_for(response)
        return response

    async def _get(self, model: type[M], path: str, **params: Any) -> M:
        response = await self._request("GET", path, params=_clean(params))
        return model.model_validate(response.json())

    async def _send(
        self, model: type[M], method: str, path: str, body: Any = None, **params: Any
    ) -> M:
        response = await self._request(method, path, json=body, params=_clean(params))
        return model.model_validate(response.json())

    async def _pages(
        self, model: type[M], path: str, *, page_size: int = 100, **params: Any
    ) -> AsyncIterator[M]:
        """Every row of a list route, page after page (`limit`/`offset`), oldest page first."""
        query = _clean(params)
        offset = 0
        while True:
            response = await self._request(
                "GET", path, params={**query, "limit": page_size, "offset": offset}
            )
            body = response.json()
            for row in body["results"]:
                yield model.model_validate(row)
            if not body.get("next") or not body["results"]:
                return
            offset += len(body["results"])

    async def _owner(self) -> str:
        if not self._username:
            self._username = (await self.whoami()).username
        return self._username

    async def _p(self, project: str) -> str:
        """`/api/v1/<owner>/<name>` of a project given as `owner/name` or `name`."""
        owner, _, name = project.rpartition("/")
        return f"/api/v1/{owner or await self._owner()}/{name}"

    # -- users --------------------------------------------------------------------------------

    @classmethod
    async def login(
        cls, url: str, username: str, password: str, *, save: bool = True, **kwargs: Any
    ) -> AsyncClient:
        """Log in with a password; `save` writes url, token and username to the config file."""
        client = cls(url, token="", username=username, **kwargs)
        try:
            response = await client._request(
                "POST", "/api/v1/users/token", json={"username": username, "password": password}
            )
        except BaseException:
            await client.aclose()
            raise
        await client.aclose()
        token = response.json()["token"]
        if save:
            _config.write_config(url.rstrip("/"), token, username)
        return cls(url, token=token, username=username, **kwargs)

    async def whoami(self) -> User:
        return await self._get(User, "/api/v1/users")

    async def logout(self) -> None:
        """Revoke the token this client uses."""
        await self._request("POST", "/api/v1/users/logout")

    # -- projects -----------------------------------------------------------------------------

    def list_projects(
        self, owner: str | None = None, *, query: str | None = None, sort: str | None = None
    ) -> AsyncIterator[Project]:
        return self._list_projects(owner, query=query, sort=sort)

    async def _list_projects(
        self, owner: str | None, *, query: str | None, sort: str | None
    ) -> AsyncIterator[Project]:
        path = f"/api/v1/{owner or await self._owner()}"
        async for row in self._pages(Project, path, query=query, sort=sort):
            yield row

    async def get_project(self, project: str) -> ProjectDetail:
        return await self._get(ProjectDetail, await self._p(project))

    async def create_project(
        self,
        name: str,
        *,
        description: str | None = None,
        is_public: bool = True,
        tags: list[str] | None = None,
        readme: str | None = None,
    ) -> ProjectDetail:
        body = {"name": name, "description": description, "is_public": is_public, "tags": tags}
        body["readme"] = readme
        return await self._send(ProjectDetail, "POST", "/api/v1/projects", _clean(body))

    async def update_project(self, project: str, **fields: Any) -> ProjectDetail:
        return await self._send(ProjectDetail, "PATCH", await self._p(project), fields)

    async def delete_project(self, project: str) -> None:
        await self._request("DELETE", await self._p(project))

    # -- code ---------------------------------------------------------------------------------

    async def upload_code(self, project: str, source: CodeSource) -> CodeReference:
        """Upload a directory (packed here), a .tar.gz file or its bytes as a new version."""
        files = {"repo": ("repo.tar.gz", code_archive(source), "application/gzip")}
        path = await self._p(project) + "/repo/upload"
        response = await self._request("PUT", path, files=files)
        return CodeReference.model_validate(response.json())

    async def get_repo(self, project: str) -> Repo:
        return await self._get(Repo, await self._p(project) + "/repo")

    async def download_code(
        self, project: str, *, commit: str | None = None, dest: str | os.PathLike[str] | None = None
    ) -> bytes:
        """The .tar.gz of a code version (the current one by default); also written to `dest`."""
        path = await self._p(project) + "/repo/download"
        response = await self._request("GET", path, params=_clean({"commit": commit}))
        if dest is not None:
            Path(dest).write_bytes(response.content)
        return response.content

    # -- experiments --------------------------------------------------------------------------

    def list_experiments(
        self,
        project: str,
        *,
        query: str | None = None,
        sort: str | None = None,
        group: int | None = None,
        independent: bool | None = None,
        metrics: bool = False,
        declarations: bool = False,
        page_size: int = 100,
    ) -> AsyncIterator[Experiment]:
        """The project's experiments. Full rows by default; v0's `metrics=True` (or
        `declarations=True`) answers narrow rows: ids, names and only those fields."""
        params = {"query": query, "sort": sort, "metrics": metrics or None}
        params.update(declarations=declarations or None, independent=independent)
        if group is not None:
            return self._list_in(project, f"/groups/{group}/experiments", page_size, params)
        return self._list_in(project, "/experiments", page_size, params)

    async def _list_in(
        self, project: str, suffix: str, page_size: int, params: dict[str, Any]
    ) -> AsyncIterator[Experiment]:
        path = await self._p(project) + suffix
        async for row in self._pages(Experiment, path, page_size=page_size, **params):
            yield row

    async def get_experiment(self, project: str, experiment: int) -> ExperimentDetail:
        return await self._get(ExperimentDetail, await self._exp(project, experiment))

    async def create_experiment(
        self,
        project: str,
        config: str | Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
        declarations: Mapping[str, Any] | None = None,
    ) -> ExperimentDetail:
        """An experiment from a polyaxonfile (YAML text or dict); without `config` a
        tracking-only experiment that this process reports to."""
        body = {"config": dict(config) if isinstance(config, Mapping) else config}
        if config is None:
            body["config"] = TRACKING_CONFIG
        body.update(name=name, description=description, tags=tags, declarations=declarations)
        path = await self._p(project) + "/experiments"
        return await self._send(ExperimentDetail, "POST", path, _clean(body))

    async def update_experiment(
        self, project: str, experiment: int, *, merge: bool = False, **fields: Any
    ) -> ExperimentDetail:
        """PATCH fields (name, description, tags, declarations, ...); `merge` merges tags and
        declarations into the current ones instead of replacing them."""
        body = {**fields, "merge": merge}
        path = await self._exp(project, experiment)
        return await self._send(ExperimentDetail, "PATCH", path, body)

    async def delete_experiment(self, project: str, experiment: int) -> None:
        await self._request("DELETE", await self._exp(project, experiment))

    async def stop_experiment(self, project: str, experiment: int) -> None:
        await self._request("POST", await self._exp(project, experiment) + "/stop")

    async def restart_experiment(
        self, project: str, experiment: int, *, config: Mapping[str, Any] | None = None
    ) -> ExperimentDetail:
        """A new experiment cloned from this one (`config` overrides parts of its spec)."""
        path = await self._exp(project, experiment) + "/restart"
        body = {"config": dict(config)} if config else {}
        return await self._send(ExperimentDetail, "POST", path, body)

    def experiment_statuses(self, project: str, experiment: int) -> AsyncIterator[ExperimentStatus]:
        return self._sub(ExperimentStatus, project, "experiments", experiment, "/statuses")

    async def post_experiment_status(
        self,
        project: str,
        experiment: int,
        status: str,
        *,
        message: str | None = None,
        traceback: str | None = None,
    ) -> ExperimentStatus:
        path = await self._exp(project, experiment) + "/statuses"
        body = _clean({"status": status, "message": message, "traceback": traceback})
        return await self._send(ExperimentStatus, "POST", path, body)

    def experiment_metrics(self, project: str, experiment: int) -> AsyncIterator[Metric]:
        """Every metric point, oldest first."""
        return self._sub(Metric, project, "experiments", experiment, "/metrics", page_size=1000)

    async def post_metrics(
        self,
        project: str,
        experiment: int,
        points: Mapping[str, Any] | list[Mapping[str, Any]],
        *,
        dedupe: bool = False,
    ) -> None:
        """One point `{"values": {...}, "created_at"?: iso}` or a list of them. `dedupe` skips
        points already stored with the same created_at and values (safe retries)."""
        path = await self._exp(project, experiment) + "/metrics"
        await self._request("POST", path, json=points, params=_clean({"dedupe": dedupe or None}))

    async def metric_series(
        self,
        project: str,
        experiment: int,
        *,
        names: list[str] | None = None,
        points: int = 1000,
        axis: Literal["step", "time"] = "step",
        x_min: float | None = None,
        x_max: float | None = None,
    ) -> ExperimentSeries:
        """The experiment's metric series downsampled by plx to at most `points` each."""
        path = await self._exp(project, experiment) + "/metrics/series"
        joined = ",".join(names) if names else None
        return await self._get(
            ExperimentSeries, path, names=joined, points=points, axis=axis, x_min=x_min, x_max=x_max
        )

    def experiment_jobs(self, project: str, experiment: int) -> AsyncIterator[ExperimentJob]:
        """The experiment's replicas (master, workers, ps)."""
        return self._sub(ExperimentJob, project, "experiments", experiment, "/jobs")

    async def _exp(self, project: str, experiment: int) -> str:
        return f"{await self._p(project)}/experiments/{int(experiment)}"

    async def _sub(
        self, model: type[M], project: str, kind: str, run: int, suffix: str, page_size: int = 100
    ) -> AsyncIterator[M]:
        path = f"{await self._p(project)}/{kind}/{int(run)}{suffix}"
        async for row in self._pages(model, path, page_size=page_size):
            yield row

    # -- logs ---------------------------------------------------------------------------------

    async def logs(self, project: str, run: int, *, kind: RunKind = "experiments") -> str:
        """The run's log as it is now ("" before the run wrote any)."""
        path = f"{await self._p(project)}/{kind}/{int(run)}/logs"
        try:
            return (await self._request("GET", path)).text
        except NotFound as exc:
            if exc.detail == "Log file not found.":
                return ""
            raise

    async def follow_logs(
        self,
        project: str,
        run: int,
        *,
        kind: RunKind = "experiments",
        interval: float = 0.5,
        websocket: bool = True,
    ) -> AsyncIterator[str]:
        """The run's log lines as they are written, until the run is done and all is read.

        Over plx's WebSocket log stream when the `websockets` package is installed (the `ws`
        extra; httpx has no WebSocket client), else, or if the stream drops, by polling the log
        every `interval` seconds."""
        sent = 0
        if websocket and _ws_connect is not None:
            try:
                async for line in self._stream_logs(project, run, kind):
                    sent += 1
                    yield line
                return
            except (OSError, WebSocketException):
                await self._request("GET", f"{await self._p(project)}/{kind}/{int(run)}")
        async for line in self._poll_logs(project, run, kind, interval, skip=sent):
            yield line

    async def _stream_logs(self, project: str, run: int, kind: str) -> AsyncIterator[str]:
        path = (await self._p(project)).removeprefix("/api/v1/")
        url = re.sub(r"^http", "ws", self.url) + f"/ws/v1/{path}/{kind}/{int(run)}/logs"
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        async with _ws_connect(url, additional_headers=headers, open_timeout=10) as ws:
            async for message in ws:
                for line in json.loads(message).get("log_lines") or []:
                    yield line

    async def _poll_logs(
        self, project: str, run: int, kind: RunKind, interval: float, skip: int
    ) -> AsyncIterator[str]:
        status_path = f"{await self._p(project)}/{kind}/{int(run)}"
        done_lines = skip  # lines already given to the caller
        while True:
            status = (await self._request("GET", status_path)).json().get("last_status")
            text = await self.logs(project, run, kind=kind)
            if status not in DONE_STATUSES:
                text = text[: text.rfind("\n") + 1]  # a partial last line waits for its newline
            lines = text.splitlines()
            for line in lines[done_lines:]:
                yield line
            done_lines = max(done_lines, len(lines))
            if status in DONE_STATUSES:
                return
            await asyncio.sleep(interval)

    # -- jobs and builds ----------------------------------------------------------------------

    def list_jobs(
        self, project: str, *, query: str | None = None, sort: str | None = None
    ) -> AsyncIterator[Job]:
        return self._list_runs(Job, project, "jobs", query, sort)

    def list_builds(
        self, project: str, *, query: str | None = None, sort: str | None = None
    ) -> AsyncIterator[Build]:
        return self._list_runs(Build, project, "builds", query, sort)

    async def _list_runs(
        self, model: type[M], project: str, kind: str, query: str | None, sort: str | None
    ) -> AsyncIterator[M]:
        path = f"{await self._p(project)}/{kind}"
        async for row in self._pages(model, path, query=query, sort=sort):
            yield row

    async def get_job(self, project: str, job: int) -> JobDetail:
        return await self._get(JobDetail, f"{await self._p(project)}/jobs/{int(job)}")

    async def get_build(self, project: str, build: int) -> BuildDetail:
        return await self._get(BuildDetail, f"{await self._p(project)}/builds/{int(build)}")

    async def create_job(
        self,
        project: str,
        config: str | Mapping[str, Any],
        *,
        name: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> JobDetail:
        body = _clean({"config": config, "name": name, "description": description, "tags": tags})
        path = f"{await self._p(project)}/jobs"
        return await self._send(JobDetail, "POST", path, body)

    async def create_build(
        self,
        project: str,
        config: str | Mapping[str, Any],
        *,
        name: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> BuildDetail:
        body = _clean({"config": config, "name": name, "description": description, "tags": tags})
        path = f"{await self._p(project)}/builds"
        return await self._send(BuildDetail, "POST", path, body)

    async def stop_job(self, project: str, job: int) -> None:
        await self._request("POST", f"{await self._p(project)}/jobs/{int(job)}/stop")

    async def stop_build(self, project: str, build: int) -> None:
        await self._request("POST", f"{await self._p(project)}/builds/{int(build)}/stop")

    async def delete_job(self, project: str, job: int) -> None:
        await self._request("DELETE", f"{await self._p(project)}/jobs/{int(job)}")

    async def delete_build(self, project: str, build: int) -> None:
        await self._request("DELETE", f"{await self._p(project)}/builds/{int(build)}")

    def job_statuses(self, project: str, job: int) -> AsyncIterator[JobStatus]:
        return self._sub(JobStatus, project, "jobs", job, "/statuses")

    def build_statuses(self, project: str, build: int) -> AsyncIterator[JobStatus]:
        return self._sub(JobStatus, project, "builds", build, "/statuses")

    # -- groups (sweeps) ----------------------------------------------------------------------

    async def create_group(
        self,
        project: str,
        polyaxonfile: Polyaxonfile,
        *,
        name: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> GroupDetail:
        """A sweep from a polyaxonfile: a path, its YAML text, or a dict."""
        body = {"content": polyaxonfile_text(polyaxonfile), "name": name}
        body.update(description=description, tags=tags)
        path = f"{await self._p(project)}/groups"
        return await self._send(GroupDetail, "POST", path, _clean(body))

    async def plan_group(self, project: str, polyaxonfile: Polyaxonfile) -> SweepPlan:
        """What the sweep would run (size, iterations, warnings), creating nothing."""
        path = f"{await self._p(project)}/groups/plan"
        body = {"content": polyaxonfile_text(polyaxonfile)}
        return await self._send(SweepPlan, "POST", path, body)

    def list_groups(
        self, project: str, *, query: str | None = None, sort: str | None = None
    ) -> AsyncIterator[Group]:
        return self._list_runs(Group, project, "groups", query, sort)

    async def get_group(self, project: str, group: int) -> GroupDetail:
        return await self._get(GroupDetail, f"{await self._p(project)}/groups/{int(group)}")

    async def update_group(self, project: str, group: int, **fields: Any) -> GroupDetail:
        path = f"{await self._p(project)}/groups/{int(group)}"
        return await self._send(GroupDetail, "PATCH", path, fields)

    async def stop_group(self, project: str, group: int, *, pending: bool = False) -> None:
        """Stop the sweep: all its experiments, or with `pending` only those not started."""
        path = f"{await self._p(project)}/groups/{int(group)}/stop"
        await self._request("POST", path, json={"pending": pending})

    async def delete_group(self, project: str, group: int) -> None:
        await self._request("DELETE", f"{await self._p(project)}/groups/{int(group)}")

    def group_statuses(self, project: str, group: int) -> AsyncIterator[GroupStatus]:
        return self._sub(GroupStatus, project, "groups", group, "/statuses")

    def group_decisions(self, project: str, group: int) -> AsyncIterator[GroupDecision]:
        """Why the sweep stopped experiments early (or itself), each with its inputs."""
        return self._sub(GroupDecision, project, "groups", group, "/decisions")

    def group_metrics(self, project: str, group: int) -> AsyncIterator[GroupMetric]:
        return self._sub(GroupMetric, project, "groups", group, "/metrics", page_size=1000)

    def group_experiments(
        self,
        project: str,
        group: int,
        *,
        query: str | None = None,
        sort: str | None = None,
        metrics: bool = False,
        declarations: bool = False,
    ) -> AsyncIterator[Experiment]:
        """The group's experiments; full rows carry `last_metric` and `declarations` (params)."""
        return self.list_experiments(
            project, group=group, query=query, sort=sort, metrics=metrics, declarations=declarations
        )

    async def group_points(
        self, project: str, group: int, *, metric: str | None = None, limit: int = 10_000
    ) -> GroupPoints:
        """Each experiment of the group as (status, declarations, last `metric`), oldest first."""
        path = f"{await self._p(project)}/groups/{int(group)}/points"
        return await self._get(GroupPoints, path, metric=metric, limit=limit)

    async def best_experiment(
        self,
        project: str,
        group: int,
        metric: str,
        *,
        mode: Literal["max", "min"] = "max",
        query: str | None = None,
    ) -> Experiment | None:
        """The group's experiment with the highest (`mode="max"`) or lowest last value of
        `metric`, or None when none reported it. Sorted by plx (`sort=-metric.<name>`)."""
        if mode not in ("max", "min"):
            raise ValueError("mode: 'max' or 'min'")
        sort = f"-metric.{metric}" if mode == "max" else f"metric.{metric}"
        async for exp in self.group_experiments(project, group, query=query, sort=sort):
            # Rows without the metric may sort first (NULLs are largest on Postgres).
            if exp.last_metric and exp.last_metric.get(metric) is not None:
                return exp
        return None

    # -- tensorboards and notebooks -----------------------------------------------------------

    async def _plugin_path(self, project: str, experiment: int | None, group: int | None) -> str:
        base = await self._p(project)
        if experiment is not None and group is not None:
            raise ValueError("a tensorboard is of a project, a group or an experiment, not both")
        if experiment is not None:
            return f"{base}/experiments/{int(experiment)}/tensorboard"
        if group is not None:
            return f"{base}/groups/{int(group)}/tensorboard"
        return f"{base}/tensorboard"

    async def start_tensorboard(
        self,
        project: str,
        *,
        experiment: int | None = None,
        group: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Tensorboard:
        """Start (or get the running) tensorboard of the project, a group or an experiment."""
        path = await self._plugin_path(project, experiment, group) + "/start"
        body = {"config": dict(config)} if config else None
        return await self._send(Tensorboard, "POST", path, body)

    async def stop_tensorboard(
        self, project: str, *, experiment: int | None = None, group: int | None = None
    ) -> Tensorboard | None:
        path = await self._plugin_path(project, experiment, group) + "/stop"
        response = await self._request("POST", path)
        body = response.json() if response.content else None
        return Tensorboard.model_validate(body) if body else None

    def list_tensorboards(self, project: str) -> AsyncIterator[Tensorboard]:
        return self._list_runs(Tensorboard, project, "tensorboards", None, None)

    async def start_notebook(
        self, project: str, *, config: Mapping[str, Any] | None = None
    ) -> Notebook:
        body = {"config": dict(config)} if config else None
        return await self._send(Notebook, "POST", f"{await self._p(project)}/notebook/start", body)

    async def stop_notebook(self, project: str, *, commit: bool = True) -> Notebook | None:
        """Stop the notebook; `commit` saves its work as a new code version."""
        path = f"{await self._p(project)}/notebook/stop"
        response = await self._request("POST", path, json={"commit": commit})
        body = response.json() if response.content else None
        return Notebook.model_validate(body) if body else None

    async def get_notebook(self, project: str) -> Notebook:
        return await self._get(Notebook, f"{await self._p(project)}/notebook")

    # -- waiting ------------------------------------------------------------------------------

    async def wait(
        self,
        project: str,
        run: int,
        *,
        kind: Literal["experiments", "jobs", "builds", "groups"] = "experiments",
        timeout: float = 600.0,
        interval: float = 1.0,
    ) -> str:
        """Poll until the run (or group) is done; returns its final status."""
        path = f"{await self._p(project)}/{kind}/{int(run)}"
        deadline = time.monotonic() + timeout
        while True:
            status = (await self._request("GET", path)).json().get("last_status")
            if status in DONE_STATUSES:
                return str(status)
            if time.monotonic() > deadline:
                raise PlxError(f"{kind}/{run} still {status} after {timeout} s")
            await asyncio.sleep(interval)
