"""Resolved tokens kept for a few seconds, so a request does not pay a lookup round trip.

Entries are keyed by the token's digest (no clear token is kept), and never outlive the
token's own expiry. The cache also keeps the installation's digest key once read.

Authentication is the one query every request makes. A token resolves to the same principal
until it is deleted (logout, run finished, user deleted) or its user changes (superuser granted or
revoked, activated). This process forgets the affected entries when such a change commits, and
again right away so a request of the same process never sees a stale answer after the change;
another replica may accept a revoked token for at most `ttl` seconds (`PLX_AUTH_CACHE_SECONDS`,
0 turns the cache off).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.services.principals import Principal

SESSION_KEY = "principal_cache"
_PENDING_KEY = "principal_cache_forget"


class PrincipalCache:
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        # The token digest key (server_secrets): read once, it never changes.
        self.token_secret: str | None = None

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, principal = entry
        if expires < time.monotonic():
            self._entries.pop(key, None)
            return None
        return principal

    def put(self, key: str, principal: Principal, *, lifetime: float | None = None) -> None:
        """Keep `principal` for `ttl` seconds, or `lifetime` (the token's) when that is less."""
        ttl = self.ttl if lifetime is None else min(self.ttl, lifetime)
        if ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + ttl, principal)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(
        self, *, user_id: int | None = None, run: tuple[str, set[int]] | None = None
    ) -> None:
        """Drop every entry of `user_id`, or of the run tokens of `run` = (kind, ids)."""
        for key, (_, principal) in list(self._entries.items()):
            if user_id is not None and principal.user.id == user_id:
                self._entries.pop(key, None)
            elif run is not None and principal.run_kind == run[0] and principal.run_id in run[1]:
                self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


def forget_principals(
    session: object, *, user_id: int | None = None, run: tuple[str, set[int]] | None = None
) -> None:
    """Forget cached principals now and once more when `session` commits (a request of this
    process that resolved the token in between would otherwise re-cache the old answer)."""
    info = getattr(session, "info", {})
    cache: PrincipalCache | None = info.get(SESSION_KEY)
    if cache is None:
        return
    cache.forget(user_id=user_id, run=run)
    info.setdefault(_PENDING_KEY, []).append((user_id, run))


def register_session_events(session_class: type[Session]) -> None:
    """Forget at commit what `forget_principals` recorded, for the sessions of `session_class`
    (the app's, app/db.py), not every Session of the process; a rollback drops the record."""
    if not event.contains(session_class, "after_commit", _forget_after_commit):
        event.listen(session_class, "after_commit", _forget_after_commit)
        event.listen(session_class, "after_rollback", _drop_pending)


def _forget_after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, None)
    cache: PrincipalCache | None = session.info.get(SESSION_KEY)
    if pending and cache is not None:
        for user_id, run in pending:
            cache.forget(user_id=user_id, run=run)


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
