"""The aiohttp application factory: routes, middleware and the clock's background task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from tsa_server.services import Services
from tsa_server.web import handlers
from tsa_server.web.ledger import LOGS, LogView
from tsa_server.web.routes import add_routes


def create_app(services: Services) -> web.Application:
    config = services.config
    app = web.Application(
        middlewares=[handlers.errors_middleware],
        client_max_size=config.server.max_body_bytes,
    )
    app[handlers.STATE] = handlers.WebState(
        issuer=services.issuer,
        clock=services.clock,
        ledger=services.store,
        chain_pem=services.chain_pem,
        max_body_bytes=config.server.max_body_bytes,
        trust_roots=tuple(services.trust_roots),
        tsa_chain=tuple(services.chain),
        time_zone=config.verify.time_zone,
        max_token_bytes=config.verify.max_token_bytes,
        max_data_bytes=config.verify.max_data_bytes,
        ledger_path=str(config.ledger.path),
        evidence=services.evidence,
    )
    logs = {}
    if services.publisher is not None:
        logs["tokens"] = LogView(services.store, services.publisher.origin, services.publisher.vkey)
    app[LOGS] = logs
    add_routes(app)
    app.cleanup_ctx.append(_clock_monitor(services))
    if services.publisher is not None:
        app.cleanup_ctx.append(_publisher(services))
    return app


def _clock_monitor(services: Services):
    async def run(app: web.Application) -> AsyncIterator[None]:
        start = getattr(services.clock, "start", None)
        if start is not None:
            await start()
        yield
        stop = getattr(services.clock, "stop", None)
        if stop is not None:
            await stop()

    return run


def _publisher(services: Services):
    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(
            services.publisher.run(services.config.ledger.checkpoint_interval_s)
        )
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:  # a last checkpoint on a clean shutdown, so nothing waits an interval
            await services.publisher.publish_now()
        except Exception:  # noqa: BLE001 - shutdown goes on; the next start publishes
            logging.getLogger("tsa.publisher").exception("final checkpoint failed")

    return run
