"""Separating local runs from the server: the OS user runs execute as, and the file modes that
keep the server's own state (database, repos, runtime state) out of their reach.

A local run is arbitrary code. Executing as the server's user, it could read `plx.db` and every
credential in it. When the server is root it runs them as `PLX_LOCAL_RUN_USER` (default
`plx-run`, created at start when missing): an unprivileged account that owns only the run's own
directory. When it is not root nothing can be separated, and the server is for one trusted user.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_RUN_USER = "plx-run"
NO_RUN_USER = "none"  # PLX_LOCAL_RUN_USER=none: runs execute as the server's user
SINGLE_USER_MESSAGE = (
    "This server runs local runs as its own OS user (it is not root, or "
    "PLX_LOCAL_RUN_USER=none), so a run could read every other user's data and credentials: "
    "it serves one trusted user. Create superusers only, run the server as root so runs "
    "execute as PLX_LOCAL_RUN_USER, or set PLX_LOCAL_TRUST_USERS=true if all users trust "
    "each other."
)
# Traversable, not listable: runs reach their own directory below, nothing else.
TRAVERSE_ONLY = 0o711
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class RunUserError(Exception):
    """PLX_LOCAL_RUN_USER cannot be used (missing and not creatable, root, not reachable)."""


@dataclass(frozen=True)
class RunUser:
    name: str
    uid: int
    gid: int


def run_user_name(setting: str) -> str | None:
    """The account runs execute as, or None when they execute as the server's own user."""
    value = setting.strip()
    if value.lower() == NO_RUN_USER:
        return None
    if os.geteuid() != 0:
        if value:
            raise RunUserError(
                f"PLX_LOCAL_RUN_USER={value} needs a server running as root (to switch users); "
                f"unset it or set it to `{NO_RUN_USER}`."
            )
        return None
    return value or DEFAULT_RUN_USER


def runs_share_server_user(settings: Any) -> bool:
    """Whether local runs execute as the server's OS user (nothing separates them)."""
    if settings.runtime != "local":
        return False
    try:
        return run_user_name(settings.local_run_user) is None
    except RunUserError:
        return True


def ensure_run_user(name: str) -> RunUser:
    """The account `name`, created (a system user without a login shell) when missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create_user(name)
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise RunUserError(f"PLX_LOCAL_RUN_USER={name} is root or in group root: pick another.")
    if entry.pw_uid == os.geteuid():
        raise RunUserError(f"PLX_LOCAL_RUN_USER={name} is the server's own user.")
    return RunUser(name, entry.pw_uid, entry.pw_gid)


def _create_user(name: str) -> pwd.struct_passwd:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    command = [useradd, "--system", "--user-group", "--no-create-home"]
    command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise RunUserError(f"Cannot create PLX_LOCAL_RUN_USER={name}: {exc}") from exc
    try:
        entry = pwd.getpwnam(name)  # a concurrent start may have created it first
    except KeyError:
        raise RunUserError(
            f"Cannot create PLX_LOCAL_RUN_USER={name}: {done.stderr.strip() or done.returncode}; "
            "create it yourself or set PLX_LOCAL_RUN_USER to an existing unprivileged user."
        ) from None
    log.info("created the OS user %s (uid %d) for local runs", name, entry.pw_uid)
    return entry


def check_reachable(user: RunUser, data_dir: Path) -> None:
    """Fail when the run user cannot reach the data directory (every run would fail); warn when
    it cannot execute the server's interpreter (a run's `python` would fail)."""
    blocked = first_blocked(user, data_dir.resolve())
    if blocked is not None:
        raise RunUserError(
            f"PLX_LOCAL_RUN_USER={user.name} cannot reach PLX_DATA_DIR={data_dir}: {blocked} is "
            "not searchable by other users (chmod o+x it, or move the data directory)."
        )
    blocked = first_blocked(user, Path(sys.executable).resolve())
    if blocked is not None:
        log.warning(
            "runs execute as %s, which cannot execute the server's interpreter %s (%s is not "
            "searchable by other users): `python` in a run will fail",
            user.name,
            sys.executable,
            blocked,
        )


def first_blocked(user: RunUser, path: Path) -> Path | None:
    for parent in [*reversed(path.parents), path]:
        try:
            st = parent.stat()
        except OSError:
            return None  # made later, by the server, with the right modes
        if not parent.is_dir():
            continue
        if st.st_uid == user.uid:
            allowed = st.st_mode & 0o100
        elif st.st_gid == user.gid:
            allowed = st.st_mode & 0o010
        else:
            allowed = st.st_mode & 0o001
        if not allowed:
            return parent
    return None


def secure_data_dir(data_dir: Path, *, runs_separated: bool) -> None:
    """Modes of the server's state: the data directory is traversable (runs reach their own
    directories under `runs/`) only when runs are separated, else private; the database, its
    journal files and the repos and runtime state are the server's alone."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, TRAVERSE_ONLY if runs_separated else PRIVATE_DIR)
    runs = data_dir / "runs"
    runs.mkdir(exist_ok=True)
    os.chmod(runs, TRAVERSE_ONLY if runs_separated else PRIVATE_DIR)
    if runs_separated:
        _close_old_run_dirs(runs)
    for name in ("repos", "runtime"):
        (data_dir / name).mkdir(exist_ok=True)
        os.chmod(data_dir / name, PRIVATE_DIR)
    secure_server_files(data_dir)


# Runs of different plx users must not share a uid: a process may read the memory, environment
# (PLX_TOKEN) and files of any other process of its uid. So each plx user's runs get a uid of
# their own, allocated once from this range (far above login accounts and the usual subuid
# ranges) and kept in the runtime's state directory; no passwd entry is needed.
RUN_UID_BASE = 1_500_000_000
_UID_FILE = "run-uids.json"
_uids: dict[tuple[str, str], int] = {}


def run_uid_for(state_dir: Path, username: str) -> int:
    """The uid of `username`'s local runs, allocated on first use (under a file lock, so two
    processes sharing the state directory agree)."""
    cached = _uids.get((str(state_dir), username))
    if cached is not None:
        return cached
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / _UID_FILE
    with open(state_dir / f"{_UID_FILE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            known = json.loads(path.read_text())
        except FileNotFoundError:
            known = {}
        if username not in known:
            known[username] = RUN_UID_BASE + len(known)
            tmp = path.with_name(f"{_UID_FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known))
            os.replace(tmp, path)
    uid = int(known[username])
    _uids[(str(state_dir), username)] = uid
    return uid


def give_tree(path: Path, owner: tuple[int, int]) -> None:
    """Make `path` (and what is inside, when it is not already theirs) owned by `owner`, 0700."""
    st = path.lstat()
    if (st.st_uid, st.st_gid) != owner:
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), *owner)
        os.lchown(path, *owner)
    os.chmod(path, PRIVATE_DIR)


def local_run_user(settings: Any) -> RunUser | None:
    """The account local runs execute as (created when missing), or None when they execute as
    the server's user. Raises RunUserError with what to change."""
    name = run_user_name(settings.local_run_user)
    return ensure_run_user(name) if name else None


def prepare_server_state(settings: Any) -> RunUser | None:
    """Start-up: check the run user and set the modes of the server's own files. Returns the
    run user (None: runs execute as the server's user, logged as a warning)."""
    data_dir = Path(settings.data_dir)
    if settings.runtime != "local":
        # Pods may share the data directory (outputs claim): only the server's own files.
        secure_server_files(data_dir)
        return None
    user = local_run_user(settings)
    secure_data_dir(data_dir, runs_separated=user is not None)
    if user is not None:
        check_reachable(user, data_dir)
    if user is None:
        log.warning("local runs execute as the server's OS user: %s", SINGLE_USER_MESSAGE)
    else:
        log.info("local runs execute as OS user %s (a uid per plx user)", user.name)
    return user


def _close_old_run_dirs(runs: Path) -> None:
    """Run directories made before runs were separated were open to all: runs/<kind>/ becomes
    passable only, each run's directory private (a new start hands it to its run's uid)."""
    for kind in runs.iterdir():
        if not kind.is_dir():
            continue
        os.chmod(kind, TRAVERSE_ONLY)
        for run in kind.iterdir():
            if run.is_dir() and run.stat().st_mode & 0o077:
                os.chmod(run, PRIVATE_DIR)


def secure_server_files(data_dir: Path) -> None:
    if not data_dir.is_dir():
        return
    for path in data_dir.iterdir():
        if path.is_file() and path.name.startswith("plx.db"):
            os.chmod(path, PRIVATE_FILE)
    if (data_dir / "repos").is_dir():
        os.chmod(data_dir / "repos", PRIVATE_DIR)
