"""Shared schema pieces: the base class, v0-style timestamps, names, the list envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, field_validator

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


class Schema(BaseModel):
    """Base of every body schema: unknown and read-only top-level fields are ignored (as DRF)."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

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


class Detail(BaseModel):
    detail: str
