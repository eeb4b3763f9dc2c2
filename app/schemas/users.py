from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from app.logic.names import validate_username
from app.schemas.common import OutSchema, Schema, Timestamp

Username = Annotated[str, AfterValidator(validate_username)]


class LoginIn(Schema):
    username: Annotated[str, Field(min_length=1, max_length=150)]
    password: Annotated[str, Field(min_length=1, max_length=4096)]


class PasswordIn(Schema):
    old_password: Annotated[str, Field(min_length=1, max_length=4096)]
    new_password: Annotated[str, Field(min_length=8, max_length=4096)]


class TokenOut(BaseModel):
    token: str


class UserCreate(Schema):
    username: Username
    password: Annotated[str, Field(min_length=8, max_length=4096)]
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    is_superuser: bool = False


class UserOut(OutSchema):
    id: int
    username: str
    email: str | None
    is_superuser: bool
    is_staff: bool = False
    created_at: Timestamp
