"""Local runtime: each workload is a process group on this machine, adoptable after a restart.

Layout of ``state_dir/<key>/`` (the only thing that survives the server):

- ``spec.json``  what was started (kind, run, paths, ports), written before the process exists;
- ``pid.json``   pid, process start time (clock ticks since boot, from ``/proc/<pid>/stat``) and
  start wall time; written by the server right after the spawn *and* by the wrapper itself, so a
  crash between the two writes still leaves the workload adoptable;
- ``exit.json``  how the command ended, written atomically by the wrapper (or, when the wrapper
  died without writing it, by the runtime once it sees the process gone), never rewritten after;
- ``stop.json``  the stop request (and the SIGKILL escalation), so a stopped run reads ``stopped``
  and not ``failed`` even across a restart.

The process tree is ``wrapper (group + session leader) -> /bin/bash -c <command> -> ...``. The
wrapper (app/runtimes/local_wrapper.py) is a tiny stdlib-only Python program: it outlives the
command to record its exact wait status (a shell only sees ``128 + signal``, which a program
exiting 130 would fake), then clears what the command left in its group, as a container's end
would.

Liveness is judged from ``exit.json`` and ``/proc/<pid>/stat`` (alive = same start time and not a
zombie), never from ``kill(pid, 0)``: without an init, a wrapper that ended while the server was
down stays a zombie forever, and a pid may have been reused by an unrelated process.

Several servers may share ``state_dir`` (replicas on one PLX_DATA_DIR): any of them may clean up
a finished workload another one still has in memory. A directory that vanishes is a normal event:
its known end stays known, a process still alive is still observed through its pid, and anything
else is forgotten (``observe`` answers None: vanished). One workload whose files cannot be read or
written never hides the others: it is listed with its error (``unobservable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.logic.statuses import Status
from app.runtimes.base import (
    Capabilities,
    CapacityError,
    Runtime,
    RuntimeError_,
    WorkloadSpec,
    WorkloadState,
    cancel_and_wait,
    describe_error,
    unobservable,
)
from app.runtimes.isolation import RunUser, give_tree, run_uid_for

log = logging.getLogger(__name__)

SPEC_FILE = "spec.json"
PID_FILE = "pid.json"
EXIT_FILE = "exit.json"
STOP_FILE = "stop.json"

# Keys become directory names: no separators, no dot files, nothing a shell or path could misread.
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_DEAD_STATES = frozenset({"Z", "X", "x"})  # zombie / dead: the process no longer runs
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_STOP_POLL = 0.05  # seconds between checks while a stop waits for the group to go
# A claimed state dir without a pid after this long was never launched (the server died first).
_LAUNCH_TIMEOUT = 10.0
PLUGIN_KINDS = frozenset({"tensorboard", "notebook"})
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# The leader of each workload's group, run by path as ``python -I -S WRAPPER state_dir workdir
# command sweep_grace started_at uid gid``: isolated from the server's package (app/runtimes/
# local_wrapper.py says why and how).
WRAPPER = str(Path(__file__).with_name("local_wrapper.py"))


# --------------------------------------------------------------------------------------------
# /proc and files


@dataclass(frozen=True)
class ProcStat:
    """The few fields of ``/proc/<pid>/stat`` the runtime needs."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    start_ticks: int  # field 22: start time in clock ticks since boot, fixed for a process' life

    @property
    def is_dead(self) -> bool:
        return self.state in _DEAD_STATES


def read_proc_stat(pid: int) -> ProcStat | None:
    """None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode(errors="replace")
        # The command name may contain spaces and parentheses: fields start after the last ')'.
        fields = raw[raw.rindex(")") + 1 :].split()
        return ProcStat(pid, fields[0], int(fields[1]), int(fields[2]), int(fields[19]))
    except (OSError, ValueError, IndexError):
        return None


def is_alive(pid: int, start_ticks: int) -> bool:
    """Whether *this* process (not a later one with a reused pid) still runs."""
    stat = read_proc_stat(pid)
    return stat is not None and stat.start_ticks == start_ticks and not stat.is_dead


def group_members(pgid: int, start_ticks: int) -> list[int]:
    """Live processes of the workload's group (started no earlier than its leader)."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = read_proc_stat(int(name))
        if stat and stat.pgrp == pgid and not stat.is_dead and stat.start_ticks >= start_ticks:
            members.append(stat.pid)
    return members


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader (or a restart) sees the old file or the new one, never half.

    No fsync: these files describe processes of this machine, and a crash of the OS that could
    lose unsynced pages ends those processes too (a restarted server settles them as vanished).
    A kill of the server loses nothing: the page cache outlives the process. (An fsync here cost
    a disk flush per start, in the event loop.)"""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def base_env() -> dict[str, str]:
    """The environment every workload starts from; the spec's variables go over it."""
    return {
        # The server's interpreter first, so ``python`` in a run finds the same installation.
        "PATH": f"{Path(sys.executable).parent}:{_SYSTEM_PATH}",
        "HOME": os.environ.get("HOME") or str(Path.home()),
        "LANG": "C.UTF-8",
        # Output goes to a file: without this, a Python run's logs arrive in 8 KiB bursts.
        "PYTHONUNBUFFERED": "1",
    }


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None


# --------------------------------------------------------------------------------------------
# the runtime


@dataclass
class _Workload:
    key: str
    path: Path  # state_dir/<key>
    info: dict[str, Any] = field(default_factory=dict)  # spec.json
    pid: int | None = None
    start_ticks: int | None = None
    started_at: float | None = None
    final: WorkloadState | None = None  # set once: a finished workload never changes again
    reapable: bool = True  # False once waitpid says it is not our child
    error: str | None = None  # the last failure to observe it (logged once per new error)


class LocalRuntime(Runtime):
    """Workloads as process groups under ``state_dir``; see the module docstring."""

    name = "local"
    capabilities = Capabilities(local_processes=True, builds_images=False)

    def __init__(
        self,
        state_dir: Path | str,
        max_parallel: int | None = None,
        notify: Callable[[], None] | None = None,
        poll_interval: float = 0.5,
        *,
        sweep_grace: float = 5.0,
        run_user: RunUser | None = None,
    ) -> None:
        super().__init__(notify)
        # None: commands run as the server's user. Else each plx user's runs get a uid of their
        # own in this account's group (app/runtimes/isolation.py).
        self._run_user = run_user
        self._state_dir = Path(state_dir)
        self._max_parallel = max_parallel if max_parallel is not None else (os.cpu_count() or 1)
        self._poll_interval = poll_interval
        self._sweep_grace = sweep_grace  # how long the wrapper lets leftovers end on SIGTERM
        self._workloads: dict[str, _Workload] = {}
        self._watcher: asyncio.Task[None] | None = None

    @property
    def capacity(self) -> int | None:
        return self._max_parallel

    @property
    def state_dir(self) -> Path:
        return self._state_dir

    # -- lifecycle ---------------------------------------------------------------------------

    async def setup(self) -> None:
        """Adopt everything under ``state_dir`` and start watching for workloads that end."""
        self._state_dir.mkdir(parents=True, exist_ok=True)
        for workload in self._scan():
            self._safe_observe(workload)  # settles what ended while no runtime watched it
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="plx-local-runtime-watch")

    async def aclose(self) -> None:
        """Stop watching. Workloads keep running: the next server adopts them."""
        await cancel_and_wait(self._watcher)
        self._watcher = None

    # -- the interface -----------------------------------------------------------------------

    async def start(self, spec: WorkloadSpec) -> WorkloadState:
        if not _KEY_RE.match(spec.key):
            raise RuntimeError_(f"Invalid workload key {spec.key!r}.", retryable=False)
        existing = self._get(spec.key)
        state = None if existing is None else self._safe_observe(existing)
        if state is not None:
            return state
        if spec.command is None or not spec.command.strip():
            raise RuntimeError_(f"Workload {spec.key} has no command to run.", retryable=False)
        self._check_capacity(spec.key, spec.kind)
        # From here to the end there is no await: two start() calls for one key cannot interleave,
        # and mkdir() below is the claim against anything else sharing the state directory.
        workdir, log_path = self._prepare_paths(spec)
        owner = self._owner_of(spec)
        if owner is not None:
            self._hand_over(spec, workdir, log_path, owner)
        path = self._state_dir / spec.key
        try:
            path.mkdir()
        except FileExistsError:
            state = self._safe_observe(self._adopt(spec.key))
            if state is None:  # removed again right away (another replica cleaned it up)
                raise RuntimeError_(f"{spec.key} vanished while it was adopted.") from None
            return state
        try:
            workload = self._launch(spec, path, workdir, log_path, owner)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # nothing runs: a retry may start it afresh
            raise
        self._workloads[spec.key] = workload
        return self._safe_observe(workload) or self._state(workload, Status.RUNNING)

    async def stop(self, key: str, *, grace_seconds: float = 10.0) -> None:
        workload = self._get(key)
        state = None if workload is None else self._safe_observe(workload)
        if workload is None or state is None or state.done or workload.pid is None:
            return
        stop = read_json(workload.path / STOP_FILE) or {"requested_at": time.time()}
        stop["grace_seconds"] = grace_seconds
        self._record_stop(workload, stop)  # before the signal: its end reads "stopped"
        self._signal_group(workload, signal.SIGTERM)
        if not await self._wait_group_gone(workload, grace_seconds):
            stop["killed_at"] = time.time()
            self._record_stop(workload, stop)
            self._signal_group(workload, signal.SIGKILL)
            # SIGKILL cannot be refused; this only waits for the kernel to tear the group down.
            await self._wait_group_gone(workload, 5.0)
        self._safe_observe(workload)

    async def observe(self, key: str) -> WorkloadState | None:
        workload = self._get(key)
        return None if workload is None else self._safe_observe(workload)

    async def list_workloads(self) -> dict[str, WorkloadState]:
        states = {}
        for workload in self._scan():
            state = self._safe_observe(workload)
            if state is not None:
                states[workload.key] = state
        return states

    async def cleanup(self, key: str) -> None:
        """Forget a finished workload. A live one keeps its state: it must stay adoptable."""
        workload = self._get(key)
        if workload is None:
            return
        state = self._safe_observe(workload)
        if state is not None and not state.done:
            return
        shutil.rmtree(workload.path, ignore_errors=True)
        self._workloads.pop(key, None)

    # -- starting ----------------------------------------------------------------------------

    def _check_capacity(self, key: str, kind: str) -> None:
        # Tensorboards and notebooks are light and long-lived: they take no run slot.
        if kind in PLUGIN_KINDS:
            return
        # A workload that cannot be observed counts as busy: a slot is not known to be free.
        running = 0
        for w in self._scan():
            if w.info.get("kind") in PLUGIN_KINDS:
                continue
            state = self._safe_observe(w)
            running += state is not None and not state.done
        if running >= self._max_parallel:
            raise CapacityError(
                f"Cannot start {key}: {running} of {self._max_parallel} local slots are busy."
            )

    def _prepare_paths(self, spec: WorkloadSpec) -> tuple[Path, Path]:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        if not (spec.workdir or spec.outputs_path):
            raise RuntimeError_(f"Workload {spec.key} has no working directory.", retryable=False)
        workdir = Path(spec.workdir or spec.outputs_path)
        log_path = Path(spec.log_path) if spec.log_path else self._state_dir / f"{spec.key}.log"
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            if spec.outputs_path:
                Path(spec.outputs_path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeError_(f"Cannot prepare {spec.key}: {exc}", retryable=False) from exc
        return workdir, log_path

    def _owner_of(self, spec: WorkloadSpec) -> tuple[int, int] | None:
        """(uid, gid) the command runs as, or None for the server's own user."""
        if self._run_user is None:
            return None
        try:
            return run_uid_for(self._state_dir, spec.username), self._run_user.gid
        except OSError as exc:
            raise RuntimeError_(f"Cannot pick the OS user of {spec.key}: {exc}") from exc

    def _hand_over(
        self, spec: WorkloadSpec, workdir: Path, log_path: Path, owner: tuple[int, int]
    ) -> None:
        """Give the run its own directories (and only those): owned by its uid, mode 0700."""
        dirs = [workdir, log_path.parent]
        if spec.outputs_path:
            dirs.append(Path(spec.outputs_path))
        # plx's layout is runs/<kind>/<id>/{logs,outputs,code}: that directory is the run's.
        if log_path.parent.name == "logs":
            dirs.append(log_path.parent.parent)
        try:
            for directory in dirs:
                give_tree(directory, owner)
            log_path.touch(mode=0o600, exist_ok=True)
            os.chown(log_path, *owner)
            # Its parents stay the server's; others may only pass through them.
            for parent in {d.parent for d in dirs} - set(dirs):
                if parent != self._state_dir and parent.stat().st_uid == os.geteuid():
                    os.chmod(parent, parent.stat().st_mode | 0o111)
        except OSError as exc:
            raise RuntimeError_(f"Cannot prepare {spec.key}: {exc}", retryable=False) from exc

    def _launch(
        self,
        spec: WorkloadSpec,
        path: Path,
        workdir: Path,
        log_path: Path,
        owner: tuple[int, int] | None = None,
    ) -> _Workload:
        info = {
            "key": spec.key,
            "kind": spec.kind,
            "run_id": spec.run_id,
            "uuid": spec.uuid,
            "unique_name": spec.unique_name,
            "role": spec.role,
            "replica_index": spec.replica_index,
            "command": spec.command,
            "workdir": str(workdir),
            "log_path": str(log_path),
            "outputs_path": spec.outputs_path,
            "ports": list(spec.ports),
        }
        write_json(path / SPEC_FILE, info)
        started_at = time.time()
        argv = [sys.executable, "-I", "-S", WRAPPER, str(path), str(workdir)]
        argv += [spec.command or "", str(self._sweep_grace), repr(started_at)]
        argv += [str(owner[0]), str(owner[1])] if owner else ["-", "-"]
        env = {**base_env(), **spec.env}
        if owner is not None and self._run_user is not None:
            # The server's HOME is not the run's: it gets its working directory.
            env.update(HOME=str(workdir), USER=self._run_user.name, LOGNAME=self._run_user.name)
        append = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        try:
            pid = os.posix_spawn(
                sys.executable,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(log_path), append, 0o600),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                setsid=True,  # own session and process group: one killpg reaches every descendant
                # The server may ignore some (Python ignores SIGPIPE); a run starts from defaults.
                setsigdef=_DEFAULT_SIGNALS,
            )
        except OSError as exc:
            raise RuntimeError_(f"Cannot start {spec.key}: {exc}") from exc
        stat = read_proc_stat(pid)
        # The wrapper cannot end before we reap it, so its /proc entry is there to read.
        ticks = stat.start_ticks if stat else 0
        write_json(path / PID_FILE, {"pid": pid, "start_ticks": ticks, "started_at": started_at})
        return _Workload(spec.key, path, info, pid, ticks, started_at)

    # -- adoption ----------------------------------------------------------------------------

    def _get(self, key: str) -> _Workload | None:
        if key in self._workloads:
            return self._workloads[key]
        if _KEY_RE.match(key) and (self._state_dir / key).is_dir():
            return self._adopt(key)
        return None

    def _scan(self) -> list[_Workload]:
        try:
            entries = list(self._state_dir.iterdir())
        except FileNotFoundError:
            entries = []
        for entry in entries:
            known = entry.name in self._workloads
            if not known and entry.is_dir() and _KEY_RE.match(entry.name):
                self._adopt(entry.name)
        return list(self._workloads.values())

    def _adopt(self, key: str) -> _Workload:
        path = self._state_dir / key
        workload = _Workload(key, path, read_json(path / SPEC_FILE) or {})
        self._load_pid(workload)
        self._workloads[key] = workload
        return workload

    def _load_pid(self, workload: _Workload) -> None:
        data = read_json(workload.path / PID_FILE) or {}
        if isinstance(data.get("pid"), int) and isinstance(data.get("start_ticks"), int):
            workload.pid, workload.start_ticks = data["pid"], data["start_ticks"]
            workload.started_at = data.get("started_at")

    # -- observing ---------------------------------------------------------------------------

    def _safe_observe(self, workload: _Workload) -> WorkloadState | None:
        """`_observe`, with a failure turned into the workload's `unobservable` state: one
        workload in trouble must not hide the others (logged when its error changes)."""
        try:
            state = self._observe(workload)
        except Exception as exc:
            error = describe_error(exc)
            if error != workload.error:
                log.exception("local runtime: observing %s failed", workload.key)
            workload.error = error
            return unobservable(workload.key, exc)
        workload.error = None
        return state

    def _observe(self, workload: _Workload) -> WorkloadState | None:
        """The workload's state now; records the outcome once, the first time it is seen ended.
        None when it vanished (its directory removed, its process gone)."""
        if workload.pid is None:
            self._load_pid(workload)
        # Also after the end: the wrapper may outlive its exit record while it sweeps leftovers.
        self._reap(workload)
        if workload.final is not None:
            return workload.final
        if not workload.path.is_dir():
            return self._observe_vanished(workload)
        result = read_json(workload.path / EXIT_FILE)
        if result is None:
            if workload.pid is not None and workload.start_ticks is not None:
                if is_alive(workload.pid, workload.start_ticks):
                    return self._state(workload, Status.RUNNING)
            elif self._is_launching(workload):
                return self._state(workload, Status.SCHEDULED)
            # Gone. It may have written its result between our two reads.
            result = read_json(workload.path / EXIT_FILE) or self._settle(workload)
            if result is None:
                return self._observe_vanished(workload)
        workload.final = self._final_state(workload, result)
        self._notify_safely()
        return workload.final

    def _observe_vanished(self, workload: _Workload) -> WorkloadState | None:
        """Its directory is gone: removed by another server sharing `state_dir` once the run's
        end was recorded, or from outside. A process still alive is still running (and can be
        stopped through its pid); otherwise nothing is known here any more: forget it."""
        if workload.pid is not None and workload.start_ticks is not None:
            if is_alive(workload.pid, workload.start_ticks):
                return self._state(workload, Status.RUNNING)
        if self._workloads.get(workload.key) is workload:
            del self._workloads[workload.key]
            self._notify_safely()
        return None

    @staticmethod
    def _is_launching(workload: _Workload) -> bool:
        """Claimed moments ago and no pid yet: another process may be spawning it right now."""
        try:
            age = time.time() - workload.path.stat().st_mtime
        except OSError:
            return False
        return age < _LAUNCH_TIMEOUT

    def _settle(self, workload: _Workload) -> dict[str, Any] | None:
        """Persist that the process ended without a result, so the verdict survives restarts.
        None when its directory vanished meanwhile (another server cleaned it up)."""
        stop = read_json(workload.path / STOP_FILE) or {}
        # After our SIGKILL the end is known to the moment; otherwise it is when we noticed.
        finished_at = stop.get("killed_at") or time.time()
        result: dict[str, Any] = {"returncode": None, "finished_at": finished_at}
        result["recorded_by"] = "server"
        if workload.pid is None:
            result["error"] = "never started (the server stopped while launching it)"
        try:
            write_json(workload.path / EXIT_FILE, result)
        except FileNotFoundError:
            if not workload.path.is_dir():
                return None
            raise
        return result

    def _reap(self, workload: _Workload) -> None:
        """Collect the wrapper's exit if it is our child, so it does not linger as a zombie."""
        if not workload.reapable or workload.pid is None:
            return
        stat = read_proc_stat(workload.pid)
        # Only a process with our start time is ours; an unreaped zombie keeps its pid reserved.
        if stat is None or stat.start_ticks != workload.start_ticks:
            workload.reapable = False
            return
        try:
            reaped, _ = os.waitpid(workload.pid, os.WNOHANG)
        except ChildProcessError:
            reaped = workload.pid  # adopted from a previous server: its new parent reaps
        if reaped == workload.pid:
            workload.reapable = False

    def _state(self, workload: _Workload, status: str, **values: Any) -> WorkloadState:
        ports = workload.info.get("ports") or []
        details: dict[str, Any] = {
            "pid": workload.pid,
            "log_path": workload.info.get("log_path"),
            "state_dir": str(workload.path),
        }
        details.update(values.pop("details", {}))
        return WorkloadState(
            key=workload.key,
            status=status,  # type: ignore[arg-type]
            started_at=_timestamp(workload.started_at),
            details=details,
            url=f"http://127.0.0.1:{ports[0]}/" if ports else None,
            **values,
        )

    def _final_state(self, workload: _Workload, result: dict[str, Any]) -> WorkloadState:
        stop = read_json(workload.path / STOP_FILE)
        finished_at = result.get("finished_at")
        returncode = result.get("returncode")
        details: dict[str, Any] = {}
        exit_code: int | None = returncode
        if isinstance(returncode, int) and returncode < 0:
            details["signal"] = _signal_name(-returncode)
            exit_code = 128 - returncode  # as a shell or a container runtime reports it
        # A stop requested after the command had already ended does not rewrite its outcome.
        requested = stop.get("requested_at") if stop else None
        was_stopped = isinstance(requested, int | float) and (
            not isinstance(finished_at, int | float) or requested <= finished_at
        )
        if was_stopped:
            status, message = Status.STOPPED, self._stopped_message(result, stop or {})
        elif result.get("error"):
            status, message = Status.FAILED, f"Could not start the command: {result['error']}."
        elif returncode == 0:
            status, message = Status.SUCCEEDED, "Process exited with code 0."
        elif isinstance(returncode, int) and returncode > 0:
            status, message = Status.FAILED, f"Process exited with code {returncode}."
        elif isinstance(returncode, int):
            status, message = Status.FAILED, f"Process was killed by {details['signal']}."
        else:
            status = Status.FAILED
            message = (
                f"Process vanished without recording an exit status (pid {workload.pid}); "
                "it was killed from outside or the machine restarted."
            )
        return self._state(
            workload,
            status,
            message=message,
            exit_code=exit_code,
            finished_at=_timestamp(finished_at),
            details=details,
        )

    @staticmethod
    def _stopped_message(result: dict[str, Any], stop: dict[str, Any]) -> str:
        returncode = result.get("returncode")
        if isinstance(returncode, int) and returncode < 0:
            return f"Stopped on request ({_signal_name(-returncode)})."
        if isinstance(returncode, int):
            return f"Stopped on request; process exited with code {returncode}."
        if "killed_at" in stop:
            grace = stop.get("grace_seconds")
            return f"Stopped on request; killed with SIGKILL after a {grace} s grace period."
        return "Stopped on request."

    # -- stopping and watching ---------------------------------------------------------------

    @staticmethod
    def _record_stop(workload: _Workload, stop: dict[str, Any]) -> None:
        """Best effort: the record only makes the end read `stopped`; the signal must go out
        even when the directory is gone or the disk is full."""
        try:
            write_json(workload.path / STOP_FILE, stop)
        except OSError as exc:
            log.warning("local runtime: cannot record the stop of %s: %s", workload.key, exc)

    def _signal_group(self, workload: _Workload, signum: int) -> None:
        assert workload.pid is not None and workload.start_ticks is not None
        # Signal only while the group still has members of ours: a group id stays reserved as
        # long as one member lives, so the pid cannot meanwhile belong to someone else.
        if not group_members(workload.pid, workload.start_ticks):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(workload.pid, signum)

    async def _wait_group_gone(self, workload: _Workload, timeout: float) -> bool:
        assert workload.pid is not None and workload.start_ticks is not None
        deadline = time.monotonic() + timeout
        while True:
            self._reap(workload)
            if not group_members(workload.pid, workload.start_ticks):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_STOP_POLL)

    async def _watch(self) -> None:
        """Poll live workloads so the reconciler hears of an end without waiting for its resync."""
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                for workload in list(self._workloads.values()):
                    self._safe_observe(workload)  # notifies when it sees a workload end
            except Exception:  # keep watching, whatever happens
                log.exception("local runtime: watching workloads failed")

    def _notify_safely(self) -> None:
        try:
            self._notify()
        except Exception:
            log.exception("local runtime: notify callback failed")
