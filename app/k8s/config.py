"""Where the Kubernetes API is: in-cluster service account when inside a pod, else kubeconfig."""

from __future__ import annotations

import os

from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from app.runtimes.base import RuntimeError_


def in_cluster() -> bool:
    """Kubernetes injects these variables into every container of a pod."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and bool(
        os.environ.get("KUBERNETES_SERVICE_PORT")
    )


async def load_configuration(
    kubeconfig: str | None = None, host: str | None = None
) -> client.Configuration:
    """A fresh Configuration (never the process-wide default, so tests can run several).
    ``host``: talk to that URL without credentials (`kubectl proxy`, the tests' fake server)."""
    if host:
        return client.Configuration(host=host)
    configuration = client.Configuration()
    try:
        if kubeconfig is None and in_cluster():
            config.load_incluster_config(client_configuration=configuration)
            return configuration
        # `KUBECONFIG` may list several files; the client reads the first one.
        path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
        await config.load_kube_config(
            config_file=path, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, OSError) as exc:
        raise RuntimeError_(f"No Kubernetes configuration: {exc}", retryable=False) from exc
    return configuration


PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY")


async def new_api_client(
    kubeconfig: str | None = None, host: str | None = None
) -> client.ApiClient:
    api = client.ApiClient(configuration=await load_configuration(kubeconfig, host))
    _skip_netrc(api)
    return api


def _skip_netrc(api: client.ApiClient) -> None:
    """kubernetes-asyncio opens its aiohttp session with `trust_env=True`, so every API call
    first looks up ~/.netrc in a worker thread (about a tenth of the reconciler's time when it
    creates pods fast). The Kubernetes API authenticates with tokens or certificates, never
    netrc: unless a proxy is configured through the environment (which needs `trust_env`), the
    session stops trusting the environment. (A kubeconfig `proxy-url` is passed per request
    and is not affected.)"""
    if any(os.environ.get(name) or os.environ.get(name.lower()) for name in PROXY_VARIABLES):
        return
    session = getattr(getattr(api, "rest_client", None), "pool_manager", None)
    if session is not None and hasattr(session, "_trust_env"):
        session._trust_env = False  # no public setter; checked by tests/k8s/test_runtime.py
