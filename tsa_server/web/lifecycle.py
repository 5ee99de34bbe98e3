"""Run the application until it is told to stop: its listeners (plain HTTP, HTTPS), the
connection bounds of `web/serving.py` on all of them, and the process signals.

Signals: SIGTERM and SIGINT (Ctrl-C) stop the server gracefully; SIGHUP reloads the
HTTPS certificate and key (web/tls.py) without dropping a connection.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from tsa_server.web import observe
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


def _on_signal(loop: asyncio.AbstractEventLoop, signum: int, action: object) -> None:
    try:
        loop.add_signal_handler(signum, action)  # type: ignore[arg-type]
    except (NotImplementedError, RuntimeError):  # not the main thread, or no such signal
        log.debug("signal %s not handled here", signum)


async def _serve(app: web.Application, plan: Plan) -> None:
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
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        _on_signal(loop, signum, stop.set)
    if plan.tls is not None:
        _on_signal(loop, signal.SIGHUP, plan.tls.reload)
    await runner.setup()
    server = runner.server
    assert server is not None, "set up above"
    observe.tag_requests(server)  # request ids, before any connection
    watchdog = BodyWatchdog(server, listener.body)
    sweeper = asyncio.create_task(watchdog.run())
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
        log.warning("stopping")
    finally:
        sweeper.cancel()
        for side_runner in reversed(side):
            await side_runner.cleanup()
        await runner.cleanup()


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


def run(app: web.Application, plan: Plan) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (the app's cleanup runs)."""
    try:
        asyncio.run(_serve(app, plan))
    except KeyboardInterrupt:  # before the handlers were installed
        pass
