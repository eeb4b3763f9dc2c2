"""Where tensorboards and notebooks are served through plx, and the signed credentials a browser
uses there (app/routers/plugin_proxy.py). Pure: no I/O, the clock and the key are parameters.

Paths follow v0 (polyaxon-v0.md 7.4, `api/plugins/urls.py`): `/notebook/{user}/{project}/`,
`/tensorboard/{user}/{project}/` and, for an experiment's or a group's tensorboard,
`/tensorboard/{user}/{project}/experiments/{id}/` and `.../groups/{id}/`. The workload is
started with the same base path (jupyter `base_url`, tensorboard `--path_prefix`), so the proxy
forwards paths unchanged and every link the workload writes stays under its prefix.

A browser cannot send `Authorization`. An authenticated API answer carries the plugin's URL with
a short-lived *ticket* (`?plx_ticket=`); the proxy trades a valid ticket for a *cookie* scoped to
the plugin's path. Both are `<user id>.<expiry>.<HMAC-SHA256>`, the MAC over the purpose and the
path prefix too, so neither works for another plugin nor as the other.
"""

from __future__ import annotations

import hashlib
import hmac

TICKET_PARAM = "plx_ticket"
TICKET_SECONDS = 300


def plugin_prefix(
    kind: str,
    username: str,
    project: str,
    *,
    experiment_id: int | None = None,
    group_id: int | None = None,
) -> str:
    """The path (with its trailing slash) a plugin is served under."""
    base = f"/{kind}/{username}/{project}/"
    if experiment_id is not None:
        return f"{base}experiments/{experiment_id}/"
    if group_id is not None:
        return f"{base}groups/{group_id}/"
    return base


def cookie_name(prefix: str) -> str:
    """One cookie per plugin: a project tensorboard's cookie path also covers its experiments'."""
    return "plx_plugin_" + hashlib.sha256(prefix.encode()).hexdigest()[:12]


def _mac(key: bytes, purpose: str, prefix: str, body: str) -> str:
    message = f"{purpose}\n{prefix}\n{body}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, purpose: str, prefix: str, user_id: int, expires: int) -> str:
    body = f"{user_id}.{expires}"
    return f"{body}.{_mac(key, purpose, prefix, body)}"


def verify(key: bytes, purpose: str, prefix: str, value: str | None, now: float) -> int | None:
    """The user id a valid, unexpired value was issued to; None otherwise."""
    parts = (value or "").split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts[:2]):
        return None
    body = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(parts[2], _mac(key, purpose, prefix, body)):
        return None
    if int(parts[1]) < now:
        return None
    return int(parts[0])


def bad_path(path: str) -> bool:
    """`..` segments (decoded or not) would leave the plugin's prefix on the workload."""
    lowered = path.lower().replace("%2e", ".")
    return any(segment == ".." for segment in lowered.replace("%2f", "/").split("/"))
