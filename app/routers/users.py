from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from pydantic import ValidationError

from app.deps import SessionDep, SettingsDep, SuperuserDep, UserAuthDep
from app.errors import BadRequest
from app.schemas.users import LoginIn, PasswordIn, TokenOut, UserCreate, UserOut
from app.services import users as users_service

router = APIRouter(prefix="/api/v1/users", tags=["users"])


async def _login_body(request: Request) -> LoginIn:
    """JSON or form-encoded `username`/`password` (the v0 client sends either)."""
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


@router.post(
    "/token",
    summary="Log in: exchange username and password for the API token",
    response_model=TokenOut,
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": LoginIn.model_json_schema()}},
            "required": True,
        }
    },
)
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> TokenOut:
    body = await _login_body(request)
    token = await users_service.login(
        session, username=body.username, password=body.password, ttl=settings.token_ttl
    )
    return TokenOut(token=token)


@router.post("/logout", summary="Log out: revoke the token of this request", status_code=200)
async def logout(session: SessionDep, principal: UserAuthDep) -> dict[str, str]:
    await users_service.logout(session, principal)
    return {"detail": "Logged out."}


@router.post(
    "/password",
    summary="Change the caller's password: revokes all their tokens, returns a new one",
    response_model=TokenOut,
)
async def change_password(
    body: PasswordIn, session: SessionDep, settings: SettingsDep, principal: UserAuthDep
) -> TokenOut:
    token = await users_service.change_password(
        session,
        principal.user,
        old_password=body.old_password,
        new_password=body.new_password,
        ttl=settings.token_ttl,
    )
    return TokenOut(token=token)


@router.get("", summary="The calling user", response_model=UserOut)
async def me(principal: UserAuthDep) -> UserOut:
    return _user_out(principal.user)


@router.post(
    "",
    summary="Create a user (superusers only)",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
)
async def create_user(
    body: UserCreate, session: SessionDep, settings: SettingsDep, _admin: SuperuserDep
) -> UserOut:
    if not body.is_superuser:
        await users_service.check_room_for_user(session, settings)
    user = await users_service.create_user(
        session,
        username=body.username,
        password=body.password,
        email=body.email,
        is_superuser=body.is_superuser,
    )
    return _user_out(user)


def _user_out(user: Annotated[Any, "User"]) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        email=user.email,
        is_superuser=user.is_superuser,
        is_staff=user.is_superuser,
        created_at=user.created_at,
    )
