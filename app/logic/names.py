"""Name rules for projects, groups, experiments, jobs and builds (polyaxon-v0.md 4.1). No I/O."""

from __future__ import annotations

import re

SLUG_RE = re.compile(r"^[-a-zA-Z0-9_]+$")
PROJECT_NAME_MAX = 128
NAME_MAX = 256

_BLACKLIST_SINGULAR = (
    "user",
    "admin",
    "superuser",
    "staff",
    "experiment",
    "project",
    "api",
    "polyaxon",
    "dashboard",
    "job",
    "tensorboard",
    "notebook",
    "pipeline",
    "repo",
    "status",
    "group",
    "build",
    "operation",
    "run",
    "metric",
    "log",
    "output",
    "bookmark",
    "version",
    "cluster",
    "node",
    "activity",
    "search",
    "token",
    "login",
    "logout",
    "register",
    "upload",
    "download",
    "archive",
    "restore",
    "plx",
    "ws",
    "event",
    "healthz",
    "readyz",
    "plugin",
)
_IRREGULAR_PLURALS = {"status": "statuses", "search": "searches", "activity": "activities"}
BLACKLIST: frozenset[str] = frozenset(
    {*_BLACKLIST_SINGULAR, *(_IRREGULAR_PLURALS.get(w, w + "s") for w in _BLACKLIST_SINGULAR)}
)


def validate_name(value: str, *, max_length: int = NAME_MAX) -> str:
    """Return the name, or raise ValueError with the reason (used by pydantic validators)."""
    if not value:
        raise ValueError("must not be empty")
    if len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters (got {len(value)})")
    if not SLUG_RE.fullmatch(value):
        raise ValueError(
            "must be a slug: letters, numbers, underscores or hyphens only (^[-a-zA-Z0-9_]+$)"
        )
    if value.lower() in BLACKLIST:
        raise ValueError(f"`{value}` is a reserved name")
    return value


def validate_project_name(value: str) -> str:
    return validate_name(value, max_length=PROJECT_NAME_MAX)


USERNAME_RE = re.compile(r"^[\w.@+-]+$")


def validate_username(value: str) -> str:
    if not value or len(value) > 150:
        raise ValueError("must be between 1 and 150 characters")
    if not USERNAME_RE.fullmatch(value) or "." in value:
        raise ValueError("may contain only letters, numbers and @/+/-/_ characters")
    if value.lower() in BLACKLIST:
        raise ValueError(f"`{value}` is a reserved name")
    return value
