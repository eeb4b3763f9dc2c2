"""The operator's allow-list for `environment.secret_refs` / `configmap_refs` (issue 16.2).

A run may put into its pod only the Secrets and ConfigMaps the operator listed
(`PLX_K8S_ALLOWED_SECRETS`, `PLX_K8S_ALLOWED_CONFIGMAPS`, empty by default): anything else would
let a user read any Secret of the runs' namespace. The API sets the allow-list for the request
(`allowed_refs`), and the polyaxonfile models check every `environment` against it while they
validate (app/logic/specs.py), so every kind and every route that reads a polyaxonfile (create,
plan, update) answers 400 naming the reference. Outside a request (the reconciler reading stored
files) nothing is checked here; the Kubernetes manifests check again before a pod is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from app.logic.errors import SpecError


@dataclass(frozen=True)
class AllowedRefs:
    secrets: frozenset[str] = frozenset()
    configmaps: frozenset[str] = frozenset()


_CURRENT: ContextVar[AllowedRefs | None] = ContextVar("plx_allowed_refs", default=None)
SETTINGS = {
    "secret_refs": "PLX_K8S_ALLOWED_SECRETS",
    "configmap_refs": "PLX_K8S_ALLOWED_CONFIGMAPS",
}


@contextmanager
def allowed_refs(allowed: AllowedRefs) -> Iterator[None]:
    token = _CURRENT.set(allowed)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def refused(field: str, names: Iterable[str] | None, allowed: AllowedRefs) -> str | None:
    """Why `names` of `field` (secret_refs / configmap_refs) are refused, or None."""
    permitted = allowed.secrets if field == "secret_refs" else allowed.configmaps
    bad = [name for name in names or () if name not in permitted]
    if not bad:
        return None
    what = "secret" if field == "secret_refs" else "config map"
    listed = ", ".join(f"`{name}`" for name in bad)
    return (
        f"{what} {listed} is not allowed: the operator lists those runs may use in "
        f"{SETTINGS[field]}"
    )


def check_current(secret_refs: list[str] | None, configmap_refs: list[str] | None) -> None:
    """For the models' validator: SpecError (a ValueError) when the request's allow-list
    refuses one."""
    allowed = _CURRENT.get()
    if allowed is None:
        return
    for field, names in (("secret_refs", secret_refs), ("configmap_refs", configmap_refs)):
        reason = refused(field, names, allowed)
        if reason:
            raise SpecError(field, reason)


def check_config(config: Mapping[str, Any] | None) -> None:
    """A config that is stored without full validation (tensorboard / notebook start bodies)
    against the request's allow-list: SpecError naming the reference."""
    allowed = _CURRENT.get()
    environment = config.get("environment") if isinstance(config, Mapping) else None
    if allowed is None or not isinstance(environment, Mapping):
        return
    for field in SETTINGS:
        names = environment.get(field)
        if names is None:
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SpecError(f"environment.{field}", "must be a list of names")
        reason = refused(field, names, allowed)
        if reason:
            raise SpecError(f"environment.{field}", reason)
