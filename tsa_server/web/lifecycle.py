"""Run the application until it is told to stop: its listeners (plain HTTP, HTTPS, the
metrics listener), the connection bounds of `web/serving.py`, and the process signals.

Signals: SIGHUP reloads the HTTPS certificate and key (web/tls.py) without dropping a
connection and re-reads the key schedule (issuance/rotation.py); SIGUSR1 switches
maintenance on or off (web/drain.py). SIGTERM and SIGINT (Ctrl-C) stop the server:
/readyz fails at once, the listeners close, the requests in progress get [server]
drain_timeout_s to finish, then the application's cleanup runs (its publishers sign a
last checkpoint); `run` returns what was finished. A second SIGTERM or SIGINT while
draining cuts the wait short.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from tsa_server.web import observe
from tsa_server.web.drain import Maintenance
from tsa_server.web.serving import (
    LINGER_S,
    MAX_HEADERS,
    MAX_REQUEST_LINE,
    BodyWatchdog,
    ConnectionCap,
    Listener,
)
from tsa_server.web.tls import ReloadableTls

log = logging.getLogger("tsa.web")

#: What else SIGHUP reloads besides the TLS pair (the key schedule: issuance/rotation.py).
ON_RELOAD = web.AppKey("on_reload", list[Callable[[], None]])

#: After the drain, what aiohttp's shutdown still grants a request before cancelling it.
SHUTDOWN_GRACE_S = 1.0


@dataclass(frozen=True)
class Site:
    """One listening address of the main application."""

    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/"


@dataclass(frozen=True)
class Plan:
    """What `run` serves: the bounds every connection gets, and where."""

    listener: Listener
    sites: tuple[Site, ...]
    tls: ReloadableTls | None = None
    # Told of every response and how long it took (web/observe.py): metrics, logs.
    access_hook: type[AbstractAccessLogger] | None = None
    # Small applications on listeners of their own (the metrics listener).
    side_apps: tuple[tuple[web.Application, Site], ...] = ()
    maintenance: Maintenance | None = None
    tally: observe.Tally | None = None  # responses completed, as the access hook counts
    drain_timeout_s: float = 30.0


@dataclass(frozen=True)
class StopReport:
    """What a stop finished: requests in progress when it began, and how many of them
    (and of any that arrived on open connections meanwhile) completed."""

    in_progress: int
    finished: int
    seconds: float


def _on_signal(loop: asyncio.AbstractEventLoop, signum: int, action: object) -> None:
    try:
        loop.add_signal_handler(signum, action)  # type: ignore[arg-type]
    except (NotImplementedError, RuntimeError):  # not the main thread, or no such signal
        log.debug("signal %s not handled here", signum)


async def _serve(app: web.Application, plan: Plan) -> StopReport | None:
    listener = plan.listener
    hook: dict[str, Any] = {"access_log": None}
    if plan.access_hook is not None:
        hook = {"access_log_class": plan.access_hook, "access_log": logging.getLogger("tsa.access")}
    runner = web.AppRunner(
        app,
        handle_signals=False,
        **hook,
        keepalive_timeout=listener.idle_timeout_s,
        max_line_size=MAX_REQUEST_LINE,
        max_field_size=MAX_REQUEST_LINE,
        max_headers=MAX_HEADERS,
        # After an early answer (401, 413...) the rest of a body is read and dropped
        # for this long at most, so the client sees the answer rather than a reset.
        lingering_time=LINGER_S,
        shutdown_timeout=SHUTDOWN_GRACE_S,  # after our own drain (_drain)
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        _on_signal(loop, signum, stop.set)
    reloads: list[Callable[[], object]] = [plan.tls.reload] if plan.tls is not None else []
    others: list[Callable[[], None]] = app[ON_RELOAD] if ON_RELOAD in app else []
    reloads.extend(others)
    if reloads:
        _on_signal(loop, signal.SIGHUP, lambda: [reload() for reload in reloads])
    if plan.maintenance is not None:
        _on_signal(loop, signal.SIGUSR1, plan.maintenance.toggle)
    await runner.setup()
    server = runner.server
    assert server is not None, "set up above"
    observe.tag_requests(server)  # request ids, before any connection
    watchdog = BodyWatchdog(server, listener.body)
    sweeper = asyncio.create_task(watchdog.run())
    side: list[web.AppRunner] = []
    report: StopReport | None = None
    try:
        ConnectionCap(server, listener.max_connections, watchdog)
        for site in plan.sites:
            await web.TCPSite(
                runner,
                site.host,
                site.port,
                backlog=listener.max_connections,
                ssl_context=site.ssl_context,
            ).start()
        side = await _start_side_apps(plan, listener)
        await stop.wait()
        report = await _drain(runner, server, plan)
    finally:
        sweeper.cancel()
        for side_runner in reversed(side):
            await side_runner.cleanup()
        if report is None:  # a fault before or during the drain: clean up all the same
            await runner.cleanup()
    return report


async def _drain(runner: web.AppRunner, server: web.Server, plan: Plan) -> StopReport:
    """Stop taking connections, let the requests in progress finish (their bodies may
    still be arriving: aiohttp's own shutdown would stop reading them), close each
    connection as it goes idle, then run the app's cleanup."""
    started = time.monotonic()
    if plan.maintenance is not None:
        plan.maintenance.stopping = True
    busy = sum(1 for c in server.connections if _busy(c))
    done_before = plan.tally.responses if plan.tally else 0
    log.warning(
        "stopping: %d request(s) in progress get up to %g s to finish",
        busy,
        plan.drain_timeout_s,
    )
    hurry = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # a second one: stop waiting
        _on_signal(loop, signum, hurry.set)
    for site in list(runner.sites):
        await site.stop()
    deadline = started + plan.drain_timeout_s
    while not hurry.is_set():
        working = False
        for connection in server.connections:
            if _busy(connection):
                working = True
            else:
                connection.close()  # idle keep-alive: no new request on it
        if not working or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.05)
    if hurry.is_set():
        log.warning("second stop signal: cancelling the requests still in progress")
    await runner.cleanup()  # what is still running gets SHUTDOWN_GRACE_S, then cancelled
    finished = (plan.tally.responses if plan.tally else 0) - done_before
    return StopReport(busy, finished, time.monotonic() - started)


def _busy(connection: RequestHandler) -> bool:
    return getattr(connection, "_current_request", None) is not None


async def _start_side_apps(plan: Plan, listener: Listener) -> list[web.AppRunner]:
    runners = []
    for side_app, site in plan.side_apps:
        runner = web.AppRunner(
            side_app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=listener.idle_timeout_s,
        )
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, site.host, site.port, ssl_context=site.ssl_context).start()
    return runners


def run(app: web.Application, plan: Plan) -> StopReport | None:
    """Serve until SIGINT or SIGTERM, then drain and shut down cleanly (module doc)."""
    try:
        return asyncio.run(_serve(app, plan))
    except KeyboardInterrupt:  # before the handlers were installed
        return None
