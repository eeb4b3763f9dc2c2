"""Superuser actions on users: activate, delete, grant and revoke superuser (v0 paths)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.deps import SessionDep, SuperuserDep
from app.schemas.users import UserOut
from app.services import user_admin

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.post("/users/activate/{username}", summary="Activate a user", response_model=UserOut)
async def activate_user(username: str, session: SessionDep, _admin: SuperuserDep) -> UserOut:
    return UserOut.of(await user_admin.activate(session, username))


@router.delete(
    "/users/delete/{username}",
    summary="Delete a user with their projects and runs",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def delete_user(username: str, session: SessionDep, admin: SuperuserDep) -> None:
    await user_admin.delete_user(session, admin, username)


@router.post(
    "/superusers/grant/{username}", summary="Make a user superuser", response_model=UserOut
)
async def grant_superuser(username: str, session: SessionDep, admin: SuperuserDep) -> UserOut:
    return UserOut.of(await user_admin.set_superuser(session, admin, username, superuser=True))


@router.post(
    "/superusers/revoke/{username}", summary="Revoke a user's superuser", response_model=UserOut
)
async def revoke_superuser(username: str, session: SessionDep, admin: SuperuserDep) -> UserOut:
    return UserOut.of(await user_admin.set_superuser(session, admin, username, superuser=False))
