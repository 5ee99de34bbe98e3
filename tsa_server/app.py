"""The aiohttp application factory: routes, middleware and the clock's background task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from tsa_server.issuance import ops_inbox
from tsa_server.issuance.publisher import CheckpointPublisher
from tsa_server.web import (
    evidence,
    handlers,
    incidents,
    malformed,
    metrics,
    observe,
    pages,
    policy,
    ratelimit,
)
from tsa_server.web.ledger import catalog
from tsa_server.web.ledger import logs as ledger
from tsa_server.web.lifecycle import ON_RELOAD
from tsa_server.web.routes import add_routes
from tsa_server.web.verify import handler as verify
from tsa_server.wiring import Services

#: An aiohttp cleanup context: runs to its yield at start-up, the rest at shutdown.
CleanupContext = Callable[[web.Application], AsyncIterator[None]]

INBOX_POLL_S = 2.0


def create_app(services: Services) -> web.Application:
    config = services.config
    malformed.quiet_malformed_requests()  # a request aiohttp cannot parse: one log line
    app = web.Application(
        middlewares=[handlers.errors_middleware, ratelimit.client_limits],
        client_max_size=config.server.max_body_bytes,
    )
    app.on_response_prepare.append(observe.echo_request_id)  # X-Request-Id
    app[ratelimit.CLIENT_LIMITER] = ratelimit.ClientLimiter.from_config(config.limits)
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
        evidence=services.evidence,
        names=services.names,
        public_url=config.server.origin,
    )
    metrics.setup(app, services)  # Prometheus metrics (before the publishers start)
    ledger.setup(app, services)  # the published logs and their read pool
    catalog.setup(app, services)  # every log of the TSA (GET /ledger/), other nodes' too
    policy.setup(app, services)  # the disclosure statement (GET /policy)
    incidents.setup(app, services)  # the published incident reports (GET /incidents/)
    add_routes(app)
    pages.setup(app, services)  # the web pages' sign-in (web/pages/)
    evidence.setup(app, services)  # the evidence service and its renewal scheduler
    verify.setup(app)  # the verifier's worker processes
    app.cleanup_ctx.append(_clock_monitor(services))
    if services.ops is not None:  # events the command-line tools left for this log
        inbox, ops = config.ledger.ops_inbox_dir, services.ops
        app.cleanup_ctx.append(lambda _app: ops_inbox.keep_draining(inbox, ops, INBOX_POLL_S))
    for log in services.logs.values():
        app.cleanup_ctx.append(_publisher(log.publisher, config.ledger.checkpoint_interval_s))
    if services.rotation is not None:  # the key schedule: timer, polling, SIGHUP
        app.cleanup_ctx.append(services.rotation.run)
        app[ON_RELOAD] = [services.rotation.reload]
    return app


def _clock_monitor(services: Services) -> CleanupContext:
    async def run(app: web.Application) -> AsyncIterator[None]:
        start = getattr(services.clock, "start", None)
        if start is not None:
            await start()
        yield
        stop = getattr(services.clock, "stop", None)
        if stop is not None:
            await stop()

    return run


def _publisher(publisher: CheckpointPublisher, interval_s: float) -> CleanupContext:
    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(publisher.run(interval_s))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log = logging.getLogger("tsa.publisher")
        try:  # a last checkpoint on a clean shutdown, so nothing waits an interval
            signed = await publisher.publish_now()
        except Exception:  # noqa: BLE001 - shutdown goes on; the next start publishes
            log.exception("final checkpoint failed")
            return
        if signed is not None:
            log.warning("final checkpoint of %s: size %d", publisher.origin, signed.size)
        else:
            log.warning("final checkpoint of %s: nothing new since the last", publisher.origin)

    return run
