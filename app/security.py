"""Password hashing and API tokens.

Tokens are 160 random bits shown to their holder once; the database keeps only their digest,
HMAC-SHA256 under a per-installation key (`server_secrets`, made by migration 0005). What keeps
a token from a reader of the database is that 160 random bits cannot be recovered from a
one-way digest; the key only ties the digests to this installation. It lives in the database
so that every API replica agrees on it with nothing more to configure, and the migration that
hashed the existing tokens could do so in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

TOKEN_BYTES = 20  # 40 hex characters, like DRF tokens
TOKEN_SECRET_NAME = "token_hmac"  # server_secrets.name of the digest key


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Argon2 spends ~100 ms of CPU per hash (it releases the GIL): done on the event loop, a burst of
# logins would stall every other request. A few worker threads hash; further logins queue.
_hash_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plx-hash")


def configure_hash_pool(workers: int) -> None:
    """Hash with `workers` threads (PLX_PASSWORD_HASH_WORKERS); called when the app is made."""
    global _hash_pool
    if workers != _hash_pool._max_workers:
        old, _hash_pool = _hash_pool, ThreadPoolExecutor(workers, thread_name_prefix="plx-hash")
        old.shutdown(wait=False)


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, hash_password, password)


async def verify_password_async(password_hash: str, password: str) -> bool:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hash_pool, verify_password, password_hash, password)


def new_token_key() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def new_secret() -> str:
    return secrets.token_hex(32)


def token_digest(secret: str, key: str) -> str:
    """What the database stores (and looks up) for the token `key`."""
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def digests_match(stored: str, computed: str) -> bool:
    return hmac.compare_digest(stored.encode(), computed.encode())


# A hash of a random password: used to spend the same time when the user does not exist.
DUMMY_HASH = hash_password(secrets.token_hex(16))
