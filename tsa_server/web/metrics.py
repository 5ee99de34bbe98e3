"""`GET /metrics`: the Prometheus text format of tsa_server/metrics/.

On the server's listeners it needs an admin-scope API key of an operator organisation
([evidence] operators), as checkpoints on demand do: request rates, refusals and ledger
sizes are the operator's business. With [metrics] host set, the same page is also served
without a key on a listener of its own (`metrics_app`), for a Prometheus that reaches
that address only (loopback, a management network).

The page is rendered in a thread: the evidence totals read the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from tsa_server.accounts.errors import PermissionDenied
from tsa_server.accounts.key_rules import Scope
from tsa_server.metrics.collector import (
    Checkpoints,
    EvidenceTotals,
    ServerCollector,
    database_evidence_totals,
    sqlite_evidence_totals,
)
from tsa_server.metrics.instruments import HttpMetrics, IssuanceMetrics
from tsa_server.web import auth
from tsa_server.web.api import API_KEY, Described
from tsa_server.wiring import Services


@dataclass(frozen=True)
class Monitoring:
    registry: CollectorRegistry
    http: HttpMetrics
    issuance: IssuanceMetrics
    checkpoints: Checkpoints
    operators: tuple[str, ...]


MONITORING = web.AppKey("monitoring", Monitoring)

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
DESCRIBED = Described(
    paths={
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (operators' admin keys)",
                "security": API_KEY,
                "responses": {
                    "200": {
                        "description": "the Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": {"description": "no or bad API key", "content": _ERROR},
                    "403": {
                        "description": "not an admin key of an operator organisation",
                        "content": _ERROR,
                    },
                },
            }
        }
    }
)


def setup(app: web.Application, services: Services) -> Monitoring:
    """Make the registry and its instruments and hook them to the issuer and publishers."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    checkpoints = Checkpoints()
    for name, log in services.logs.items():
        checkpoints.record(name, log.store.latest_checkpoint())
        publisher, earlier = log.publisher, log.publisher.on_publish

        def published(signed, name=name, earlier=earlier):  # type: ignore[no-untyped-def]
            if earlier is not None:
                earlier(signed)
            checkpoints.record(name, signed)

        publisher.on_publish = published
    config = services.config
    evidence: Callable[[], EvidenceTotals | None]
    if config.database.url:
        from tsa_server.database.postgres import PostgresDatabase
        from tsa_server.evidence.schema_postgres import EVIDENCE

        url = config.database.url
        evidence = database_evidence_totals(lambda: PostgresDatabase(url, EVIDENCE, migrate=False))
    else:
        evidence = sqlite_evidence_totals(Path(config.evidence.path))
    registry.register(ServerCollector(services.issuer, services.clock, checkpoints, evidence))
    monitoring = Monitoring(
        registry,
        HttpMetrics(registry),
        IssuanceMetrics(registry),
        checkpoints,
        config.evidence.operators,
    )
    services.issuer.observe(monitoring.issuance)
    app[MONITORING] = monitoring
    return monitoring


async def _page(monitoring: Monitoring) -> web.Response:
    body = await asyncio.to_thread(generate_latest, monitoring.registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response


@auth.require(Scope.ADMIN)
async def metrics(request: web.Request) -> web.Response:
    """The metrics page, for the operators' admin keys (module doc)."""
    monitoring = request.app[MONITORING]
    if request[auth.PRINCIPAL].org_id not in monitoring.operators:
        raise PermissionDenied("only the platform operator's admin keys read the metrics")
    return await _page(monitoring)


def metrics_app(monitoring: Monitoring) -> web.Application:
    """The application of the metrics listener of its own: GET /metrics, no key."""

    async def page(request: web.Request) -> web.Response:
        return await _page(monitoring)

    app = web.Application()
    app.router.add_get("/metrics", page)
    return app
