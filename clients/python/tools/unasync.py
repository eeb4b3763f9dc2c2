"""Generate plx_client/_sync_client.py from plx_client/_async_client.py (one source of truth).

Run `python tools/unasync.py` after editing the async client; tests/test_unasync.py fails when
the committed sync client is not what this produces.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "plx_client"
SOURCE, TARGET = ROOT / "_async_client.py", ROOT / "_sync_client.py"
RULES = [
    (r"^import asyncio\n", ""),
    (r"\basync def ", "def "),
    (r"\basync for ", "for "),
    (r"\basync with ", "with "),
    (r"\bawait ", ""),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bhttpx\.AsyncBaseTransport\b", "httpx.BaseTransport"),
    (r"\bhttpx\.AsyncClient\b", "httpx.Client"),
    (r"\bAsyncClient\b", "Client"),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\bwebsockets\.asyncio\.client\b", "websockets.sync.client"),
    (
        r'\A""".*"""',
        '"""The synchronous plx API client, generated from _async_client.py (tools/unasync.py)."""',
    ),
]


def render() -> str:
    text = SOURCE.read_text()
    for pattern, repl in RULES:
        text = re.sub(pattern, repl, text, flags=re.M)
    return text


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}", file=sys.stderr)
