"""The `plx` command: server, database and user administration."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from app.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


def _cmd_server(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.migrate import upgrade

    settings = Settings()
    if settings.runtime == "local":
        # Whatever the server creates (logs, outputs, repos) is its own unless it hands it to a
        # run. Not on Kubernetes: pods may write into directories it makes on a shared volume.
        os.umask(0o077)
    if not settings.api_url:
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        settings.api_url = f"http://{host}:{args.port}"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings)
    app = create_app(settings)
    # One process, one event loop: the reconciler lives beside the API (no --workers).
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def _cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from app.migrate import upgrade

    upgrade(Settings())
    print("Database is at the latest revision.")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password (again): "):
        raise SystemExit("Passwords do not match.")
    return first


def _in_one_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate the database, then run `work` in one session, committed when it returns."""
    from app.db import make_engine, make_sessionmaker, session_scope
    from app.migrate import upgrade

    upgrade(settings)

    async def run() -> T:
        engine = make_engine(settings)
        try:
            async with session_scope(make_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _cmd_users_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.errors import BadRequest, PermissionDenied
    from app.schemas.users import UserCreate
    from app.services.users import check_room_for_user, create_user

    password = _read_password(args)
    try:
        body = UserCreate(
            username=args.name, password=password, is_superuser=args.superuser, email=args.email
        )
    except ValidationError as exc:
        for error in exc.errors():
            print(f"{'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        return 2
    settings = Settings()

    async def create(session: AsyncSession) -> None:
        if not body.is_superuser:
            await check_room_for_user(session, settings)
        await create_user(
            session,
            username=body.username,
            password=body.password,
            email=body.email,
            is_superuser=body.is_superuser,
        )

    try:
        _in_one_session(settings, create)
    except (BadRequest, PermissionDenied) as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(f"Created user {body.username}{' (superuser)' if body.is_superuser else ''}.")
    return 0


def _cmd_users_set_password(args: argparse.Namespace) -> int:
    """Reset a user's password; every token of theirs stops working."""
    from app.services.users import get_user, set_password

    password = _read_password(args)
    if len(password) < 8:
        print("password: at least 8 characters", file=sys.stderr)
        return 2

    async def change(session: AsyncSession) -> bool:
        user = await get_user(session, args.name)
        if user is None:
            return False
        await set_password(session, user, password)
        return True

    if not _in_one_session(Settings(), change):
        print(f"No user named {args.name}.", file=sys.stderr)
        return 1
    print(f"Password of {args.name} changed; their tokens are revoked.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plx", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    server = sub.add_parser("server", help="migrate, then serve the API and the reconciler")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument("--log-level", default="info")
    server.set_defaults(func=_cmd_server)

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply all migrations").set_defaults(func=_cmd_db_upgrade)

    users = sub.add_parser("users", help="user administration")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser("create", help="create a user")
    create.add_argument("name")
    create.add_argument("--superuser", action="store_true")
    create.add_argument("--email", default=None)
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    create.set_defaults(func=_cmd_users_create)
    reset = users_sub.add_parser("set-password", help="reset a password (revokes their tokens)")
    reset.add_argument("name")
    reset.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    reset.set_defaults(func=_cmd_users_set_password)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("db", "users"):
        # The embedded database (and its journal files) is created readable by the server only.
        os.umask(0o077)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
