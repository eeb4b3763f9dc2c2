"""Matrix options of a group's `hptuning.matrix`: parsing, validation, values and sampling.

Each parameter has exactly one option (polyaxon-v0.md 2.2). Range-like options accept `"a:b:c"`,
`[a, b, c]` or a dict, and are stored (and returned by the API) in dict form.

The number of values of `range`, `linspace`, `logspace` and `geomspace` is computed arithmetically
at validation and checked against the caller's bound (the `max_values` validation context): no
list is built before a sweep asks for it, so `linspace: 0:1:1000000000` is a 400, not 8 GB.
"""

from __future__ import annotations

import ast
import json
import math
import sys
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# The default bound on the values a matrix may define (the default PLX_MAX_GROUP_EXPERIMENTS).
DEFAULT_MAX_VALUES = 100_000
# Continuous draws of `size` values each: a suggestion holds at most this many per parameter.
MAX_SAMPLE_SIZE = 1_000
_EXP_MAX = math.log(sys.float_info.max)  # exp(x) overflows above this (about 709.78)


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"`{_short(value)}` is not a number")
    if isinstance(value, int) and abs(value) > sys.float_info.max:
        raise _invalid(f"`{_short(value)}` is too large")
    if not math.isfinite(value):
        raise _invalid(f"`{value}` is not a finite number")
    return value


def _short(value: Any) -> str:
    text = str(value) if not isinstance(value, int) or value.bit_length() < 256 else "a huge int"
    return text if len(text) <= 100 else text[:100] + "..."


def max_values(info: ValidationInfo) -> int | None:
    """The bound given by the caller (`context={"max_values": n}`); None means unbounded."""
    context = info.context if isinstance(info.context, dict) else {}
    return context.get("max_values", DEFAULT_MAX_VALUES)


def too_many(count: int, limit: int, what: str) -> PydanticCustomError:
    return _invalid(
        f"{what} {count} values, more than the {limit} allowed (PLX_MAX_GROUP_EXPERIMENTS)"
    )


def _finite(value: float, reason: str) -> None:
    if not math.isfinite(value):
        raise _invalid(reason)


# Ints stay ints (range 1:10:2 gives 1, 3, ...), and errors read "`a` is not a number".
Number = Annotated[int | float, PlainValidator(_number)]

RANGES = frozenset({"range", "linspace", "logspace", "geomspace"})
CONTINUOUS = frozenset(
    {
        "uniform",
        "quniform",
        "loguniform",
        "qloguniform",
        "normal",
        "qnormal",
        "lognormal",
        "qlognormal",
    }
)
DISTRIBUTIONS = CONTINUOUS | {"pvalues"}
OPTIONS = ("values", "pvalues", *sorted(RANGES), *sorted(CONTINUOUS))


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("matrix", message)


def _parse_part(part: str) -> Any:
    try:
        return ast.literal_eval(part.strip())
    except (ValueError, SyntaxError):
        raise _invalid(f"`{part.strip()}` is not a number") from None


def _as_int(value: float, key: str) -> int:
    if float(value) != int(value):
        raise _invalid(f"{key} must be an integer")
    return int(value)


class _Spec(BaseModel):
    """Numeric option given as `"a:b:c"`, a list or a dict (polyaxon-v0 `Range._deserialize`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    REQUIRED: ClassVar[tuple[str, ...]] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            raw = [_parse_part(part) for part in raw.split(":")]
        if isinstance(raw, list | tuple):
            counts = {len(cls.REQUIRED), len(cls.REQUIRED) + len(cls.OPTIONAL)}
            if len(raw) not in counts:
                keys = ":".join(cls.REQUIRED + cls.OPTIONAL)
                expected = " or ".join(str(n) for n in sorted(counts))
                raise _invalid(f"expected {expected} values ({keys}), got {len(raw)}")
            return dict(zip(cls.REQUIRED + cls.OPTIONAL, raw, strict=False))
        if isinstance(raw, dict):
            missing = [key for key in cls.REQUIRED if key not in raw]
            if missing:
                raise _invalid(f"missing key(s): {', '.join(missing)}")
            return raw
        raise _invalid("expected a string `a:b:c`, a list or a dict")

    def to_dict(self) -> dict[str, Any]:
        dumped = self.model_dump(exclude_none=True)
        return {key: dumped[key] for key in self.REQUIRED + self.OPTIONAL if key in dumped}


class _Ordered(_Spec):
    """start < stop, as v0 checked: "stop value must be strictly higher than start"."""

    start: Number
    stop: Number

    @model_validator(mode="after")
    def _check_order(self) -> _Ordered:
        if self.start >= self.stop:
            raise _invalid("stop value must be strictly higher than start")
        return self


class RangeSpec(_Ordered):
    REQUIRED = ("start", "stop", "step")
    step: Number

    @field_validator("step")
    @classmethod
    def _positive(cls, step: Number) -> Number:
        if step <= 0:
            raise _invalid("step must be positive")
        return step

    @model_validator(mode="after")
    def _finite_count(self) -> RangeSpec:
        if self._ints is None:
            _finite((self.stop - self.start) / self.step, "the range is too wide for its step")
        return self

    @property
    def _ints(self) -> tuple[int, int, int] | None:
        """(start, stop, step) when all three are ints: exact arithmetic for any size."""
        start, stop, step = self.start, self.stop, self.step
        if isinstance(start, int) and isinstance(stop, int) and isinstance(step, int):
            return start, stop, step
        return None

    def count(self) -> int:
        """len(np.arange(start, stop, step)), without building it."""
        ints = self._ints
        if ints is not None:
            start, stop, step = ints
            return max(0, -(-(stop - start) // step))
        return max(0, math.ceil((self.stop - self.start) / self.step))

    def values(self) -> list[Any]:
        ints = self._ints
        if ints is not None:  # exact for any int (numpy stops at int64)
            return list(range(*ints))
        return np.arange(self.start, self.stop, self.step).tolist()


class _NumSpec(_Ordered):
    num: int

    @field_validator("num", mode="before")
    @classmethod
    def _num(cls, num: Any) -> Any:
        if isinstance(num, float):
            num = _as_int(num, "num")
        if isinstance(num, int) and num < 1:
            raise _invalid("num must be a positive integer")
        return num

    @model_validator(mode="after")
    def _finite_width(self) -> _NumSpec:
        _finite(float(self.stop) - float(self.start), "the interval is too wide")
        return self

    def count(self) -> int:
        return self.num


class LinspaceSpec(_NumSpec):
    REQUIRED = ("start", "stop", "num")

    def values(self) -> list[Any]:
        return np.linspace(self.start, self.stop, self.num).tolist()


class LogspaceSpec(_NumSpec):
    REQUIRED = ("start", "stop", "num")
    OPTIONAL = ("base",)
    base: Number | None = None

    @field_validator("base")
    @classmethod
    def _base(cls, base: Number | None) -> Number | None:
        if base is not None and base <= 0:
            raise _invalid("base must be positive")
        return base

    @model_validator(mode="after")
    def _no_overflow(self) -> LogspaceSpec:
        base = 10.0 if self.base is None else float(self.base)
        try:
            math.pow(base, self.start), math.pow(base, self.stop)
        except (OverflowError, ValueError):
            raise _invalid("base ** start or base ** stop is too large") from None
        return self

    def values(self) -> list[Any]:
        base = 10.0 if self.base is None else self.base
        return np.logspace(self.start, self.stop, self.num, base=base).tolist()


class GeomspaceSpec(_NumSpec):
    REQUIRED = ("start", "stop", "num")

    @model_validator(mode="after")
    def _same_sign(self) -> GeomspaceSpec:
        if self.start == 0 or self.stop == 0 or (self.start < 0) != (self.stop < 0):
            raise _invalid("start and stop must be non-zero and of the same sign")
        return self

    def values(self) -> list[Any]:
        return np.geomspace(self.start, self.stop, self.num).tolist()


class _Sized(_Spec):
    """`size` draws an array of that many values per suggestion instead of one value."""

    size: int | None = None
    OPTIONAL: ClassVar[tuple[str, ...]] = ("size",)

    @field_validator("size")
    @classmethod
    def _size(cls, size: int | None) -> int | None:
        if size is not None and size < 1:
            raise _invalid("size must be a positive integer")
        if size is not None and size > MAX_SAMPLE_SIZE:
            raise _invalid(f"size must be at most {MAX_SAMPLE_SIZE}")
        return size

    def _shape(self, n: int) -> tuple[int, ...]:
        return (n,) if self.size is None else (n, self.size)


class _Quantized(_Sized):
    q: Number

    @field_validator("q")
    @classmethod
    def _q(cls, q: Number) -> Number:
        if q <= 0:
            raise _invalid("q must be positive")
        return q

    def _quantize(self, raw: np.ndarray) -> np.ndarray:
        # Floor to a multiple of q (v0's `np.round(x // q) * q`); the rounding drops float noise
        # such as 0.30000000000000004, and an integer q yields integers (e.g. batch sizes).
        out = np.floor(raw / self.q) * self.q
        if isinstance(self.q, int):
            return out.astype(np.int64)
        digits = max(0, -math.floor(math.log10(self.q))) + 8
        return np.round(out, digits)


class _Bounded(_Spec):
    """low < high for uniform-like options."""

    low: Number
    high: Number
    REQUIRED: ClassVar[tuple[str, ...]] = ("low", "high")

    @model_validator(mode="after")
    def _check_bounds(self) -> Any:
        if self.low >= self.high:
            raise _invalid("high value must be strictly higher than low")
        _finite(float(self.high) - float(self.low), "the interval is too wide")
        return self


class _Scaled(_Spec):
    loc: Number
    scale: Number
    REQUIRED: ClassVar[tuple[str, ...]] = ("loc", "scale")

    # Draws stay finite: no overflow within this many standard deviations of `loc`.
    SIGMAS: ClassVar[float] = 40.0

    @field_validator("scale")
    @classmethod
    def _scale(cls, scale: Number) -> Number:
        if scale <= 0:
            raise _invalid("scale must be positive")
        return scale

    @model_validator(mode="after")
    def _draws_finite(self) -> Any:
        _finite(abs(float(self.loc)) + self.SIGMAS * float(self.scale), "scale is too large")
        return self


class _LogScaled(_Scaled):
    @model_validator(mode="after")
    def _exp_finite(self) -> Any:
        if self.loc + self.SIGMAS * self.scale > _EXP_MAX:
            raise _invalid(
                f"loc + {self.SIGMAS:g} * scale must be at most {_EXP_MAX:.2f} (exp overflows)"
            )
        return self


class UniformSpec(_Bounded, _Sized):
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, self._shape(n))


class QUniformSpec(_Bounded, _Quantized):
    REQUIRED = ("low", "high", "q")

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._quantize(rng.uniform(self.low, self.high, self._shape(n)))


class _ExpBounded(_Bounded):
    """exp(low)..exp(high): high above about 709.78 overflows to infinity."""

    @model_validator(mode="after")
    def _exp_finite(self) -> Any:
        if self.high > _EXP_MAX:
            raise _invalid(f"high must be at most {_EXP_MAX:.2f} (exp(high) overflows)")
        return self


class LogUniformSpec(_ExpBounded, _Sized):
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.exp(rng.uniform(self.low, self.high, self._shape(n)))


class QLogUniformSpec(_ExpBounded, _Quantized):
    REQUIRED = ("low", "high", "q")

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._quantize(np.exp(rng.uniform(self.low, self.high, self._shape(n))))


class NormalSpec(_Scaled, _Sized):
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(self.loc, self.scale, self._shape(n))


class QNormalSpec(_Scaled, _Quantized):
    REQUIRED = ("loc", "scale", "q")

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._quantize(rng.normal(self.loc, self.scale, self._shape(n)))


class LogNormalSpec(_LogScaled, _Sized):
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.loc, self.scale, self._shape(n))


class QLogNormalSpec(_LogScaled, _Quantized):
    """Quantised properly (v0 returned `exp(lognormal)`, neither quantised nor meaningful)."""

    REQUIRED = ("loc", "scale", "q")

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._quantize(rng.lognormal(self.loc, self.scale, self._shape(n)))


def freeze(value: Any) -> Any:
    """A hashable stand-in for a JSON-like value (lists and dicts inside `values`)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    if isinstance(value, dict):
        return ("__dict__", json.dumps(value, sort_keys=True, default=str))
    return value


def _tidy(value: Any) -> Any:
    """Drop float noise past 15 significant digits: linspace gives 0.025750000000000002."""
    return float(f"{value:.15g}") if isinstance(value, float) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class MatrixParam(BaseModel):
    """One matrix entry: exactly one of the 14 options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[Any] | None = None
    pvalues: list[tuple[Any, float]] | None = None
    range: RangeSpec | None = None
    linspace: LinspaceSpec | None = None
    logspace: LogspaceSpec | None = None
    geomspace: GeomspaceSpec | None = None
    uniform: UniformSpec | None = None
    quniform: QUniformSpec | None = None
    loguniform: LogUniformSpec | None = None
    qloguniform: QLogUniformSpec | None = None
    normal: NormalSpec | None = None
    qnormal: QNormalSpec | None = None
    lognormal: LogNormalSpec | None = None
    qlognormal: QLogNormalSpec | None = None

    # Number of values of an enumerable option, computed arithmetically at validation; the
    # values themselves are built on first use (frozen model, so safe to cache).
    _length: int | None = PrivateAttr(default=None)
    _discrete: tuple[Any, ...] | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise _invalid(f"expected a mapping with one of: {', '.join(OPTIONS)}")
        return raw

    @field_validator("values")
    @classmethod
    def _values(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None and not values:
            raise _invalid("values must not be empty")
        return values

    @field_validator("pvalues")
    @classmethod
    def _pvalues(cls, pvalues: list[tuple[Any, float]] | None) -> list[tuple[Any, float]] | None:
        if pvalues is None:
            return None
        if not pvalues:
            raise _invalid("pvalues must not be empty")
        for value, p in pvalues:
            if not 0 <= p <= 1:
                raise _invalid(f"probability {p} of `{value}` must be between 0 and 1")
        total = math.fsum(p for _, p in pvalues)
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise _invalid(f"probabilities must sum to 1, got {total:g}")
        return pvalues

    @model_validator(mode="after")
    def _exactly_one(self, info: ValidationInfo) -> MatrixParam:
        given = [name for name in OPTIONS if getattr(self, name) is not None]
        if not given:
            raise _invalid(f"one option is required: {', '.join(OPTIONS)}")
        if len(given) > 1:
            raise _invalid(f"only one option per parameter, got {' and '.join(given)}")
        if self.kind in RANGES:
            self._length = self.spec.count()
            if not self._length:
                raise _invalid(f"{self.kind} defines no values")
        elif self.kind == "values":
            self._length = len(self.values or ())
        limit = max_values(info)
        if limit is not None and self._length is not None and self._length > limit:
            raise too_many(self._length, limit, f"{self.kind} defines")
        return self

    # -- classification ------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return next(name for name in OPTIONS if getattr(self, name) is not None)

    @property
    def spec(self) -> Any:
        return getattr(self, self.kind)

    @property
    def is_continuous(self) -> bool:
        return self.kind in CONTINUOUS

    @property
    def is_distribution(self) -> bool:
        return self.kind in DISTRIBUTIONS

    @property
    def is_discrete(self) -> bool:
        return not self.is_continuous

    @property
    def is_enumerable(self) -> bool:
        """Values and ranges: a finite list sampled uniformly (grid and BO can use these)."""
        return self._length is not None

    @property
    def is_categorical(self) -> bool:
        values = self.to_values() if self.is_enumerable else ()
        return any(not _is_number(v) for v in values)

    @property
    def length(self) -> int | None:
        """Number of distinct values: None for continuous options; support size for pvalues."""
        if self._length is not None:
            return self._length
        if self.pvalues is not None:
            return sum(1 for _, p in self.pvalues if p > 0)
        return None

    def distinct_bound(self) -> int | None:
        """An upper bound on distinct samples of a bounded quantised option (for plan warnings)."""
        if self.length is not None:
            return self.length
        if self.kind == "quniform":
            lo, hi = self.spec.low, self.spec.high
        elif self.kind == "qloguniform":
            lo, hi = math.exp(self.spec.low), math.exp(self.spec.high)  # high <= _EXP_MAX
        else:
            return None
        if self.spec.size is not None:
            return None
        q = self.spec.q
        steps = hi / q - lo / q
        if not math.isfinite(steps):
            return None
        return math.floor(hi / q) - math.floor(lo / q) + 1

    # -- values ----------------------------------------------------------------------------------

    def to_values(self) -> tuple[Any, ...]:
        if self._length is None:
            raise ValueError(f"{self.kind} defines a distribution and has no list of values")
        if self._discrete is None:
            if self.kind == "values":
                self._discrete = tuple(self.values or ())
            else:
                self._discrete = tuple(_tidy(v) for v in self.spec.values())
        return self._discrete

    def sample(self, rng: np.random.Generator, n: int) -> list[Any]:
        """`n` independent draws, as JSON-ready Python values."""
        if self._length is not None:
            values = self.to_values()
            picks = rng.integers(0, len(values), n)
            return [values[i] for i in picks.tolist()]
        if self.pvalues is not None:
            probs = np.array([p for _, p in self.pvalues], dtype=float)
            picks = rng.choice(len(self.pvalues), size=n, p=probs / probs.sum())
            return [self.pvalues[i][0] for i in picks.tolist()]
        return self.spec.draw(rng, n).tolist()

    def to_dict(self) -> dict[str, Any]:
        """The stored / API form: `{"linspace": {"start": 0.001, "stop": 0.1, "num": 5}}`."""
        kind = self.kind
        if kind == "values":
            return {"values": list(self.values or ())}
        if kind == "pvalues":
            return {"pvalues": [[v, p] for v, p in self.pvalues or ()]}
        return {kind: self.spec.to_dict()}


def space_size(params: Sequence[MatrixParam]) -> int | None:
    """Distinct points of the product space, or None when any parameter is continuous."""
    size = 1
    for param in params:
        length = param.length
        if length is None:
            return None
        size *= length
    return size


def total_values(params: Sequence[MatrixParam]) -> int:
    """Values a sweep may hold in memory at once: the sum of the enumerable lengths."""
    return sum(param.length or 0 for param in params if param.is_enumerable)
