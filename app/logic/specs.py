"""Typed models of every polyaxonfile v1 section and of each kind (polyaxon-v0.md 1.1, 1.2).

Unknown keys are errors at every depth (`extra="forbid"`), as v0's `validate_keys` did. Values are
validated after templating, so a string field may have been literal-typed into a number
(`ref: "1234"` -> 1234): string fields take numbers back as strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)

from app.logic.hptuning import HPTuningConfig
from app.logic.refs import check_current
from app.logic.templating import sanitize_cmd

Kind = Literal["experiment", "group", "job", "build", "notebook", "tensorboard"]
KINDS: tuple[str, ...] = ("experiment", "group", "job", "build", "notebook", "tensorboard")
LOG_LEVELS = ("CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET")
FRAMEWORKS = ("tensorflow", "horovod", "pytorch", "mxnet")


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _unique(values: list[str]) -> list[str]:
    # v0 stored `list(set(tags))`; keeping the first occurrence order is kinder to readers
    return list(dict.fromkeys(values))


def _cmd(value: Any) -> str | list[str]:
    if isinstance(value, str) and value.strip():
        return value
    is_list = isinstance(value, list) and value
    if is_list and all(isinstance(item, str) and item.strip() for item in value):
        return value
    raise ValueError("must be a non-empty string or a non-empty list of non-empty strings")


def _run_reference(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError("must be an id (integer) or a name (string)")


def _env_var(value: tuple[str, Any]) -> tuple[str, Any]:
    name, setting = value
    if not name.strip():
        raise ValueError("the variable name must not be empty")
    if not (setting is None or isinstance(setting, str | int | float | bool)):
        raise ValueError("the value must be a string, a number or a boolean")
    return value


def _docker_image(image: str) -> str:
    # v0 `validate_image`: `registry:port/name:tag` has at most two `:`
    if not image.strip() or any(char.isspace() for char in image) or image.count(":") > 2:
        raise ValueError(f"invalid docker image `{image}`")
    return image


Cmd = Annotated[str | list[str], PlainValidator(_cmd)]
RunReference = Annotated[int | str, PlainValidator(_run_reference)]
EnvVar = Annotated[tuple[str, Any], AfterValidator(_env_var)]
DockerImage = Annotated[str, AfterValidator(_docker_image)]
LogLevel = Annotated[Literal[LOG_LEVELS], BeforeValidator(_upper)]  # type: ignore[valid-type]
NonEmptyStr = Annotated[str, Field(min_length=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]


# ------------------------------------------------------------------------------------ sections


class LoggingConfig(SpecModel):
    level: LogLevel = "INFO"
    formatter: str | None = None


class RunConfig(SpecModel):
    cmd: Cmd

    @property
    def command(self) -> str:
        """The string run as `/bin/bash -c "<command>"` (v0 `sanitize_cmd`)."""
        return sanitize_cmd(self.cmd)


def _relative_path(value: str | None) -> str | None:
    """A path inside the uploaded code: relative, no `..`, one line (it reaches a shell)."""
    if value is None:
        return None
    if value.startswith("/") or ".." in value.split("/") or any(c in value for c in "\n\r\0"):
        raise ValueError(f"`{value}` must be a relative path inside the code, without `..`")
    return value


CodePath = Annotated[str, AfterValidator(_relative_path)]


class BuildConfig(SpecModel):
    image: DockerImage | None = None
    dockerfile: Annotated[NonEmptyStr, AfterValidator(_relative_path)] | None = None
    build_steps: list[str] | None = None
    env_vars: list[EnvVar] | None = None
    context: CodePath | None = None
    backend: Annotated[Literal["native", "kaniko"], BeforeValidator(_lower)] | None = None
    ref: NonEmptyStr | None = None
    commit: NonEmptyStr | None = None
    branch: NonEmptyStr | None = None
    nocache: bool = False

    @model_validator(mode="after")
    def _one_source_of_image(self) -> BuildConfig:
        if (self.image is None) == (self.dockerfile is None):
            raise ValueError("exactly one of `image` or `dockerfile` is required")
        given = [name for name in ("ref", "commit", "branch") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"use only one of `ref`, `commit`, `branch` (got {given})")
        return self

    @property
    def code_reference(self) -> str | None:
        """The git treeish to build from, whichever of ref/commit/branch was given."""
        return self.ref or self.commit or self.branch


class _Requirement(SpecModel):
    requests: float | None = None
    limits: float | None = None

    @model_validator(mode="after")
    def _requests_within_limits(self) -> _Requirement:
        requests, limits = self.requests, self.limits
        if requests is not None and limits is not None and requests > limits:
            raise ValueError(f"requests ({requests}) must not exceed limits ({limits})")
        return self


class CpuRequirement(_Requirement):
    """In cores."""

    requests: Annotated[float, Field(ge=0)] | None = None
    limits: Annotated[float, Field(gt=0)] | None = None


class CountRequirement(_Requirement):
    """Memory in MiB (as v0), GPUs and TPUs as whole devices."""

    requests: NonNegativeInt | None = None
    limits: Annotated[int, Field(ge=1)] | None = None


class PodResources(SpecModel):
    cpu: CpuRequirement | None = None
    memory: CountRequirement | None = None
    gpu: CountRequirement | None = None
    tpu: CountRequirement | None = None

    def flat(self) -> dict[str, float | int | None]:
        """`cpu_requests, cpu_limits, memory_..., gpu_...`: the shape of a runtime Resources."""
        out: dict[str, float | int | None] = {}
        for name in ("cpu", "memory", "gpu"):
            requirement = getattr(self, name)
            out[f"{name}_requests"] = requirement.requests if requirement else None
            out[f"{name}_limits"] = requirement.limits if requirement else None
        return out


class Persistence(SpecModel):
    data: list[NonEmptyStr] | None = None
    outputs: NonEmptyStr | None = None


class OutputsRefs(SpecModel):
    jobs: list[RunReference] | None = None
    experiments: list[RunReference] | None = None


class PodEnvironment(SpecModel):
    """Scheduling fields shared by a pod and by a replica of a distributed experiment."""

    resources: PodResources | None = None
    node_selector: dict[str, str] | None = None
    affinity: dict[str, Any] | None = None
    tolerations: list[dict[str, Any]] | None = None


class EnvironmentConfig(PodEnvironment):
    persistence: Persistence | None = None
    outputs: OutputsRefs | None = None
    secret_refs: list[NonEmptyStr] | None = None
    configmap_refs: list[NonEmptyStr] | None = None

    @model_validator(mode="after")
    def _allowed_refs(self) -> EnvironmentConfig:
        check_current(self.secret_refs, self.configmap_refs)  # the operator's allow-list
        return self


class ReplicaConfig(PodEnvironment):
    """`default_worker` / `worker[i]` / `ps[i]`. In a list, a missing `index` is the position."""

    index: NonNegativeInt | None = None


def _override(default: ReplicaConfig | None, specific: ReplicaConfig | None) -> PodEnvironment:
    merged: dict[str, Any] = {}
    for source in (default, specific):
        if source is not None:
            merged.update(source.model_dump(exclude_none=True, exclude={"index"}))
    return PodEnvironment.model_validate(merged)


class _Distributed(SpecModel):
    n_workers: NonNegativeInt = 0
    default_worker: ReplicaConfig | None = None
    worker: list[ReplicaConfig] | None = None

    @field_validator("worker", "ps", check_fields=False)
    @classmethod
    def _index_entries(cls, entries: list[ReplicaConfig] | None) -> list[ReplicaConfig] | None:
        if entries is None:
            return None
        indexed = [
            entry if entry.index is not None else entry.model_copy(update={"index": position})
            for position, entry in enumerate(entries)
        ]
        seen = [entry.index for entry in indexed]
        if len(set(seen)) != len(seen):
            raise ValueError(f"replica indexes must be unique (got {seen})")
        return indexed

    @model_validator(mode="after")
    def _indexes_within_counts(self) -> _Distributed:
        for role, count in self.replica_counts().items():
            for entry in getattr(self, role, None) or ():
                if entry.index >= count:
                    raise ValueError(
                        f"`{role}` has an entry for index {entry.index}, "
                        f"but only {count} {role} replica(s) are requested"
                    )
        return self

    def replica_counts(self) -> dict[str, int]:
        return {"worker": self.n_workers}

    def replica_environment(self, role: str, index: int) -> PodEnvironment:
        """The per-index entry over the `default_<role>` entry, field by field."""
        specific = next((e for e in getattr(self, role) or () if e.index == index), None)
        return _override(getattr(self, f"default_{role}"), specific)


class _DistributedWithPS(_Distributed):
    n_ps: NonNegativeInt = 0
    default_ps: ReplicaConfig | None = None
    ps: list[ReplicaConfig] | None = None

    def replica_counts(self) -> dict[str, int]:
        return {"worker": self.n_workers, "ps": self.n_ps}


class TensorflowConfig(_DistributedWithPS):
    delay_workers_by_global_step: bool = False
    run_config: dict[str, Any] | None = None


class HorovodConfig(_Distributed):
    pass


class PytorchConfig(_Distributed):
    pass


class MXNetConfig(_DistributedWithPS):
    pass


@dataclass(frozen=True)
class Replica:
    """One pod of an experiment: the master uses the top-level environment."""

    role: Literal["master", "worker", "ps"]
    index: int
    environment: PodEnvironment


class ExperimentEnvironment(EnvironmentConfig):
    tensorflow: TensorflowConfig | None = None
    horovod: HorovodConfig | None = None
    pytorch: PytorchConfig | None = None
    mxnet: MXNetConfig | None = None

    @model_validator(mode="after")
    def _one_framework(self) -> ExperimentEnvironment:
        given = [name for name in FRAMEWORKS if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"only one distributed framework may be used (got {given})")
        return self

    @property
    def framework(self) -> str | None:
        return next((name for name in FRAMEWORKS if getattr(self, name) is not None), None)

    def replicas(self) -> list[Replica]:
        master = PodEnvironment(
            resources=self.resources,
            node_selector=self.node_selector,
            affinity=self.affinity,
            tolerations=self.tolerations,
        )
        out = [Replica("master", 0, master)]
        distributed: _Distributed | None = getattr(self, self.framework) if self.framework else None
        if distributed is None:
            return out
        for role, count in distributed.replica_counts().items():
            for index in range(count):
                env = distributed.replica_environment(role, index)
                out.append(Replica(role, index, env))  # type: ignore[arg-type]
        return out


# --------------------------------------------------------------------------------------- kinds


class BaseSpec(SpecModel):
    version: Literal[1]
    kind: Kind
    logging: LoggingConfig | None = None
    tags: Annotated[list[NonEmptyStr], AfterValidator(_unique)] | None = None
    environment: EnvironmentConfig | None = None

    @property
    def command(self) -> str | None:
        """The rendered, sanitised command, or None when the spec has no `run` section."""
        run: RunConfig | None = getattr(self, "run", None)
        return run.command if run is not None else None


class BuildSpec(BaseSpec):
    kind: Literal["build"]
    build: BuildConfig


class JobSpec(BaseSpec):
    kind: Literal["job"]
    build: BuildConfig
    run: RunConfig


class ExperimentSpec(BaseSpec):
    """Neither `build` nor `run` is required: without `run` the experiment is tracking-only."""

    kind: Literal["experiment"]
    environment: ExperimentEnvironment | None = None
    declarations: dict[str, Any] | None = None
    build: BuildConfig | None = None
    run: RunConfig | None = None

    def replicas(self) -> list[Replica]:
        return (self.environment or ExperimentEnvironment()).replicas()


class GroupSpec(ExperimentSpec):
    kind: Literal["group"]  # type: ignore[assignment]
    hptuning: HPTuningConfig


class NotebookSpec(BaseSpec):
    kind: Literal["notebook"]
    build: BuildConfig
    backend: Annotated[Literal["notebook", "lab"], BeforeValidator(_lower)] | None = None


class TensorboardSpec(BaseSpec):
    kind: Literal["tensorboard"]
    build: BuildConfig


AnySpec = ExperimentSpec | GroupSpec | JobSpec | BuildSpec | NotebookSpec | TensorboardSpec

SPEC_MODELS: dict[str, type[BaseSpec]] = {
    "experiment": ExperimentSpec,
    "group": GroupSpec,
    "job": JobSpec,
    "build": BuildSpec,
    "notebook": NotebookSpec,
    "tensorboard": TensorboardSpec,
}


def allowed_sections(kind: str) -> list[str]:
    return list(SPEC_MODELS[kind].model_fields)
