"""Password hashing and API tokens."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

SELECTOR_LENGTH = 12
TOKEN_BYTES = 20  # 40 hex characters, like DRF tokens


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


def token_selector(key: str) -> str:
    return key[:SELECTOR_LENGTH]


def keys_match(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored.encode(), presented.encode())


# A hash of a random password: used to spend the same time when the user does not exist.
DUMMY_HASH = hash_password(secrets.token_hex(16))
