"""The aiohttp application factory: routes, middleware and the clock's background task."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from tsa_server.services import Services
from tsa_server.web import handlers
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
    )
    add_routes(app)
    app.cleanup_ctx.append(_clock_monitor(services))
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
