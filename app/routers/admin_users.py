"""Superuser actions on users: activate, delete, grant and revoke superuser (v0 paths)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import delete

from app.deps import SessionDep, SuperuserDep
from app.errors import BadRequest
from app.models import Token, User
from app.schemas.users import UserOut
from app.services.principal_cache import forget_principals
from app.services.users import Principal, get_user_or_404

router = APIRouter(prefix="/api/v1", tags=["users"])


def _out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        email=user.email,
        is_superuser=user.is_superuser,
        is_staff=user.is_superuser,
        created_at=user.created_at,
    )


def _refuse_self(admin: Principal, user: User, action: str) -> None:
    # A superuser who locks themselves out may leave no superuser at all.
    if admin.user.id == user.id:
        raise BadRequest(f"You cannot {action} your own account.")


@router.post("/users/activate/{username}", summary="Activate a user", response_model=UserOut)
async def activate_user(username: str, session: SessionDep, _admin: SuperuserDep) -> UserOut:
    user = await get_user_or_404(session, username)
    user.is_active = True
    await session.flush()
    forget_principals(session, user_id=user.id)
    return _out(user)


@router.delete(
    "/users/delete/{username}",
    summary="Delete a user with their projects and runs",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def delete_user(username: str, session: SessionDep, admin: SuperuserDep) -> Response:
    user = await get_user_or_404(session, username)
    _refuse_self(admin, user, "delete")
    # Tokens first so the user's credentials stop working even if a cascade is slow.
    await session.execute(delete(Token).where(Token.user_id == user.id))
    await session.delete(user)
    await session.flush()
    forget_principals(session, user_id=user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/superusers/grant/{username}", summary="Make a user superuser", response_model=UserOut
)
async def grant_superuser(username: str, session: SessionDep, _admin: SuperuserDep) -> UserOut:
    user = await get_user_or_404(session, username)
    user.is_superuser = True
    await session.flush()
    forget_principals(session, user_id=user.id)
    return _out(user)


@router.post(
    "/superusers/revoke/{username}", summary="Revoke a user's superuser", response_model=UserOut
)
async def revoke_superuser(username: str, session: SessionDep, admin: SuperuserDep) -> UserOut:
    user = await get_user_or_404(session, username)
    _refuse_self(admin, user, "revoke superuser on")
    user.is_superuser = False
    await session.flush()
    forget_principals(session, user_id=user.id)
    return _out(user)
