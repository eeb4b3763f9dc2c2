from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends
from pydantic import AfterValidator, BaseModel, Field, ValidationError
from starlette.requests import Request

from app.errors import BadRequest
from app.logic.names import validate_username
from app.schemas.common import OutSchema, Schema, Timestamp

if TYPE_CHECKING:
    from app.models import User

Username = Annotated[str, AfterValidator(validate_username)]


class LoginIn(Schema):
    username: Annotated[str, Field(min_length=1, max_length=150)]
    password: Annotated[str, Field(min_length=1, max_length=4096)]


async def login_body(request: Request) -> LoginIn:
    """JSON or form-encoded `username`/`password` (the v0 client sends either); 400 otherwise."""
    content_type = request.headers.get("content-type", "")
    data: Any
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        data = dict(await request.form())
    else:
        try:
            data = await request.json()
        except ValueError:
            raise BadRequest("body: malformed JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body: expected an object with username and password")
    try:
        return LoginIn.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise BadRequest(fields) from None


LoginBody = Annotated[LoginIn, Depends(login_body)]
# The login body is read by hand (JSON or form), so the docs get its schema from here.
LOGIN_BODY_DOC = {
    "requestBody": {
        "content": {"application/json": {"schema": LoginIn.model_json_schema()}},
        "required": True,
    }
}


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

    @classmethod
    def of(cls, user: User) -> UserOut:
        # v0 clients read `is_staff`; plx has one notion of admin.
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            is_superuser=user.is_superuser,
            is_staff=user.is_superuser,
            created_at=user.created_at,
        )
