"""Users and tokens. Services take the session first, flush, never commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, inspect, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BadRequest, NotFound, Unauthorized
from app.models import Token, User
from app.models.base import utcnow
from app.security import (
    DUMMY_HASH,
    hash_password,
    keys_match,
    new_token_key,
    token_selector,
    verify_password,
)
from app.services.principal_cache import SESSION_KEY, PrincipalCache, forget_principals
from app.services.unique_names import unique_name


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, possibly through a token scoped to one run."""

    user: User
    run_kind: str | None = None  # "experiment" | "job" | "build" | "notebook" when run-scoped
    run_id: int | None = None

    @property
    def is_run_scoped(self) -> bool:
        return self.run_kind is not None

    def may_act_on_run(self, kind: str, run_id: int) -> bool:
        return not self.is_run_scoped or (self.run_kind == kind and self.run_id == run_id)


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
        password_hash=hash_password(password),
        email=email,
        is_superuser=is_superuser,
    )
    session.add(user)
    async with unique_name(session, "user", username, field="username"):
        await session.flush()
    return user


async def ensure_admin(session: AsyncSession, *, username: str, password: str) -> User:
    """Create this superuser, or reset its password and superuser flag."""
    user = await get_user(session, username)
    if user is None:
        return await create_user(session, username=username, password=password, is_superuser=True)
    if not verify_password(user.password_hash, password):
        user.password_hash = hash_password(password)
    user.is_superuser = True
    user.is_active = True
    await session.flush()
    forget_principals(session, user_id=user.id)
    return user


async def _user_token(session: AsyncSession, user: User) -> Token | None:
    return await session.scalar(
        select(Token).where(Token.user_id == user.id, Token.run_kind.is_(None))
    )


async def login(session: AsyncSession, *, username: str, password: str) -> str:
    """Return the user's token (the same one on every login, as DRF's get_or_create)."""
    user = await get_user(session, username)
    valid = verify_password(user.password_hash if user else DUMMY_HASH, password)
    if user is None or not valid or not user.is_active:
        raise BadRequest("Unable to log in with provided credentials.")
    token = await _user_token(session, user)
    if token is None:
        token = await _new_token(session, user)
    return token.key


async def _new_token(session: AsyncSession, user: User) -> Token:
    """A new user token, or the one a concurrent login created first."""
    key = new_token_key()
    token = Token(selector=token_selector(key), key=key, user_id=user.id)
    session.add(token)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        existing = await _user_token(session, user)
        if existing is None:
            raise
        return existing
    return token


async def logout(session: AsyncSession, user: User) -> None:
    await session.execute(delete(Token).where(Token.user_id == user.id, Token.run_kind.is_(None)))
    forget_principals(session, user_id=user.id)


async def create_run_token(session: AsyncSession, user: User, *, kind: str, run_id: int) -> str:
    """A token that acts as `user` but may only write to one run (contract.md 3): the run's
    existing one, else a new one."""
    return (await create_run_tokens(session, [(user, kind, run_id)]))[(kind, run_id)]


async def create_run_tokens(
    session: AsyncSession, wanted: list[tuple[User, str, int]]
) -> dict[tuple[str, int], str]:
    """`create_run_token` for many runs: one SELECT and one multi-row INSERT, keyed by
    (kind, run id). Callers hold the runs' rows locked (the reconciler starting them), so no
    other token of theirs appears meanwhile."""
    by_kind: dict[str, list[int]] = {}
    for _, kind, run_id in wanted:
        by_kind.setdefault(kind, []).append(run_id)
    if not by_kind:
        return {}
    found = await session.execute(
        select(Token.run_kind, Token.run_id, Token.key).where(
            or_(*(and_(Token.run_kind == k, Token.run_id.in_(ids)) for k, ids in by_kind.items()))
        )
    )
    keys: dict[tuple[str, int], str] = {(k, i): key for k, i, key in found}  # type: ignore[misc]
    new = []
    for user, kind, run_id in wanted:
        if (kind, run_id) not in keys:
            key = keys[(kind, run_id)] = new_token_key()
            new.append(
                {
                    "selector": token_selector(key),
                    "key": key,
                    "user_id": user.id,
                    "run_kind": kind,
                    "run_id": run_id,
                    "created_at": utcnow(),
                }
            )
    if new:
        # Core on the table: one statement (the ORM inserts row by row on SQLite).
        await session.execute(insert(Token.__table__), new)
    return keys


async def delete_run_tokens(session: AsyncSession, kind: str, ids: Any) -> None:
    """The run-scoped tokens of these runs (`ids`: a list or a SELECT of ids), forgotten by the
    principal cache too: a run deleted, alone or with its group or project, takes its
    credentials with it."""
    deleted = await session.execute(
        delete(Token).where(Token.run_kind == kind, Token.run_id.in_(ids)).returning(Token.run_id)
    )
    run_ids = set(deleted.scalars())
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
    key = parts[1]
    cache: PrincipalCache | None = session.info.get(SESSION_KEY)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
    row = await session.execute(
        select(Token, User)
        .join(User, User.id == Token.user_id)
        .where(Token.selector == token_selector(key))
    )
    found = row.first()
    if found is None or not keys_match(found[0].key, key):
        raise Unauthorized("Invalid token.")
    token, user = found
    if not user.is_active:
        raise Unauthorized("User inactive or deleted.")
    principal = Principal(user=_snapshot(user), run_kind=token.run_kind, run_id=token.run_id)
    if cache is not None:
        cache.put(key, principal)
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
