"""The connection bounds that aiohttp's `run_app` does not give, for every listener of
the server (web/lifecycle.py runs them): a real cap on open connections, a short idle
timeout and a deadline with a minimum rate for every request body, on top of
aiohttp's own header limits.

The cap counts open connections (not the listen backlog). A connection beyond it
evicts the oldest connection that has no request in progress (idle keep-alive,
or a slow client still sending its headers), else the slowest one still sending a
request body; when every connection is busy with a request the newcomer is closed
instead. A connection that has not completed a request within `idle_timeout_s` of
connecting, or of its last reply, is closed by aiohttp's keep-alive timer (slow-loris
clients included).

Bodies are watched by one sweep (`BodyWatchdog`), not per request, so the hot path
pays nothing: once `grace_s` has passed, a body still arriving must have come at
`min_rate` bytes per second on average, and it must be complete within `timeout_s`.
A body that falls behind fails with `SlowBody` in the handler reading it (HTTP 408,
then the connection closes); a connection that still holds on is aborted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger("tsa.web")

MAX_REQUEST_LINE = 8190  # bytes of the request line and of one header line (431/400 beyond)
MAX_HEADERS = 100  # header fields per request
LINGER_S = 2.0


@dataclass(frozen=True)
class BodyLimits:
    """How slowly a request body may arrive ([server] body_*)."""

    grace_s: float = 10.0  # before the minimum rate applies
    min_rate: int = 16384  # bytes per second, averaged from the start of the body
    timeout_s: float = 900.0  # the whole body, whatever its rate


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    max_connections: int  # open connections at once; also the listen backlog
    idle_timeout_s: float
    body: BodyLimits = BodyLimits()


class SlowBody(Exception):
    """A request body arrived too slowly; the message is for the client (HTTP 408)."""


#: How often the watchdog looks at bodies in progress; also the slack on its deadlines.
SWEEP_INTERVAL_S = 1.0
#: After failing a body, how long a connection may take to reply before it is aborted.
ABORT_AFTER_S = 5.0


class BodyWatchdog:
    """Fails request bodies that arrive too slowly or take too long (module doc)."""

    def __init__(
        self,
        server: web.Server,
        limits: BodyLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._limits = limits
        self._clock = clock
        # id(request) -> (when the sweep first saw its body in progress, when failed)
        self._watched: dict[int, tuple[float, float | None]] = {}
        self.failed = 0

    def started(self, request: BaseRequest) -> float | None:
        """When the body of ``request`` was first seen in progress (None: not yet)."""
        seen = self._watched.get(id(request))
        return None if seen is None else seen[0]

    def sweep(self) -> None:
        now = self._clock()
        watched: dict[int, tuple[float, float | None]] = {}
        for handler in list(self._server.connections):
            request = _receiving(handler)
            if request is None:
                continue
            since, failed_at = self._watched.get(id(request), (now, None))
            if failed_at is not None:
                if now - failed_at >= ABORT_AFTER_S and handler.transport is not None:
                    handler.transport.abort()
                    continue
            else:
                problem = self._problem(request.content.total_bytes, now - since)
                if problem is not None:
                    failed_at = now
                    self._fail(handler, request, problem)
            watched[id(request)] = (since, failed_at)
        self._watched = watched

    def _problem(self, received: int, elapsed: float) -> str | None:
        limits = self._limits
        if elapsed > limits.timeout_s:
            return f"request body not complete within {limits.timeout_s:g} s"
        owed = limits.min_rate * (elapsed - limits.grace_s)
        if received < owed:
            return f"request body slower than {limits.min_rate} bytes/s: send it faster"
        return None

    def _fail(self, handler: RequestHandler, request: BaseRequest, problem: str) -> None:
        self.failed += 1
        request.content.set_exception(SlowBody(problem))
        # Close once the 408 is written, without aiohttp's lingering read of the rest
        # (which would meet SlowBody again); force_close() would drop the 408 too.
        handler._lingering_time = 0.0
        handler.close()
        # The 408 gets its request line (web/observe.py); this says why, when debugging.
        log.debug("request body from %s failed: %s", request.remote, problem)

    async def run(self, interval_s: float = SWEEP_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.sweep()


def _receiving(handler: RequestHandler) -> BaseRequest | None:
    """The request whose body ``handler`` is still receiving, if any."""
    request: BaseRequest | None = getattr(handler, "_current_request", None)
    if request is None or not _open(handler) or request.content.is_eof():
        return None
    return request


class ConnectionCap:
    """Keeps the server's open connections at or under `limit` (see the module doc)."""

    def __init__(self, server: web.Server, limit: int, watchdog: BodyWatchdog | None = None):
        self._server = server
        self._limit = limit
        self._watchdog = watchdog
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
        others = [c for c in connections if c is not handler]
        victim = next((c for c in others if _idle(c)), None) or self._slowest_body(others)
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

    def _slowest_body(self, handlers: list[RequestHandler]) -> RequestHandler | None:
        """The connection whose request body arrives at the lowest rate so far."""
        now, slowest, lowest = time.monotonic(), None, float("inf")
        for handler in handlers:
            request = _receiving(handler)
            if request is None:
                continue
            since = self._watchdog.started(request) if self._watchdog else None
            rate = request.content.total_bytes / max(1.0, now - since if since else 1.0)
            if rate < lowest:
                slowest, lowest = handler, rate
        return slowest


def _open(handler: RequestHandler) -> bool:
    transport = handler.transport
    return transport is not None and not transport.is_closing()


def _idle(handler: RequestHandler) -> bool:
    # aiohttp keeps the request being handled here; None between requests and while
    # the headers of the next one are still arriving.
    return getattr(handler, "_current_request", None) is None
