"""What a run's workload needs beyond its identity: image, build, scheduling, refs, cluster.

Pure helpers over a run's stored config: app/reconciler/specs.py calls them for a WorkloadSpec.
A config that cannot become a workload raises ``RuntimeError_(retryable=False)``, so the run
fails with the message instead of waiting forever.
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.logic.errors import SpecError
from app.logic.polyaxonfile import experiment_spec_for, parse_polyaxonfile
from app.logic.specs import (
    BuildConfig,
    EnvironmentConfig,
    ExperimentSpec,
    PodEnvironment,
    Replica,
)
from app.runtimes.base import Resources, RuntimeError_

CLUSTER_PORT = 2222  # v0 7.1: each replica of a distributed experiment listens here
LOCALE = "en_US.UTF-8"


def image_name(registry: str | None, project: str, project_id: int, build_uuid: str) -> str:
    """v0 7.2: `{registry}/{project_name_lower}_{project_id}:{build_uuid}`."""
    repo = re.sub(r"[^a-z0-9_.-]", "-", project.lower())
    name = f"{repo}_{project_id}:{build_uuid}"
    return f"{registry.rstrip('/')}/{name}" if registry else name


def render_dockerfile(build: BuildConfig) -> str:
    """The Dockerfile of a build from `image` (+ `env_vars`, `build_steps`), as v0's dockerizer
    wrote it; the code version is the context, copied to /code."""
    lines = [f"FROM {build.image}"]
    lines += [f"ENV {name} {LOCALE}" for name in ("LC_ALL", "LANG", "LANGUAGE")]
    lines.append("ENV SHELL /bin/bash")
    for name, value in build.env_vars or []:
        lines.append(f"ENV {name} {json.dumps(str(value))}")
    lines.append("WORKDIR /code")
    lines += [f"RUN {step}" for step in build.build_steps or []]
    lines.append("COPY . /code")
    return "\n".join(lines) + "\n"


def build_fields(row: Any, *, registry: str | None, project: str, project_id: int) -> dict:
    """Destination image, code version, context, and the Dockerfile: rendered from `image`,
    or the path of one in the code (`build.dockerfile`, checked by the runtime)."""
    build = _parse(row.config or {}, "build").build
    fields = {
        "destination_image": image_name(registry, project, project_id, row.uuid),
        "code_reference": getattr(row, "commit", None),
        "build_context": build.context,
    }
    if build.dockerfile is not None:
        return {**fields, "dockerfile_path": build.dockerfile}
    return {**fields, "dockerfile": render_dockerfile(build)}


def run_fields(
    row: Any,
    *,
    kind: str,
    role: str = "master",
    index: int = 0,
    replica_resources: dict[str, Any] | None = None,
    image: str | None,
    pod_name: Any = None,
) -> dict[str, Any]:
    """Scheduling, refs and, for distributed experiments, the cluster definition.

    `image`: the image of the run's succeeded build (None: the build section's own `image`).
    `pod_name(role, index)`: the names replicas reach each other by (Kubernetes only).
    """
    config = row.config or {}
    framework = None
    replicas: list[Replica] = []
    if kind == "experiment":
        spec: Any = _experiment_spec(row)
        environment = spec.environment
        framework = environment.framework if environment is not None else None
        replicas = spec.replicas()
        replica = next((r for r in replicas if (r.role, r.index) == (role, index)), None)
        pod_env: PodEnvironment | None = replica.environment if replica else environment
    else:
        spec = _parse(config, kind)
        environment = spec.environment
        pod_env = environment
    fields: dict[str, Any] = {
        "image": image or (spec.build.image if spec.build is not None else None),
        "resources": _resources(replica_resources, pod_env),
    }
    if pod_env is not None:
        fields.update(
            node_selector=pod_env.node_selector,
            affinity=pod_env.affinity,
            tolerations=pod_env.tolerations,
        )
    if isinstance(environment, EnvironmentConfig):
        fields.update(
            secret_refs=environment.secret_refs, configmap_refs=environment.configmap_refs
        )
    if len(replicas) > 1 and pod_name is not None:
        fields["env"] = cluster_env(framework, replicas, role, index, pod_name)
        fields["ports"] = [CLUSTER_PORT]
    return fields


def cluster_env(
    framework: str | None, replicas: list[Any], role: str, index: int, pod_name: Any
) -> dict[str, str]:
    """POLYAXON_CLUSTER / POLYAXON_TASK_INFO (v0 7.1), plus the framework's own variables."""
    cluster: dict[str, list[str]] = {}
    for replica in replicas:
        host = f"{pod_name(replica.role, replica.index)}:{CLUSTER_PORT}"
        cluster.setdefault(replica.role, []).append(host)
    task = {"type": role, "index": index}
    env = {
        "POLYAXON_CLUSTER": json.dumps(cluster),
        "POLYAXON_TASK_INFO": json.dumps(task),
    }
    if framework == "tensorflow":
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task, "environment": "cloud"})
    elif framework == "pytorch":
        workers = len(cluster.get("worker", []))
        env.update(
            MASTER_ADDR=pod_name("master", 0),
            MASTER_PORT=str(CLUSTER_PORT),
            WORLD_SIZE=str(1 + workers),
            RANK=str(0 if role == "master" else 1 + index),
        )
    return env


def _experiment_spec(row: Any) -> ExperimentSpec:
    """The experiment's spec rendered with its declarations."""
    try:
        spec = experiment_spec_for(row.config or {}, getattr(row, "declarations", None) or {})[0]
    except (SpecError, TypeError, ValueError) as exc:
        message = f"Invalid experiment specification: {exc}"
        raise RuntimeError_(message, retryable=False) from exc
    assert isinstance(spec.spec, ExperimentSpec)  # experiment_spec_for renders `kind: experiment`
    return spec.spec


def _parse(config: dict[str, Any], kind: str) -> Any:
    try:
        return parse_polyaxonfile(config, expected_kind=kind).spec
    except (SpecError, TypeError, ValueError) as exc:
        raise RuntimeError_(f"Invalid {kind} specification: {exc}", retryable=False) from exc


def _resources(flat: dict[str, Any] | None, pod_env: PodEnvironment | None) -> Resources | None:
    if flat is None and pod_env is not None and pod_env.resources is not None:
        flat = pod_env.resources.flat()
    if not flat:
        return None
    names = Resources.__dataclass_fields__
    values = {k: v for k, v in flat.items() if k in names and v is not None}
    return Resources(**values) if values else None
