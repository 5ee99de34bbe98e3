"""The evidence and fee endpoints (docs/spec/evidence.md S-7 .. S-12, P-1 .. P-8, REC-3,
REC-4, REC-10), one module per group, each handler beside its OpenAPI `Operation`:

- credits.py: ``POST /api/v1/credits/lots``, ``GET /api/v1/credits``;
- deposits.py: ``POST /api/v1/deposits``, ``POST /api/v1/deposits/upload``;
- items.py: ``/api/v1/items`` and each item's token, original, deletion,
  re-upload, auto-renewal and reinstatement;
- reports.py: ``GET /api/v1/reminders``, ``/forecast``, ``/usage``;
- webhook.py: ``PUT|GET|DELETE /api/v1/webhook``;
- files.py: certificates and evidence kits.

Handlers only translate: HTTP framing and the multipart stream into a typed request,
one call into the evidence layer, the result into JSON. Refusals are the evidence,
fee and account errors, answered by web/errors.py (InsufficientCredits 402, field
errors 422, StateError 409, the monthly quota 429 with Retry-After...). Store and
blob work runs in the evidence service's worker threads (`service.off_loop`), never on
the event loop.

This module starts the service's companions with the server (`setup`) and hands the
operations to web/openapi.py (`DESCRIBED`); web/routes.py names the handlers here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web

from tsa_server.config import Config, EvidenceConfig, LedgerConfig
from tsa_server.evidence.certificate import Operator
from tsa_server.evidence.certificate_sign import document_key
from tsa_server.evidence.render_pool import CertificateRenderer
from tsa_server.evidence.renewal_runner import RenewalRunner, RenewalScheduler
from tsa_server.evidence.service import EvidenceService
from tsa_server.evidence.store import EvidenceStore
from tsa_server.evidence.store.jobs import job_holder
from tsa_server.evidence.webhook_dispatch import WebhookDispatcher
from tsa_server.evidence.webhooks import WebhookSettings
from tsa_server.web.api import Described
from tsa_server.web.auth import track_key_use
from tsa_server.web.evidence import credits as evidence_credits
from tsa_server.web.evidence import deposits as evidence_deposits
from tsa_server.web.evidence import items as evidence_items
from tsa_server.web.evidence import reports as evidence_reports
from tsa_server.web.evidence import webhook as evidence_webhook
from tsa_server.web.evidence.context import (
    DISPATCHER,
    EVIDENCE,
    OPERATOR,
    RENDERER,
    SCHEDULER,
)
from tsa_server.web.evidence.context import RATE_LIMITED as RATE_LIMITED
from tsa_server.web.evidence.credits import credits as credits
from tsa_server.web.evidence.credits import grant_lot as grant_lot
from tsa_server.web.evidence.deposits import deposit as deposit
from tsa_server.web.evidence.deposits import upload as upload
from tsa_server.web.evidence.items import auto_renew as auto_renew
from tsa_server.web.evidence.items import delete_original as delete_original
from tsa_server.web.evidence.items import get_item as get_item
from tsa_server.web.evidence.items import list_items as list_items
from tsa_server.web.evidence.items import original as original
from tsa_server.web.evidence.items import reinstate as reinstate
from tsa_server.web.evidence.items import reupload as reupload
from tsa_server.web.evidence.items import token_tsr as token_tsr
from tsa_server.web.evidence.reports import forecast as forecast
from tsa_server.web.evidence.reports import reminders as reminders
from tsa_server.web.evidence.reports import usage as usage
from tsa_server.web.evidence.schemas import SCHEMAS
from tsa_server.web.evidence.webhook import delete_webhook as delete_webhook
from tsa_server.web.evidence.webhook import get_webhook as get_webhook
from tsa_server.web.evidence.webhook import put_webhook as put_webhook
from tsa_server.web.ratelimit import RATE_LIMITER, RateLimiter


class _Configured(Protocol):
    @property
    def evidence(self) -> EvidenceConfig: ...
    @property
    def ledger(self) -> LedgerConfig: ...


class EvidenceServices(Protocol):
    """What `setup` needs of the server's parts (wiring.Services): the configuration and
    the evidence database (its file: the key-use recorder and the webhook dispatcher
    open connections of their own)."""

    @property
    def config(self) -> _Configured: ...

    @property
    def evidence(self) -> EvidenceStore | None: ...


def setup(app: web.Application, services: EvidenceServices) -> None:
    """Register the service and the API's rate limiter (REC-10) and start the renewal
    scheduler and the webhook dispatcher with the server."""
    conf = services.config.evidence
    limiter = RateLimiter.from_settings(
        conf.rate_per_second, conf.rate_burst, conf.account_rate_factor
    )
    if limiter is not None:
        app[RATE_LIMITER] = limiter
    config = services.config  # the document-signing key signs certificates (PAdES)
    key = document_key(config) if isinstance(config, Config) else None
    renderer = app[RENDERER] = CertificateRenderer(document_key=key)  # certificates and kits
    if isinstance(config, Config):
        app[OPERATOR] = operator_of(config)

    async def rendering(app: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(renderer.close)

    app.cleanup_ctx.append(rendering)
    service: EvidenceService | None = getattr(services, "evidence_service", None)
    store = services.evidence
    if service is None or store is None:
        return
    app[EVIDENCE] = service
    track_key_use(app, store.db)  # API keys' last use, batched off the loop
    interval = conf.renewal_interval_s
    holder = job_holder(services.config.ledger.unit)  # one runner of each job per cluster

    async def scheduler(app: web.Application) -> AsyncIterator[None]:
        running = RenewalScheduler(RenewalRunner(service), interval, holder=holder)
        app[SCHEDULER] = running
        running.start()
        yield
        await running.stop()
        await asyncio.to_thread(service.close)  # deposits' worker threads finish

    async def dispatcher(app: web.Application) -> AsyncIterator[None]:
        sending = WebhookDispatcher(store, webhook_settings(conf), now=service.now, holder=holder)
        app[DISPATCHER] = sending
        sending.start()
        yield
        await sending.stop()

    app.cleanup_ctx.append(scheduler)
    app.cleanup_ctx.append(dispatcher)


def operator_of(config: Config) -> Operator:
    """The TSA and its operator as certificates print them ([disclosure])."""
    d = config.disclosure
    policy_url = d.policy_url or f"{config.server.origin}/policy"
    return Operator(d.name, d.organisation, d.address, d.contact, policy_url)


def webhook_settings(conf: EvidenceConfig) -> WebhookSettings:
    """[evidence] webhook_* of the configuration."""
    return WebhookSettings(
        timeout_s=conf.webhook_timeout_s,
        backoff_min_s=conf.webhook_backoff_min_s,
        backoff_max_s=conf.webhook_backoff_max_s,
        give_up_s=conf.webhook_give_up_s,
        concurrency=conf.webhook_concurrency,
        poll_s=conf.webhook_poll_s,
        per_org_concurrency=conf.webhook_per_org_concurrency,
        allow_http=conf.webhook_allow_http,
        allowed_networks=tuple(conf.webhook_allowed_networks),
    )


DESCRIBED = Described(
    operations=(
        *evidence_credits.OPERATIONS,
        *evidence_deposits.OPERATIONS,
        *evidence_items.OPERATIONS,
        *evidence_reports.OPERATIONS,
        *evidence_webhook.OPERATIONS,
    ),
    schemas=SCHEMAS,
)
