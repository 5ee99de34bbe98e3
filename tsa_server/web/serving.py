"""Run the aiohttp application on one TCP listener, with the connection bounds that
aiohttp's `run_app` does not give: a real cap on open connections and a short idle
timeout, on top of aiohttp's own header limits.

The cap counts open connections (not the listen backlog). A connection beyond it
evicts the oldest connection that has no request in progress (idle keep-alive,
or a slow client still sending its headers); when every connection is busy the
newcomer is closed instead. A connection that has not completed a request within
`idle_timeout_s` of connecting, or of its last reply, is closed by aiohttp's keep-alive
timer (slow-loris clients included).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("tsa.web")

MAX_REQUEST_LINE = 8190  # bytes of the request line and of one header line (431/400 beyond)
MAX_HEADERS = 100  # header fields per request


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    max_connections: int  # open connections at once; also the listen backlog
    idle_timeout_s: float


class ConnectionCap:
    """Keeps the server's open connections at or under `limit` (see the module doc)."""

    def __init__(self, server: web.Server, limit: int):
        self._server = server
        self._limit = limit
        self._made = server.connection_made
        self.evicted = 0
        self.refused = 0
        self._warned_at = -1e9
        server.connection_made = self._connection_made  # type: ignore[method-assign]

    def _connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        # Closed connections stay listed until their handler task ends: count live ones.
        connections = [c for c in self._server.connections if _open(c)]
        if len(connections) <= self._limit:
            return
        victim = next((c for c in connections if c is not handler and _idle(c)), None)
        if victim is None:
            victim = handler
            self.refused += 1
        else:
            self.evicted += 1
        victim.force_close()
        now = time.monotonic()
        if now - self._warned_at > 10.0:
            self._warned_at = now
            log.warning(
                "connection cap %d reached: %d idle connections evicted, %d refused so far",
                self._limit,
                self.evicted,
                self.refused,
            )


def _open(handler: RequestHandler) -> bool:
    transport = handler.transport
    return transport is not None and not transport.is_closing()


def _idle(handler: RequestHandler) -> bool:
    # aiohttp keeps the request being handled here; None between requests and while
    # the headers of the next one are still arriving.
    return getattr(handler, "_current_request", None) is None


async def _serve(app: web.Application, listener: Listener) -> None:
    runner = web.AppRunner(
        app,
        handle_signals=True,
        access_log=None,
        keepalive_timeout=listener.idle_timeout_s,
        max_line_size=MAX_REQUEST_LINE,
        max_field_size=MAX_REQUEST_LINE,
        max_headers=MAX_HEADERS,
    )
    await runner.setup()
    try:
        ConnectionCap(runner.server, listener.max_connections)
        site = web.TCPSite(runner, listener.host, listener.port, backlog=listener.max_connections)
        await site.start()
        while True:
            await asyncio.sleep(3600)
    finally:
        await runner.cleanup()


def run(app: web.Application, listener: Listener) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (the app's cleanup runs)."""
    try:
        asyncio.run(_serve(app, listener))
    except (web.GracefulExit, KeyboardInterrupt):
        pass
