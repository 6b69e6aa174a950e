"""The HTTP liveness/readiness endpoint (``[health]``), for container health checks.

Served on the process's own event loop, so a loop that hangs stops
answering, which is what a liveness probe is for:

- ``GET /livez``: 200 while the loop turns (``stall_after``), else 503;
- ``GET /readyz``: 200 while the process is ready (the arbiter: connected,
  first beat closed, not holding beats; a plugin process: hosting), else 503
  with the reason;
- ``GET /status``: both, with details, as JSON (always 200).

HTTP/1.0-style: one request per connection, ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import TracebackType
from typing import Any, Self

from venom.daemon.service.state import ServiceState
from venom.schemas import ConfigError

log = logging.getLogger("venom.health")

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    """``async with HealthServer(state, host, port) as server: server.url``."""

    def __init__(self, state: ServiceState, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.state = state
        self.host = host
        self.port = port
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve the health endpoint on {self.host}:{self.port}: {exc}",
                key="health.port",
            ) from exc
        bound = self._server.sockets[0].getsockname()[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{bound}"
        log.info("health endpoint at %s (/livez, /readyz, /status)", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def answer(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        """Status code and JSON body for one request."""
        path = path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, {"error": f"{method} not allowed"}
        snap = self.state.snapshot()
        if path == "/livez":
            return (200 if snap["alive"] else 503), {"alive": snap["alive"]}
        if path == "/readyz":
            body = {"ready": snap["ready"], "reason": snap["reason"]}
            return (200 if snap["ready"] else 503), body
        if path in ("/status", "/"):
            return 200, snap
        return 404, {"error": f"no such path {path!r}: /livez, /readyz, /status"}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: not needed
            parts = request.decode("latin-1").split()
            if len(parts) < 2:
                return
            code, body = self.answer(parts[0], parts[1])
            data = b"" if parts[0] == "HEAD" else json.dumps(body).encode() + b"\n"
            head = (
                f"HTTP/1.1 {code} {_REASONS.get(code, '')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n"
                "Cache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + data)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeError):
            pass
        finally:
            writer.close()
