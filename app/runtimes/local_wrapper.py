"""The leader of one local workload's process group (app/runtimes/local.py starts it).

Run by path as ``python -I -S local_wrapper.py state_dir workdir command sweep_grace started_at
uid gid`` (uid and gid ``-`` when the command runs as the server's user), with stdout and stderr
on the run's log file, as leader of a new session. It records its pid, runs ``/bin/bash -c
command`` in ``workdir`` as the run user, outlives it to record its exact wait status in
``exit.json`` (a shell only sees ``128 + signal``, which a program exiting 130 would fake), then
clears what the command left in its group, as a container's end would.

Standard library only, and run isolated (``-I -S``): it must not depend on the server's package
being importable, nor give the run's environment anything of it. It imports only built-in
modules before the command starts: this interpreter starts once per run, and its start-up is the
largest cost of a short run (``signal``, an enum, and ``subprocess`` would double it). ``json``
(about 60 ms more under load on a 2-core machine) is imported once the command runs.
"""

from __future__ import annotations

import _signal
import os
import sys
import time

TYPE_CHECKING = False  # `typing` costs start-up time: imported for the type checker only
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

_DEAD_STATES = (b"Z", b"X", b"x")  # zombie / dead: the process no longer runs
_STOP_POLL = 0.05
_STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)


def _stat(pid: int) -> tuple[bytes, int, int]:
    """State, process group and start time (clock ticks since boot) of a process."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return fields[0], int(fields[2]), int(fields[19])


def _write(state_dir: str, name: str, data: dict[str, Any]) -> None:
    """Write a state file atomically and durably: the run's outcome must survive a crash of the
    machine too."""
    import json

    path = os.path.join(state_dir, name)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _leftovers(ticks: int) -> list[int]:
    """The live processes of this group started since this wrapper (not reused pids)."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            state, pgrp, start = _stat(int(name))
        except (OSError, ValueError, IndexError):
            continue
        if pgrp == me and state not in _DEAD_STATES and start >= ticks:
            found.append(int(name))
    return found


def _keep_going(signum: int, frame: FrameType | None) -> None:
    """A stop signal reaches the whole group: the command ends, this leader records it."""


def _exec_command(workdir: str, command: str, env: dict[bytes, bytes], uid: str, gid: str) -> None:
    """In the forked child: become the run user and exec the command."""
    if uid != "-":
        # The command runs as the run user; this wrapper stays the server's user, so the run
        # can neither signal it nor forge the files it writes (exit.json).
        os.setgroups([])
        os.setgid(int(gid))
        os.setuid(int(uid))
        os.umask(0o077)
    os.chdir(workdir)
    os.execve("/bin/bash", ["/bin/bash", "-c", command], env)


def _spawn(
    workdir: str, command: str, env: dict[bytes, bytes], uid: str, gid: str
) -> tuple[int, str]:
    """Fork and exec the command (fork, not posix_spawn: it starts in `workdir`). The pipe
    closes on exec; when exec fails, the child writes why before exiting. (pid, error)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            _exec_command(workdir, command, env, uid, gid)
        except OSError as exc:
            os.write(write_end, str(exc).encode(errors="replace"))
        os._exit(127)
    os.close(write_end)
    error = b""
    while chunk := os.read(read_end, 4096):
        error += chunk
    os.close(read_end)
    return pid, error.decode(errors="replace")


def _own_environment() -> dict[bytes, bytes]:
    """The environment this process was started with, unchanged (Python coerces a C locale by
    setting LC_CTYPE in its own `os.environ`)."""
    with open("/proc/self/environ", "rb") as f:
        items = f.read().split(b"\0")
    env = {}
    for item in items:
        name, sep, value = item.partition(b"=")
        if sep:
            env[name] = value
    return env


def _sweep(ticks: int, grace: float) -> None:
    """Like a container whose main process ended: what the command left in its group goes too."""
    if not _leftovers(ticks):
        return
    os.killpg(os.getpid(), _signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _leftovers(ticks) and time.monotonic() < deadline:
        time.sleep(_STOP_POLL)
    if _leftovers(ticks):
        os.killpg(os.getpid(), _signal.SIGKILL)


def main(argv: list[str]) -> int:
    state_dir, workdir, command, sweep_grace, started_at, uid, gid = argv[:7]
    # Catch (not ignore) the stop signals: the leader must outlive the command to record how it
    # ended, and a caught signal reverts to its default in the exec'd command, an ignored one not.
    for sig in _STOP_SIGNALS:
        _signal.signal(sig, _keep_going)
    ticks = _stat(os.getpid())[2]
    child, error = _spawn(workdir, command, _own_environment(), uid, gid)
    # The server writes pid.json too, right after the spawn: this copy covers its crash.
    pid_record = {"pid": os.getpid(), "start_ticks": ticks, "started_at": float(started_at)}
    _write(state_dir, "pid.json", pid_record)
    if error:
        os.waitpid(child, 0)
        sys.stderr.write(f"plx: could not start the command: {error}\n")
        failed = {"returncode": 127, "finished_at": time.time(), "error": error}
        _write(state_dir, "exit.json", failed)
        return 127
    _, status = os.waitpid(child, 0)
    returncode = os.waitstatus_to_exitcode(status)
    _write(state_dir, "exit.json", {"returncode": returncode, "finished_at": time.time()})
    _sweep(ticks, float(sweep_grace))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
