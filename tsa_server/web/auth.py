"""API-key authentication for the account, evidence and fee endpoints, and the one
mapping of the evidence layer's errors to HTTP.

``@require(Scope.X)`` on a handler: the request must carry exactly one
``Authorization: Bearer tsa_<id>_<secret>`` header (keys in query strings or cookies are
ignored: URLs end up in logs and browser histories). Missing, malformed, unknown,
revoked or expired keys get 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3); a valid
key without the scope gets 403 with ``error="insufficient_scope"``. The handler then
finds the caller in ``request[PRINCIPAL]``, and every query it makes is scoped to
``principal.org_id``. An authenticated request over its key's or organisation's rate
limit (web/ratelimit.py, when the app has one) gets 429 with ``Retry-After``. Answers
are JSON ``{"error": ...}`` and never cached. A key's use is noted in memory and written
in batches off the event loop (`track_key_use`, accounts/key_use.py): authentication
itself only reads.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from tsa_server.accounts.errors import InvalidApiKey
from tsa_server.accounts.key_rules import Principal, Scope
from tsa_server.accounts.key_use import KeyUseRecorder
from tsa_server.accounts.service import Accounts
from tsa_server.database import Database
from tsa_server.evidence.store import EvidenceStore
from tsa_server.web.errors import DOMAIN_ERRORS, BadRequest, MissingKey, error_response
from tsa_server.web.handlers import STATE
from tsa_server.web.ratelimit import RATE_LIMITER, retry_after_header

log = logging.getLogger("tsa.web.auth")

PRINCIPAL = web.RequestKey("principal", Principal)
KEY_USE = web.AppKey("key_use", KeyUseRecorder)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str:
    values = request.headers.getall("Authorization", [])
    if not values:
        raise MissingKey()
    if len(values) > 1:
        raise InvalidApiKey("send one Authorization header")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidApiKey("use Authorization: Bearer <API key>")
    return token.strip()


def evidence_store(request: web.Request) -> EvidenceStore:
    store = request.app[STATE].evidence
    if store is None:
        raise BadRequest(404, "accounts are not enabled on this server")
    return store


def accounts(request: web.Request) -> Accounts:
    return Accounts(evidence_store(request), key_use=request.app.get(KEY_USE))


def track_key_use(app: web.Application, where: Path | str | Database) -> None:
    """Record API keys' last uses in batches, off the loop, while the app runs."""
    recorder = KeyUseRecorder(where)
    app[KEY_USE] = recorder

    async def running(_: web.Application) -> AsyncIterator[None]:
        recorder.start()
        yield
        await recorder.stop()

    app.cleanup_ctx.append(running)


def rate_limited(request: web.Request, principal: Principal) -> web.Response | None:
    """429 with Retry-After when the key or its organisation has no token left."""
    limiter = request.app.get(RATE_LIMITER)
    refusal = None if limiter is None else limiter.take(principal.key_id, principal.org_id)
    if refusal is None:
        return None
    wait = retry_after_header(refusal.retry_after)
    whose = "this API key" if refusal.scope == "key" else "this organisation's API keys"
    return web.json_response(
        {
            "error": f"rate limit of {whose} reached: retry in {wait} s",
            "bucket": refusal.scope,
            "per_second": refusal.limit.per_second,
            "burst": refusal.limit.burst,
            "retry_after": int(wait),
        },
        status=429,
        headers={"Retry-After": wait, "Cache-Control": "no-store"},
    )


async def authenticated(request: web.Request) -> Principal:
    """The request's API key checked, off the event loop: its lookup is a database read
    (a network round trip on PostgreSQL) that must not hold up issuance."""
    return await asyncio.to_thread(accounts(request).authenticate, bearer_token(request))


def require(scope: Scope | None = None) -> Callable[[Handler], Handler]:
    """Authenticate the request's API key (and check `scope`) before the handler runs;
    evidence-layer errors the handler raises become their JSON answers."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                principal = await authenticated(request)
                limited = rate_limited(request, principal)
                if limited is not None:
                    return limited
                if scope is not None:
                    principal.require(scope)
            except DOMAIN_ERRORS as exc:
                return error_response(exc)
            request[PRINCIPAL] = principal
            response = await handler(request)  # its domain errors: web/errors.py
            if not response.prepared:
                response.headers.setdefault("Cache-Control", "no-store")
            return response

        return wrapped

    return decorate
