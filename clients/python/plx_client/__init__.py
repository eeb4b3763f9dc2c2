"""plx_client: the Python client of plx (`Client`, `AsyncClient`) and its tracking library
(`plx_client.tracking`)."""

from plx_client import errors, models
from plx_client._async_client import AsyncClient
from plx_client._sync_client import Client
from plx_client.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PlxConnectionError,
    PlxError,
    Unauthorized,
)

__version__ = "0.1.0"
__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Forbidden",
    "NotFound",
    "PlxConnectionError",
    "PlxError",
    "Unauthorized",
    "errors",
    "models",
]
