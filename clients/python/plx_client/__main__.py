"""`python -m plx_client login|whoami|resend`: get a token, check it, resend spilled metrics."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from plx_client import config
from plx_client._sync_client import Client
from plx_client.errors import PlxError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plx_client")
    sub = parser.add_subparsers(dest="command", required=True)
    login = sub.add_parser("login", help="log in and save url and token in the config file")
    login.add_argument("--url", default=None, help="plx address (default: PLX_API_URL)")
    login.add_argument("--username", "-u", required=True)
    login.add_argument("--password", "-p", help="default: read from stdin or prompted")
    sub.add_parser("whoami", help="the user the saved (or PLX_TOKEN) token belongs to")
    resend = sub.add_parser("resend", help="send metric points a tracking run saved to disk")
    resend.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "login":
            return _login(args)
        if args.command == "whoami":
            with Client() as client:
                user = client.whoami()
                print(
                    f"{user.username} on {client.url}"
                    + (" (superuser)" if user.is_superuser else "")
                )
            return 0
        return _resend(args.file)
    except PlxError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1


def _login(args: argparse.Namespace) -> int:
    url, _ = config.resolve(args.url, None)
    password = args.password
    if password is None:
        password = getpass.getpass() if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    client = Client.login(url, args.username, password)
    client.close()
    print(f"logged in to {url} as {args.username}; token saved in {config.config_path()}")
    return 0


def _resend(path: Path) -> int:
    # plx-spill.<owner>.<project>.<experiment>.jsonl, as tracking.Run names it.
    parts = path.name.split(".")
    if len(parts) != 5 or parts[0] != "plx-spill":
        print(
            f"error: {path.name}: not a plx-spill.<owner>.<project>.<id>.jsonl file",
            file=sys.stderr,
        )
        return 2
    project, experiment = f"{parts[1]}/{parts[2]}", int(parts[3])
    points = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with Client() as client:
        for start in range(0, len(points), 1000):
            client.post_metrics(project, experiment, points[start : start + 1000], dedupe=True)
    path.unlink()
    print(f"sent {len(points)} points to {project} experiment {experiment}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
