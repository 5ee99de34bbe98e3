"""HTTP handlers of the TSA. Thin: they bound and route bytes; issuance.py decides."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import ClientPayloadError, HttpVersion11, web
from asn1crypto import x509 as asn1_x509

from ledger.store.base import Reader
from tsa_server.clock.base import Clock
from tsa_server.database import database_unavailable
from tsa_server.errors import FailureInfo
from tsa_server.evidence.store import EvidenceStore
from tsa_server.issuance.issuer import Issuer
from tsa_server.names.timestamping import NamesService
from tsa_server.rfc3161 import response
from tsa_server.web import drain
from tsa_server.web.bodies import BodyTooLarge, read_bounded
from tsa_server.web.errors import DOMAIN_ERRORS, error_response
from tsa_server.web.serving import SlowBody

log = logging.getLogger("tsa.web")

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


@dataclass(frozen=True)
class WebState:
    issuer: Issuer
    clock: Clock
    ledger: Reader
    chain_pem: bytes
    max_body_bytes: int
    # POST /verify (web/verify/handler.py): roots, this TSA's chain (TSA certificate first), the
    # zone genTime is also shown in, body bounds, and the ledger file for proofs.
    trust_roots: tuple[asn1_x509.Certificate, ...] = ()
    tsa_chain: tuple[asn1_x509.Certificate, ...] = ()
    time_zone: str = "UTC"
    max_token_bytes: int = 256 * 1024
    max_data_bytes: int = 1 << 30
    evidence: EvidenceStore | None = None  # accounts, API keys, items (web/accounts.py)
    names: NamesService | None = None  # the handle (字号) registry (web/names/registry.py)
    public_url: str = "http://127.0.0.1:3161"  # [server] origin, for certificates' links


STATE = web.AppKey("state", WebState)


def _reply(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=REPLY_TYPE)


def _check_headers(request: web.Request) -> None:
    """415/413 from the headers alone, before any of the body is read."""
    if request.content_type != QUERY_TYPE:
        raise web.HTTPUnsupportedMediaType(text=f"send {QUERY_TYPE}\n")
    limit = request.app[STATE].max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit, actual_size=length, text="request too large\n"
        )


async def expect_query(request: web.Request) -> None:
    """`Expect: 100-continue` (RFC 9110 §10.1.1): refuse a wrong type or size before
    inviting the body; otherwise what aiohttp does by default."""
    expect = request.headers.get("Expect", "").lower()
    if request.version != HttpVersion11:
        return
    if expect != "100-continue":
        raise web.HTTPExpectationFailed(text="unknown Expect\n")
    _check_headers(request)
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the reply proper has not started


async def timestamp(request: web.Request) -> web.Response:
    """POST application/timestamp-query -> application/timestamp-reply (RFC 3161 §3.4).

    A body that trickles in is failed by the serving layer's watchdog (web/serving.py)."""
    state = request.app[STATE]
    _check_headers(request)
    try:
        body = await read_bounded(request, state.max_body_bytes)
    except BodyTooLarge as exc:
        raise web.HTTPRequestEntityTooLarge(
            max_size=state.max_body_bytes,
            actual_size=state.max_body_bytes + 1,
            text="request too large\n",
        ) from exc
    return _reply(await state.issuer.issue(body))


async def certs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    # The active key's chain: after a key rotation, the new one.
    body = state.issuer.keys.current.chain_pem or state.chain_pem
    return web.Response(body=body, content_type="application/pem-certificate-chain")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    clock = state.clock.status()
    problems = []
    draining = drain.problem(request.app)  # the maintenance switch, or stopping
    if draining is not None:
        problems.append(draining)
    if not clock.usable:
        problems.append(f"clock: {clock.reason}")
    problems.extend(await state.issuer.problems())
    body = {
        "ready": not problems,
        "clock": clock.reason,
        "ledger_size": state.issuer.next_index,
        "problems": problems,
        # Coming trouble that does not stop issuance yet (the signing key's retirement).
        "warnings": state.issuer.warnings(),
    }
    return web.json_response(body, status=200 if not problems else 503)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Faults never leak as tracebacks; a timestamp request always gets a TimeStampResp;
    a body the client sent too slowly or broke off is a 408 or 400, not a fault."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except DOMAIN_ERRORS as exc:
        return error_response(exc)
    except SlowBody as exc:
        raise web.HTTPRequestTimeout(text=f"{exc}\n") from None
    except (ConnectionError, ClientPayloadError) as exc:
        # The client went away or broke its body off: nothing to answer, nothing to alarm.
        log.debug("request body aborted on %s: %s", request.path, type(exc).__name__)
        raise web.HTTPBadRequest(text="incomplete request body\n") from None
    except Exception as exc:
        timestamp_request = request.method == "POST" and request.path in ("/", "/tsr")
        if database_unavailable(exc) and not timestamp_request:
            # The database is busy or away (a PostgreSQL failover, a locked SQLite file):
            # the request may be retried; nothing of it was acknowledged.
            log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
            return web.json_response(
                {"error": "the database is unavailable right now: retry in a few seconds"},
                status=503,
                headers={"Retry-After": "2"},
            )
        log.exception("unhandled error on %s %s", request.method, request.path)
        if timestamp_request:
            return _reply(response.rejection(FailureInfo.SYSTEM_FAILURE, "system failure"))
        return web.json_response({"error": "internal error"}, status=500)
