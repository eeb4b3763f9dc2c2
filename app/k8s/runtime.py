"""KubernetesRuntime: workloads as Pods / Deployments, observed level-triggered.

Observation: ``setup()`` lists pods and deployments carrying our managed-by label, then a
background task per resource watches from the list's resourceVersion. A 410 Gone, a dropped
stream, an error, or the ``resync_seconds`` deadline all lead to the same place: a fresh list
that rebuilds the cache (kopf `continuous_watch`; the client's own Watch retries a 410 only once
and never resyncs). ``observe``/``list_workloads`` only read the in-memory cache.

Raw JSON is used for lists, watches and create responses: the cache and the status mapping
work on API dicts, and decoding every event into models would dominate the watch's cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from app.k8s.config import new_api_client
from app.k8s.manifests import (
    KEY_ANNOTATION,
    KIND_ANNOTATION,
    MAIN_CONTAINERS,
    MANAGED_SELECTOR,
    PLUGIN_KINDS,
    ManifestOptions,
    build_manifests,
    key_selector,
    service_url,
)
from app.k8s.nodes import cluster_node
from app.k8s.status import DEFAULT_STUCK_TIMEOUT, Observed, deployment_status, pod_status
from app.logic.statuses import Status
from app.runtimes.base import (
    NOTEBOOK_GRACE_MARGIN,
    Capabilities,
    ClusterNode,
    Runtime,
    RuntimeError_,
    WorkloadSpec,
    WorkloadState,
    unobservable,
)

log = logging.getLogger(__name__)

_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
_RETRY_MIN, _RETRY_MAX = 0.2, 5.0
_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})


class ApiStatusError(Exception):
    """A non-2xx answer of the API server, with the message of its Status object."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): only a new list can continue."""


def to_runtime_error(exc: BaseException, action: str) -> RuntimeError_:
    """Transport trouble and 5xx/429 are worth retrying; a refusal or invalid object is not."""
    if isinstance(exc, RuntimeError_):
        return exc
    if isinstance(exc, ApiStatusError):
        retryable = exc.status >= 500 or exc.status in (0, 408, 429)
        if exc.status in (401, 403):
            text = f"Kubernetes refused to {action}: {exc.message}"
        else:
            text = f"Kubernetes API error ({exc.status}) while trying to {action}: {exc.message}"
        return RuntimeError_(text, retryable=retryable)
    return RuntimeError_(f"Kubernetes API unreachable while trying to {action}: {exc!r}")


async def _read_json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await resp.read()
    if 200 <= resp.status < 300:
        return json.loads(body) if body else {}
    message = body.decode(errors="replace")
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(body).get("message") or message
    raise ApiStatusError(resp.status, message)


def _rv(obj: dict[str, Any]) -> int:
    """resourceVersions are opaque strings, but etcd's (and the fake's) are increasing
    integers; comparing them only decides which of two copies of one object is newer."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _annotation(obj: dict[str, Any], name: str) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(name)


def _name(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


@dataclass
class _Cache:
    """The objects of one resource type, by name, and an index key → names."""

    objects: dict[str, dict[str, Any]]
    by_key: dict[str, set[str]]
    synced: bool = False

    def put(self, obj: dict[str, Any]) -> str | None:
        key = _annotation(obj, KEY_ANNOTATION)
        if key is None:
            return None
        name = _name(obj)
        old = self.objects.get(name)
        if old is not None and _rv(old) > _rv(obj):
            return None  # a stale copy: we already hold a newer one (from a create)
        self.objects[name] = obj
        self.by_key.setdefault(key, set()).add(name)
        return key

    def remove(self, obj: dict[str, Any]) -> str | None:
        name = _name(obj)
        old = self.objects.pop(name, None)
        key = _annotation(old or obj, KEY_ANNOTATION)
        if key is not None and key in self.by_key:
            self.by_key[key].discard(name)
            if not self.by_key[key]:
                del self.by_key[key]
        return key

    def of_key(self, key: str) -> list[dict[str, Any]]:
        return [self.objects[n] for n in self.by_key.get(key, ()) if n in self.objects]


class KubernetesRuntime(Runtime):
    name = "kubernetes"

    def __init__(
        self,
        namespace: str = "default",
        notify: Callable[[], None] | None = None,
        api_client: client.ApiClient | None = None,
        resync_seconds: float = 300.0,
        registry: str | None = None,
        *,
        options: ManifestOptions | None = None,
        stuck_timeout: float = DEFAULT_STUCK_TIMEOUT,
        request_timeout: float = 30.0,
        kubeconfig: str | None = None,
        api_host: str | None = None,
    ) -> None:
        super().__init__(notify)
        self.namespace = namespace
        self.resync_seconds = resync_seconds
        base = options or ManifestOptions()
        self.options = ManifestOptions(
            **{**base.__dict__, "namespace": namespace, "registry": registry or base.registry}
        )
        drain = self.options.notebook_snapshot_timeout + NOTEBOOK_GRACE_MARGIN
        self.capabilities = Capabilities(
            in_cluster=True, keeps_logs=True, notebook_drain_seconds=drain
        )
        self.stuck_timeout = stuck_timeout
        self.request_timeout = request_timeout
        self._kubeconfig = kubeconfig
        self._api_host = api_host
        self._api = api_client
        self._owns_api = api_client is None
        self._pods = _Cache({}, {})
        self._deployments = _Cache({}, {})
        self._states: dict[str, WorkloadState] = {}
        self._final: dict[str, WorkloadState] = {}  # done workloads whose objects vanished
        self._stop_requested: dict[str, datetime] = {}
        self._forgotten: dict[str, float] = {}  # cleaned-up keys: late events are ignored
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        # How the observation went: full lists, 410s, failed watches (tests and metrics).
        self.stats = {"relists": 0, "gone": 0, "watch_errors": 0, "events": 0}

    # ----------------------------------------------------------------------------- plumbing

    async def _client(self) -> client.ApiClient:
        if self._api is None:
            self._api = await new_api_client(self._kubeconfig, self._api_host)
        return self._api

    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> dict:
        """One API call, raw: JSON body in, errors as ApiStatusError or transport errors."""
        resp = await fn(
            *args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs
        )
        try:
            return await _read_json(resp)
        finally:
            resp.release()

    async def _api_call(
        self, action: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """`_call`, with every failure turned into a RuntimeError_ for the reconciler."""
        try:
            return await self._call(fn, *args, **kwargs)
        except (ApiStatusError, *_TRANSPORT_ERRORS) as exc:
            raise to_runtime_error(exc, action) from exc

    def _core(self) -> client.CoreV1Api:
        assert self._api is not None
        return client.CoreV1Api(self._api)

    def _apps(self) -> client.AppsV1Api:
        assert self._api is not None
        return client.AppsV1Api(self._api)

    # -------------------------------------------------------------------------------- state

    def _compute(self, key: str) -> WorkloadState | None:
        pods = self._pods.of_key(key)
        deployments = self._deployments.of_key(key)
        anything = deployments or pods
        if not anything:
            return None
        kind = _annotation(anything[0], KIND_ANNOTATION) or "job"
        container = MAIN_CONTAINERS.get(kind, MAIN_CONTAINERS["job"])
        now = datetime.now(UTC)
        stop_at = self._stop_requested.get(key)
        url = None
        if kind in PLUGIN_KINDS:
            if not deployments:
                return None  # its pods linger, but the workload itself is gone
            deployment = deployments[0]
            observed = deployment_status(
                deployment,
                pods,
                container,
                stop_requested_at=stop_at,
                now=now,
                stuck_timeout=self.stuck_timeout,
            )
            url = _deployment_url(deployment, self.namespace)
        else:
            pod = max(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", _rv(p)))
            observed = pod_status(
                pod,
                container,
                stop_requested_at=stop_at,
                now=now,
                stuck_timeout=self.stuck_timeout,
            )
        return _state(key, observed, url)

    def _refresh(self, key: str) -> bool:
        """Recompute one key; True when what the reconciler would see changed."""
        previous = self._states.get(key)
        state = self._compute(key)
        if state is not None:
            self._states[key] = state
            self._final.pop(key, None)
            return state != previous
        if previous is None:
            return False
        del self._states[key]
        if previous.done:
            self._final[key] = previous
        elif key in self._stop_requested:
            self._final[key] = WorkloadState(
                key, Status.STOPPED, "Stopped by plx.", details=previous.details
            )
        return True

    def _refresh_keys(self, keys: set[str]) -> None:
        changed = False
        for key in keys:
            if key in self._forgotten:
                continue
            try:
                changed = self._refresh(key) or changed
            except Exception as exc:
                # One malformed object must not stop the others' refresh (nor the watch that
                # called this): its key is listed with the error until its objects change.
                state = unobservable(key, exc)
                if self._states.get(key) != state:
                    log.exception("kubernetes: observing %s failed", key)
                    self._states[key] = state
                    changed = True
        if changed:
            self._notify()

    def _remember(self, cache: _Cache, obj: dict[str, Any]) -> None:
        key = cache.put(obj)
        if key is not None:
            self._refresh_keys({key})

    # ------------------------------------------------------------------------ observation

    async def setup(self) -> None:
        """First list (so answers are right from the start), then the watch loops.
        An unreachable API is not fatal here: the loops keep retrying, and until the first
        list succeeds ``observe`` answers a retryable error instead of a wrong "vanished"."""
        if self._tasks:
            return  # already observing
        await self._client()
        for cache, lister in self._listers():
            try:
                rv = await self._relist(cache, lister)
            except ApiStatusError as exc:
                if exc.status in (401, 403):
                    raise to_runtime_error(exc, "list workloads") from exc
                rv = None
            except _TRANSPORT_ERRORS as exc:
                log.warning("kubernetes: initial list failed: %r", exc)
                rv = None
            self._tasks.append(asyncio.create_task(self._watch_forever(cache, lister, rv)))

    def _listers(self) -> list[tuple[_Cache, Callable[..., Awaitable[Any]]]]:
        return [
            (self._pods, self._core().list_namespaced_pod),
            (self._deployments, self._apps().list_namespaced_deployment),
        ]

    async def _relist(self, cache: _Cache, lister: Callable[..., Awaitable[Any]]) -> str:
        body = await self._call(lister, self.namespace, label_selector=MANAGED_SELECTOR)
        list_rv = _rv(body)
        fresh = _Cache({}, {})
        for obj in body.get("items") or []:
            fresh.put(obj)
        # Objects we created after the list's snapshot are newer than it: keep them, their
        # events follow on the watch that starts from the list's version.
        for obj in cache.objects.values():
            if _rv(obj) > list_rv:
                fresh.put(obj)
        keys = set(cache.by_key) | set(fresh.by_key)
        cache.objects, cache.by_key, cache.synced = fresh.objects, fresh.by_key, True
        self.stats["relists"] += 1
        self._prune_forgotten()
        # Every key, not only changed ones: time-based rules (stuck image pulls) move on here.
        self._refresh_keys(keys | set(self._states))
        return (body.get("metadata") or {}).get("resourceVersion") or "0"

    async def _watch_forever(
        self, cache: _Cache, lister: Callable[..., Awaitable[Any]], rv: str | None
    ) -> None:
        delay = _RETRY_MIN
        while not self._closing:
            try:
                if rv is None:
                    rv = await self._relist(cache, lister)
                await self._watch(cache, lister, rv)
                delay = _RETRY_MIN
            except _Gone:
                self.stats["gone"] += 1
                log.info("kubernetes: watch expired (410), relisting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats["watch_errors"] += 1
                log.warning("kubernetes: watch failed (%r), retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
            rv = None  # whatever ended the watch, continue from a fresh list

    async def _watch(self, cache: _Cache, lister: Callable[..., Awaitable[Any]], rv: str) -> None:
        """Apply events until the stream ends, an error, or the resync deadline."""
        resp = await lister(
            self.namespace,
            label_selector=MANAGED_SELECTOR,
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=max(1, math.ceil(self.resync_seconds)),
            _preload_content=False,
        )
        try:
            if resp.status == 410:
                raise _Gone()
            if resp.status != 200:
                await _read_json(resp)
            # Our own deadline too: a half-open connection would never end on its own.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_seconds):
                    async for line in resp.content:
                        if line.strip():
                            self._on_event(cache, json.loads(line))
        finally:
            resp.close()

    def _on_event(self, cache: _Cache, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object")
        if not isinstance(obj, dict) or kind not in _EVENT_TYPES:
            raise ApiStatusError(0, f"malformed watch event: {str(event)[:200]}")
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise ApiStatusError(int(obj.get("code") or 0), obj.get("message") or "watch error")
        if kind == "BOOKMARK":
            return
        self.stats["events"] += 1
        key = cache.remove(obj) if kind == "DELETED" else cache.put(obj)
        if key is not None:
            self._refresh_keys({key})

    def _prune_forgotten(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        horizon = 2 * self.resync_seconds + 60
        for key, at in list(self._forgotten.items()):
            if loop_time - at > horizon:
                del self._forgotten[key]

    def _check_synced(self) -> None:
        if not (self._pods.synced and self._deployments.synced):
            raise RuntimeError_("Kubernetes workloads not listed yet (API unreachable?).")

    async def observe(self, key: str) -> WorkloadState | None:
        self._check_synced()
        return self._states.get(key) or self._final.get(key)

    async def list_workloads(self) -> dict[str, WorkloadState]:
        self._check_synced()
        return {**self._final, **self._states}

    # ----------------------------------------------------------------------------- actions

    async def start(self, spec: WorkloadSpec) -> WorkloadState:
        manifests = build_manifests(spec, self.options)  # bad input fails before any call
        await self._client()
        core, apps = self._core(), self._apps()
        self._forgotten.pop(spec.key, None)
        self._final.pop(spec.key, None)
        for svc in manifests.services:
            await self._create(core.create_namespaced_service, core.read_namespaced_service, svc)
        for dep in manifests.deployments:
            obj = await self._create(
                apps.create_namespaced_deployment, apps.read_namespaced_deployment, dep
            )
            self._remember(self._deployments, obj)
        for pod in manifests.pods:
            obj = await self._create(core.create_namespaced_pod, core.read_namespaced_pod, pod)
            self._remember(self._pods, obj)
        state = self._states.get(spec.key)
        return state or WorkloadState(spec.key, Status.SCHEDULED, url=manifests.url)

    async def _create(
        self, create: Callable[..., Awaitable[Any]], read: Callable[..., Awaitable[Any]], body: Any
    ) -> dict[str, Any]:
        """Create, or adopt what a previous attempt created (deterministic names)."""
        name = body.metadata.name
        action = f"create {body.kind} {name}"
        try:
            return await self._call(create, self.namespace, body)
        except ApiStatusError as exc:
            if exc.status != 409:
                raise to_runtime_error(exc, action) from exc
        except _TRANSPORT_ERRORS as exc:
            raise to_runtime_error(exc, action) from exc
        return await self._api_call(f"read {body.kind} {name}", read, name, self.namespace)

    async def _delete_all(self, key: str, grace_seconds: float | None) -> None:
        """Label sweep: every pod, service and deployment of the key, whatever its name."""
        await self._client()
        core, apps = self._core(), self._apps()
        selector = key_selector(key)
        grace = None if grace_seconds is None else max(0, math.ceil(grace_seconds))
        calls = (
            ("deployments", apps.delete_collection_namespaced_deployment),
            ("services", core.delete_collection_namespaced_service),
            ("pods", core.delete_collection_namespaced_pod),
        )
        for what, fn in calls:
            await self._api_call(
                f"delete the {what} of {key}",
                fn,
                self.namespace,
                label_selector=selector,
                grace_period_seconds=grace,
                propagation_policy="Background",
            )

    async def stop(self, key: str, *, grace_seconds: float = 10.0) -> None:
        current = self._states.get(key) or self._final.get(key)
        if current is not None and current.done:
            return
        self._stop_requested.setdefault(key, datetime.now(UTC))
        await self._delete_all(key, grace_seconds)
        self._refresh_keys({key})

    async def cleanup(self, key: str) -> None:
        await self._delete_all(key, 0)
        self._forgotten[key] = asyncio.get_running_loop().time()
        self._states.pop(key, None)
        self._final.pop(key, None)
        self._stop_requested.pop(key, None)

    async def read_logs(self, key: str) -> str | None:
        """The main container's log; None when there is no pod or it has not started."""
        await self._client()
        core = self._core()
        pods = self._pods.of_key(key)
        if not pods:
            body = await self._api_call(
                f"list the pods of {key}",
                core.list_namespaced_pod,
                self.namespace,
                label_selector=key_selector(key),
            )
            pods = body.get("items") or []
        if not pods:
            return None
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        kind = _annotation(pod, KIND_ANNOTATION) or "job"
        try:
            # The raw response (not preloaded): its status says whether there are logs yet.
            raw: dict[str, Any] = {
                "container": MAIN_CONTAINERS.get(kind),
                "_preload_content": False,
                "_request_timeout": self.request_timeout,
            }
            resp: Any = await core.read_namespaced_pod_log(_name(pod), self.namespace, **raw)
            try:
                if resp.status in (400, 404):
                    return None  # not started yet (ContainerCreating), or gone
                if resp.status != 200:
                    await _read_json(resp)
                return (await resp.read()).decode(errors="replace")
            finally:
                resp.release()
        except (ApiStatusError, *_TRANSPORT_ERRORS) as exc:
            raise to_runtime_error(exc, f"read the logs of {key}") from exc

    async def list_nodes(self) -> list[ClusterNode]:
        """The cluster's nodes, read live (a rare, human-driven call: no cache, no watch).
        Nodes are cluster-scoped: this needs a ClusterRole with `list` on nodes."""
        await self._client()
        body = await self._api_call("list the cluster's nodes", self._core().list_node)
        return [cluster_node(item) for item in body.get("items") or []]

    async def aclose(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._api is not None and self._owns_api:
            await self._api.close()
            self._api = None


def _deployment_url(deployment: dict[str, Any], namespace: str) -> str | None:
    """The service shares the deployment's name and its container's first port."""
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            return service_url(_name(deployment), namespace, port["containerPort"])
    return None


def _state(key: str, observed: Observed, url: str | None) -> WorkloadState:
    return WorkloadState(
        key=key,
        status=observed.status,
        message=observed.message,
        exit_code=observed.exit_code,
        started_at=observed.started_at,
        finished_at=observed.finished_at,
        details=observed.details,
        url=url,
    )
