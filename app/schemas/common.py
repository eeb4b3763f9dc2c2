"""Shared schema pieces: the base class, v0-style timestamps, names, the list envelope and the
context serialisers render rows with."""

from __future__ import annotations

import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar, Union, get_args, get_origin

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from app.kinds import RunKind
from app.logic.names import validate_name, validate_project_name

T = TypeVar("T")

# Row ids are 32-bit integers (Postgres INTEGER): a larger one can name no row, and must be a
# clear 400, not a database error.
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the row's id")]
BodyRowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def accepts_none(annotation: Any) -> bool:
    """Whether a field's type admits None (`X | None`, `Optional[X]`, `Any`, nested Annotated)."""
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return accepts_none(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(accepts_none(arg) for arg in get_args(annotation))
    return False


class Schema(BaseModel):
    """Base of every body schema: unknown and read-only top-level fields are ignored (as DRF).

    polyaxon-client 0.3.9 serialises its whole schema, so a create body carries `null` for
    every field the caller did not give (`"config": null`, `"merge": null`, ...). `null` for a
    field whose type cannot hold it means "not given": the default applies, or "this field is
    required". A field whose type admits None keeps an explicit null (an update clears it).
    """

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    _not_null: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._not_null = frozenset(
            name for name, info in cls.model_fields.items() if not accepts_none(info.annotation)
        )

    @model_validator(mode="before")
    @classmethod
    def _null_is_not_given(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls._not_null:
            return {k: v for k, v in data.items() if v is not None or k not in cls._not_null}
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _reject_nul(cls, value: Any) -> Any:
        return _no_nul(value)


class OutSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ISO-8601 with an explicit offset, as v0 rendered them ("2018-08-23T00:30:18.674062+00:00").
Timestamp = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]

ProjectName = Annotated[str, AfterValidator(validate_project_name)]
RunName = Annotated[str, AfterValidator(validate_name)]
Tags = Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=256)]
Description = Annotated[str, Field(max_length=100_000)]


class Page(BaseModel, Generic[T]):
    count: int
    next: str | None
    previous: str | None
    results: list[T]

    @classmethod
    def of(
        cls, found: tuple[int, list[Any], str | None, str | None], render: Callable[[Any], T]
    ) -> Page[T]:
        """A page of `paginate`'s answer (count, rows, next, previous), each row rendered."""
        count, rows, next_url, previous_url = found
        results = [render(row) for row in rows]
        return cls(count=count, next=next_url, previous=previous_url, results=results)


class Detail(BaseModel):
    detail: str


def columns(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields a serialiser copies from its row as they are."""
    return {name: getattr(row, name) for name in names}


# The columns every run (and group) row has, shown as they are.
RUN_COLUMNS = (
    "id",
    "uuid",
    "name",
    "description",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "last_status",
    "tags",
)


class RunFields(OutSchema):
    """The fields every run's row shows: jobs, builds, tensorboards and notebooks."""

    kind: ClassVar[RunKind]

    id: int
    uuid: str
    name: str | None
    unique_name: str
    user: str | None
    description: str | None
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    last_status: str | None
    tags: list[str] | None
    project: str

    @classmethod
    def run_fields(cls, row: Any, project: str) -> dict[str, Any]:
        unique_name = cls.kind.unique_name(project, row.id)
        return {**columns(row, RUN_COLUMNS), "unique_name": unique_name, "project": project}


@dataclass(frozen=True)
class RowContext:
    """What rendering rows needs besides the rows, looked up once per page by the service:
    the project's unique name, the creators' usernames, the caller's bookmarked ids and, for
    cloned experiments, the group of each original (part of its unique_name)."""

    project: str
    usernames: Mapping[int, str] = field(default_factory=dict)
    bookmarked: Collection[int] = frozenset()
    original_groups: Mapping[int, int | None] = field(default_factory=dict)
