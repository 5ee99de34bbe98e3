"""POST /verify: check a time-stamp token for a relying party and explain the verdict.

Two request forms:

* ``multipart/form-data`` with the parts ``token`` (file: TimeStampResp or bare token,
  DER/PEM/base64) and either ``data`` (file) or ``digest`` (hex), and optionally
  ``digest_algorithm``, ``nonce`` (decimal or 0x-hex), ``policy`` (dotted OID),
  ``tsa_name`` (RFC 4514 name or a common name) and ``certificates`` (PEM/DER file: the
  TSA certificate and intermediates for tokens of other TSAs that carry none).
* ``application/json``: ``{"token": base64 or PEM, "digest": hex, ...}`` with the same
  optional keys (``certificates`` as PEM text or base64 DER).

Hashing the data. The data is never held in memory: it is hashed chunk by chunk as it
arrives, with the algorithm of the token's messageImprint. That algorithm is only known
once the token is read, so the ``token`` part must come before the ``data`` part (a
browser form or ``curl -F`` sends parts in the order given); a data part that comes
first is a 400 that says so. Hashing with every accepted algorithm at once would lift
the ordering rule at ten times the CPU for every upload; the rule is cheaper.

Answers: 200 with the verification report for every request that could be decoded,
valid or not (``"valid": false`` is a verdict, not an HTTP error); 400 with
``{"error": reason}`` for malformed input (not multipart or JSON, missing or duplicate
parts, bad hex or base64, a token that is not a time-stamp token); 413 beyond the size
bounds ([verify] max_token_bytes, max_data_bytes); 415 for other content types; 503
with Retry-After when the verifier's queue is full. The request is read by
web/verify/input.py (JSON through web/bodies.py, nesting bounded).

The chains of every key this TSA has signed with (the active one, the initial one and
those in the key schedule: issuance/keyring.py) are always offered to the verifier as
untrusted candidates (like ``openssl ts -verify -untrusted``), so tokens this TSA issued without
certReq verify too; the chain must still lead to a configured trust root, and the
signer certificate must still match the token's SID and signed ESSCertIDv2 hash.

For a token whose signer certificate is one of this TSA's, the answer adds the ledger entry
with an RFC 6962 inclusion proof, against the latest signed checkpoint whose note it
carries (web/verify/ledger.py, O(log n)), or ``{"found": false, ...}``, which is a
serious finding when the signature verified.

Cost: a token embeds at most 64 certificates and a request supplies at most as many;
path building has a fixed work budget (rfc3161/verify_chain.py); the verification runs
in worker processes at a lower priority than issuance (web/verify/pool.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import zoneinfo
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from asn1crypto import x509 as asn1_x509

from ledger.serials import serial_text
from tsa_server.rfc3161.verify import VerificationReport, VerifyOptions
from tsa_server.web.handlers import STATE
from tsa_server.web.verify.input import (  # noqa: F401 - parse_hex, parse_int: cli/verify.py
    BadInput,
    VerifyInput,
    parse_hex,
    parse_int,
    read_input,
)
from tsa_server.web.verify.ledger import ledger_section
from tsa_server.web.verify.pool import VerifierPool

VERIFIER = web.AppKey("verifier_pool", VerifierPool)


def setup(app: web.Application) -> None:
    """The verifier's worker processes live as long as the server (started on the first
    request, so commands that never verify over HTTP never pay for them)."""

    async def pool(app: web.Application) -> AsyncIterator[None]:
        app[VERIFIER] = VerifierPool()
        yield
        await asyncio.to_thread(app[VERIFIER].close)

    app.cleanup_ctx.append(pool)


async def verify(request: web.Request) -> web.Response:
    """POST /verify: the report as JSON (200), or {"error": reason} (400/413/415)."""
    state = request.app[STATE]
    try:
        given = await read_input(request, state)
    except BadInput as exc:
        return web.json_response({"error": exc.reason}, status=exc.status)
    body = await verification(request, given)
    if body is None:
        return web.json_response(
            {"error": "the verifier is busy: retry in a second"},
            status=503,
            headers={"Retry-After": "1"},
        )
    return web.json_response(body)


async def verification(request: web.Request, given: VerifyInput) -> dict[str, Any] | None:
    """The report of a read request as POST /verify answers it (also the verification
    center's page, web/pages/check.py); None when the verifier is busy."""
    state = request.app[STATE]
    assert given.token is not None
    own = state.issuer.keys.chains() or [state.tsa_chain]  # every key this TSA signed with
    options = VerifyOptions(
        trust_roots=state.trust_roots,
        extra_certs=[*given.certificates, *(cert for chain in own for cert in chain)],
        digest=given.data_digest if given.data_bytes is not None else given.digest,
        digest_algorithm=_digest_algorithm(given),
        nonce=given.nonce,
        policy=given.policy,
        tsa_name=given.tsa_name,
    )
    # Signature and path checks are CPU work: off the event loop and its GIL (issuance).
    assert given.token_raw is not None
    report = await request.app[VERIFIER].run(given.token_raw, options)
    if report is None:
        return None
    body = report_json(report, state.time_zone, given)
    body["issued_by_this_tsa"] = False
    body["ledger"] = None
    if any(_signed_by(report, chain[0]) for chain in own if chain):
        body["issued_by_this_tsa"] = report.check("signature").passed
        body["ledger"] = await ledger_section(request, given.token_der, report)
    return body


def _digest_algorithm(given: VerifyInput) -> str | None:
    if given.data_bytes is not None:
        # The data was hashed with the token's algorithm; an algorithm the caller named
        # still has to be the token's.
        return given.digest_algorithm or given.imprint_algorithm
    return given.digest_algorithm


# --- the answer ---------------------------------------------------------------------------


def report_json(
    report: VerificationReport, time_zone: str, given: VerifyInput | None = None
) -> dict[str, Any]:
    """The report as JSON, with genTime in UTC and in ``time_zone``; the serial, the nonce
    and the signer's serial as strings in the one spelling of ledger/serials.py (JSON
    numbers lose precision past 2^53 in JavaScript)."""
    body = report.to_dict()
    fields = report.fields
    if fields is not None:
        out = body["fields"]
        out["serial_number"] = serial_text(fields.serial_number)
        out["nonce"] = None if fields.nonce is None else serial_text(fields.nonce)
        if fields.signer is not None:
            out["signer"]["serial_number"] = serial_text(fields.signer.serial_number)
        out["gen_time_utc"] = fields.gen_time_text
        out["gen_time_local"] = fields.gen_time.astimezone(zoneinfo.ZoneInfo(time_zone)).isoformat()
        out["time_zone"] = time_zone
    if given is not None:
        if given.data_bytes is not None:
            body["compared_with"] = {
                "data_bytes": given.data_bytes,
                "algorithm": given.imprint_algorithm,
                "digest": given.data_digest.hex() if given.data_digest is not None else None,
            }
        else:
            assert given.digest is not None
            body["compared_with"] = {"digest": given.digest.hex()}
        # Say it in the reason: the verifier only saw a digest, the client sent data.
        if given.data_bytes is not None:
            body["checks"] = [_data_wording(c) for c in body["checks"]]
    return body


def _data_wording(check: dict[str, Any]) -> dict[str, Any]:
    if check["name"] != "message_imprint":
        return check
    return {**check, "reason": check["reason"].replace("the given digest", "the uploaded data")}


def _signed_by(report: VerificationReport, cert: asn1_x509.Certificate | None) -> bool:
    signer = report.fields.signer if report.fields is not None else None
    if cert is None or signer is None:
        return False
    return signer.sha256_fingerprint == hashlib.sha256(cert.dump()).hexdigest()
