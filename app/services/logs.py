"""Run logs on disk: streamed or tailed reads, bounded appends, per-user quota, masked secrets.

A run's log is `runs/<kind>/<id>/logs/*.txt` (services.runs.log_path); the secrets the server
gave a run are remembered by their prefixes in `runs/<kind>/<id>/log-secrets` (logic.masking)
and masked on every read (the local runtime's files are written by the run itself) and before
every append (posted lines are stored masked).
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import BadRequest, NotFound, PayloadTooLarge
from app.kinds import EXPERIMENT
from app.logic.masking import Masker, safe_cut, secret_prefix
from app.models import ExperimentJob, Project
from app.services.runs import RUN_KINDS, RunAccess, log_path, run_dir

READ_CHUNK = 64 * 1024
MAX_LINE = 1024 * 1024  # a longer line is cut (where no token is split) before masking
SECRETS_FILE = "log-secrets"
USAGE_TTL = 60.0  # seconds a user's measured log usage is reused (appends are added to it)


# -- secrets ---------------------------------------------------------------------------------


def remember_secrets(settings: Settings, kind: str, run_id: int, secrets: list[str]) -> None:
    """Record what to mask in this run's logs (prefixes only: they cannot be used as tokens)."""
    prefixes = {p for p in (secret_prefix(s) for s in secrets if s) if p}
    if not prefixes:
        return
    path = run_dir(settings, kind, run_id) / SECRETS_FILE
    known = _read_prefixes(path)
    if prefixes <= known:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SECRETS_FILE}.{os.getpid()}")
    tmp.write_text("".join(f"{p}\n" for p in sorted(known | prefixes)))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _read_prefixes(path: Path) -> set[str]:
    try:
        return {line.strip() for line in path.read_text().splitlines() if line.strip()}
    except FileNotFoundError:
        return set()


def masker_for(settings: Settings, kind: str, run_id: int) -> Masker:
    return Masker(_read_prefixes(run_dir(settings, kind, run_id) / SECRETS_FILE))


# -- reads -----------------------------------------------------------------------------------


def _tail_offset(f, size: int, lines: int) -> int:
    """Byte offset where the last `lines` lines of a file of `size` bytes start."""
    pos, seen = size, 0
    if size and (f.seek(size - 1), f.read(1))[1] == b"\n":
        pos -= 1  # the final newline ends the last line; it starts none
    while pos > 0:
        step = min(READ_CHUNK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        index = len(block)
        while True:
            index = block.rfind(b"\n", 0, index)
            if index < 0:
                break
            seen += 1
            if seen == lines:
                return pos + index + 1
    return 0


def _masked_chunks(path: Path, masker: Masker, tail: int | None) -> Iterator[bytes]:
    """The log as it is now (later writes are not waited for), masked, in bounded pieces."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = _tail_offset(f, size, tail) if tail else 0
        f.seek(offset)
        remaining, carry = size - offset, ""
        while remaining > 0:
            data = f.read(min(READ_CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            carry += decoder.decode(data, final=remaining <= 0)
            # Mask whole lines only; hold the unfinished last line back (cut if too long).
            end = carry.rfind("\n") + 1
            if not end and len(carry) >= MAX_LINE:
                end = safe_cut(carry, MAX_LINE)
            if end:
                yield masker.mask(carry[:end]).encode()
                carry = carry[end:]
        carry += decoder.decode(b"", final=True)
        if carry:
            yield masker.mask(carry).encode()


def open_log(
    settings: Settings, kind: str, run_id: int, replica: str | None = None, *, tail: int | None
) -> Iterator[bytes]:
    """A run's log for a streamed answer (404 when there is none); `tail`: its last lines only."""
    path = log_path(settings, kind, run_id, replica)
    if not path.is_file():
        raise NotFound("Log file not found.")
    return _masked_chunks(path, masker_for(settings, kind, run_id), tail)


def masked_lines(settings: Settings, kind: str, run_id: int, lines: list[str]) -> list[str]:
    """Lines of a live stream, masked as a read is."""
    masker = masker_for(settings, kind, run_id)
    return [masker.mask(line) for line in lines]


# -- appends -----------------------------------------------------------------------------------


@dataclass
class LogUsage:
    """Per-user bytes of logs, measured on disk at most every USAGE_TTL seconds per user; the
    appends of this replica are added in between (other replicas' within the period are not)."""

    measured: dict[int, tuple[float, int]] = field(default_factory=dict)

    async def bytes_of(self, session: AsyncSession, settings: Settings, user_id: int) -> int:
        now = time.monotonic()
        cached = self.measured.get(user_id)
        if cached is not None and now - cached[0] < USAGE_TTL:
            return cached[1]
        runs = await _runs_of_user(session, user_id)
        total = await anyio.to_thread.run_sync(_bytes_on_disk, settings, runs)
        self.measured[user_id] = (now, total)
        return total

    def add(self, user_id: int, size: int) -> None:
        if user_id in self.measured:
            at, total = self.measured[user_id]
            self.measured[user_id] = (at, total + size)


async def _runs_of_user(session: AsyncSession, user_id: int) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for kind, model in RUN_KINDS.items():
        ids = await session.scalars(
            select(model.id)
            .join(Project, Project.id == model.project_id)
            .where(Project.user_id == user_id)
        )
        out.extend((kind, run_id) for run_id in ids)
    return out


def _bytes_on_disk(settings: Settings, runs: list[tuple[str, int]]) -> int:
    total = 0
    for kind, run_id in runs:
        try:
            with os.scandir(run_dir(settings, kind, run_id) / "logs") as entries:
                total += sum(e.stat().st_size for e in entries if e.is_file())
        except FileNotFoundError:
            continue
    return total


def log_text(body: object) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, list) and all(isinstance(x, str) for x in body):
        return "\n".join(body)
    raise BadRequest("body: expected a string or a list of strings")


async def append_log(
    session: AsyncSession,
    settings: Settings,
    usage: LogUsage,
    *,
    kind: str,
    run_id: int,
    owner_id: int,
    body: object,
) -> None:
    """Append posted lines, masked, within the per-request, per-run and per-user limits; over
    one, a 413 naming it and nothing written."""
    text = log_text(body)
    if not text.endswith("\n"):
        text += "\n"
    data = masker_for(settings, kind, run_id).mask(text).encode()
    if len(data) > settings.max_log_append_bytes:
        raise PayloadTooLarge(
            f"body: {len(data)} bytes of log lines, more than the limit of "
            f"{settings.max_log_append_bytes} per request (PLX_MAX_LOG_APPEND_BYTES)."
        )
    path = log_path(settings, kind, run_id)
    current = path.stat().st_size if path.is_file() else 0
    if current + len(data) > settings.max_log_bytes_per_run:
        raise PayloadTooLarge(
            f"The run's log would exceed its limit of {settings.max_log_bytes_per_run} bytes "
            "(PLX_MAX_LOG_BYTES_PER_RUN)."
        )
    quota = settings.user_log_quota_bytes
    if quota:
        used = await usage.bytes_of(session, settings, owner_id)
        if used + len(data) > quota:
            raise PayloadTooLarge(
                f"The project owner's logs would exceed their quota of {quota} bytes "
                f"({used} used; PLX_USER_LOG_QUOTA_BYTES)."
            )
    await anyio.to_thread.run_sync(_append, path, data)
    usage.add(owner_id, len(data))


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(data)


def read_run_log(settings: Settings, ra: RunAccess, *, tail: int | None) -> Iterator[bytes]:
    return open_log(settings, ra.kind, ra.run.id, tail=tail)


async def append_run_log(
    session: AsyncSession, settings: Settings, usage: LogUsage, ra: RunAccess, body: object
) -> None:
    """Append to a run's log, counted against its project owner's log quota."""
    owner_id = ra.access.project.user_id
    await append_log(
        session, settings, usage, kind=ra.kind, run_id=ra.run.id, owner_id=owner_id, body=body
    )


def read_replica_log(
    settings: Settings, job: ExperimentJob, *, tail: int | None
) -> Iterator[bytes]:
    """The log of one replica of an experiment (the master's is the experiment's)."""
    replica = f"{job.role}-{job.replica_index}"
    return open_log(settings, EXPERIMENT.kind, job.experiment_id, replica, tail=tail)


@dataclass
class LogFollower:
    """A run's log as it grows (a live stream): the complete lines written since the last read,
    masked; a partial last line waits for its newline."""

    settings: Settings
    kind: str
    run_id: int
    offset: int = 0

    def new_lines(self) -> list[str]:
        path = log_path(self.settings, self.kind, self.run_id)
        try:
            with path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        lines = data[: end + 1].decode(errors="replace").splitlines()
        return masked_lines(self.settings, self.kind, self.run_id, lines) if lines else lines
