"""The fake API server and kubelet on a thread of their own, for tests whose plx server is a
separate process (it may be killed and restarted while the fake cluster keeps its state).

    cluster = FakeClusterThread()
    cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="plx")  # for KUBECONFIG
    ...                                         # start `plx server` with PLX_RUNTIME=kubernetes
    cluster.pods()                              # the managed pods, as JSON dicts
    cluster.pod_create_attempts()               # Counter: POSTs per pod name, 409s included
    cluster.close()

`python -m tests.k8s.fake_apiserver_runner KUBECONFIG_PATH [NAMESPACE]` serves one until
Ctrl-C (a manual run of a big sweep against it, e.g. 1,000 experiments).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from app.k8s.manifests import KEY_ANNOTATION, MANAGED_SELECTOR
from tests.k8s.fake_apiserver import FakeApiServer, FakeKubelet

T = TypeVar("T")
CALL_TIMEOUT = 10.0


class RecordingApiServer(FakeApiServer):
    """Counts every create per (resource, name) before it is checked, so a POST answered 409
    (the object exists) counts too: two counted attempts mean someone tried to create twice."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.create_attempts: Counter[tuple[str, str]] = Counter()
        self.created_keys: dict[str, str] = {}  # pod name -> plx workload key (annotation)

    def create(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.get("metadata") or {}
        self.create_attempts[(resource, meta.get("name") or "")] += 1
        obj = super().create(resource, namespace, body)
        key = (obj["metadata"].get("annotations") or {}).get(KEY_ANNOTATION)
        if resource == "pods" and key:
            self.created_keys[obj["metadata"]["name"]] = key
        return obj


class FakeClusterThread:
    """A RecordingApiServer and a FakeKubelet driven by an event loop on a daemon thread.

    Every accessor runs on that loop, so the test thread never reads state mid-update."""

    def __init__(self, *, step: float = 0.01, run_seconds: float = 0.05) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.api = RecordingApiServer()
        self.host: str = self._call(self.api.start())
        self.kubelet = FakeKubelet(self.api, step=step, run_seconds=run_seconds)
        self.run(self.kubelet.start)

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(CALL_TIMEOUT)

    def run(self, fn: Callable[[], T]) -> T:
        """Call `fn` on the cluster's loop and return its result."""

        async def inline() -> T:
            return fn()

        return self._call(inline())

    def pods(self, namespace: str, selector: str = MANAGED_SELECTOR) -> list[dict[str, Any]]:
        """Copies of the pods (terminating ones included) that match the label selector."""
        return self.run(lambda: json.loads(json.dumps(self.api.list("pods", namespace, selector))))

    def pod_create_attempts(self) -> Counter[str]:
        return self.run(
            lambda: Counter(
                {name: n for (res, name), n in self.api.create_attempts.items() if res == "pods"}
            )
        )

    def created_pod_keys(self) -> dict[str, str]:
        """Pod name -> the workload key it was created for, for every pod ever created."""
        return self.run(lambda: dict(self.api.created_keys))

    def write_kubeconfig(self, path: Path, namespace: str) -> Path:
        """A kubeconfig (JSON is valid YAML) whose current context talks to this server."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.host}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    def close(self) -> None:
        self._call(self.kubelet.stop())
        self._call(self.api.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python -m tests.k8s.fake_apiserver_runner KUBECONFIG_PATH [NAMESPACE]")
        return 2
    cluster = FakeClusterThread()
    path = cluster.write_kubeconfig(Path(argv[0]), argv[1] if len(argv) > 1 else "default")
    print(f"fake API server at {cluster.host}; kubeconfig written to {path}; Ctrl-C stops it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
