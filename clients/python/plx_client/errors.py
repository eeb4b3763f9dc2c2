"""Typed errors: each carries plx's `detail` (its message) and the HTTP status."""

from __future__ import annotations

from typing import Any

import httpx


class PlxError(Exception):
    """Base of every error this client raises."""

    status_code: int | None = None

    def __init__(self, detail: Any, *, status_code: int | None = None) -> None:
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        super().__init__(detail if isinstance(detail, str) else repr(detail))


class PlxConnectionError(PlxError):
    """plx could not be reached (refused, reset, timed out)."""


class BadRequest(PlxError):
    status_code = 400


class Unauthorized(PlxError):
    status_code = 401


class Forbidden(PlxError):
    status_code = 403


class NotFound(PlxError):
    status_code = 404


class Conflict(PlxError):
    status_code = 409


class PayloadTooLarge(PlxError):
    status_code = 413


class RateLimited(PlxError):
    status_code = 429


class ServerError(PlxError):
    """A 5xx answer (plx restarting, a proxy in front of it, or a bug)."""


_BY_STATUS: dict[int, type[PlxError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: BadRequest,
    429: RateLimited,
}


def error_for(response: httpx.Response) -> PlxError:
    """The typed error of a non-2xx answer, with plx's `detail` (or the body text)."""
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text or response.reason_phrase
    code = response.status_code
    cls = _BY_STATUS.get(code, ServerError if code >= 500 else PlxError)
    return cls(detail, status_code=code)


def is_retryable(exc: BaseException) -> bool:
    """Worth sending again: plx unreachable or restarting, or asking to slow down."""
    if isinstance(exc, PlxConnectionError | ServerError | RateLimited):
        return True
    return isinstance(exc, httpx.TransportError)
