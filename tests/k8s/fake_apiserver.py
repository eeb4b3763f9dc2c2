"""A fake Kubernetes API server (aiohttp) and kubelet, good enough for the real client.

    api = FakeApiServer()
    host = await api.start()                       # http://127.0.0.1:<free port>
    kubelet = FakeKubelet(api); kubelet.start()     # moves pods Pending → Running → done
    configuration = Configuration(host=host)        # kubernetes_asyncio.client.Configuration
    ...
    await kubelet.stop(); await api.stop()

Served: core/v1 pods (+ pods/log), services, configmaps, secrets, nodes (list / get: the
kubelet registers its node; `add_node()` adds more); apps/v1 deployments:
namespaced create / get / list / delete / deletecollection, `labelSelector` (=, ==, !=, in,
notin, exists, !exists), one global resourceVersion counter, `?watch=true` streams of
newline-delimited JSON events from a resourceVersion (an `ERROR` event with a 410 Status when
that version was compacted away), 404 / 409 / 422 / 403 / 500 as real Status objects.

Test hooks: `forbidden_namespaces` ("" forbids the cluster scope: nodes), `fail_next(n)`,
`drop_watches()` (connections cut),
`blackhole_watches()` (connections stay open but say nothing more: a half-open TCP link),
`compact()` (old resourceVersions → 410), `expire_watches()` (a 410 ERROR to live watches),
`stop()` / `start()` again on the same port (the API server down and back, state kept),
`set_pod_status()` / `remove()` for direct edits.

The kubelet decides a pod's fate from, in order: `kubelet.script(pod_name, PodScript(...))`,
labels or annotations `fake-kubelet/outcome` (succeed | fail | oom | unschedulable |
image-pull | run), `fake-kubelet/exit-code`, `fake-kubelet/run-seconds`, then the command
(`exit N` → that exit code, `sleep S` → runs S seconds), else it succeeds after `run_seconds`.
`kubelet.finish(pod_name, exit_code)` ends a running pod now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import uuid as uuidlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

KINDS = {
    "pods": "Pod",
    "services": "Service",
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "deployments": "Deployment",
}
CORE = ("pods", "services", "configmaps", "secrets")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    def response(self) -> web.Response:
        return web.json_response(self.status(), status=self.code)


# ------------------------------------------------------------------------------ label selectors


def _split_selector(text: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b`)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


Requirement = Callable[[dict[str, str]], bool]


def _requirement(text: str) -> Requirement:
    set_match = re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)", text)
    if set_match:
        key, op, values = set_match.groups()
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    for op in ("!=", "==", "="):
        if op in text:
            key, value = (s.strip() for s in text.split(op, 1))
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if text.startswith("!"):
        key = text[1:].strip()
        return lambda labels: key not in labels
    if not _LABEL_NAME.match(text.rpartition("/")[2]):
        raise ApiError(400, "BadRequest", f"unable to parse requirement: {text!r}")
    return lambda labels: text in labels


def parse_selector(text: str | None) -> Requirement:
    requirements = [_requirement(part) for part in _split_selector(text or "")]
    return lambda labels: all(req(labels) for req in requirements)


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


# ----------------------------------------------------------------------------------- the server


@dataclass(eq=False)  # hashed by identity: watchers live in a set
class _Watcher:
    resource: str
    namespace: str
    matches: Requirement
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    deaf: bool = False


@dataclass
class _Event:
    rv: int
    resource: str
    namespace: str
    labels: dict[str, str]
    line: bytes


class FakeApiServer:
    """State lives on this object; the HTTP server can stop and start around it."""

    def __init__(self, *, history: int = 10_000, termination_seconds: float = 0.05) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}  # cluster-scoped, apart from the workloads
        self.rv = 0
        self.history: deque[_Event] = deque(maxlen=history)
        self.compacted_rv = 0
        self.watchers: set[_Watcher] = set()
        self.listeners: list[Callable[[str, str, dict[str, Any]], None]] = []
        self.logs: dict[tuple[str, str], str] = {}
        self.forbidden_namespaces: set[str] = set()
        self.termination_seconds = termination_seconds
        self.requests: list[tuple[str, str]] = []
        self._fail_next = 0
        self._fail_status = 500
        self._fail_method: str | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------ lifecycle

    async def start(self, port: int | None = None) -> str:
        """Serve on 127.0.0.1 (a free port the first time, the same one after a stop)."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{resource}", self._collection)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{resource}/{name}", self._item)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self._log)
        app.router.add_get("/api/v1/nodes", self._nodes)
        app.router.add_get("/api/v1/nodes/{name}", self._node)
        app.router.add_route("*", "/apis/apps/v1/namespaces/{ns}/{resource}", self._collection)
        app.router.add_route("*", "/apis/apps/v1/namespaces/{ns}/{resource}/{name}", self._item)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port or 0, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.host

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """The API server goes down: connections (watches too) are cut, state is kept."""
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        await self.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ----------------------------------------------------------------------------- hooks

    def fail_next(self, count: int, status: int = 500, method: str | None = None) -> None:
        """Answer the next `count` requests (of `method`, when given) with `status`."""
        self._fail_next, self._fail_status, self._fail_method = count, status, method

    def drop_watches(self) -> None:
        for watcher in self.watchers:
            watcher.queue.put_nowait(None)

    def expire_watches(self) -> None:
        """What the API server does to a watcher that fell behind its window: compact, then
        an ERROR event with a 410 Status, then the end of the stream."""
        self.compact()
        gone = ApiError(410, "Expired", "too old resource version")
        line = json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n"
        for watcher in self.watchers:
            watcher.queue.put_nowait(line)
            watcher.queue.put_nowait(b"")

    def blackhole_watches(self) -> None:
        for watcher in self.watchers:
            watcher.deaf = True

    def compact(self) -> None:
        """Forget history: a watch from any version up to now gets 410 Gone."""
        self.history.clear()
        self.compacted_rv = self.rv

    # ----------------------------------------------------------------------- the store

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _emit(self, kind: str, resource: str, namespace: str, obj: dict[str, Any]) -> None:
        line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
        labels = dict(_labels(obj))
        event = _Event(int(obj["metadata"]["resourceVersion"]), resource, namespace, labels, line)
        if self.history.maxlen and len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        self.history.append(event)
        for watcher in self.watchers:
            if watcher.deaf or watcher.resource != resource or watcher.namespace != namespace:
                continue
            if watcher.matches(labels):
                watcher.queue.put_nowait(line)
        for listener in list(self.listeners):
            listener(kind, resource, obj)
        if resource == "pods" and kind == "MODIFIED":
            self.pod_changed(namespace, obj)

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((resource, namespace, name))

    def list(self, resource: str, namespace: str, selector: str | None = None) -> list[dict]:
        matches = parse_selector(selector)
        return [
            obj
            for (res, ns, _), obj in self.objects.items()
            if res == resource and ns == namespace and matches(_labels(obj))
        ]

    def create(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        _validate(resource, body)
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuidlib.uuid4().hex[:5]
        name = meta["name"]
        if (resource, namespace, name) in self.objects:
            raise ApiError(
                409, "AlreadyExists", f'{resource} "{name}" already exists',
                {"name": name, "kind": resource},
            )
        meta.update(
            namespace=namespace, uid=str(uuidlib.uuid4()), resourceVersion=self._next_rv(),
            creationTimestamp=now_iso(), generation=1,
        )
        body["kind"], body["apiVersion"] = KINDS[resource], _api_version(resource)
        _defaults(resource, body)
        self.objects[(resource, namespace, name)] = body
        self._emit("ADDED", resource, namespace, body)
        if resource == "deployments":
            self._reconcile_deployment(namespace, name)
        return body

    def update(
        self, resource: str, namespace: str, name: str, mutate: Callable[[dict], None]
    ) -> dict[str, Any] | None:
        obj = self.get(resource, namespace, name)
        if obj is None:
            return None
        mutate(obj)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("MODIFIED", resource, namespace, obj)
        return obj

    def add_node(
        self, name: str, *, cpu: str = "4", memory: str = "16331164Ki", gpus: int = 0,
        labels: dict[str, str] | None = None, ready: str = "True",
        taints: list[dict[str, str]] | None = None, unschedulable: bool = False,
    ) -> dict[str, Any]:
        """Register a node, as a kubelet does when it joins (cluster-scoped: namespace "")."""
        capacity = {"cpu": cpu, "memory": memory, "pods": "110"}
        if gpus:
            capacity["nvidia.com/gpu"] = str(gpus)
        node = {
            "kind": "Node", "apiVersion": "v1",
            "metadata": {
                "name": name, "uid": str(uuidlib.uuid4()), "resourceVersion": self._next_rv(),
                "creationTimestamp": now_iso(),
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"taints": taints} if taints else {},
            "status": {
                "capacity": capacity, "allocatable": dict(capacity),
                "conditions": [_condition("Ready", ready, "KubeletReady")],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.4"},
                              {"type": "Hostname", "address": name}],
                "nodeInfo": {
                    "kubeletVersion": "v1.29.2", "containerRuntimeVersion": "containerd://1.7.13",
                    "osImage": "Ubuntu 22.04.4 LTS", "kernelVersion": "6.5.0-1016-gcp",
                    "architecture": "amd64", "operatingSystem": "linux",
                },
            },
        }
        if unschedulable:
            node["spec"]["unschedulable"] = True
        self.nodes[name] = node
        return node

    def set_pod_status(self, namespace: str, name: str, **status: Any) -> dict | None:
        return self.update("pods", namespace, name, lambda pod: pod["status"].update(status))

    def remove(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Gone at once (the end of a graceful deletion, or a force delete)."""
        obj = self.objects.pop((resource, namespace, name), None)
        if obj is None:
            return None
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", resource, namespace, obj)
        if resource == "deployments":
            for pod in self._owned_pods(namespace, name):
                self.delete("pods", namespace, pod["metadata"]["name"], None)
        elif resource == "pods":
            self._on_pod_gone(namespace, obj)
        return obj

    def delete(self, resource: str, namespace: str, name: str, grace: int | None) -> dict:
        """Pods bound to a node and still running terminate gracefully (deletionTimestamp,
        then gone); everything else goes at once."""
        obj = self.get(resource, namespace, name)
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found',
                           {"name": name, "kind": resource})
        if resource == "pods":
            if grace is None:
                grace = obj["spec"].get("terminationGracePeriodSeconds", 30)
            phase = obj.get("status", {}).get("phase")
            bound = bool(obj["spec"].get("nodeName"))
            if grace > 0 and bound and phase not in ("Succeeded", "Failed"):
                return self._terminate(namespace, obj, grace)
        return self.remove(resource, namespace, name) or obj

    def _terminate(self, namespace: str, pod: dict[str, Any], grace: int) -> dict[str, Any]:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp"):
            return pod

        def mark(obj: dict) -> None:
            obj["metadata"]["deletionTimestamp"] = now_iso()
            obj["metadata"]["deletionGracePeriodSeconds"] = grace

        pod = self.update("pods", namespace, name, mark) or pod
        self._spawn(self._finish_termination(namespace, name, min(grace, self.termination_seconds)))
        return pod

    async def _finish_termination(self, namespace: str, name: str, delay: float) -> None:
        """What the kubelet does after SIGTERM: the container exits (143), the pod goes."""
        await asyncio.sleep(delay)

        def killed(pod: dict) -> None:
            for status in pod["status"].get("containerStatuses") or []:
                if "terminated" not in status.get("state", {}):
                    status["state"] = {"terminated": {
                        "exitCode": 143, "reason": "Error", "finishedAt": now_iso(),
                    }}
            if pod["spec"].get("restartPolicy") == "Never":
                pod["status"]["phase"] = "Failed"

        self.update("pods", namespace, name, killed)
        self.remove("pods", namespace, name)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------- deployment controller

    def _owned_pods(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        return [
            obj
            for (res, ns, _), obj in self.objects.items()
            if res == "pods" and ns == namespace
            and any(ref.get("name") == deployment for ref in
                    obj["metadata"].get("ownerReferences") or [])
        ]

    def _reconcile_deployment(self, namespace: str, name: str) -> None:
        """One replica: create its pod when there is none alive."""
        deployment = self.get("deployments", namespace, name)
        if deployment is None:
            return
        alive = [p for p in self._owned_pods(namespace, name)
                 if not p["metadata"].get("deletionTimestamp")]
        if alive:
            return
        template = json.loads(json.dumps(deployment["spec"]["template"]))
        meta = template.setdefault("metadata", {})
        meta["name"] = f"{name}-{random.randbytes(3).hex()}"
        meta.setdefault("labels", {})["pod-template-hash"] = "5f8d9c"
        meta["ownerReferences"] = [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
            "uid": deployment["metadata"]["uid"], "controller": True,
        }]
        template["spec"].setdefault("restartPolicy", "Always")
        self.create("pods", namespace, template)

    def _deployment_of(self, pod: dict[str, Any]) -> str | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Deployment":
                return ref["name"]
        return None

    def pod_changed(self, namespace: str, pod: dict[str, Any]) -> None:
        """The controller's view of its pod: ready → available replica."""
        name = self._deployment_of(pod)
        if name is None or self.get("deployments", namespace, name) is None:
            return
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in pod["status"].get("conditions") or [])
        wanted = {"replicas": 1, "readyReplicas": int(ready), "availableReplicas": int(ready)}
        current = self.get("deployments", namespace, name)["status"]
        if any(current.get(k) != v for k, v in wanted.items()):
            self.update("deployments", namespace, name, lambda d: d["status"].update(wanted))

    def _on_pod_gone(self, namespace: str, pod: dict[str, Any]) -> None:
        name = self._deployment_of(pod)
        if name is not None:
            self._reconcile_deployment(namespace, name)

    # ------------------------------------------------------------------------------ HTTP

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        try:
            if self._fail_next > 0 and self._fail_method in (None, request.method):
                self._fail_next -= 1
                raise ApiError(self._fail_status, "InternalError", "injected failure")
            namespace = request.match_info.get("ns")
            resource = request.match_info.get("resource", "pods")
            if namespace in self.forbidden_namespaces:
                raise ApiError(
                    403, "Forbidden",
                    f'{resource} is forbidden: User "system:serviceaccount:plx:plx" cannot '
                    f'{request.method.lower()} resource "{resource}" in the namespace '
                    f'"{namespace}"',
                )
            return await handler(request)
        except ApiError as exc:
            return exc.response()

    def _resource(self, request: web.Request) -> tuple[str, str]:
        resource = request.match_info["resource"]
        apps = request.path.startswith("/apis/apps/")
        if resource not in KINDS or (resource == "deployments") != apps:
            raise ApiError(404, "NotFound", f"the server could not find resource {resource}")
        return resource, request.match_info["ns"]

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        resource, namespace = self._resource(request)
        query = request.query
        if request.method == "GET":
            if query.get("watch", "").lower() in ("true", "1"):  # Go's ParseBool
                return await self._watch(request, resource, namespace)
            items = self.list(resource, namespace, query.get("labelSelector"))
            return web.json_response({
                "kind": f"{KINDS[resource]}List", "apiVersion": _api_version(resource),
                "metadata": {"resourceVersion": str(self.rv)}, "items": items,
            })
        if request.method == "POST":
            body = await _json_body(request)
            ns = body.get("metadata", {}).get("namespace")
            if ns and ns != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the object does not match")
            return web.json_response(self.create(resource, namespace, body), status=201)
        if request.method == "DELETE":
            grace = _grace(request)
            gone = [self.delete(resource, namespace, obj["metadata"]["name"], grace)
                    for obj in self.list(resource, namespace, query.get("labelSelector"))]
            return web.json_response({
                "kind": f"{KINDS[resource]}List", "apiVersion": _api_version(resource),
                "metadata": {"resourceVersion": str(self.rv)}, "items": gone,
            })
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported")

    async def _item(self, request: web.Request) -> web.Response:
        resource, namespace = self._resource(request)
        name = request.match_info["name"]
        if request.method == "GET":
            obj = self.get(resource, namespace, name)
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found',
                               {"name": name, "kind": resource})
            return web.json_response(obj)
        if request.method == "DELETE":
            return web.json_response(self.delete(resource, namespace, name, _grace(request)))
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported")

    async def _nodes(self, request: web.Request) -> web.Response:
        if "" in self.forbidden_namespaces:  # "": the cluster scope
            raise ApiError(
                403, "Forbidden", 'nodes is forbidden: User "system:serviceaccount:plx:plx" '
                'cannot list resource "nodes" in API group "" at the cluster scope',
            )
        matches = parse_selector(request.query.get("labelSelector"))
        items = [node for node in self.nodes.values() if matches(_labels(node))]
        return web.json_response({"kind": "NodeList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(self.rv)}, "items": items})

    async def _node(self, request: web.Request) -> web.Response:
        node = self.nodes.get(request.match_info["name"])
        if node is None:
            raise ApiError(404, "NotFound", f'nodes "{request.match_info["name"]}" not found')
        return web.json_response(node)

    async def _log(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["ns"], request.match_info["name"]
        pod = self.get("pods", namespace, name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = request.query.get("container") or containers[0]
        if container not in containers:
            raise ApiError(400, "BadRequest",
                           f"container {container} is not valid for pod {name}")
        for status in pod["status"].get("containerStatuses") or []:
            waiting = status.get("state", {}).get("waiting")
            if status["name"] == container and waiting:
                raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" '
                               f"is waiting to start: {waiting.get('reason')}")
        if not pod["status"].get("containerStatuses"):
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" '
                           "is waiting to start: ContainerCreating")
        return web.Response(text=self.logs.get((namespace, name), ""))

    async def _watch(
        self, request: web.Request, resource: str, namespace: str
    ) -> web.StreamResponse:
        query = request.query
        watcher = _Watcher(resource, namespace, parse_selector(query.get("labelSelector")))
        start = query.get("resourceVersion")
        timeout = float(query.get("timeoutSeconds") or 1800)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if start not in (None, "", "0") and int(start) < self.compacted_rv:
            gone = ApiError(410, "Expired", f"too old resource version: {start} ({self.rv})")
            await response.write(json.dumps({"type": "ERROR", "object": gone.status()}).encode()
                                 + b"\n")
            return response
        # Backlog and registration happen with no await in between: no event falls between.
        backlog = self._backlog(watcher, start)
        self.watchers.add(watcher)
        try:
            for line in backlog:
                await response.write(line)
            await self._stream(request, response, watcher, timeout)
        finally:
            self.watchers.discard(watcher)
        return response

    def _backlog(self, watcher: _Watcher, start: str | None) -> list[bytes]:
        if start in (None, "", "0"):
            return [
                json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"
                for obj in self.list(watcher.resource, watcher.namespace)
                if watcher.matches(_labels(obj))
            ]
        since = int(start)
        return [
            event.line for event in self.history
            if event.rv > since and event.resource == watcher.resource
            and event.namespace == watcher.namespace and watcher.matches(event.labels)
        ]

    async def _stream(self, request: web.Request, response: web.StreamResponse,
                      watcher: _Watcher, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                line = await asyncio.wait_for(watcher.queue.get(), remaining)
            except TimeoutError:
                return
            if line is None:  # dropped: cut the connection, no clean end of stream
                if request.transport is not None:
                    request.transport.close()
                return
            if not line:  # a clean end of the stream
                return
            await response.write(line)


def _api_version(resource: str) -> str:
    return "apps/v1" if resource == "deployments" else "v1"


def _grace(request: web.Request) -> int | None:
    value = request.query.get("gracePeriodSeconds")
    return int(value) if value not in (None, "") else None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the body must be an object")
    return body


def _invalid(resource: str, name: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'{KINDS[resource]} "{name}" is invalid: {message}',
                    {"name": name, "kind": KINDS[resource]})


def _validate(resource: str, body: dict[str, Any]) -> None:
    """The checks of the real API server that plx's manifests could trip over."""
    meta = body.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or ""
    pattern = _DNS_1035 if resource == "services" else _DNS_SUBDOMAIN
    if not name or len(name) > 253 or not pattern.match(name.rstrip("-")):
        raise _invalid(resource, name, "metadata.name: Invalid value")
    for key, value in (meta.get("labels") or {}).items():
        if len(key.rpartition("/")[2]) > 63 or not _LABEL_NAME.match(key.rpartition("/")[2]):
            raise _invalid(resource, name, f"metadata.labels: Invalid value: {key!r}")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise _invalid(resource, name, f"metadata.labels: Invalid value: {value!r}")
    if resource == "pods":
        _validate_pod_spec(resource, name, body.get("spec") or {})
    if resource == "deployments":
        spec = body.get("spec") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector or any(template_labels.get(k) != v for k, v in selector.items()):
            raise _invalid(resource, name, "spec.template.metadata.labels: must match selector")
        _validate_pod_spec(resource, name, (spec.get("template") or {}).get("spec") or {})


def _validate_pod_spec(resource: str, name: str, spec: dict[str, Any]) -> None:
    containers = spec.get("containers") or []
    if not containers:
        raise _invalid(resource, name, "spec.containers: Required value")
    for container in containers + (spec.get("initContainers") or []):
        if not container.get("name") or not container.get("image"):
            raise _invalid(resource, name, "spec.containers: name and image are required")


def _defaults(resource: str, body: dict[str, Any]) -> None:
    if resource == "pods":
        body.setdefault("spec", {}).setdefault("restartPolicy", "Always")
        body["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif resource == "services":
        spec = body.setdefault("spec", {})
        if spec.get("clusterIP") != "None":
            spec["clusterIP"] = f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}"
        spec.setdefault("type", "ClusterIP")
    elif resource == "deployments":
        body["status"] = {}


# ----------------------------------------------------------------------------------- kubelet

OUTCOMES = ("succeed", "fail", "oom", "unschedulable", "image-pull", "run")


@dataclass
class PodScript:
    """What the fake kubelet does with one pod."""

    outcome: str = "succeed"
    exit_code: int = 0
    run_seconds: float | None = None  # None: the kubelet's default
    logs: str | None = None


class FakeKubelet:
    """Drives pods like a node would: schedule, pull, run, exit. Reacts to store events."""

    def __init__(
        self, api: FakeApiServer, *, node: str = "fake-node-1", step: float = 0.01,
        run_seconds: float = 0.1,
    ) -> None:
        self.api = api
        self.node = node
        self.step = step
        self.run_seconds = run_seconds
        self.scripts: dict[str, PodScript] = {}
        self._finish: dict[str, asyncio.Future[int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self.node not in self.api.nodes:
            self.api.add_node(self.node)  # a kubelet registers its node when it starts
        self.api.listeners.append(self._on_event)
        for (resource, namespace, _), obj in list(self.api.objects.items()):
            if resource == "pods" and not obj["spec"].get("nodeName"):
                self._drive(namespace, obj)

    async def stop(self) -> None:
        if self._on_event in self.api.listeners:
            self.api.listeners.remove(self._on_event)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def script(self, pod_name: str, script: PodScript) -> None:
        self.scripts[pod_name] = script

    def finish(self, pod_name: str, exit_code: int = 0) -> None:
        """End a running pod now (outcome `run` pods only end this way)."""
        future = self._finish.get(pod_name)
        if future is not None and not future.done():
            future.set_result(exit_code)

    def _on_event(self, kind: str, resource: str, obj: dict[str, Any]) -> None:
        if resource == "pods" and kind == "ADDED":
            self._drive(obj["metadata"]["namespace"], obj)

    def _drive(self, namespace: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        self._finish[name] = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(self._run(namespace, name, self._plan(pod)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _plan(self, pod: dict[str, Any]) -> PodScript:
        meta = pod["metadata"]
        if meta["name"] in self.scripts:
            return self.scripts[meta["name"]]
        hints = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
        script = PodScript()
        if pod["spec"].get("restartPolicy") == "Always":
            script.outcome = "run"  # servers (deployment pods) do not exit on their own
        args = pod["spec"]["containers"][0].get("args") or []
        command = args[-1].strip() if args else ""
        if m := re.fullmatch(r"(?:.*[;&]\s*)?exit\s+(\d+)", command):
            script.outcome, script.exit_code = "fail", int(m.group(1))
        elif m := re.fullmatch(r"sleep\s+(\d+(?:\.\d+)?)", command):
            script.run_seconds = float(m.group(1))
        if "fake-kubelet/outcome" in hints:
            script.outcome = hints["fake-kubelet/outcome"]
        if "fake-kubelet/exit-code" in hints:
            script.exit_code = int(hints["fake-kubelet/exit-code"])
            script.outcome = "fail" if script.exit_code else "succeed"
        if "fake-kubelet/run-seconds" in hints:
            script.run_seconds = float(hints["fake-kubelet/run-seconds"])
        return script

    def _set(self, namespace: str, name: str, mutate: Callable[[dict], None]) -> bool:
        """Apply a status change unless the pod is gone or being deleted (then we stop)."""
        pod = self.api.get("pods", namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return False
        self.api.update("pods", namespace, name, mutate)
        return True

    async def _run(self, namespace: str, name: str, script: PodScript) -> None:
        await asyncio.sleep(self.step)
        if script.outcome == "unschedulable":
            self._set(namespace, name, _unschedulable)
            return
        if not self._set(namespace, name, lambda p: _scheduled(p, self.node)):
            return
        await asyncio.sleep(self.step)
        if script.outcome == "image-pull":
            self._set(namespace, name, lambda p: _waiting(p, "ErrImagePull"))
            await asyncio.sleep(self.step)
            self._set(namespace, name, lambda p: _waiting(p, "ImagePullBackOff"))
            return
        if not self._set(namespace, name, _running):
            return
        command = " ".join(self.api.get("pods", namespace, name)["spec"]["containers"][0]
                           .get("args") or [])
        self.api.logs[(namespace, name)] = script.logs or f"fake kubelet ran: {command}\n"
        exit_code = await self._wait_for_exit(name, script)
        reason = "Completed" if exit_code == 0 else "Error"
        if script.outcome == "oom":
            exit_code, reason = 137, "OOMKilled"
        self._set(namespace, name, lambda p: _exited(p, exit_code, reason))

    async def _wait_for_exit(self, name: str, script: PodScript) -> int:
        future = self._finish[name]
        seconds = script.run_seconds if script.run_seconds is not None else self.run_seconds
        try:
            if script.outcome == "run":
                return await future
            return await asyncio.wait_for(asyncio.shield(future), seconds)
        except TimeoutError:
            return script.exit_code if script.outcome == "fail" else 0
        finally:
            self._finish.pop(name, None)


def _condition(kind: str, status: str, reason: str | None = None, message: str | None = None):
    cond = {"type": kind, "status": status, "lastTransitionTime": now_iso()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _set_condition(pod: dict[str, Any], cond: dict[str, Any]) -> None:
    conditions = [c for c in pod["status"].get("conditions") or [] if c["type"] != cond["type"]]
    pod["status"]["conditions"] = [*conditions, cond]


def _unschedulable(pod: dict[str, Any]) -> None:
    _set_condition(pod, _condition(
        "PodScheduled", "False", "Unschedulable",
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
    ))


def _container_statuses(pod: dict[str, Any], state: dict[str, Any], ready: bool) -> list[dict]:
    return [
        {"name": c["name"], "image": c["image"], "ready": ready, "restartCount": 0,
         "state": json.loads(json.dumps(state))}
        for c in pod["spec"]["containers"]
    ]


def _scheduled(pod: dict[str, Any], node: str) -> None:
    pod["spec"]["nodeName"] = node
    _set_condition(pod, _condition("PodScheduled", "True"))
    if pod["spec"].get("initContainers"):
        pod["status"]["initContainerStatuses"] = [
            {"name": c["name"], "image": c["image"], "ready": True, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            for c in pod["spec"]["initContainers"]
        ]
    pod["status"]["containerStatuses"] = _container_statuses(
        pod, {"waiting": {"reason": "ContainerCreating"}}, False
    )


def _waiting(pod: dict[str, Any], reason: str) -> None:
    image = pod["spec"]["containers"][0]["image"]
    pod["status"]["containerStatuses"] = _container_statuses(
        pod, {"waiting": {"reason": reason, "message": f'Back-off pulling image "{image}"'}},
        False,
    )


def _running(pod: dict[str, Any]) -> None:
    pod["status"].update(phase="Running", podIP="10.244.0.7", startTime=now_iso())
    pod["status"]["containerStatuses"] = _container_statuses(
        pod, {"running": {"startedAt": now_iso()}}, True
    )
    _set_condition(pod, _condition("Ready", "True"))


def _exited(pod: dict[str, Any], exit_code: int, reason: str) -> None:
    started = pod["status"]["containerStatuses"][0]["state"].get("running", {}).get("startedAt")
    terminated = {"exitCode": exit_code, "reason": reason, "startedAt": started,
                  "finishedAt": now_iso()}
    _set_condition(pod, _condition("Ready", "False"))
    if pod["spec"].get("restartPolicy") == "Never":
        pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        pod["status"]["containerStatuses"] = _container_statuses(
            pod, {"terminated": terminated}, False
        )
        return
    # A Deployment's pod restarts: it crash-loops with the last exit remembered.
    statuses = _container_statuses(pod, {"waiting": {"reason": "CrashLoopBackOff"}}, False)
    for status in statuses:
        status["lastState"] = {"terminated": terminated}
        status["restartCount"] = 1
    pod["status"]["containerStatuses"] = statuses
