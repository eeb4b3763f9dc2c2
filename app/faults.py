"""Fault injection for tests: named crash points that end the process at once.

`PLX_CRASH_POINTS="after_run_queued,after_workload_started:3"` arms points by name; `name:N` fires
on the N-th hit in this process (default the first). A fired point calls `os._exit(137)` -- no
cleanup, no flush, no finally blocks: what `kill -9` does to a replica. Unarmed points cost one
dict lookup.
"""

from __future__ import annotations

import os
import threading

ENV = "PLX_CRASH_POINTS"
EXIT_CODE = 137
_lock = threading.Lock()
_hits: dict[str, int] = {}
_parsed: tuple[str, dict[str, int]] = ("", {})


def armed_points(raw: str | None = None) -> dict[str, int]:
    """name -> the hit that fires, from `PLX_CRASH_POINTS` (cached per value)."""
    global _parsed
    raw = os.environ.get(ENV, "") if raw is None else raw
    if raw == _parsed[0]:
        return _parsed[1]
    points: dict[str, int] = {}
    for item in raw.split(","):
        name, _, nth = item.strip().partition(":")
        if name:
            points[name] = int(nth) if nth.strip().isdigit() and int(nth) > 0 else 1
    _parsed = (raw, points)
    return points


def crash_point(name: str) -> None:
    """Exit the process here when the point is armed and this is its N-th hit."""
    points = armed_points()
    if name not in points:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        hit = _hits[name]
    if hit == points[name]:
        os._exit(EXIT_CODE)
