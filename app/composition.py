"""The composition root: wires the runtimes that the rest of the service must not import.

Importing this module registers the Kubernetes runtime with `app.runtimes`; `app.main` imports
it. The reconciler, services and routers see only the `Runtime` interface and its
`Capabilities`, so only this module (and `app.k8s` itself) knows that Kubernetes exists.
"""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.runtimes import (
    Runtime,
    RuntimeFactory,
    build_runtime,
    make_runtime,
    register_runtime,
)


def _make_kubernetes(**kwargs: Any) -> Runtime:
    # Imported when asked for: a local server neither pays for nor needs the Kubernetes client.
    from app.k8s.runtime import KubernetesRuntime

    return KubernetesRuntime(**kwargs)


def _kubernetes_from_settings(settings: Settings) -> Runtime:
    from app.k8s.manifests import ManifestOptions

    options = ManifestOptions(
        outputs_claim=settings.k8s_outputs_claim,
        # The claim holds PLX_DATA_DIR and is mounted at the same path in pods, so the
        # outputs paths of the database are valid inside them too.
        outputs_root=str(settings.data_dir.resolve()),
        service_account=settings.k8s_service_account,
        allowed_secrets=frozenset(settings.k8s_allowed_secrets),
        allowed_configmaps=frozenset(settings.k8s_allowed_configmaps),
    )
    return _make_kubernetes(
        namespace=settings.k8s_namespace,
        registry=settings.k8s_registry,
        resync_seconds=settings.k8s_resync_seconds,
        options=options,
        api_host=settings.k8s_api_host,
    )


register_runtime("kubernetes", RuntimeFactory(_make_kubernetes, _kubernetes_from_settings))

__all__ = ["build_runtime", "make_runtime"]
