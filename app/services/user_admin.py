"""What a superuser does to users: create, activate, delete, grant and revoke superuser."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import BadRequest
from app.models import Token, User
from app.schemas.users import UserCreate
from app.services import users as users_service
from app.services.principal_cache import forget_principals
from app.services.users import Principal


async def create(session: AsyncSession, settings: Settings, body: UserCreate) -> User:
    if not body.is_superuser:
        await users_service.check_room_for_user(session, settings)
    return await users_service.create_user(
        session,
        username=body.username,
        password=body.password,
        email=body.email,
        is_superuser=body.is_superuser,
    )


def _refuse_self(admin: Principal, user: User, action: str) -> None:
    # A superuser who locks themselves out may leave no superuser at all.
    if admin.user.id == user.id:
        raise BadRequest(f"You cannot {action} your own account.")


async def _changed(session: AsyncSession, user: User) -> User:
    await session.flush()
    forget_principals(session, user_id=user.id)
    return user


async def activate(session: AsyncSession, username: str) -> User:
    user = await users_service.get_user_or_404(session, username)
    user.is_active = True
    return await _changed(session, user)


async def set_superuser(
    session: AsyncSession, admin: Principal, username: str, *, superuser: bool
) -> User:
    user = await users_service.get_user_or_404(session, username)
    if not superuser:
        _refuse_self(admin, user, "revoke superuser on")
    user.is_superuser = superuser
    return await _changed(session, user)


async def delete_user(session: AsyncSession, admin: Principal, username: str) -> None:
    """The user with their projects and runs (the database cascades)."""
    user = await users_service.get_user_or_404(session, username)
    _refuse_self(admin, user, "delete")
    # Tokens first so the user's credentials stop working even if a cascade is slow.
    await session.execute(delete(Token).where(Token.user_id == user.id))
    await session.delete(user)
    await _changed(session, user)
