"""Report metrics, params and statuses to plx from a training script.

Inside a plx run (PLX_API_URL, PLX_TOKEN, PLX_USERNAME, PLX_PROJECT, PLX_EXPERIMENT_ID set by the
runtime) `init()` needs no argument, and `log_metrics` works without `init()` at all. Outside one,
`init(project="owner/name")` creates a tracking-only experiment and reports to it.

`log_metrics` only appends to an in-memory buffer (about a microsecond); a background thread sends
the buffer as one request per batch. A batch that fails (plx restarting, a network error) is sent
again with backoff under `?dedupe=true`, so plx stores each point exactly once: every point carries
its own `created_at`, unique and increasing within the run. A full buffer blocks `log_metrics` for
`block_seconds`, then spills points to a file on disk that the sender reads back; both are logged
as warnings. `finish()` and process exit flush. Nothing in here raises into the training loop:
failures are logged on the `plx_client.tracking` logger.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from plx_client._sync_client import Client
from plx_client.errors import PlxError, is_retryable

log = logging.getLogger("plx_client.tracking")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_time_ns = time.time_ns


def _stamp(micros: int) -> str:
    # Exact to the microsecond (a float of seconds is not): the stamp is the point's identity.
    return (_EPOCH + timedelta(microseconds=micros)).isoformat()


def _number(value: Any) -> float | int | None:
    """A finite number plx accepts, from ints, floats, numpy and torch scalars; else None."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        item = getattr(value, "item", None)
        try:
            value = item() if callable(item) else float(value)
        except (TypeError, ValueError):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Run:
    """One experiment this process reports to. Use `init()` rather than building one."""

    def __init__(
        self,
        client: Client,
        project: str,
        experiment_id: int,
        *,
        managed: bool,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        max_buffer: int = 1_000_000,
        block_seconds: float = 1.0,
        spill_dir: str | os.PathLike[str] | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self.client = client
        self.project = project
        self.experiment_id = experiment_id
        # A run started by plx gets its final status from its exit code; a tracking-only
        # experiment gets it from finish().
        self.managed = managed
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._block_seconds = block_seconds
        self._max_backoff = max_backoff
        spill_root = Path(spill_dir or os.environ.get("PLX_SPILL_DIR") or _default_spill_dir())
        owner, _, name = project.rpartition("/")
        self.spill_path = spill_root / f"plx-spill.{owner}.{name}.{experiment_id}.jsonl"
        self._queue: deque[tuple[int, dict[str, Any]]] = deque()
        self._last_us = 0
        self._logged = 0  # points accepted by log_metrics
        self._handled = 0  # points the sender has stored, dropped (logged) or spilled
        self._spilling = False
        self._spill_lock = threading.Lock()
        self._progress = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight: list[tuple[int, dict[str, Any]]] = []
        self._http_timeout = 10.0
        self._closed = False
        self._finished = False
        self._warned: set[str] = set()
        self.stored = 0  # points plx acknowledged
        self.dropped = 0  # points plx refused (each refusal logged with its reason)
        self._http = Client(
            client.url, client.token, username=owner or None, timeout=self._http_timeout
        )
        self._thread = threading.Thread(target=self._loop, name="plx-metrics", daemon=True)
        self._thread.start()

    # -- the training loop's side -------------------------------------------------------------

    def log_metrics(self, step: int | None = None, **values: Any) -> None:
        """Queue one point; `step` is stored as the metric `step`. Never raises."""
        try:
            micros = _time_ns() // 1000
            if micros <= self._last_us:
                micros = self._last_us + 1
            self._last_us = micros
            if step is not None:
                values["step"] = step
            queue = self._queue
            if self._spilling or len(queue) >= self._max_buffer:
                self._full((micros, values))
            else:
                queue.append((micros, values))
            self._logged += 1
            if len(queue) >= self._batch_size and not self._wake.is_set():
                self._wake.set()
        except Exception:
            self._warn_once("log_metrics", "plx tracking: log_metrics failed", exc_info=True)

    def log_params(self, **values: Any) -> None:
        """Merge `values` into the experiment's declarations (its hyperparameters)."""
        self._call(
            "log_params",
            lambda: self._http.update_experiment(
                self.project, self.experiment_id, declarations=values, merge=True
            ),
        )

    def log_status(
        self, status: str, message: str | None = None, traceback: str | None = None
    ) -> None:
        self._call(
            "log_status",
            lambda: self._http.post_experiment_status(
                self.project, self.experiment_id, status, message=message, traceback=traceback
            ),
        )

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait until every point logged so far is stored (or dropped with a logged reason)."""
        target = self._logged
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while self._handled < target and self._thread.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._progress.wait(0.1 if left is None else min(left, 0.1))
        return self._handled >= target

    def finish(self, status: str = "succeeded", *, timeout: float = 120.0) -> None:
        """Flush, stop the sender and (tracking-only experiments) report the final status.

        Points still unsent after `timeout` seconds are saved in `spill_path` (logged)."""
        if self._finished:
            return
        self._finished = True
        try:
            self.flush(timeout)
            self._closed = True
            self._stop.set()
            self._wake.set()
            self._thread.join(self._http_timeout + 5)
            # Points still queued, and a batch still in flight if the sender is stuck in a
            # request (resent under dedupe, so never stored twice).
            left = list(self._inflight) if self._thread.is_alive() else []
            left += list(self._queue)
            self._queue.clear()
            if left:
                self._spill_points(left)
                log.warning(
                    "plx tracking: %d metric points could not be sent; saved in %s "
                    "(send them with `python -m plx_client resend %s`)",
                    len(left),
                    self.spill_path,
                    self.spill_path,
                )
            if not self.managed:
                self.log_status(status)
        except Exception:
            log.warning("plx tracking: finish failed", exc_info=True)
        finally:
            self._http.close()
            if _current is self:
                _set_current(None)

    # -- slow paths ---------------------------------------------------------------------------

    def _full(self, point: tuple[int, dict[str, Any]]) -> None:
        if not self._spilling:
            self._warn_once(
                "full",
                "plx tracking: metrics buffer full (%d points; plx slow or unreachable): "
                "log_metrics blocks up to %.1f s, then spills to %s",
                self._max_buffer,
                self._block_seconds,
                self.spill_path,
            )
            self._wake.set()
            deadline = time.monotonic() + self._block_seconds
            while len(self._queue) >= self._max_buffer and time.monotonic() < deadline:
                time.sleep(0.002)
            if len(self._queue) < self._max_buffer:
                self._queue.append(point)
                return
            self._spilling = True
            log.warning("plx tracking: spilling metric points to %s", self.spill_path)
        self._spill_points([point])

    def _spill_points(self, points: list[tuple[int, dict[str, Any]]]) -> None:
        with self._spill_lock:
            self.spill_path.parent.mkdir(parents=True, exist_ok=True)
            with self.spill_path.open("a") as f:
                for micros, values in points:
                    f.write(json.dumps({"values": values, "created_at": _stamp(micros)}) + "\n")

    def _call(self, what: str, fn: Any, tries: int = 5) -> None:
        delay = 0.2
        for attempt in range(tries):
            try:
                fn()
                return
            except PlxError as exc:
                if not is_retryable(exc) or attempt == tries - 1:
                    log.error("plx tracking: %s failed: %s", what, exc.detail)
                    return
            except Exception:
                log.error("plx tracking: %s failed", what, exc_info=True)
                return
            time.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    def _warn_once(self, key: str, msg: str, *args: Any, exc_info: bool = False) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args, exc_info=exc_info)

    # -- the sender thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            try:
                self._wake.wait(self._flush_interval)
                self._wake.clear()
                closing = self._closed
                self._drain()
                if closing:
                    return
            except Exception:
                # Never die silently with points queued: log and go on.
                log.error("plx tracking: the metrics sender failed", exc_info=True)
                time.sleep(0.5)

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            n = min(len(queue), self._batch_size)
            batch = [queue.popleft() for _ in range(n)]
            self._inflight = batch
            if not self._deliver([self._point(m, v) for m, v in batch], n):
                # Given up (closing): keep the points for finish() to save.
                queue.extendleft(reversed(batch))
                self._inflight = []
                return
            self._inflight = []
            self._advance(n)
        if self._spilling:
            self._drain_spill()

    def _drain_spill(self) -> None:
        with self._spill_lock:
            sending = self.spill_path.with_suffix(".sending")
            if self.spill_path.exists():
                self.spill_path.replace(sending)
        if sending.exists():
            lines = sending.read_text().splitlines()
            points = [json.loads(line) for line in lines if line.strip()]
            for start in range(0, len(points), self._batch_size):
                chunk = points[start : start + self._batch_size]
                if not self._deliver(chunk, len(chunk)):
                    # Closing: back into the spill file for `resend`.
                    with self._spill_lock, self.spill_path.open("a") as f:
                        f.writelines(json.dumps(p) + "\n" for p in points[start:])
                    sending.unlink()
                    return
                self._advance(len(chunk))
            sending.unlink()
        with self._spill_lock:
            if not self.spill_path.exists():
                self._spilling = False

    def _advance(self, n: int) -> None:
        with self._progress:
            self._handled += n
            self._progress.notify_all()

    def _point(self, micros: int, values: dict[str, Any]) -> dict[str, Any]:
        clean = {}
        for key, value in values.items():
            number = _number(value)
            if number is None:
                self._warn_once(
                    f"value:{key}",
                    "plx tracking: metric %r: %r is not a finite number; not sent",
                    key,
                    value,
                )
            else:
                clean[key] = number
        return {"values": clean, "created_at": _stamp(micros)}

    def _deliver(self, points: list[dict[str, Any]], n: int) -> bool:
        """Send one batch until plx answers; False when closing and plx is still unreachable."""
        body = [p for p in points if p["values"]]
        if not body:
            return True
        delay, failing_since = 0.1, None
        while True:
            try:
                self._http.post_metrics(self.project, self.experiment_id, body, dedupe=True)
                if failing_since is not None:
                    log.warning(
                        "plx tracking: plx reachable again after %.1f s; no point lost",
                        time.monotonic() - failing_since,
                    )
                self.stored += len(body)
                return True
            except PlxError as exc:
                if not is_retryable(exc):
                    self.dropped += len(body)
                    log.error(
                        "plx tracking: plx refused %d metric points (HTTP %s): %s",
                        len(body),
                        exc.status_code,
                        exc.detail,
                    )
                    return True
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning(
                        "plx tracking: sending metrics failed (%s); retrying with backoff", exc
                    )
            # While closing, finish() has already waited its flush timeout for the sender.
            if self._closed or self._stop.wait(delay):
                return False
            delay = min(delay * 2, self._max_backoff)


def _default_spill_dir() -> Path:
    return Path(os.environ.get("PLX_OUTPUTS_PATH") or tempfile.gettempdir()) / "plx-client"


# -- the module-level API ---------------------------------------------------------------------

_current: Run | None = None
_lock = threading.Lock()
_failed = False


def _set_current(run: Run | None) -> None:
    global _current
    _current = run


def init(
    project: str | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    params: dict[str, Any] | None = None,
    url: str | None = None,
    token: str | None = None,
    **options: Any,
) -> Run:
    """Start reporting. Inside a plx run: to that run (`project` may be omitted). Otherwise
    `project` ("owner/name" or "name") gets a new tracking-only experiment, marked running.
    `options` tune the sender: batch_size, flush_interval, max_buffer, block_seconds,
    spill_dir, max_backoff."""
    with _lock:
        if _current is not None:
            _current.finish()
        env_exp = os.environ.get("PLX_EXPERIMENT_ID")
        env_project = _env_project()
        client = Client(url, token)
        if env_exp and (project is None or project in (env_project, env_project.split("/")[1])):
            run = Run(client, env_project, int(env_exp), managed=True, **options)
            if params:
                run.log_params(**params)
        elif project is None:
            raise PlxError(
                "not inside a plx run (PLX_EXPERIMENT_ID is not set): pass init(project=...)"
            )
        else:
            if "/" not in project:
                project = f"{client.whoami().username}/{project}"
            exp = client.create_experiment(
                project, name=name, description=description, tags=tags, declarations=params
            )
            run = Run(client, project, exp.id, managed=False, **options)
            run.log_status("running")
        client.close()
        _set_current(run)
        _install_hooks()
        return run


def _env_project() -> str:
    project = os.environ.get("PLX_PROJECT", "")
    if "/" in project or "." in project:
        return project.replace(".", "/", 1)
    return f"{os.environ.get('PLX_USERNAME', '')}/{project}"


def current() -> Run | None:
    """The run `init()` started (or the plx run this process is, once something was logged)."""
    return _current


def _run() -> Run | None:
    run = _current
    if run is None and os.environ.get("PLX_EXPERIMENT_ID"):
        try:
            run = init()
        except Exception:
            log.error("plx tracking: init failed", exc_info=True)
    return run


def log_metrics(step: int | None = None, **values: Any) -> None:
    """Report one point of metrics (numbers); `step` is stored as the metric `step`."""
    run = _current or _run()
    if run is not None:
        run.log_metrics(step, **values)
    elif "no-run" not in _no_run_warned:
        _no_run_warned.add("no-run")
        log.warning("plx tracking: not initialised (call init(project=...)); metrics not sent")


_no_run_warned: set[str] = set()


def log_params(**values: Any) -> None:
    run = _current or _run()
    if run is not None:
        run.log_params(**values)


def log_status(status: str, message: str | None = None, traceback: str | None = None) -> None:
    run = _current or _run()
    if run is not None:
        run.log_status(status, message, traceback)


def finish(status: str = "succeeded", *, timeout: float = 120.0) -> None:
    run = _current
    if run is not None:
        run.finish(status, timeout=timeout)


_hooks_installed = False


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(*args: Any) -> None:
        global _failed
        _failed = True
        previous(*args)

    sys.excepthook = excepthook
    atexit.register(_at_exit)


def _at_exit() -> None:
    run = _current
    if run is not None:
        run.finish("failed" if _failed else "succeeded")
