"""One domain error tree and its HTTP handlers.

    PlxError (500)
     ├── BadRequest (400)          invalid input, duplicate names, illegal actions
     ├── Unauthorized (401)        missing / malformed / unknown credentials (+ WWW-Authenticate)
     ├── PermissionDenied (403)    authenticated but not allowed
     ├── NotFound (404)            missing object, or another user's private project
     └── PayloadTooLarge (413)

Services raise these (the reconciler calls services too), never HTTPException.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.logic.errors import SpecError


class PlxError(Exception):
    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class BadRequest(PlxError):
    status_code = 400


class Unauthorized(PlxError):
    status_code = 401

    def __init__(self, message: str = "Authentication credentials were not provided.") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "token"})


class PermissionDenied(PlxError):
    status_code = 403

    def __init__(self, message: str = "You do not have permission to perform this action.") -> None:
        super().__init__(message)


class NotFound(PlxError):
    status_code = 404

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message)


class PayloadTooLarge(PlxError):
    status_code = 413


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def _reason(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"malformed JSON ({error.get('ctx', {}).get('error', 'cannot be parsed')})"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def validation_detail(errors: list[dict[str, Any]]) -> tuple[str, dict[str, list[str]]]:
    """A readable `field: reason; ...` sentence and the DRF-like `{field: [reasons]}` map."""
    by_field: dict[str, list[str]] = {}
    for error in errors:
        by_field.setdefault(_field_path(tuple(error.get("loc", ()))), []).append(_reason(error))
    sentence = "; ".join(f"{field}: {', '.join(reasons)}" for field, reasons in by_field.items())
    return sentence, by_field


async def _plx_error(_request: Request, exc: PlxError) -> JSONResponse:
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=exc.headers)


async def _spec_error(_request: Request, exc: SpecError) -> JSONResponse:
    errors = {path or "content": [reason] for path, reason in exc.problems}
    return JSONResponse({"detail": exc.message, "errors": errors}, status_code=400)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    sentence, by_field = validation_detail(list(exc.errors()))
    return JSONResponse({"detail": sentence, "errors": by_field}, status_code=400)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = "Not found." if exc.status_code == 404 else exc.detail
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


# SQLSTATEs a client may simply retry: serialization failure, deadlock, admin shutdown,
# cannot connect now.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})


def is_transient_db_error(exc: DBAPIError) -> bool:
    """A lost connection or a retryable conflict, as opposed to a bug or bad SQL."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    return getattr(orig, "sqlstate", None) in TRANSIENT_SQLSTATES or (
        getattr(orig, "pgcode", None) in TRANSIENT_SQLSTATES
    )


async def _db_error(_request: Request, exc: DBAPIError) -> JSONResponse:
    if not is_transient_db_error(exc):
        raise exc  # a real bug: the server error middleware logs it and answers 500
    return JSONResponse(
        {"detail": "The database is briefly unavailable or the change conflicted; retry."},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def add_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DBAPIError, _db_error)  # type: ignore[arg-type]
    app.add_exception_handler(PlxError, _plx_error)  # type: ignore[arg-type]
    app.add_exception_handler(SpecError, _spec_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
