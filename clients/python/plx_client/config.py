"""Where the client finds plx: arguments, then PLX_API_URL/PLX_TOKEN, then the config file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    """`$PLX_CONFIG`, else `~/.plx/client.json` (written by `Client.login`)."""
    found = os.environ.get("PLX_CONFIG")
    return Path(found) if found else Path.home() / ".plx" / "client.json"


def read_config() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_config(url: str, token: str, username: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # The token is a credential: the file is created readable by its owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token, "username": username}, f)
    return path


def resolve(url: str | None, token: str | None) -> tuple[str, str | None]:
    """The API address and token to use, each from the first place that has it."""
    saved = read_config()
    url = url or os.environ.get("PLX_API_URL") or saved.get("url") or DEFAULT_URL
    if token is None:
        token = os.environ.get("PLX_TOKEN") or saved.get("token")
    return url.rstrip("/"), token
