"""Users and tokens. Services take the session first, flush, never commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import BadRequest, NotFound, PermissionDenied, Unauthorized
from app.models import ServerSecret, Token, User
from app.models.base import utcnow
from app.runtimes.isolation import SINGLE_USER_MESSAGE, runs_share_server_user
from app.security import (
    DUMMY_HASH,
    TOKEN_SECRET_NAME,
    digests_match,
    hash_password_async,
    new_secret,
    new_token_key,
    token_digest,
    verify_password_async,
)
from app.services.principal_cache import SESSION_KEY, PrincipalCache, forget_principals
from app.services.principals import Principal
from app.services.unique_names import unique_name

# Longer than any token plx issues: not hashed, not looked up.
MAX_TOKEN_LENGTH = 256


async def get_user(session: AsyncSession, username: str) -> User | None:
    if "\x00" in username:  # PostgreSQL text cannot hold NUL: no such user
        return None
    return await session.scalar(select(User).where(User.username == username))


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    email: str | None = None,
    is_superuser: bool = False,
) -> User:
    user = User(
        username=username,
        password_hash=await hash_password_async(password),
        email=email,
        is_superuser=is_superuser,
    )
    session.add(user)
    async with unique_name(session, "user", username, field="username"):
        await session.flush()
    return user


async def ensure_admin(session: AsyncSession, *, username: str, password: str) -> User:
    """Create this superuser, or reset its password (revoking its tokens when it changed) and
    superuser flag."""
    user = await get_user(session, username)
    if user is None:
        return await create_user(session, username=username, password=password, is_superuser=True)
    if not await verify_password_async(user.password_hash, password):
        await set_password(session, user, password)
    user.is_superuser = True
    user.is_active = True
    await session.flush()
    forget_principals(session, user_id=user.id)
    return user


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    """A password change or reset: every user token of `user` stops working (a stolen one
    too). Run tokens stay: each is bound to one run and ends with it."""
    user.password_hash = await hash_password_async(password)
    await session.flush()
    await revoke_user_tokens(session, user.id)


async def change_password(
    session: AsyncSession, user: User, *, old_password: str, new_password: str, ttl: float = 0
) -> str:
    """The caller's own password change: all their tokens are revoked; a new one is returned."""
    fresh = await session.get(User, user.id)
    if fresh is None or not await verify_password_async(fresh.password_hash, old_password):
        raise BadRequest("old_password: the current password is not correct.")
    await set_password(session, fresh, new_password)
    return await issue_token(session, fresh, ttl=ttl)


async def check_room_for_user(session: AsyncSession, settings: Settings) -> None:
    """Refuse a second non-superuser when local runs cannot be separated from the server (and
    so from each other): such a server is for one trusted user (or PLX_LOCAL_TRUST_USERS)."""
    if settings.local_trust_users or not runs_share_server_user(settings):
        return
    others = await session.scalar(select(User.id).where(User.is_superuser.is_(False)).limit(1))
    if others is not None:
        raise PermissionDenied(SINGLE_USER_MESSAGE)


async def revoke_user_tokens(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(Token).where(Token.user_id == user_id, Token.run_kind.is_(None)))
    forget_principals(session, user_id=user_id)


async def token_secret(session: AsyncSession) -> str:
    """The digest key (made by migration 0005; made again if someone deleted it, which revokes
    every token), read once per process through the cache."""
    cache: PrincipalCache | None = session.info.get(SESSION_KEY)
    if cache is not None and cache.token_secret is not None:
        return cache.token_secret
    query = select(ServerSecret.value).where(ServerSecret.name == TOKEN_SECRET_NAME)
    secret = await session.scalar(query)
    if secret is None:
        try:
            async with session.begin_nested():
                await session.execute(
                    insert(ServerSecret).values(name=TOKEN_SECRET_NAME, value=new_secret())
                )
        except IntegrityError:
            pass  # another request made it first
        secret = await session.scalar(query)
        assert secret is not None
    if cache is not None:
        cache.token_secret = secret
    return secret


async def login(session: AsyncSession, *, username: str, password: str, ttl: float = 0) -> str:
    """A new token for each login (a user may hold several), valid `ttl` seconds (0: until
    revoked). The clear token is returned here only: the database keeps its digest."""
    user = await get_user(session, username)
    valid = await verify_password_async(user.password_hash if user else DUMMY_HASH, password)
    if user is None or not valid or not user.is_active:
        raise BadRequest("Unable to log in with provided credentials.")
    return await issue_token(session, user, ttl=ttl)


async def issue_token(session: AsyncSession, user: User, *, ttl: float = 0) -> str:
    key = new_token_key()
    expires_at = utcnow() + timedelta(seconds=ttl) if ttl > 0 else None
    digest = token_digest(await token_secret(session), key)
    session.add(Token(digest=digest, user_id=user.id, expires_at=expires_at))
    await session.flush()
    return key


async def logout(session: AsyncSession, principal: Principal) -> None:
    """Revoke the token this request was made with (the user's other tokens stay)."""
    if principal.token_id is not None:
        await session.execute(delete(Token).where(Token.id == principal.token_id))
    forget_principals(session, user_id=principal.user.id)


async def create_run_token(session: AsyncSession, user: User, *, kind: str, run_id: int) -> str:
    """A new token that acts as `user` but may only act on one run (contract.md 3)."""
    return (await create_run_tokens(session, [(user, kind, run_id)]))[(kind, run_id)]


async def create_run_tokens(
    session: AsyncSession, wanted: list[tuple[User, str, int]]
) -> dict[tuple[str, int], str]:
    """`create_run_token` for many runs in one multi-row INSERT, keyed by (kind, run id).

    Each call issues new tokens: a clear token exists nowhere but in the answer, so the token of
    an earlier attempt cannot be handed out again. Earlier tokens stay valid until the run's
    tokens are revoked, since a crash may have left a workload running with one of them."""
    if not wanted:
        return {}
    secret = await token_secret(session)
    keys: dict[tuple[str, int], str] = {}
    rows = []
    now = utcnow()
    for user, kind, run_id in wanted:
        key = keys[(kind, run_id)] = new_token_key()
        rows.append(
            {
                "digest": token_digest(secret, key),
                "user_id": user.id,
                "run_kind": kind,
                "run_id": run_id,
                "created_at": now,
            }
        )
    # Core on the table: one statement (the ORM inserts row by row on SQLite).
    await session.execute(insert(cast(Table, Token.__table__)), rows)
    return keys


async def delete_run_tokens(session: AsyncSession, kind: str, ids: Any) -> None:
    """The run-scoped tokens of these runs (`ids`: a list or a SELECT of ids), forgotten by the
    principal cache too: a run deleted, alone or with its group or project, takes its
    credentials with it."""
    deleted = await session.execute(
        delete(Token).where(Token.run_kind == kind, Token.run_id.in_(ids)).returning(Token.run_id)
    )
    run_ids = {run_id for run_id in deleted.scalars() if run_id is not None}
    if run_ids:
        forget_principals(session, run=(kind, run_ids))


async def authenticate(session: AsyncSession, authorization: str | None) -> Principal:
    """Parse `Authorization: token <key>` (DRF rules) and resolve the principal, or raise 401."""
    if not authorization:
        raise Unauthorized()
    parts = authorization.split()
    if not parts or parts[0].lower() != "token":
        # Other schemes are ignored: the request is anonymous.
        raise Unauthorized()
    if len(parts) == 1:
        raise Unauthorized("Invalid token header. No credentials provided.")
    if len(parts) > 2:
        raise Unauthorized("Invalid token header. Token string should not contain spaces.")
    if len(parts[1]) > MAX_TOKEN_LENGTH:
        raise Unauthorized("Invalid token.")
    digest = token_digest(await token_secret(session), parts[1])
    cache: PrincipalCache | None = session.info.get(SESSION_KEY)
    cached = cache.get(digest) if cache is not None else None
    if cached is not None:
        return cached
    row = await session.execute(
        select(Token, User).join(User, User.id == Token.user_id).where(Token.digest == digest)
    )
    found = row.first()
    if found is None or not digests_match(found[0].digest, digest):
        raise Unauthorized("Invalid token.")
    token, user = found
    lifetime = None
    if token.expires_at is not None:
        lifetime = (token.expires_at - utcnow()).total_seconds()
        if lifetime <= 0:
            raise Unauthorized("Token has expired.")
    if not user.is_active:
        raise Unauthorized("User inactive or deleted.")
    principal = Principal(
        user=_snapshot(user), run_kind=token.run_kind, run_id=token.run_id, token_id=token.id
    )
    if cache is not None:
        cache.put(digest, principal, lifetime=lifetime)
    return principal


def _snapshot(user: User) -> User:
    """A transient copy of the caller's row: shared by concurrent requests through the cache, it
    must belong to no session (a rollback would expire it) and nothing writes through it."""
    columns = {attr.key: getattr(user, attr.key) for attr in inspect(User).column_attrs}
    return User(**columns)


async def get_user_or_404(session: AsyncSession, username: str) -> User:
    user = await get_user(session, username)
    if user is None:
        raise NotFound()
    return user
