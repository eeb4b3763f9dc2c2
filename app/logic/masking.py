"""Masking of secrets in run logs (pure).

Two nets, so that a run's token never shows in a log a public project lets anyone read:
- known values: every secret the server gave the run is remembered by its first
  `PREFIX_LENGTH` characters (not enough to use it), and any run of token characters starting
  with one is masked, wherever it stands;
- names: the value after a secret's variable name (`PLX_TOKEN=...`, `'JUPYTER_TOKEN': '...'`),
  an `Authorization: token ...` header and a `?token=` URL parameter, for secrets not remembered.

Masking works on whole lines (no secret spans a newline); `safe_cut` tells where a long line may
be cut without splitting a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "********"
PREFIX_LENGTH = 12
SECRET_NAMES = (
    "PLX_TOKEN",
    "POLYAXON_SECRET_USER_TOKEN",
    "POLYAXON_SECRET_INTERNAL_TOKEN",
    "JUPYTER_TOKEN",
    "PLX_ADMIN_PASSWORD",
    "PLX_DATABASE_URL",
)
_TOKEN_CHAR = r"[A-Za-z0-9_\-]"
_NAMED = re.compile(
    r"(?P<key>\b(?:" + "|".join(SECRET_NAMES) + r")\b['\"]?\s*[=:]\s*['\"]?)[^\s'\",;]+",
    re.IGNORECASE,
)
_HEADER = re.compile(
    r"(?P<key>\bauthorization['\"]?\s*[=:]\s*['\"]?(?:token|bearer)\s+)[^\s'\"]+", re.IGNORECASE
)
_URL_PARAM = re.compile(r"(?P<key>[?&](?:token|access_token)=)[^\s&#'\"]+", re.IGNORECASE)
_NAMED_PATTERNS = (
    (_NAMED, tuple(name.lower() for name in SECRET_NAMES)),
    (_HEADER, ("authorization",)),
    (_URL_PARAM, ("token=",)),
)
_NON_TOKEN = re.compile(r"[^A-Za-z0-9_\-]")
_LAST_NON_TOKEN = re.compile(r"[^A-Za-z0-9_\-][A-Za-z0-9_\-]*\Z")


def secret_prefix(secret: str) -> str | None:
    """What is remembered of a secret: its head, too short to be used; None for a short one."""
    secret = secret.strip()
    if len(secret) < PREFIX_LENGTH + 4 or _NON_TOKEN.search(secret[:PREFIX_LENGTH]):
        return None
    return secret[:PREFIX_LENGTH]


class Masker:
    """Masks the known secrets (by their prefixes) and named secrets in text."""

    def __init__(self, prefixes: Iterable[str] = ()) -> None:
        known = sorted({p for p in prefixes if p}, key=len, reverse=True)
        self._known = (
            re.compile("(?:" + "|".join(re.escape(p) for p in known) + ")" + _TOKEN_CHAR + "*")
            if known
            else None
        )

    def mask(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(MASK, text)
        lowered = text.lower()
        # The named patterns are slow (case-insensitive, at every position): run them only on
        # the lines that hold one of their words.
        for pattern, words in _NAMED_PATTERNS:
            if any(word in lowered for word in words):
                text = "".join(
                    pattern.sub(_keep_key, line) if any(w in line.lower() for w in words) else line
                    for line in text.splitlines(keepends=True)
                )
        return text


def _keep_key(match: re.Match[str]) -> str:
    return match.group("key") + MASK


def safe_cut(text: str, limit: int) -> int:
    """Where to cut `text` (no newline in its first `limit` characters) so that no token is split:
    after its last non-token character, else at `limit` (a token run that long is no token)."""
    found = _LAST_NON_TOKEN.search(text, 0, limit)
    return found.start() + 1 if found else limit
