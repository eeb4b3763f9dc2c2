from __future__ import annotations

from fastapi import APIRouter

from app.deps import SessionDep, SettingsDep, SuperuserDep, UserAuthDep
from app.schemas.common import Detail
from app.schemas.users import LOGIN_BODY_DOC, LoginBody, PasswordIn, TokenOut, UserCreate, UserOut
from app.services import user_admin
from app.services import users as users_service

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.post(
    "/token",
    summary="Log in: exchange username and password for the API token",
    response_model=TokenOut,
    openapi_extra=LOGIN_BODY_DOC,
)
async def login(body: LoginBody, session: SessionDep, settings: SettingsDep) -> TokenOut:
    token = await users_service.login(
        session, username=body.username, password=body.password, ttl=settings.token_ttl
    )
    return TokenOut(token=token)


@router.post("/logout", summary="Log out: revoke the token of this request", status_code=200)
async def logout(session: SessionDep, principal: UserAuthDep) -> dict[str, str]:
    await users_service.logout(session, principal)
    return Detail(detail="Logged out.").model_dump()  # the contract declares a string map


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
    return UserOut.of(principal.user)


@router.post("", summary="Create a user (superusers only)", response_model=UserOut, status_code=201)
async def create_user(
    body: UserCreate, settings: SettingsDep, session: SessionDep, _admin: SuperuserDep
) -> UserOut:
    return UserOut.of(await user_admin.create(session, settings, body))
