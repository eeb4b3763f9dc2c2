"""What the `GET .../logs` routes of experiments, replicas, jobs and builds share: the `tail`
parameter and a streamed plain-text answer (a log is never loaded whole into memory)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import StreamingResponse

MAX_TAIL = 1_000_000
TailQuery = Annotated[
    int | None, Query(ge=1, le=MAX_TAIL, description="only the last N lines of the log")
]
# For the route decorators: the answer is text, streamed.
LOG_ANSWER: dict[str, Any] = {
    "response_class": StreamingResponse,
    "responses": {200: {"content": {"text/plain": {}}, "description": "The log (secrets masked)"}},
}


def log_response(chunks: Iterator[bytes]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")
