"""Pure builders: a WorkloadSpec in, typed kubernetes_asyncio objects out (polyaxon-v0.md 7).

No I/O and no clock: the same spec always gives the same objects, so creating them twice is
harmless (409 → adopt). Invalid input raises ``RuntimeError_(retryable=False)`` here, before
anything reaches the API server.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes_asyncio.client import models as k8s

from app.runtimes.base import (
    NOTEBOOK_GRACE_MARGIN,
    NOTEBOOK_SNAPSHOT_TIMEOUT,
    Resources,
    RuntimeError_,
    WorkloadSpec,
)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "plx"
KEY_LABEL = "plx/key"  # label-safe form of spec.key, for selectors and label sweeps
KIND_LABEL = "plx/kind"
# Annotations have no value restrictions: they carry the exact key and kind back to the cache.
KEY_ANNOTATION = "plx/key"
KIND_ANNOTATION = "plx/kind"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"

MAIN_CONTAINERS: dict[str, str] = {
    "experiment": "polyaxon-experiment-job",
    "job": "polyaxon-job",
    "build": "polyaxon-dockerizer-job",
    "tensorboard": "polyaxon-tensorboard",
    "notebook": "polyaxon-notebook",
}
INIT_CONTAINER = "polyaxon-job-init"
PLUGIN_KINDS = frozenset({"tensorboard", "notebook"})
DEFAULT_PLUGIN_PORTS = {"tensorboard": 6006, "notebook": 8888}
GPU_RESOURCE = "nvidia.com/gpu"
OUTPUTS_VOLUME = "plx-outputs"
WORKSPACE = "/workspace"
# What a notebook snapshot leaves out (the same as app/services/plugins.py SNAPSHOT_EXCLUDE).
NOTEBOOK_SNAPSHOT_EXCLUDE = (".git", ".ipynb_checkpoints", "__pycache__")

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_UUID = re.compile(r"^[0-9a-f]{32}$")
_ROLE = re.compile(r"^[a-z][a-z0-9]*$")
_CODE_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ManifestOptions:
    """Cluster-wide settings of the runtime (not per run)."""

    namespace: str = "default"
    registry: str | None = None  # prefix for build destinations without a registry host
    init_image: str = "busybox:1.36"
    build_init_image: str = "alpine:3.20"
    kaniko_image: str = "gcr.io/kaniko-project/executor:v1.23.2"
    tensorboard_image: str = "tensorflow/tensorflow:2.16.1"
    notebook_image: str = "jupyter/base-notebook:latest"
    # A PVC shared with the API server, mounted at ``outputs_root`` (outputs paths live below it).
    # Without one each pod gets an emptyDir at its outputs path: fine for tests, lost afterwards.
    outputs_claim: str | None = None
    outputs_root: str = "/plx/outputs"
    service_account: str | None = None
    # The operator's allow-list (PLX_K8S_ALLOWED_SECRETS / _CONFIGMAPS); None: not checked here.
    # The API refuses others at create time; this refuses them again for rows stored earlier.
    allowed_secrets: frozenset[str] | None = None
    allowed_configmaps: frozenset[str] | None = None
    # Most seconds the notebook's preStop hook spends packing and uploading its workspace.
    notebook_snapshot_timeout: int = NOTEBOOK_SNAPSHOT_TIMEOUT


@dataclass(frozen=True)
class Manifests:
    """Everything one workload consists of, in creation order (services before their users)."""

    pods: list[k8s.V1Pod] = field(default_factory=list)
    services: list[k8s.V1Service] = field(default_factory=list)
    deployments: list[k8s.V1Deployment] = field(default_factory=list)
    url: str | None = None


def invalid(message: str) -> RuntimeError_:
    return RuntimeError_(message, retryable=False)


# ---------------------------------------------------------------------------- labels and names


def _short_hash(value: str) -> str:
    return hashlib.sha1(value.encode()).hexdigest()[:10]


def safe_label_value(value: str) -> str:
    """A valid label value for any string. Unchanged when already valid; otherwise invalid
    characters become ``-``, and a hash of the original is appended so that two different
    inputs do not collapse onto the same value (label selectors must stay exact)."""
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "-", value).strip("-_.")
    suffix = _short_hash(value)
    return f"{cleaned[: 63 - len(suffix) - 1]}-{suffix}".lstrip("-_.")


def check_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise invalid(f"Invalid label key `{key}`: the prefix must be a DNS subdomain.")
    if len(name) > 63 or not _LABEL_NAME.match(name):
        raise invalid(
            f"Invalid label key `{key}`: at most 63 characters, alphanumerics, `-`, `_` or `.`, "
            "starting and ending with an alphanumeric."
        )


def check_label_value(key: str, value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise invalid(
            f"Invalid value `{value}` for label `{key}`: at most 63 characters, alphanumerics, "
            "`-`, `_` or `.`, starting and ending with an alphanumeric."
        )


def key_selector(key: str) -> str:
    return f"{MANAGED_SELECTOR},{KEY_LABEL}={safe_label_value(key)}"


def _uuid(spec: WorkloadSpec) -> str:
    value = spec.uuid.replace("-", "").lower()
    if not _UUID.match(value):
        raise invalid(f"Invalid uuid `{spec.uuid}` for workload `{spec.key}`: 32 hex digits.")
    return value


def object_name(spec: WorkloadSpec) -> str:
    """Deterministic names (polyaxon-v0.md 7.1-7.4): retrying a create finds the same object."""
    uuid = _uuid(spec)
    if spec.kind == "experiment":
        role = spec.role.lower()
        if not _ROLE.match(role) or spec.replica_index < 0:
            raise invalid(f"Invalid replica `{spec.role}{spec.replica_index}` for `{spec.key}`.")
        name = f"plxjob-{role}{spec.replica_index}-{uuid}"
    else:
        name = f"plx-{spec.kind}-{uuid}"
    if len(name) > 63 or not _DNS_1035.match(name):
        raise invalid(f"Name `{name}` of workload `{spec.key}` is not a valid DNS label.")
    return name


def _v0_labels(spec: WorkloadSpec) -> dict[str, str]:
    """The labels polyaxon v0 put on its objects (7.1, 7.3, 7.4)."""
    project = f"{spec.username}.{spec.project}"
    if spec.kind == "experiment":
        labels = {
            "app": "polyaxon-experiment",
            "project_name": project,
            "experiment_name": spec.unique_name,
            "experiment_uuid": spec.uuid,
            "task_type": spec.role,
            "task_idx": str(spec.replica_index),
            "role": "polyaxon-workers",
            "type": "polyaxon-runner",
        }
        if spec.group_id is not None:
            labels["experiment_group_id"] = str(spec.group_id)
        return labels
    role = "polyaxon-dashboard" if spec.kind in PLUGIN_KINDS else "polyaxon-workers"
    app = "polyaxon-dockerizer" if spec.kind == "build" else f"polyaxon-{spec.kind}"
    return {
        "app": app,
        "project_name": project,
        "job_name": spec.unique_name,
        "job_uuid": spec.uuid,
        "role": role,
        "type": "polyaxon-runner",
    }


def workload_labels(spec: WorkloadSpec) -> dict[str, str]:
    """v0 labels (values made label-safe), the user's labels (checked, not rewritten: they are
    meant literally), and ours, which must win so selectors and sweeps keep working."""
    labels = {key: safe_label_value(value) for key, value in _v0_labels(spec).items()}
    for key, value in spec.labels.items():
        check_label_key(key)
        check_label_value(key, str(value))
        labels[key] = str(value)
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    labels[KEY_LABEL] = safe_label_value(spec.key)
    labels[KIND_LABEL] = spec.kind
    return labels


def _metadata(spec: WorkloadSpec, name: str, options: ManifestOptions) -> k8s.V1ObjectMeta:
    return k8s.V1ObjectMeta(
        name=name,
        namespace=options.namespace,
        labels=workload_labels(spec),
        annotations={KEY_ANNOTATION: spec.key, KIND_ANNOTATION: spec.kind},
    )


# ------------------------------------------------------------------------- resources and co.


def _number(value: Any, what: str, key: str, *, integer: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not math.isfinite(value) or value < 0:
        kind = "a non-negative integer" if integer else "a non-negative number"
        raise invalid(f"Invalid {what} `{value}` for workload `{key}`: expected {kind}.")
    return float(value)


def _cpu(value: Any, key: str) -> str:
    return f"{round(_number(value, 'cpu', key, integer=False) * 1000)}m"


def _memory(value: Any, key: str) -> str:
    return f"{int(_number(value, 'memory (MiB)', key, integer=True))}Mi"


def build_resources(res: Resources | None, key: str) -> k8s.V1ResourceRequirements | None:
    """cpu in cores → millicores, memory in MiB → Mi, GPUs → ``nvidia.com/gpu`` limits (the
    device plugin only accepts GPUs as limits; requests default to them)."""
    if res is None:
        return None
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    pairs = (
        ("cpu", res.cpu_requests, res.cpu_limits, _cpu),
        ("memory", res.memory_requests, res.memory_limits, _memory),
    )
    for name, req, lim, fmt in pairs:
        if req is not None:
            requests[name] = fmt(req, key)
        if lim is not None:
            limits[name] = fmt(lim, key)
        if req is not None and lim is not None and float(req) > float(lim):
            raise invalid(f"Invalid {name} for workload `{key}`: requests exceed limits.")
    gpus = [g for g in (res.gpu_requests, res.gpu_limits) if g is not None]
    if gpus:
        count = max(int(_number(g, "gpu", key, integer=True)) for g in gpus)
        limits[GPU_RESOURCE] = str(count)
    if not requests and not limits:
        return None
    return k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None)


_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
}


def to_model(data: Any, type_name: str, path: str) -> Any:
    """Turn a polyaxonfile dict (camelCase as in Kubernetes, or snake_case) into the typed
    model, rejecting unknown fields and wrong types. The client's own deserializer silently
    drops unknown keys, which would turn a typo into a pod scheduled anywhere."""
    if type_name.startswith("list["):
        if not isinstance(data, list):
            raise invalid(f"`{path}` must be a list.")
        return [to_model(item, type_name[5:-1], f"{path}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            raise invalid(f"`{path}` must be a mapping.")
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        return {str(k): to_model(v, inner, f"{path}.{k}") for k, v in data.items()}
    if type_name in _PRIMITIVES:
        bad_bool = type_name in ("int", "float") and isinstance(data, bool)
        if bad_bool or not isinstance(data, _PRIMITIVES[type_name]):
            raise invalid(f"`{path}` must be of type {type_name}.")
        return data
    cls = getattr(k8s, type_name)
    if not isinstance(data, dict):
        raise invalid(f"`{path}` must be a mapping ({type_name}).")
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    kwargs = {}
    for key, value in data.items():
        attr = key if key in cls.openapi_types else by_json.get(key)
        if attr is None:
            raise invalid(f"Unknown field `{path}.{key}`.")
        kwargs[attr] = to_model(value, cls.openapi_types[attr], f"{path}.{key}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise invalid(f"Invalid `{path}`: {exc}") from exc


def _env(spec: WorkloadSpec, extra: dict[str, str] | None = None) -> list[k8s.V1EnvVar]:
    merged = {**spec.env, **(extra or {})}
    for name in merged:
        if not _ENV_NAME.match(name):
            raise invalid(f"Invalid environment variable name `{name}` for `{spec.key}`.")
    return [k8s.V1EnvVar(name=name, value=str(value)) for name, value in merged.items()]


def _env_from(spec: WorkloadSpec, options: ManifestOptions) -> list[k8s.V1EnvFromSource] | None:
    sources = []
    for name in spec.secret_refs or []:
        _check_ref(name, "secret", spec.key, options.allowed_secrets)
        sources.append(k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=name)))
    for name in spec.configmap_refs or []:
        _check_ref(name, "config map", spec.key, options.allowed_configmaps)
        sources.append(k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=name)))
    return sources or None


def _check_ref(name: str, what: str, key: str, allowed: frozenset[str] | None) -> None:
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise invalid(f"Invalid {what} name `{name}` for workload `{key}`.")
    if allowed is not None and name not in allowed:
        raise invalid(f"The {what} `{name}` of workload `{key}` is not on the operator's list.")


def _ports(spec: WorkloadSpec) -> list[int]:
    for port in spec.ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise invalid(f"Invalid port `{port}` for workload `{spec.key}`.")
    return list(spec.ports)


def _scheduling(spec: WorkloadSpec) -> dict[str, Any]:
    """node_selector / affinity / tolerations as V1PodSpec keyword arguments."""
    out: dict[str, Any] = {}
    if spec.node_selector:
        out["node_selector"] = to_model(spec.node_selector, "dict(str, str)", "node_selector")
    if spec.affinity:
        out["affinity"] = to_model(spec.affinity, "V1Affinity", "affinity")
    if spec.tolerations:
        out["tolerations"] = to_model(spec.tolerations, "list[V1Toleration]", "tolerations")
    return out


def _below_root(path: str, options: ManifestOptions, key: str) -> str:
    """`path` relative to the claim's root (a subPath); refused outside it."""
    root = options.outputs_root.rstrip("/")
    parts = path.split("/")
    if not path.startswith(root + "/") or ".." in parts or "." in parts:
        raise invalid(f"Outputs path `{path}` of `{key}` is not below `{root}`.")
    return path[len(root) + 1 :].strip("/")


def _outputs(spec: WorkloadSpec, options: ManifestOptions) -> tuple[list, list]:
    """The volume holding outputs, and where it is mounted: on the shared claim only the run's
    own outputs (a subPath: never the whole data directory, with plx's database and every
    other run's files) and, read-only, those of the runs it reads (a tensorboard's logdirs)."""
    if not spec.outputs_path and not spec.read_only_paths:
        return [], []
    if not options.outputs_claim:
        if not spec.outputs_path:
            return [], []  # nothing shared to read from
        volume = k8s.V1Volume(name=OUTPUTS_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource())
        return [volume], [k8s.V1VolumeMount(name=OUTPUTS_VOLUME, mount_path=spec.outputs_path)]
    claim = k8s.V1PersistentVolumeClaimVolumeSource(claim_name=options.outputs_claim)
    volume = k8s.V1Volume(name=OUTPUTS_VOLUME, persistent_volume_claim=claim)
    mounts = []
    if spec.outputs_path:
        sub = _below_root(spec.outputs_path, options, spec.key)
        mounts.append(
            k8s.V1VolumeMount(name=OUTPUTS_VOLUME, mount_path=spec.outputs_path, sub_path=sub)
        )
    for path in dict.fromkeys(spec.read_only_paths):
        sub = _below_root(path, options, spec.key)
        mounts.append(
            k8s.V1VolumeMount(name=OUTPUTS_VOLUME, mount_path=path, sub_path=sub, read_only=True)
        )
    return [volume], mounts


def _image(spec: WorkloadSpec, default: str | None = None) -> str:
    image = spec.image or default
    if not image:
        raise invalid(f"Workload `{spec.key}` has no image to run.")
    return image


def _command(spec: WorkloadSpec) -> str:
    if not spec.command:
        raise invalid(f"Workload `{spec.key}` has no command to run.")
    return spec.command


# ------------------------------------------------------------------------------------ builders


def _init_outputs(spec: WorkloadSpec, options: ManifestOptions, mounts: list) -> list:
    """Create the outputs dir before the main container starts, writable by any uid (images
    often run as non-root). Never emptied: a resumed run reuses its original outputs."""
    if not spec.outputs_path:
        return []
    path = shlex.quote(spec.outputs_path)
    return [
        k8s.V1Container(
            name=INIT_CONTAINER,
            image=options.init_image,
            command=["/bin/sh", "-c"],
            args=[f"mkdir -p {path} && chmod 777 {path}"],
            volume_mounts=mounts,
        )
    ]


def run_pod(spec: WorkloadSpec, options: ManifestOptions) -> k8s.V1Pod:
    """One bare Pod per experiment replica or job (v0 7.1 / 7.3)."""
    volumes, mounts = _outputs(spec, options)
    container = k8s.V1Container(
        name=MAIN_CONTAINERS[spec.kind],
        image=_image(spec),
        command=["/bin/bash", "-c"],
        args=[_command(spec)],
        env=_env(spec),
        env_from=_env_from(spec, options),
        resources=build_resources(spec.resources, spec.key),
        ports=[k8s.V1ContainerPort(container_port=p) for p in _ports(spec)] or None,
        volume_mounts=mounts or None,
    )
    return _run_once_pod(
        spec,
        options,
        containers=[container],
        init_containers=_init_outputs(spec, options, mounts) or None,
        volumes=volumes or None,
    )


def _run_once_pod(spec: WorkloadSpec, options: ManifestOptions, **pod_spec: Any) -> k8s.V1Pod:
    """A pod that runs once (never restarted), with no Kubernetes API rights."""
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=_metadata(spec, object_name(spec), options),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            service_account_name=options.service_account,
            automount_service_account_token=False,  # runs get no Kubernetes API rights
            **pod_spec,
            **_scheduling(spec),
        ),
    )


def destination(spec: WorkloadSpec, registry: str | None) -> str:
    """Prefix the registry unless the image already names a host (`host.tld/...`, `host:5000/`)."""
    image = spec.destination_image
    if not image:
        raise invalid(f"Build `{spec.key}` has no destination image.")
    first = image.split("/", 1)[0]
    qualified = "/" in image and ("." in first or ":" in first or first == "localhost")
    if qualified or not registry:
        return image
    return f"{registry.rstrip('/')}/{image}"


def code_path(value: Any, what: str, key: str, *, allow_root: bool = False) -> str:
    """A path inside the code version, normalised (`./docker/Dockerfile` → `docker/Dockerfile`).
    Absolute paths and `..` would read outside the build context: refused."""
    if not isinstance(value, str) or any(c in value for c in "\x00\n\r"):
        raise invalid(f"Invalid {what} `{value!r}` for `{key}`: expected a relative path.")
    if value.startswith("/"):
        raise invalid(
            f"Invalid {what} `{value}` for `{key}`: must be relative to the root of the code, "
            "not absolute."
        )
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise invalid(f"Invalid {what} `{value}` for `{key}`: `..` leaves the code.")
    if not parts and not allow_root:
        raise invalid(f"Invalid {what} `{value}` for `{key}`: names no file.")
    return "/".join(parts)


def _download_code_steps(spec: WorkloadSpec, into: str) -> list[str]:
    """Fetch the run's code version from the API (repo/download, polyaxon-v0.md 8) with the
    run's token, and unpack it into `into`."""
    if not spec.code_reference:
        return []
    if not _CODE_REFERENCE.match(spec.code_reference):
        raise invalid(f"Invalid code version `{spec.code_reference}` for `{spec.key}`.")
    url = (
        f'"$PLX_API_URL/api/v1/{spec.username}/{spec.project}/repo/download'
        f'?commit={spec.code_reference}"'
    )
    return [
        f'wget -q --header "Authorization: token $PLX_TOKEN" -O /tmp/code.tar.gz {url}',
        f"tar -xzf /tmp/code.tar.gz -C {into}",
    ]


def _build_context_script(spec: WorkloadSpec) -> str:
    """Init container: the code version (when there is one) and the Dockerfile, either
    written from the rendered text or checked to exist in the code (`build.dockerfile`)."""
    steps = [f"mkdir -p {WORKSPACE}", *_download_code_steps(spec, WORKSPACE)]
    if spec.dockerfile_path:
        path = shlex.quote(f"{WORKSPACE}/{spec.dockerfile_path}")
        missing = shlex.quote(
            f"No Dockerfile `{spec.dockerfile_path}` in code version {spec.code_reference}."
        )
        steps.append(f"{{ test -f {path} || {{ echo {missing} >&2; exit 1; }}; }}")
    else:
        steps.append(f'printf "%s" "$PLX_DOCKERFILE" > {WORKSPACE}/Dockerfile')
    return " && ".join(steps)


def _kaniko_sources(spec: WorkloadSpec) -> tuple[str, str, WorkloadSpec]:
    """(--dockerfile, --context, the spec with normalised paths). A Dockerfile of the code is
    found from the root of the code version, like v0's `build.dockerfile`; the context is
    `build.context` (default: the whole code version)."""
    context = code_path(spec.build_context or ".", "build context", spec.key, allow_root=True)
    context_dir = f"{WORKSPACE}/{context}".rstrip("/")
    if spec.dockerfile_path is None:
        if not spec.dockerfile:
            raise invalid(f"Build `{spec.key}` has no Dockerfile.")
        return f"{WORKSPACE}/Dockerfile", f"dir://{context_dir}", spec
    path = code_path(spec.dockerfile_path, "dockerfile path", spec.key)
    if not spec.code_reference:
        raise invalid(
            f"Build `{spec.key}` names the Dockerfile `{path}` of the code, but the project "
            "has no uploaded code: upload it first (polyaxon upload)."
        )
    spec = replace(spec, dockerfile_path=path, build_context=context)
    return f"{WORKSPACE}/{path}", f"dir://{context_dir}", spec


def build_pod(spec: WorkloadSpec, options: ManifestOptions) -> k8s.V1Pod:
    """A kaniko Pod: no docker socket on the node (v0.3 mounted the host's, 7.2)."""
    dockerfile, context, spec = _kaniko_sources(spec)
    workspace = [k8s.V1VolumeMount(name="workspace", mount_path=WORKSPACE)]
    extra_env = None
    if spec.dockerfile_path is None and spec.dockerfile is not None:
        extra_env = {"PLX_DOCKERFILE": spec.dockerfile}
    init = k8s.V1Container(
        name=INIT_CONTAINER,
        image=options.build_init_image,
        command=["/bin/sh", "-c"],
        args=[_build_context_script(spec)],
        env=_env(spec, extra_env),
        env_from=_env_from(spec, options),
        volume_mounts=workspace,
    )
    kaniko = k8s.V1Container(
        name=MAIN_CONTAINERS["build"],
        image=options.kaniko_image,
        args=[
            f"--dockerfile={dockerfile}",
            f"--context={context}",
            f"--destination={destination(spec, options.registry)}",
        ],
        env=_env(spec) or None,
        env_from=_env_from(spec, options),
        resources=build_resources(spec.resources, spec.key),
        volume_mounts=workspace,
    )
    return _run_once_pod(
        spec,
        options,
        init_containers=[init],
        containers=[kaniko],
        volumes=[k8s.V1Volume(name="workspace", empty_dir=k8s.V1EmptyDirVolumeSource())],
    )


def service(
    spec: WorkloadSpec, name: str, ports: list[int], options: ManifestOptions, *, headless: bool
) -> k8s.V1Service:
    """Selects exactly this workload's pods by the key label."""
    return k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=_metadata(spec, name, options),
        spec=k8s.V1ServiceSpec(
            selector={KEY_LABEL: safe_label_value(spec.key)},
            ports=[
                k8s.V1ServicePort(name=f"port-{p}", port=p, target_port=p, protocol="TCP")
                for p in ports
            ],
            cluster_ip="None" if headless else None,
            # Distributed replicas resolve each other at start-up, before they are Ready.
            publish_not_ready_addresses=True if headless else None,
        ),
    )


def _plugin_command(spec: WorkloadSpec, port: int) -> str:
    if spec.command:
        return spec.command
    # Served under plx's proxy path (`PLX_PLUGIN_BASE_URL`, app/logic/plugin_access.py); the
    # pod's port is reached only by plx (the NetworkPolicy of deploy/).
    if spec.kind == "tensorboard":
        logdir = shlex.quote(spec.outputs_path or ".")
        return (
            f"tensorboard --logdir={logdir} --port={port} --host=0.0.0.0"
            ' --path_prefix="${PLX_PLUGIN_BASE_URL%/}"'
        )
    # The token comes from `JUPYTER_TOKEN` in the environment (read by notebook and
    # jupyter-server alike), so it is not on the command line for every `ps` to see.
    return (
        f"jupyter notebook --no-browser --port={port} --ip=0.0.0.0 --allow-root "
        f"--notebook-dir={WORKSPACE} --NotebookApp.trust_xheaders=True"
        ' --NotebookApp.base_url="${PLX_PLUGIN_BASE_URL:-/}"'
        ' --ServerApp.base_url="${PLX_PLUGIN_BASE_URL:-/}"'
    )


def service_url(name: str, namespace: str, port: int) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local:{port}"


def _notebook_workspace(
    spec: WorkloadSpec, options: ManifestOptions
) -> tuple[list[k8s.V1Container], k8s.V1Volume, k8s.V1VolumeMount]:
    """The project's code, unpacked by an init container into a volume the notebook works in
    (writable by the image's non-root user, as jupyter images run as uid 1000)."""
    steps = [f"mkdir -p {WORKSPACE}", *_download_code_steps(spec, WORKSPACE)]
    steps.append(f"chmod -R a+rwX {WORKSPACE}")
    mount = k8s.V1VolumeMount(name="workspace", mount_path=WORKSPACE)
    init = k8s.V1Container(
        name=INIT_CONTAINER,
        image=options.build_init_image,
        command=["/bin/sh", "-c"],
        args=[" && ".join(steps)],
        env=_env(spec) or None,
        env_from=_env_from(spec, options),
        volume_mounts=[mount],
    )
    volume = k8s.V1Volume(name="workspace", empty_dir=k8s.V1EmptyDirVolumeSource())
    return [init], volume, mount


# The notebook's preStop hook, run as `python3 -c SCRIPT WORKSPACE API_PATH TIMEOUT` in the
# notebook container (jupyter images have python3, not always curl): only the standard library.
# It packs the workspace as `_pack` of app/services/plugins.py does (no excluded directories,
# devices, or symlinks leaving the tree; hard links stored as files) and POSTs it as the `repo`
# field of a multipart body with the notebook's own token. The server keeps it only when the
# notebook was stopped with `commit` (else 204). Whatever happens it exits 0 within TIMEOUT
# (SIGALRM), so it never holds up the pod's termination beyond its grace period.
_SNAPSHOT_SCRIPT_SOURCE = r"""
import os, signal, sys, tarfile, tempfile, urllib.request, uuid
EXCLUDE = set(__EXCLUDE__)
def bye(*_):
    sys.stderr.write("plx: notebook snapshot: timed out\n")
    os._exit(0)
def keep(root, info):
    if EXCLUDE.intersection(info.name.split("/")) or info.isdev():
        return None
    path = os.path.join(root, info.name)
    if info.issym():
        target = info.linkname
        real = os.path.realpath(os.path.join(os.path.dirname(path), target))
        if os.path.isabs(target) or not (real == root or real.startswith(root + os.sep)):
            return None
    if info.islnk():
        info.type, info.linkname, info.size = tarfile.REGTYPE, "", os.lstat(path).st_size
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
def main(workspace, api_path, timeout):
    signal.signal(signal.SIGALRM, bye)
    signal.alarm(timeout)
    root = os.path.realpath(workspace)
    url = os.environ["PLX_API_URL"].rstrip("/") + api_path
    boundary = uuid.uuid4().hex
    head = ('--' + boundary + '\r\nContent-Disposition: form-data; name="repo"; '
            'filename="notebook.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n')
    with tempfile.TemporaryFile() as body:
        body.write(head.encode())
        with tarfile.open(fileobj=body, mode="w:gz", compresslevel=6) as tar:
            for entry in sorted(os.listdir(root)):
                tar.add(os.path.join(root, entry), arcname=entry,
                        filter=lambda info: keep(root, info))
        body.write(("\r\n--" + boundary + "--\r\n").encode())
        size = body.tell()
        body.seek(0)
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Authorization": "token " + os.environ["PLX_TOKEN"],
            "Content-Type": "multipart/form-data; boundary=" + boundary,
            "Content-Length": str(size)})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            sys.stderr.write("plx: notebook snapshot: HTTP %d\n" % response.status)
try:
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
except BaseException as exc:
    sys.stderr.write("plx: notebook snapshot failed: %r\n" % (exc,))
sys.stderr.flush()
os._exit(0)
"""
NOTEBOOK_SNAPSHOT_SCRIPT = _SNAPSHOT_SCRIPT_SOURCE.strip().replace(
    "__EXCLUDE__", repr(NOTEBOOK_SNAPSHOT_EXCLUDE)
)


def notebook_snapshot_path(spec: WorkloadSpec) -> str:
    """Where the hook uploads (app/routers/plugins.py): ends in `/repo/upload`, so the request
    limits treat it as a code upload (PLX_MAX_UPLOAD_BYTES, not PLX_MAX_BODY_BYTES)."""
    return f"/api/v1/{spec.username}/{spec.project}/notebook/{spec.run_id}/repo/upload"


def _notebook_prestop(spec: WorkloadSpec, options: ManifestOptions) -> k8s.V1Lifecycle:
    timeout = options.notebook_snapshot_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise invalid(f"Invalid notebook snapshot timeout `{timeout}`: at least 1 second.")
    command = [
        "python3",
        "-c",
        NOTEBOOK_SNAPSHOT_SCRIPT,
        WORKSPACE,
        notebook_snapshot_path(spec),
        str(timeout),
    ]
    return k8s.V1Lifecycle(pre_stop=k8s.V1LifecycleHandler(_exec=k8s.V1ExecAction(command=command)))


def plugin_deployment(spec: WorkloadSpec, options: ManifestOptions) -> k8s.V1Deployment:
    """Tensorboard / notebook: a 1-replica Deployment (v0 7.4), restarted by Kubernetes."""
    port = plugin_port(spec)
    default = options.tensorboard_image if spec.kind == "tensorboard" else options.notebook_image
    volumes, mounts = _outputs(spec, options)
    init_containers = lifecycle = grace = None
    if spec.kind == "notebook":
        init_containers, workspace, mount = _notebook_workspace(spec, options)
        volumes, mounts = [*volumes, workspace], [*mounts, mount]
        # Stop with `commit`: the hook uploads the workspace before jupyter gets SIGTERM.
        lifecycle = _notebook_prestop(spec, options)
        grace = options.notebook_snapshot_timeout + NOTEBOOK_GRACE_MARGIN
    container = k8s.V1Container(
        name=MAIN_CONTAINERS[spec.kind],
        image=_image(spec, default),
        command=["/bin/sh", "-c"],
        args=[_plugin_command(spec, port)],
        env=_env(spec) or None,
        env_from=_env_from(spec, options),
        resources=build_resources(spec.resources, spec.key),
        ports=[k8s.V1ContainerPort(container_port=port)],
        readiness_probe=k8s.V1Probe(tcp_socket=k8s.V1TCPSocketAction(port=port), period_seconds=5),
        volume_mounts=mounts or None,
        working_dir=WORKSPACE if spec.kind == "notebook" else None,
        lifecycle=lifecycle,
    )
    meta = _metadata(spec, object_name(spec), options)
    template = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=meta.labels, annotations=meta.annotations),
        spec=k8s.V1PodSpec(
            containers=[container],
            init_containers=init_containers,
            volumes=volumes or None,
            service_account_name=options.service_account,
            automount_service_account_token=False,  # runs get no Kubernetes API rights
            termination_grace_period_seconds=grace,
            **_scheduling(spec),
        ),
    )
    return k8s.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=meta,
        spec=k8s.V1DeploymentSpec(
            replicas=1,
            selector=k8s.V1LabelSelector(match_labels={KEY_LABEL: meta.labels[KEY_LABEL]}),
            template=template,
        ),
    )


def plugin_port(spec: WorkloadSpec) -> int:
    ports = _ports(spec)
    return ports[0] if ports else DEFAULT_PLUGIN_PORTS[spec.kind]


def build_manifests(spec: WorkloadSpec, options: ManifestOptions) -> Manifests:
    """All objects of one workload. Raises RuntimeError_(retryable=False) on bad input."""
    if spec.kind not in MAIN_CONTAINERS:
        raise invalid(f"Unknown workload kind `{spec.kind}`.")
    if spec.kind in PLUGIN_KINDS:
        deployment = plugin_deployment(spec, options)
        name, port = deployment.metadata.name, plugin_port(spec)
        svc = service(spec, name, [port], options, headless=False)
        url = service_url(name, options.namespace, port)
        return Manifests(services=[svc], deployments=[deployment], url=url)
    pod = build_pod(spec, options) if spec.kind == "build" else run_pod(spec, options)
    services = []
    if spec.ports and spec.kind != "build":
        services.append(service(spec, pod.metadata.name, _ports(spec), options, headless=True))
    return Manifests(pods=[pod], services=services)
