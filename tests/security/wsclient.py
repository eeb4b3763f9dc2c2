"""A WebSocket handshake driven over raw ASGI (httpx's ASGI transport speaks HTTP only)."""

from __future__ import annotations

import asyncio
from typing import Any


class Socket:
    """One client connection to `app`: `opened()` is the handshake's answer, `close()` ends it."""

    def __init__(self, app: Any, path: str, headers: dict[str, str], client: str) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": (client, 50000),
            "server": ("testserver", 80),
            "subprotocols": [],
        }
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(app(scope, self.inbox.get, self.outbox.put))

    async def opened(self) -> dict[str, Any]:
        """The first message the app sent: websocket.accept, or websocket.close (refused)."""
        return await asyncio.wait_for(self.outbox.get(), 10)

    async def close(self) -> None:
        """The client goes away (the log stream only notices on its next send: cancel it)."""
        await self.inbox.put({"type": "websocket.disconnect", "code": 1000})
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def handshake(app: Any, path: str, headers: dict[str, str], client: str = "127.0.0.1"):
    socket = Socket(app, path, headers, client)
    first = await socket.opened()
    await socket.close()
    return first
