"""Password hashing and API tokens."""

from __future__ import annotations

import hmac
import secrets

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


def new_token_key() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def token_selector(key: str) -> str:
    return key[:SELECTOR_LENGTH]


def keys_match(stored: str, presented: str) -> bool:
    return hmac.compare_digest(stored.encode(), presented.encode())


# A hash of a random password: used to spend the same time when the user does not exist.
DUMMY_HASH = hash_password(secrets.token_hex(16))
