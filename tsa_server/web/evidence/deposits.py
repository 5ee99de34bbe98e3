"""Deposits over HTTP (S-12, P-4 .. P-8): each handler turns the request into a
`DepositCommand` (evidence/deposit_forms.py checks the fields) and writes the
`DepositAnswer` of evidence/deposit_requests.py, which owns the Idempotency-Key,
certification, refunds and notification.

``POST /api/v1/deposits``         deposit or timestamp: hash-only, one item or a batch
``POST /api/v1/deposits/upload``  deposit: multipart, a metadata part then the files

Uploads are streamed into the blob store a chunk at a time, after credits, quota and
size bounds allow them (web/evidence/upload_parts.py, evidence/uploads.py); the file name a
client sends is kept as metadata and never becomes a path.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from tsa_server.accounts.errors import AccountError, PermissionDenied
from tsa_server.accounts.key_rules import Scope
from tsa_server.evidence.deposit_forms import check_upload_metadata, hash_only_specs, upload_specs
from tsa_server.evidence.deposit_requests import DepositAnswer, DepositCommand
from tsa_server.evidence.errors import EvidenceError, InvalidInput
from tsa_server.evidence.idempotency import HEADER as IDEMPOTENCY_HEADER
from tsa_server.evidence.idempotency import check_key, fingerprint
from tsa_server.fees import FeeError
from tsa_server.fees.deposit import MAX_CHARS
from tsa_server.web.api import Param, json_response, ref
from tsa_server.web.auth import PRINCIPAL, require
from tsa_server.web.bodies import read_json_object
from tsa_server.web.errors import BadRequest
from tsa_server.web.evidence.context import (
    RETRY_AFTER,
    NoQuery,
    deposits_of,
    operation,
    org_of,
    query,
    service_of,
)
from tsa_server.web.evidence.upload_parts import read_upload

#: Largest JSON deposit body (a batch of hash-only items with their metadata).
MAX_DEPOSIT_JSON = 4 << 20


def _idempotency_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key (400 when repeated or not 1-100 printable ASCII)."""
    values = request.headers.getall(IDEMPOTENCY_HEADER, [])
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput(f"send one {IDEMPOTENCY_HEADER} header")
    return check_key(values[0])


def _answer(answer: DepositAnswer) -> web.Response:
    headers = {}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    if answer.retry_after is not None:
        headers["Retry-After"] = str(answer.retry_after)
    return web.Response(
        text=answer.body,
        status=answer.status,
        content_type="application/json",
        headers=headers or None,
    )


@require()
async def deposit(request: web.Request) -> web.Response:
    """Hash-only deposits: `{"items": [...], shared metadata}` or one item's fields."""
    principal = request[PRINCIPAL]
    if not (principal.has(Scope.DEPOSIT) or principal.has(Scope.TIMESTAMP)):
        raise PermissionDenied("this key lacks the deposit (or timestamp) scope", "deposit")
    service = service_of(request)
    query(request, NoQuery)
    key = _idempotency_key(request)
    body = await read_json_object(request, MAX_DEPOSIT_JSON)
    specs = hash_only_specs(body, service.settings.max_batch_items)
    command = DepositCommand(org_of(request), specs, fingerprint(body), key)
    return _answer(await deposits_of(request).submit(command))


@require(Scope.DEPOSIT)
async def upload(request: web.Request) -> web.Response:
    """Stored deposits: multipart/form-data, a `metadata` JSON part first (shared fields
    and optionally `items`, one object per file, in order), then `file` parts. Credits,
    quota, the number of files and the bytes of the request are checked before anything
    is stored (web/evidence/upload_parts.py); a refused upload leaves nothing on disk."""
    service = service_of(request)
    query(request, NoQuery)
    if request.content_type != "multipart/form-data":
        raise BadRequest(415, "send multipart/form-data: a metadata part, then file parts")
    org = org_of(request)
    key = _idempotency_key(request)
    bound = service.settings.max_upload_request_bytes
    if request.content_length is not None and request.content_length > bound:
        raise BadRequest(
            413,
            f"the upload request is {request.content_length} bytes; [evidence] "
            f"max_upload_request_bytes is {bound}: send fewer or smaller files per request",
        )
    deposits = deposits_of(request)
    answered = await deposits.answered(org, key)
    async with service.uploads(org) as session:
        try:
            if answered is None:  # 402 / 429 before any byte is read
                await session.claim(1)
            body = await read_upload(
                request,
                session,
                max_items=service.settings.max_batch_items,
                store=answered is None,
                check_metadata=check_upload_metadata,
            )
        except (ClientPayloadError, ConnectionError, asyncio.IncompleteReadError):
            raise BadRequest(400, "incomplete request body") from None
        except (HttpProcessingError, ValueError, LookupError, AssertionError) as exc:
            if isinstance(exc, FeeError | EvidenceError | AccountError):
                raise
            raise BadRequest(400, "malformed multipart body") from None
        specs, described = upload_specs(body)
        request_sha256 = fingerprint(described)
        if answered is not None:  # a retry of an answered request: nothing was stored
            return _answer(deposits.replay(answered, request_sha256))
        command = DepositCommand(org, specs, request_sha256, key, session)
        return _answer(await deposits.submit(command))


# ------------------------------------------------------------------ OpenAPI


@dataclass(frozen=True)
class _Header(Param):
    """A header parameter with its description."""

    description: str = ""

    def document(self) -> dict[str, Any]:
        return {**super().document(), "description": self.description}


_IDEMPOTENCY_KEY = _Header(
    IDEMPOTENCY_HEADER,
    "header",
    {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[ -~]+$"},
    description="1-100 printable ASCII characters: a retry of the same request with "
    "the same key within 24 h gets the first 201 answer again (header "
    "Idempotent-Replayed: true), without a second reservation or token; the same key "
    "with another request is refused (422), and while the first is running, a retry "
    "gets 409. Answers other than 201 are not kept: a retry runs again.",
)
_DEPOSIT_ERRORS = {
    "409": json_response(ref("Error"), "a request with this Idempotency-Key is still in progress"),
    "422": json_response(
        ref("FieldErrors"), "field errors, or the Idempotency-Key was used for another request"
    ),
    "429": {
        **json_response(
            {"oneOf": [ref("QuotaExceeded"), ref("TooManyRequests")]},
            "the monthly item quota (refused whole, nothing reserved; Retry-After: seconds "
            "until the next Beijing month) or the rate limit",
        ),
        "headers": RETRY_AFTER,
    },
}
_CERTIFIED = {"201": json_response(ref("DepositResult"), "certified")}
_STR = {"type": "string"}
_HEX64 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
_FORM = {
    "depositor": {"type": "string", "maxLength": MAX_CHARS["depositor"]},
    "work_content": {"type": "string", "maxLength": MAX_CHARS["work_content"]},
    "work_title": {"type": "string", "maxLength": MAX_CHARS["work_title"]},
    "statement": {
        "type": "string",
        "maxLength": MAX_CHARS["statement"],
        "description": "the applicant's statement, printed on the certificate: required, "
        "like depositor and work_content (in the request or in each item)",
    },
    "handle": {"type": "string", "maxLength": MAX_CHARS["handle"]},
    "tags": {"type": "array", "items": _STR, "maxItems": 32},
}
_HASH_ITEM = {
    "type": "object",
    "properties": {
        "sha256": _HEX64,
        "sha512": {"type": "string", "pattern": "^[0-9a-fA-F]{128}$"},
        "sm3": _HEX64,
        "size": {"type": "integer", "minimum": 0},
        "file_name": {"type": "string", "maxLength": 255},
        "media_type": {"type": "string", "maxLength": 127},
        **_FORM,
    },
    "additionalProperties": False,
    "required": ["sha256"],
}
_BATCH = {
    "type": "object",
    "properties": {**_FORM, "items": {"type": "array", "minItems": 1, "items": _HASH_ITEM}},
    "additionalProperties": False,
    "required": ["items"],
}
# Both bodies are checked field by field (evidence/deposit_forms.py): their refusals name
# each field by its path (items[2].sha256), which a model's errors would not.
_HASH_ONLY_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [_HASH_ITEM, _BATCH]}}},
}
_MULTIPART_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "metadata": {"type": "string", "contentMediaType": "application/json"},
                    "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                },
                "required": ["metadata", "file"],
            }
        }
    },
}
_OPERATIONS = (
    operation(
        "post",
        "/api/v1/deposits",
        "Hash-only deposit of one item (its fields) or a batch (`items` plus shared "
        "metadata): one credit per item reserved all-or-nothing, one RFC 3161 token "
        "per item over its SHA-256; an item the TSA cannot time-stamp is refunded",
        "deposit (or timestamp)",
        _CERTIFIED,
        400,
        402,
        413,
        415,
        503,
        body=_HASH_ONLY_BODY,
        params=(_IDEMPOTENCY_KEY,),
    ),
    operation(
        "post",
        "/api/v1/deposits/upload",
        "Stored deposit: multipart/form-data with a `metadata` JSON part first (shared "
        "metadata, optional `items`: one object per file, declaring the files) and one "
        "or more `file` parts, streamed into the blob store and hashed on the way. "
        "Credits and the monthly quota are claimed before any byte is stored (all "
        "declared files at once, else each file as its part arrives); more than "
        "[evidence] max_batch_items files: 422; a file over max_upload_bytes or a "
        "request (Content-Length or running total) over max_upload_request_bytes: 413. "
        "A refused upload leaves nothing stored",
        "deposit",
        _CERTIFIED,
        400,
        402,
        413,
        415,
        503,
        body=_MULTIPART_BODY,
        params=(_IDEMPOTENCY_KEY,),
    ),
)
# A deposit's 409, 422 and 429 say more than the other operations' (the Idempotency-Key,
# the monthly quota).
OPERATIONS = tuple(replace(op, responses={**op.responses, **_DEPOSIT_ERRORS}) for op in _OPERATIONS)
