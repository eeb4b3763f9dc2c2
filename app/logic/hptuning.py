"""The `hptuning` section of a group polyaxonfile: schema, validation and the stored (API) form."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.logic.errors import SpecError, format_path
from app.logic.matrix import MatrixParam, max_values, too_many, total_values


def _lower(value: Any) -> Any:
    # v0 accepted enum values as `ucb`, `UCB` and `Ucb`.
    return value.lower() if isinstance(value, str) else value


Optimization = Annotated[Literal["maximize", "minimize"], BeforeValidator(_lower)]
ResourceType = Annotated[Literal["int", "float"], BeforeValidator(_lower)]
Acquisition = Annotated[Literal["ucb", "ei", "poi"], BeforeValidator(_lower)]
Kernel = Annotated[Literal["matern", "rbf"], BeforeValidator(_lower)]
PolicyKind = Annotated[Literal["median", "truncation"], BeforeValidator(_lower)]
PositiveInt = Annotated[int, Field(ge=1)]
# Stored in 32-bit columns (concurrency) or used as loop bounds: beyond these a value is a typo or
# an attack, and would reach the database driver or stall a plan.
MAX_INT32 = 2**31 - 1
MAX_HYPERBAND_BRACKETS = 100
MAX_RESOURCE = 2**53  # hyperband's max_iter: resources are computed in floats
ALGORITHMS = ("grid_search", "random_search", "hyperband", "bo")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GridSearchConfig(_Model):
    n_experiments: PositiveInt | None = None


class RandomSearchConfig(_Model):
    n_experiments: PositiveInt


class MetricConfig(_Model):
    name: Annotated[str, Field(min_length=1)]
    optimization: Optimization = "maximize"


class ResourceConfig(_Model):
    name: Annotated[str, Field(min_length=1)]
    type: ResourceType = "float"

    def cast(self, value: float) -> int | float:
        # The tiny epsilon keeps 26.999999999999996 (float noise of R * eta**-k) from becoming 26.
        return int(value + 1e-9) if self.type == "int" else round(float(value), 10)


class HyperbandConfig(_Model):
    max_iter: Annotated[int, Field(ge=1, le=MAX_RESOURCE)]
    eta: Annotated[float, Field(gt=1)]
    resource: ResourceConfig
    metric: MetricConfig
    resume: bool = False

    @model_validator(mode="after")
    def _bounded_brackets(self) -> HyperbandConfig:
        # s_max = log_eta(max_iter) brackets of up to s_max + 1 rungs: eta near 1 would make a
        # plan of billions of rungs before its experiment count could be compared to any bound.
        brackets = math.log(self.max_iter) / math.log(self.eta)
        if brackets > MAX_HYPERBAND_BRACKETS:
            raise SpecError(
                "eta",
                f"log(max_iter) / log(eta) = {brackets:.0f} brackets, more than "
                f"{MAX_HYPERBAND_BRACKETS}: use a larger eta or a smaller max_iter",
            )
        return self


class GaussianProcessConfig(_Model):
    kernel: Kernel = "matern"
    length_scale: Annotated[float, Field(gt=0)] = 1.0
    nu: Annotated[float, Field(gt=0)] = 1.5
    n_restarts_optimizer: Annotated[int, Field(ge=0, le=100)] = 0


class UtilityFunctionConfig(_Model):
    acquisition_function: Acquisition = "ucb"
    kappa: Annotated[float, Field(ge=0)] | None = None
    eps: Annotated[float, Field(ge=0)] | None = None
    gaussian_process: GaussianProcessConfig = GaussianProcessConfig()
    # Random candidates scored per suggestion, and local refinement rounds around the best one.
    n_warmup: Annotated[int, Field(ge=1, le=100_000)] | None = None
    n_iter: Annotated[int, Field(ge=0, le=1_000)] | None = None

    @model_validator(mode="after")
    def _needs_parameter(self) -> UtilityFunctionConfig:
        fn = self.acquisition_function
        needed = "kappa" if fn == "ucb" else "eps"
        if getattr(self, needed) is None:
            reason = f"the acquisition function `{fn}` requires a parameter `{needed}`"
            raise SpecError(needed, reason)
        return self


class BOConfig(_Model):
    n_initial_trials: PositiveInt
    n_iterations: Annotated[int, Field(ge=0)]
    metric: MetricConfig
    utility_function: UtilityFunctionConfig = UtilityFunctionConfig(kappa=2.576)

    @field_validator("utility_function", mode="before")
    @classmethod
    def _default_utility(cls, value: Any) -> Any:
        return UtilityFunctionConfig(kappa=2.576) if value is None else value


class EarlyStoppingRule(_Model):
    """v0 threshold: stop the pending experiments once any experiment's last metric crosses it."""

    metric: Annotated[str, Field(min_length=1)]
    value: float
    optimization: Optimization = "maximize"
    # Accepted as v0 did (`experiment|group|all` or a dict) and ignored as v0 did (#1327).
    policy: str | dict[str, Any] | None = None


class EarlyStoppingPolicy(_Model):
    """plx extension: stop *running* experiments that lag the others at the same step.

    - `median`: stop when the value at step s is worse than the median of the other experiments'
      values at s (those that reached s), once at least `min_trials` of them did.
    - `truncation`: stop when the value at s falls in the worst `percent` % of all experiments
      that reached s.
    Only steps >= `min_step` that are multiples of `evaluation_interval` are judged.
    """

    kind: PolicyKind
    metric: Annotated[str, Field(min_length=1)]
    optimization: Optimization = "maximize"
    min_trials: PositiveInt = 3
    min_step: Annotated[int, Field(ge=0)] = 0
    evaluation_interval: PositiveInt = 1
    percent: Annotated[float, Field(gt=0, lt=100)] = 25.0


class HPTuningConfig(_Model):
    concurrency: Annotated[int, Field(ge=1, le=MAX_INT32)] = 1
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = None
    matrix: dict[str, MatrixParam]
    grid_search: GridSearchConfig | None = None
    random_search: RandomSearchConfig | None = None
    hyperband: HyperbandConfig | None = None
    bo: BOConfig | None = None
    early_stopping: list[EarlyStoppingRule] | None = None
    early_stopping_policy: EarlyStoppingPolicy | None = None

    @model_validator(mode="before")
    @classmethod
    def _has_matrix(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and raw.get("matrix") is None:
            raise SpecError("matrix", "A matrix definition is required for group specification")
        return raw

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> Any:
        return 1 if value is None else value  # v0: `concurrency or 1`

    @field_validator("matrix")
    @classmethod
    def _matrix(
        cls, matrix: dict[str, MatrixParam], info: ValidationInfo
    ) -> dict[str, MatrixParam]:
        if not matrix:
            raise SpecError("", "A matrix definition is required for group specification")
        blank = [name for name in matrix if not name.strip()]
        if blank:
            raise SpecError("", "parameter names must not be blank")
        # A sweep holds every parameter's values at once: bound their sum, not each alone.
        limit = max_values(info)
        total = total_values(tuple(matrix.values()))
        if limit is not None and total > limit:
            raise SpecError("", str(too_many(total, limit, "the matrix defines").message()))
        return matrix

    @model_validator(mode="after")
    def _algorithm(self) -> HPTuningConfig:
        given = [name for name in ALGORITHMS if getattr(self, name) is not None]
        if len(given) > 1:
            raise SpecError("", f"Only one search algorithm can be used, got {', '.join(given)}.")
        problems = list(self._option_problems())
        if problems:
            raise SpecError(problems)
        return self

    def _option_problems(self) -> Iterator[tuple[str, str]]:
        algorithm = self.search_algorithm
        for name, param in self.matrix.items():
            if algorithm == "grid" and param.is_distribution:
                yield (
                    f"matrix.{name}.{param.kind}",
                    f"`{name}` defines a distribution, and it cannot be used with grid search.",
                )
            if algorithm == "bo" and param.is_distribution and param.kind != "uniform":
                yield (
                    f"matrix.{name}.{param.kind}",
                    f"`{name}` defines a distribution other than uniform, "
                    "and it cannot be used with bayesian optimization.",
                )
            if algorithm == "bo" and param.kind == "uniform" and param.spec.size is not None:
                yield (f"matrix.{name}.uniform.size", "size cannot be used with bo")
        if self.hyperband is not None and self.hyperband.resource.name in self.matrix:
            resource = self.hyperband.resource.name
            yield (
                "hyperband.resource.name",
                f"`{resource}` is set by hyperband and cannot also be a matrix param",
            )

    @property
    def search_algorithm(self) -> Literal["grid", "random", "hyperband", "bo"]:
        """v0's shown `search_algorithm` (precedence random > hyperband > grid > bo > grid)."""
        if self.random_search is not None:
            return "random"
        if self.hyperband is not None:
            return "hyperband"
        if self.grid_search is not None:
            return "grid"
        if self.bo is not None:
            return "bo"
        return "grid"

    @property
    def fixed_seed(self) -> int | None:
        """The user's seed; v0 treated `seed: 0` as no seed (`RandomState(seed) if seed else`)."""
        return self.seed or None

    @property
    def objective(self) -> MetricConfig | None:
        """The metric that hyperband / bo rank experiments by (`Trial.metric` holds its value)."""
        if self.hyperband is not None:
            return self.hyperband.metric
        if self.bo is not None:
            return self.bo.metric
        return None

    def to_dict(self) -> dict[str, Any]:
        """The stored / API form, as in the seed group: only the algorithm in use, matrix as dicts.

        No algorithm given stores `grid_search: {}` as the v0 server did.
        """
        out: dict[str, Any] = {
            "early_stopping": (
                [rule.model_dump(exclude_none=True) for rule in self.early_stopping]
                if self.early_stopping is not None
                else None
            ),
            "concurrency": self.concurrency,
            "seed": self.seed,
            "matrix": {name: param.to_dict() for name, param in self.matrix.items()},
        }
        algorithm = {"grid": "grid_search", "random": "random_search"}.get(
            self.search_algorithm, self.search_algorithm
        )
        section = getattr(self, algorithm)
        out[algorithm] = {} if section is None else section.model_dump(exclude_none=True)
        if self.early_stopping_policy is not None:
            out["early_stopping_policy"] = self.early_stopping_policy.model_dump()
        return out


def spec_error_from_validation(exc: ValidationError, prefix: str = "") -> SpecError:
    """Pydantic errors as SpecError problems with dotted paths (`hptuning.matrix.lr.linspace`).

    A SpecError raised inside a validator keeps its own relative paths under the error's location.
    """
    problems: list[tuple[str, str]] = []
    for error in exc.errors():
        loc = [prefix, *error["loc"]] if prefix else list(error["loc"])
        inner = (error.get("ctx") or {}).get("error")
        if isinstance(inner, SpecError):
            base = format_path(loc)
            for path, reason in inner.problems:
                full = ".".join(part for part in (base, path) if part)
                problems.append((full, reason))
        else:
            problems.append((format_path(loc), _reason(error)))
    return SpecError(problems)


def _reason(error: Mapping[str, Any]) -> str:
    if error["type"] == "missing":
        return "this field is required"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return str(error["msg"]).removeprefix("Value error, ")


def parse_hptuning(raw: Any, *, max_values: int | None = None) -> HPTuningConfig:
    """Validate a raw `hptuning` mapping; problems are reported under `hptuning.`.

    `max_values` bounds the values the matrix defines (None: a stored, already checked one).
    """
    if not isinstance(raw, Mapping):
        raise SpecError("hptuning", "expected a mapping")
    try:
        return HPTuningConfig.model_validate(dict(raw), context={"max_values": max_values})
    except ValidationError as exc:
        raise spec_error_from_validation(exc, "hptuning") from None
