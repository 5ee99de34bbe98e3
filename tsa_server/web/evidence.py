"""The evidence and fee endpoints (docs/spec/evidence.md S-7 .. S-12, P-1 .. P-8, REC-3, REC-4).

``POST /api/v1/credits/lots``            admin of an operator organisation: grant a lot
``GET  /api/v1/credits``                 read: balance, lots (FEFO order), credit entries
``POST /api/v1/deposits``                deposit or timestamp: hash-only, one or a batch
``POST /api/v1/deposits/upload``         deposit: multipart, metadata part then files
``GET  /api/v1/items``                   read: the organisation's items
``GET  /api/v1/items/{id}``              read: one item with its storage status
``GET  /api/v1/items/{id}/token.tsr``    read: the RFC 3161 reply, in every state
``GET  /api/v1/items/{id}/original``     read: the stored original, only while ACTIVE
``POST /api/v1/items/{id}/delete-original``  deposit: S-8 (confirmation required)
``POST /api/v1/items/{id}/reupload``     deposit: S-9, raw bytes, hash-checked
``POST /api/v1/items/{id}/reinstate``    deposit: S-10 within the grace window
``GET  /api/v1/reminders``               read: reminders due now and recent notices
``GET  /api/v1/forecast``                read: 12-month obligations against the balance
``GET  /api/v1/usage``                   read: monthly quota use, balance, rate limits
``PUT|GET|DELETE /api/v1/webhook``       admin: the REC-10 webhook (evidence/webhooks.py)

Fee refusals map to HTTP here: InsufficientCredits 402, StateError 409, field errors
422, an original that is locked 409 (EXPIRED) or gone 410; unknown items and other
organisations' items 404; the monthly quota (REC-10) 429 with Retry-After. Deposits
take an ``Idempotency-Key`` header (evidence/idempotency.py): a retry of the same
request gets the first 201 again.
Uploads are streamed into the blob store a chunk at a time, after credits, quota and
size bounds allow them (web/upload_parts.py, evidence/uploads.py); the file name a
client sends is kept as metadata and never becomes a path. Store and blob work runs in
the evidence service's worker threads (`service.off_loop`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from tsa_server.accounts.errors import AccountError, PermissionDenied
from tsa_server.accounts.key_rules import Scope
from tsa_server.beijing_calendar import to_beijing
from tsa_server.evidence.blobs import CHUNK_BYTES
from tsa_server.evidence.errors import EvidenceError, InvalidInput, ItemNotFound
from tsa_server.evidence.idempotency import HEADER as IDEMPOTENCY_HEADER
from tsa_server.evidence.idempotency import (
    InProgress,
    KeyReused,
    Replay,
    check_key,
    fingerprint,
)
from tsa_server.evidence.records import check_tags
from tsa_server.evidence.render_pool import CertificateRenderer
from tsa_server.evidence.renewal_runner import RenewalRunner, RenewalScheduler
from tsa_server.evidence.service import (
    DepositSpec,
    EvidenceService,
    check_digests,
)
from tsa_server.evidence.store.items import MAX_PAGE
from tsa_server.evidence.uploads import UploadSession
from tsa_server.evidence.views import entry_json, forecast_json, lot_json, notice_json
from tsa_server.evidence.webhook_dispatch import WebhookDispatcher
from tsa_server.evidence.webhook_fence import check_target
from tsa_server.evidence.webhooks import (
    EVENTS,
    WebhookSettings,
    check_events,
    check_url,
    new_secret,
    webhook_json,
)
from tsa_server.fees import (
    Digests,
    FeeError,
    FieldError,
    Mode,
    OriginalLocked,
    StorageStatus,
    parse_deposit_form,
)
from tsa_server.fees.deposit import MAX_CHARS, OPTIONAL, REQUIRED, TIME_FIELDS
from tsa_server.fees.kit import safe_name
from tsa_server.rfc3161 import response
from tsa_server.web.api import Described
from tsa_server.web.auth import PRINCIPAL, require, track_key_use
from tsa_server.web.bodies import read_json_object
from tsa_server.web.errors import BadRequest, instant, json_error
from tsa_server.web.openapi_schema import API_KEY as _KEY
from tsa_server.web.openapi_schema import json_body as _json_body
from tsa_server.web.openapi_schema import json_response as _json
from tsa_server.web.openapi_schema import object_schema as _object
from tsa_server.web.openapi_schema import query_param as _query
from tsa_server.web.openapi_schema import ref as _ref
from tsa_server.web.ratelimit import RATE_LIMITER, RateLimiter
from tsa_server.web.upload_parts import UploadBody, read_upload
from tsa_server.web.upload_parts import file_name as upload_file_name

log = logging.getLogger("tsa.web.evidence")

EVIDENCE = web.AppKey("evidence_service", EvidenceService)
SCHEDULER = web.AppKey("renewal_scheduler", RenewalScheduler)
DISPATCHER = web.AppKey("webhook_dispatcher", WebhookDispatcher)
RENDERER = web.AppKey("certificate_renderer", CertificateRenderer)
#: Largest JSON deposit body (a batch of hash-only items with their metadata).
MAX_DEPOSIT_JSON = 4 << 20
_FORM_FIELDS = frozenset(REQUIRED) | frozenset(OPTIONAL) - {"file_name", "media_type"}
_ITEM_FIELDS = frozenset({"sha256", "sha512", "sm3", "size", "file_name", "media_type", "tags"})
_UPLOAD_ITEM_FIELDS = frozenset({"sha256", "file_name", "tags"}) | _FORM_FIELDS


def setup(app: web.Application, services: Any) -> None:
    """Register the service and the API's rate limiter (REC-10) and start the renewal
    scheduler and the webhook dispatcher with the server."""
    conf = services.config.evidence
    limiter = RateLimiter.from_settings(
        conf.rate_per_second, conf.rate_burst, conf.account_rate_factor
    )
    if limiter is not None:
        app[RATE_LIMITER] = limiter
    renderer = app[RENDERER] = CertificateRenderer()  # certificates and kits

    async def rendering(app: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(renderer.close)

    app.cleanup_ctx.append(rendering)
    service = getattr(services, "evidence_service", None)
    if service is None:
        return
    app[EVIDENCE] = service
    track_key_use(app, service.store.path)  # API keys' last use, batched off the loop
    interval = services.config.evidence.renewal_interval_s

    async def scheduler(app: web.Application) -> AsyncIterator[None]:
        running = RenewalScheduler(RenewalRunner(service), interval)
        app[SCHEDULER] = running
        running.start()
        yield
        await running.stop()
        await asyncio.to_thread(service.close)  # deposits' worker threads finish

    async def dispatcher(app: web.Application) -> AsyncIterator[None]:
        sending = WebhookDispatcher(service.store, webhook_settings(conf), now=service.now)
        app[DISPATCHER] = sending
        sending.start()
        yield
        await sending.stop()

    app.cleanup_ctx.append(scheduler)
    app.cleanup_ctx.append(dispatcher)


def webhook_settings(conf: Any) -> WebhookSettings:
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


def _refuse_unknown(fields, allowed) -> None:
    """400 naming every field of a request object the endpoint does not know."""
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise FieldError({name: "unknown field" for name in unknown})


def _service(request: web.Request) -> EvidenceService:
    service = request.app.get(EVIDENCE)
    if service is None:
        raise BadRequest(404, "evidence deposits are not enabled on this server")
    return service


def _org(request: web.Request) -> str:
    return request[PRINCIPAL].org_id


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(f"{name} must be an integer {low}-{high}")
    return int(raw)


def _only_queries(request: web.Request, *names: str) -> None:
    unknown = sorted(set(request.query) - set(names))
    if unknown:
        raise InvalidInput(f"unknown query parameter(s): {', '.join(unknown)}")


def _item_id(request: web.Request) -> str:
    item_id = request.match_info["item_id"]
    if not item_id.isascii() or not item_id.isprintable() or len(item_id) > 64:
        raise ItemNotFound("no such item")
    return item_id


# ------------------------------------------------------------------ credits


@require(Scope.ADMIN)
async def grant_lot(request: web.Request) -> web.Response:
    service = _service(request)
    principal = request[PRINCIPAL]
    body = await read_json_object(request)
    _refuse_unknown(body, {"units", "idempotency_key", "note", "org_id"})
    if principal.org_id not in service.settings.operators:
        raise PermissionDenied("only the platform operator's admin keys grant credit lots")
    target = body.get("org_id", principal.org_id)
    if not isinstance(target, str):
        raise FieldError({"org_id": "must be an organisation id"})
    if "units" not in body or "idempotency_key" not in body:
        raise FieldError({n: "required" for n in ("units", "idempotency_key") if n not in body})
    grant = functools.partial(service.grant_lot, note=body.get("note", ""))
    lot, created = await service.off_loop(grant, target, body["units"], body["idempotency_key"])
    now = service.now()
    balance = await service.off_loop(service.balance, target, now)
    return web.json_response(
        {"lot": lot_json(lot, now), "balance": balance, "created": created},
        status=201 if created else 200,
    )


@require(Scope.READ)
async def credits(request: web.Request) -> web.Response:
    _only_queries(request, "after_id", "limit")
    service = _service(request)
    org = _org(request)
    after = _int_query(request, "after_id", 0, 0, 2**62)
    limit = _int_query(request, "limit", 100, 1, MAX_PAGE)
    now = service.now()

    def answer() -> dict[str, Any]:
        entries = service.entries(org, after_id=after, limit=limit)
        return {
            "balance": service.balance(org, now),
            "at": now.isoformat().replace("+00:00", "Z"),
            "lots": [lot_json(lot, now) for lot in service.lots(org)],
            "entries": [entry_json(e) for e in entries],
            "next_after_id": entries[-1].id if len(entries) == limit else None,
        }

    return web.json_response(await service.off_loop(answer))


# ------------------------------------------------------------------ deposits


def _form_fields(source: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k in _FORM_FIELDS or k in TIME_FIELDS}


def _prefixed(exc: FieldError, prefix: str) -> dict[str, str]:
    return {prefix + k: v for k, v in exc.fields.items()}


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise FieldError({where + "tags": "a list of strings"})
    try:
        return check_tags(value)
    except InvalidInput as exc:
        raise FieldError({where + "tags": str(exc)}) from None


def _spec(
    shared: dict[str, Any],
    raw: Any,
    prefix: str,
    mode: Mode,
    *,
    hash_fields: bool,
    defaults: dict[str, str] | None = None,
) -> DepositSpec | dict[str, str]:
    """One item's spec, or its field errors."""
    if not isinstance(raw, dict):
        return {prefix.rstrip("."): "must be an object"}
    errors: dict[str, str] = {}
    allowed = (_ITEM_FIELDS | _FORM_FIELDS) if hash_fields else _UPLOAD_ITEM_FIELDS
    for name in raw:
        if name not in allowed and name not in TIME_FIELDS:
            errors[prefix + name] = "unknown field"
    form_fields = {**_form_fields(shared), **(defaults or {}), **_form_fields(raw)}
    for name in ("file_name", "media_type"):
        if name in raw:
            form_fields[name] = raw[name]
    form = digests = tags = None
    try:
        form = parse_deposit_form(form_fields)
    except FieldError as exc:
        errors.update(_prefixed(exc, prefix))
    if hash_fields:
        try:
            digests = check_digests(raw, prefix)
        except FieldError as exc:
            errors.update(exc.fields)
        size = raw.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            errors[prefix + "size"] = "a non-negative integer (bytes)"
    else:
        size = None
    try:
        tags = _tags(raw["tags"] if "tags" in raw else shared.get("tags"), prefix)
    except FieldError as exc:
        errors.update(exc.fields)
    if errors:
        return errors
    assert form is not None and tags is not None
    if digests is None:
        digests = Digests("0" * 64)  # replaced by the stored original's digests
    return DepositSpec(mode, digests, form, size if size is not None else None, tags)


@require()
async def deposit(request: web.Request) -> web.Response:
    """Hash-only deposits: `{"items": [...], shared metadata}` or one item's fields."""
    principal = request[PRINCIPAL]
    if not (principal.has(Scope.DEPOSIT) or principal.has(Scope.TIMESTAMP)):
        raise PermissionDenied("this key lacks the deposit (or timestamp) scope", "deposit")
    service = _service(request)
    _only_queries(request)
    key = _idempotency_key(request)
    body = await read_json_object(request, MAX_DEPOSIT_JSON)
    if "items" in body:
        raw_items = body["items"]
        shared = {k: v for k, v in body.items() if k != "items"}
        if not isinstance(raw_items, list) or not raw_items:
            raise FieldError({"items": "a non-empty list of items"})
        _refuse_unknown(shared, _FORM_FIELDS | {"tags"} | TIME_FIELDS)
        prefixes = [f"items[{i}]." for i in range(len(raw_items))]
    else:
        raw_items, shared, prefixes = [body], {}, [""]
    if len(raw_items) > service.settings.max_batch_items:
        raise FieldError({"items": f"at most {service.settings.max_batch_items} per request"})
    specs, errors = [], {}
    for raw, prefix in zip(raw_items, prefixes, strict=True):
        spec = _spec(shared, raw, prefix, Mode.HASH_ONLY, hash_fields=True)
        if isinstance(spec, dict):
            errors.update(spec)
        else:
            specs.append(spec)
    if errors:
        raise FieldError(errors)
    return await _deposit_answer(request, service, specs, key, fingerprint(body))


def _idempotency_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key (400 when repeated or not 1-100 printable ASCII)."""
    values = request.headers.getall(IDEMPOTENCY_HEADER, [])
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput(f"send one {IDEMPOTENCY_HEADER} header")
    return check_key(values[0])


def _json_text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json", headers=headers)


def _replayed(replay: Replay) -> web.Response:
    return _json_text(replay.status, replay.body, {"Idempotent-Replayed": "true"})


async def _deposit_answer(
    request: web.Request,
    service: EvidenceService,
    specs: list[DepositSpec],
    key: str | None,
    request_sha256: str,
    uploads: UploadSession | None = None,
) -> web.Response:
    """Certify the deposit, or with an Idempotency-Key replay the first 201 answer."""
    if key is None:
        return _json_text(*await _certify(request, service, specs, uploads))
    org = _org(request)
    keys = service.idempotency
    try:
        replay = await service.off_loop(keys.claim, org, key, request_sha256)
    except KeyReused as exc:
        return json_error(422, str(exc))
    except InProgress as exc:
        return json_error(409, str(exc))
    if replay is not None:
        return _replayed(replay)
    finished = False
    try:
        status, text, headers = await _certify(request, service, specs, uploads)
        if status == 201:
            await service.off_loop(keys.finish, org, key, status, text)
            finished = True
        return _json_text(status, text, headers)
    finally:
        if not finished:  # refused or failed: nothing certified, a retry runs again
            await service.off_loop(keys.release, org, key)


async def _certify(
    request: web.Request,
    service: EvidenceService,
    specs: list[DepositSpec],
    uploads: UploadSession | None,
) -> tuple[int, str, dict[str, str] | None]:
    """Deposit the specs: (status, JSON text, headers) of the answer."""
    org = _org(request)
    result = await service.deposit(org, specs, uploads=uploads)
    body = {
        "batch": result.batch,
        "items": await service.off_loop(_views, service, org, result.items),
        "failed": [
            {"index": f.index, "sha256": f.sha256, "error": f.reason, "refunded": True}
            for f in result.failures
        ],
        "balance": await service.off_loop(service.balance, org),
    }
    if not result.items:
        body["error"] = "no item could be certified; every unit was refunded"
        return 503, json.dumps(body), {"Retry-After": "5"}
    dispatcher = request.app.get(DISPATCHER)
    if dispatcher is not None:
        dispatcher.wake()  # item.certified notices: deliver them now
    return 201, json.dumps(body), None


def _views(service: EvidenceService, org: str, items: Any) -> list[dict[str, Any]]:
    return [service.view(org, item) for item in items]


@require(Scope.DEPOSIT)
async def upload(request: web.Request) -> web.Response:
    """Stored deposits: multipart/form-data, a `metadata` JSON part first (shared fields
    and optionally `items`, one object per file, in order), then `file` parts. Credits,
    quota, the number of files and the bytes of the request are checked before anything
    is stored (web/upload_parts.py); a refused upload leaves nothing on disk."""
    service = _service(request)
    _only_queries(request)
    if request.content_type != "multipart/form-data":
        raise BadRequest(415, "send multipart/form-data: a metadata part, then file parts")
    org = _org(request)
    key = _idempotency_key(request)
    bound = service.settings.max_upload_request_bytes
    if request.content_length is not None and request.content_length > bound:
        raise BadRequest(
            413,
            f"the upload request is {request.content_length} bytes; [evidence] "
            f"max_upload_request_bytes is {bound}: send fewer or smaller files per request",
        )
    answered = None
    if key is not None:
        try:
            answered = await service.off_loop(service.idempotency.answered, org, key)
        except InProgress as exc:
            return json_error(409, str(exc))
    async with service.uploads(org) as session:
        try:
            if answered is None:  # 402 / 429 before any byte is read
                await session.claim(1)
            body = await read_upload(
                request,
                session,
                max_items=service.settings.max_batch_items,
                store=answered is None,
                check_metadata=_check_upload_metadata,
            )
        except (ClientPayloadError, ConnectionError, asyncio.IncompleteReadError):
            raise BadRequest(400, "incomplete request body") from None
        except (HttpProcessingError, ValueError, LookupError, AssertionError) as exc:
            if isinstance(exc, FeeError | EvidenceError | AccountError):
                raise
            raise BadRequest(400, "malformed multipart body") from None
        specs, described = _upload_specs(body)
        request_sha256 = fingerprint(described)
        if answered is not None:  # a retry of an answered request: nothing was stored
            if answered.request_sha256 != request_sha256:
                reused = f"this {IDEMPOTENCY_HEADER} was used for a different request"
                return json_error(422, reused)
            return _replayed(answered)
        return await _deposit_answer(request, service, specs, key, request_sha256, session)


def _check_upload_metadata(metadata: dict[str, Any]) -> None:
    """Refuse (FieldError) bad metadata before any file is read: unknown fields, and
    every declared item's fields as far as they are known without its file."""
    _refuse_unknown(metadata, _FORM_FIELDS | {"tags", "items"} | TIME_FIELDS)
    per_file = metadata.get("items", [])
    if not isinstance(per_file, list):
        raise FieldError({"items": "a list with one object per file"})
    errors: dict[str, str] = {}
    for i, raw in enumerate(per_file or [{}]):
        spec = _spec(
            metadata,
            _upload_item(raw),
            f"items[{i}].",
            Mode.STORED,
            hash_fields=False,
            defaults={"file_name": "", "media_type": "application/octet-stream"},
        )
        if isinstance(spec, dict):
            errors.update(spec)
    if errors:
        raise FieldError(errors)


def _upload_item(raw: Any) -> Any:
    """A per-file metadata object with its file_name made metadata-safe."""
    if isinstance(raw, dict) and "file_name" in raw:
        return {**raw, "file_name": upload_file_name(str(raw["file_name"]))}
    return raw


def _upload_specs(body: UploadBody) -> tuple[list[DepositSpec], dict[str, Any]]:
    """The items' specs (FieldError) and the request described for its idempotency
    fingerprint (metadata, each file's name, media type and SHA-256)."""
    metadata = {k: v for k, v in body.metadata.items() if k != "items"}
    specs, errors = [], {}
    for i, uploaded in enumerate(body.files):
        raw = _upload_item(body.per_file[i] if body.per_file else {})
        prefix = f"items[{i}]."
        spec = _spec(
            metadata,
            raw,
            prefix,
            Mode.STORED,
            hash_fields=False,
            defaults={"file_name": uploaded.name, "media_type": uploaded.media_type},
        )
        if isinstance(spec, dict):
            errors.update(spec)
            continue
        expected = raw.get("sha256") if isinstance(raw, dict) else None
        if expected is not None and str(expected).lower() != uploaded.sha256:
            errors[prefix + "sha256"] = "the uploaded bytes have another SHA-256"
            continue
        ref = uploaded.ref
        if ref is None:  # only hashed (an idempotent retry): never deposited
            specs.append(DepositSpec(Mode.STORED, Digests(uploaded.sha256), spec.form))
            continue
        digests = Digests(ref.sha256, ref.sha512, ref.sm3)
        specs.append(DepositSpec(Mode.STORED, digests, spec.form, ref.size, spec.tags, ref))
    if errors:
        raise FieldError(errors)
    described = {
        "metadata": dict(body.metadata),
        "files": [[f.name, f.media_type, f.sha256] for f in body.files],
    }
    return specs, described


# ------------------------------------------------------------------ items


@require(Scope.READ)
async def list_items(request: web.Request) -> web.Response:
    _only_queries(request, "limit", "offset")
    service = _service(request)
    org = _org(request)
    limit = _int_query(request, "limit", 100, 1, MAX_PAGE)
    offset = _int_query(request, "offset", 0, 0, 2**62)

    def answer() -> dict[str, Any]:
        items = service.items(org, limit=limit, offset=offset)
        return {
            "items": _views(service, org, items),
            "limit": limit,
            "offset": offset,
            "total": service.store.count_items(org),
        }

    return web.json_response(await service.off_loop(answer))


@require(Scope.READ)
async def get_item(request: web.Request) -> web.Response:
    _only_queries(request)
    service = _service(request)
    org = _org(request)
    return web.json_response(await service.off_loop(_view_of, service, org, _item_id(request)))


def _view_of(service: EvidenceService, org: str, item_id: str) -> dict[str, Any]:
    return service.view(org, service.item(org, item_id))


@require(Scope.READ)
async def token_tsr(request: web.Request) -> web.Response:
    """The TimeStampResp (granted) holding the item's token: `openssl ts -verify -in`."""
    _only_queries(request)
    service = _service(request)
    org = _org(request)
    item = await service.off_loop(service.item, org, _item_id(request))
    assert item.token is not None and item.serial is not None
    return web.Response(
        body=response.granted(item.token),
        content_type="application/timestamp-reply",
        headers={"Content-Disposition": f'attachment; filename="{item.serial:040x}.tsr"'},
    )


@require(Scope.READ)
async def original(request: web.Request) -> web.StreamResponse:
    """The stored original while ACTIVE; 409 when EXPIRED (locked), 410 when gone."""
    _only_queries(request)
    service = _service(request)
    org = _org(request)
    item_id = _item_id(request)
    try:
        item, handle = await service.off_loop(service.open_original, org, item_id)
    except OriginalLocked as exc:
        fee = await service.off_loop(service.fee_item, org, item_id)
        status = 409 if fee.status is StorageStatus.EXPIRED else 410
        return json_error(status, str(exc))
    try:
        reply = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": _disposition(item.file_name, item.sha256),
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            }
        )
        reply.content_length = item.size
        await reply.prepare(request)
        while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
            await reply.write(chunk)
        await reply.write_eof()
        return reply
    finally:
        handle.close()


def _disposition(file_name: str, sha256: str) -> str:
    """attachment with an ASCII fallback and the RFC 5987 UTF-8 name (at most 255 bytes,
    one path component)."""
    from urllib.parse import quote

    file_name = safe_name(file_name, "") if file_name else ""
    fallback = "".join(c if c.isascii() and c.isalnum() or c in "._-" else "_" for c in file_name)
    fallback = fallback or sha256
    if not file_name:
        return f'attachment; filename="{fallback}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


@require(Scope.DEPOSIT)
async def delete_original(request: web.Request) -> web.Response:
    _only_queries(request)
    service = _service(request)
    org = _org(request)
    item_id = _item_id(request)
    await service.off_loop(service.item, org, item_id)  # 404 before the body
    body = await read_json_object(request)
    _refuse_unknown(body, {"confirm_downloaded"})
    confirmed = body.get("confirm_downloaded", False)
    if not isinstance(confirmed, bool):
        raise FieldError({"confirm_downloaded": "true or false"})
    delete = functools.partial(service.delete_original, downloaded_confirmed=confirmed)
    item = await service.off_loop(delete, org, item_id)
    return web.json_response(await service.off_loop(service.view, org, item))


@require(Scope.DEPOSIT)
async def reupload(request: web.Request) -> web.Response:
    """S-9: the original's bytes as application/octet-stream, streamed and hashed."""
    _only_queries(request)
    service = _service(request)
    org = _org(request)
    item_id = _item_id(request)
    await service.off_loop(service.item, org, item_id)
    if request.content_type != "application/octet-stream":
        raise BadRequest(415, "send the original as application/octet-stream")
    length = request.content_length
    if length is not None and length > service.settings.max_upload_bytes:
        raise BadRequest(413, f"the upload exceeds {service.settings.max_upload_bytes} bytes")
    chunks = request.content.iter_chunked(CHUNK_BYTES)
    try:  # 404 / 409 / 402 and the size before a byte is stored (service.reupload)
        item = await service.reupload(org, item_id, chunks, length=length)
    except (ClientPayloadError, ConnectionError, asyncio.IncompleteReadError):
        raise BadRequest(400, "incomplete request body") from None
    return web.json_response(await service.off_loop(service.view, org, item))


@require(Scope.DEPOSIT)
async def auto_renew(request: web.Request) -> web.Response:
    """S-7 [EXT]: `{"auto_renew": false}` lets the original expire at the period's end."""
    _only_queries(request)
    service = _service(request)
    org = _org(request)
    item_id = _item_id(request)
    await service.off_loop(service.item, org, item_id)
    body = await read_json_object(request)
    _refuse_unknown(body, {"auto_renew"})
    on = body.get("auto_renew")
    if not isinstance(on, bool):
        raise FieldError({"auto_renew": "true or false"})
    item = await service.off_loop(service.set_auto_renew, org, item_id, on)
    return web.json_response(await service.off_loop(service.view, org, item))


@require(Scope.DEPOSIT)
async def reinstate(request: web.Request) -> web.Response:
    _only_queries(request)
    service = _service(request)
    org = _org(request)
    item = await service.off_loop(service.reinstate, org, _item_id(request))
    return web.json_response(await service.off_loop(service.view, org, item))


# ------------------------------------------------------------------ reminders, forecast


@require(Scope.READ)
async def reminders(request: web.Request) -> web.Response:
    _only_queries(request)
    service = _service(request)
    org = _org(request)

    def answer() -> dict[str, Any]:
        return {
            "due": [notice_json(n) for n in service.reminders(org)],
            "notices": [notice_json(n) for n in service.notices(org)],
        }

    return web.json_response(await service.off_loop(answer))


@require(Scope.READ)
async def forecast(request: web.Request) -> web.Response:
    _only_queries(request)
    service = _service(request)
    return web.json_response(forecast_json(await service.off_loop(service.forecast, _org(request))))


@require(Scope.READ)
async def usage(request: web.Request) -> web.Response:
    """REC-10: this month's certified items against the quota, the balance and the
    calling key's rate limits (tokens left after this request)."""
    _only_queries(request)
    service = _service(request)
    org = _org(request)
    now = service.now()
    limiter = request.app.get(RATE_LIMITER)  # its state now, before waiting for the store
    rate_limit = None if limiter is None else limiter.describe(request[PRINCIPAL].key_id, org)
    used = await service.off_loop(service.usage, org, now)
    balance = await service.off_loop(service.balance, org, now)
    return web.json_response(
        {
            "at": instant(now),
            "window": {
                "start": instant(used.start),
                "end": instant(used.end),
                "start_beijing": to_beijing(used.start).isoformat(),
                "end_beijing": to_beijing(used.end).isoformat(),
            },
            "items": {"used": used.used, "limit": used.limit, "remaining": used.remaining},
            "balance": balance,
            "rate_limit": rate_limit,
        }
    )


# ------------------------------------------------------------------ webhook (REC-10)


@require(Scope.ADMIN)
async def put_webhook(request: web.Request) -> web.Response:
    """Set the organisation's webhook; the answer holds the signing secret, once."""
    _only_queries(request)
    service = _service(request)
    body = await read_json_object(request)
    _refuse_unknown(body, {"url", "events"})
    errors: dict[str, str] = {}
    url = events = None
    try:
        url = check_url(body.get("url"))
    except FieldError as exc:
        errors.update(exc.fields)
    try:
        events = check_events(body.get("events"))
    except FieldError as exc:
        errors.update(exc.fields)
    if errors:
        raise FieldError(errors)
    assert url is not None
    dispatcher = request.app.get(DISPATCHER)
    settings = dispatcher.settings if dispatcher is not None else WebhookSettings()
    await check_target(url, settings.policy(), timeout_s=settings.timeout_s)
    org = _org(request)
    secret = new_secret()
    created = service.store.put_webhook(
        org, url, None if events is None else " ".join(events), secret, service.now()
    )
    row = service.store.webhook(org)
    assert row is not None
    log.info("webhook of %s %s", org, "created" if created else "replaced")
    return web.json_response(
        {**webhook_json(row), "secret": secret, "created": created},
        status=201 if created else 200,
    )


@require(Scope.ADMIN)
async def get_webhook(request: web.Request) -> web.Response:
    _only_queries(request)
    row = _service(request).store.webhook(_org(request))
    if row is None:
        return json_error(404, "no webhook is set (PUT /api/v1/webhook)")
    return web.json_response(webhook_json(row))


@require(Scope.ADMIN)
async def delete_webhook(request: web.Request) -> web.Response:
    _only_queries(request)
    if not _service(request).store.delete_webhook(_org(request)):
        return json_error(404, "no webhook is set")
    return web.json_response({"deleted": True})


# ------------------------------------------------------------------ OpenAPI

_STR = {"type": "string"}
_GRANT_KEY_PATTERN = "^[A-Za-z0-9._:/-]{1,100}$"
_NSTR = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_HEX64 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
_ITEM_ID = {"name": "item_id", "in": "path", "required": True, "schema": _STR}
_FORM = {
    "depositor": {"type": "string", "maxLength": MAX_CHARS["depositor"]},
    "work_content": {"type": "string", "maxLength": MAX_CHARS["work_content"]},
    "work_title": {"type": "string", "maxLength": MAX_CHARS["work_title"]},
    "statement": {"type": "string", "maxLength": MAX_CHARS["statement"]},
    "handle": {"type": "string", "maxLength": MAX_CHARS["handle"]},
    "tags": {"type": "array", "items": _STR, "maxItems": 32},
}
_HASH_ITEM = {
    "sha256": _HEX64,
    "sha512": {"type": "string", "pattern": "^[0-9a-fA-F]{128}$"},
    "sm3": _HEX64,
    "size": {"type": "integer", "minimum": 0},
    "file_name": {"type": "string", "maxLength": 255},
    "media_type": {"type": "string", "maxLength": 127},
}


_ERROR_TEXT = {
    400: "bad input",
    401: "no or bad API key",
    402: "not enough credits (nothing was debited)",
    403: "the key lacks the scope (or is not an operator's)",
    404: "unknown item (or another organisation's)",
    409: "not allowed in the item's storage state",
    410: "the original was deleted or purged",
    413: "too large",
    415: "wrong media type",
    422: "field errors",
    429: "rate limit of the key or its organisation (Retry-After: seconds)",
    503: "the TSA could not time-stamp; units refunded",
}
#: 429 of every authenticated operation (web/openapi.py adds it to the others too).
RATE_LIMITED = {
    **_json(_ref("TooManyRequests"), _ERROR_TEXT[429]),
    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-100 printable ASCII characters: a retry of the same request with "
    "the same key within 24 h gets the first 201 answer again (header "
    "Idempotent-Replayed: true), without a second reservation or token; the same key "
    "with another request is refused (422), and while the first is running, a retry "
    "gets 409. Answers other than 201 are not kept: a retry runs again.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[ -~]+$"},
}
_DEPOSIT_ERRORS = {
    "409": _json(_ref("Error"), "a request with this Idempotency-Key is still in progress"),
    "422": _json(
        _ref("FieldErrors"), "field errors, or the Idempotency-Key was used for another request"
    ),
    "429": {
        **_json(
            {"oneOf": [_ref("QuotaExceeded"), _ref("TooManyRequests")]},
            "the monthly item quota (refused whole, nothing reserved; Retry-After: seconds "
            "until the next Beijing month) or the rate limit",
        ),
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    out = {}
    for code in codes:
        schema = _ref("FieldErrors") if code == 422 else _ref("Error")
        if code == 402:
            schema = _ref("InsufficientCredits")
        if code == 503:
            schema = _ref("DepositResult")
        out[str(code)] = RATE_LIMITED if code == 429 else _json(schema, _ERROR_TEXT[code])
    return out


def _op(summary: str, scope: str, ok: dict[str, Any], *codes: int, **extra: Any) -> dict:
    op = {
        "summary": summary,
        "description": f"Needs an API key with the `{scope}` scope.",
        "security": _KEY,
        "responses": {**ok, **_errors(401, 403, 429, *codes)},
    }
    op.update(extra)
    return op


_PAGE = [_query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE})]

OPENAPI_SCHEMAS: dict[str, Any] = {
    "TooManyRequests": {
        "type": "object",
        "properties": {
            "error": _STR,
            "bucket": {"enum": ["key", "account"]},
            "per_second": {"type": "number"},
            "burst": _INT,
            "retry_after": _INT,
        },
        "required": ["error"],
    },
    "QuotaExceeded": {
        "type": "object",
        "properties": {
            "error": _STR,
            "quota": {"const": "monthly_item_quota"},
            "used": _INT,
            "limit": _INT,
            "requested": _INT,
            "window_start": _STR,
            "window_end": _STR,
            "retry_after": _INT,
        },
        "required": ["error", "quota", "used", "limit"],
    },
    "Usage": {
        "type": "object",
        "properties": {
            "at": _STR,
            "window": {
                "type": "object",
                "description": "the current Beijing calendar month [start, end)",
                "properties": {
                    "start": _STR,
                    "end": _STR,
                    "start_beijing": _STR,
                    "end_beijing": _STR,
                },
            },
            "items": {
                "type": "object",
                "description": "items certified this month (and held by running "
                "deposits); limit and remaining null when there is no quota",
                "properties": {
                    "used": _INT,
                    "limit": {"type": ["integer", "null"]},
                    "remaining": {"type": ["integer", "null"]},
                },
            },
            "balance": _INT,
            "rate_limit": {
                "type": ["object", "null"],
                "description": "the calling key's and its organisation's token buckets "
                "(tokens left after this request); null when not limited",
            },
        },
    },
    "FieldErrors": {
        "type": "object",
        "properties": {"error": _STR, "fields": {"type": "object"}},
        "required": ["error"],
    },
    "InsufficientCredits": {
        "type": "object",
        "properties": {"error": _STR, "needed": _INT, "available": _INT, "lapsed": _INT},
        "required": ["error", "needed", "available"],
    },
    "Lot": {
        "type": "object",
        "properties": {
            "id": _STR,
            "purchased_at": _STR,
            "lapses_at": _STR,
            "lapses_at_beijing": _STR,
            "quantity": _INT,
            "remaining": _INT,
            "held": _INT,
            "used": _INT,
            "lapsed": _INT,
            "adjusted": _INT,
            "usable": {"type": "boolean"},
        },
    },
    "CreditEntry": {
        "type": "object",
        "properties": {
            "id": _INT,
            "kind": _STR,
            "units": {"type": "integer", "description": "signed change of the balance"},
            "lot": _NSTR,
            "item": _NSTR,
            "period": {"type": ["integer", "null"]},
            "idempotency_key": _STR,
            "at": _NSTR,
            "created_at": _STR,
            "note": _STR,
        },
    },
    "Item": {
        "type": "object",
        "properties": {
            "id": _STR,
            "serial": _STR,
            "mode": {"enum": ["HASH_ONLY", "STORED"]},
            "sha256": _STR,
            "sha512": _NSTR,
            "sm3": _NSTR,
            "size": {"type": ["integer", "null"]},
            "file_name": _STR,
            "depositor": _STR,
            "work_title": _STR,
            "work_content": _STR,
            "statement": _STR,
            "certified_at": _STR,
            "certified_at_beijing": _STR,
            "epoch": _STR,
            "filing_status": _STR,
            "storage": {
                "type": ["object", "null"],
                "description": "null for hash-only items (no storage status, S-1)",
            },
            "downloads": {"type": "object"},
        },
        "required": ["id", "serial", "mode", "sha256", "certified_at"],
    },
    "DepositResult": {
        "type": "object",
        "properties": {
            "batch": _STR,
            "items": {"type": "array", "items": _ref("Item")},
            "failed": {"type": "array", "items": {"type": "object"}},
            "balance": _INT,
            "error": _STR,
        },
    },
    "Notice": {
        "type": "object",
        "properties": {
            "key": _STR,
            "kind": _STR,
            "at": _STR,
            "subject": _STR,
            "target": _NSTR,
            "units": _INT,
            "covered": {"type": ["boolean", "null"]},
            "detail": _STR,
        },
    },
    "Webhook": {
        "type": "object",
        "description": "the organisation's webhook (never its secret after PUT)",
        "properties": {
            "url": _STR,
            "events": {"type": "array", "items": {"enum": list(EVENTS)}},
            "all_events": {"type": "boolean", "description": "kinds added later included"},
            "created_at": _STR,
            "updated_at": _STR,
            "deliveries": {
                "type": "object",
                "properties": {
                    "delivered": _INT,
                    "pending": _INT,
                    "given_up": _INT,
                    "last_attempt": {
                        "type": ["object", "null"],
                        "description": "last_attempt_at, last_status (the receiver's HTTP "
                        "status) and last_error: timeout, connection refused, connection "
                        "failed, TLS error, DNS failure, blocked address, plain http not "
                        "allowed, or HTTP <status>",
                    },
                },
            },
        },
        "required": ["url", "events", "created_at", "updated_at"],
    },
}

_HASH_ITEM_SCHEMA = _object({**_HASH_ITEM, **_FORM}, ("sha256",))
_WEBHOOK_SET = {
    "allOf": [
        _ref("Webhook"),
        {
            "type": "object",
            "properties": {"secret": _STR, "created": {"type": "boolean"}},
            "required": ["secret", "created"],
        },
    ]
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/credits/lots": {
        "post": _op(
            "Grant a credit lot (P-1): operator organisations' admin keys only; "
            "idempotent by idempotency_key (200 when already granted)",
            "admin",
            {
                "201": _json(
                    _object({"lot": _ref("Lot"), "balance": _INT, "created": {"type": "boolean"}}),
                    "granted",
                ),
                "200": _json({"type": "object"}, "already granted with this key"),
            },
            400,
            404,
            409,
            413,
            415,
            422,
            requestBody=_json_body(
                _object(
                    {
                        "units": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                        "idempotency_key": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9._:/-]{1,100}$",
                        },
                        "note": {"type": "string", "maxLength": 500},
                        "org_id": _STR,
                    },
                    ("units", "idempotency_key"),
                )
            ),
        )
    },
    "/api/v1/credits": {
        "get": _op(
            "Balance, lots in consumption order (FEFO) and the credit entries",
            "read",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "balance": _INT,
                            "at": _STR,
                            "lots": {"type": "array", "items": _ref("Lot")},
                            "entries": {"type": "array", "items": _ref("CreditEntry")},
                            "next_after_id": {"type": ["integer", "null"]},
                        },
                    }
                )
            },
            400,
            parameters=[
                _query("after_id", {"type": "integer", "minimum": 0}),
                *_PAGE,
            ],
        )
    },
    "/api/v1/deposits": {
        "post": _op(
            "Hash-only deposit of one item (its fields) or a batch (`items` plus shared "
            "metadata): one credit per item reserved all-or-nothing, one RFC 3161 token "
            "per item over its SHA-256; an item the TSA cannot time-stamp is refunded",
            "deposit (or timestamp)",
            {"201": _json(_ref("DepositResult"), "certified")},
            400,
            402,
            413,
            415,
            503,
            parameters=[_IDEMPOTENCY_KEY],
            requestBody=_json_body(
                {
                    "oneOf": [
                        _HASH_ITEM_SCHEMA,
                        _object(
                            {
                                **_FORM,
                                "items": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": _object({**_HASH_ITEM, **_FORM}, ("sha256",)),
                                },
                            },
                            ("items",),
                        ),
                    ]
                }
            ),
        )
    },
    "/api/v1/deposits/upload": {
        "post": _op(
            "Stored deposit: multipart/form-data with a `metadata` JSON part first (shared "
            "metadata, optional `items`: one object per file, declaring the files) and one "
            "or more `file` parts, streamed into the blob store and hashed on the way. "
            "Credits and the monthly quota are claimed before any byte is stored (all "
            "declared files at once, else each file as its part arrives); more than "
            "[evidence] max_batch_items files: 422; a file over max_upload_bytes or a "
            "request (Content-Length or running total) over max_upload_request_bytes: 413. "
            "A refused upload leaves nothing stored",
            "deposit",
            {"201": _json(_ref("DepositResult"), "certified")},
            400,
            402,
            413,
            415,
            503,
            parameters=[_IDEMPOTENCY_KEY],
            requestBody={
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "metadata": {
                                    "type": "string",
                                    "contentMediaType": "application/json",
                                },
                                "file": {
                                    "type": "array",
                                    "items": {"type": "string", "format": "binary"},
                                },
                            },
                            "required": ["metadata", "file"],
                        }
                    }
                },
            },
        )
    },
    "/api/v1/items": {
        "get": _op(
            "The organisation's certified items, newest first",
            "read",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": _ref("Item")},
                            "limit": _INT,
                            "offset": _INT,
                            "total": _INT,
                        },
                    }
                )
            },
            400,
            parameters=[
                *_PAGE,
                _query("offset", {"type": "integer", "minimum": 0}),
            ],
        )
    },
    "/api/v1/items/{item_id}": {
        "get": _op(
            "One item with its storage status and download links",
            "read",
            {"200": _json(_ref("Item"))},
            400,
            404,
            parameters=[_ITEM_ID],
        )
    },
    "/api/v1/items/{item_id}/token.tsr": {
        "get": _op(
            "The item's RFC 3161 TimeStampResp, downloadable in every storage state",
            "read",
            {
                "200": {
                    "description": "the .tsr",
                    "content": {
                        "application/timestamp-reply": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                }
            },
            400,
            404,
            parameters=[_ITEM_ID],
        )
    },
    "/api/v1/items/{item_id}/original": {
        "get": _op(
            "The stored original while its storage is ACTIVE (S-10: 409 when EXPIRED, 410 "
            "when deleted or purged; the token stays downloadable)",
            "read",
            {
                "200": {
                    "description": "the original's bytes",
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                }
            },
            400,
            404,
            409,
            410,
            parameters=[_ITEM_ID],
        )
    },
    "/api/v1/items/{item_id}/delete-original": {
        "post": _op(
            "Delete the stored original (S-8); needs confirm_downloaded: true (R-10); no "
            "storage fee is charged afterwards",
            "deposit",
            {"200": _json(_ref("Item"))},
            400,
            404,
            409,
            413,
            415,
            422,
            parameters=[_ITEM_ID],
            requestBody=_json_body(
                _object({"confirm_downloaded": {"type": "boolean"}}, ("confirm_downloaded",))
            ),
        )
    },
    "/api/v1/items/{item_id}/reupload": {
        "post": _op(
            "Re-upload a deleted or purged original (S-9): the bytes must hash to the "
            "certified SHA-256; the first 12-month period is debited at once (no free term)",
            "deposit",
            {"200": _json(_ref("Item"))},
            400,
            402,
            404,
            409,
            413,
            415,
            422,
            parameters=[_ITEM_ID],
            requestBody={
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            },
        )
    },
    "/api/v1/items/{item_id}/auto-renew": {
        "post": _op(
            "Switch automatic storage renewal on or off (S-7 extension): off, the original "
            "expires without a debit at the end of the paid period",
            "deposit",
            {"200": _json(_ref("Item"))},
            400,
            404,
            409,
            413,
            415,
            422,
            parameters=[_ITEM_ID],
            requestBody=_json_body(_object({"auto_renew": {"type": "boolean"}}, ("auto_renew",))),
        )
    },
    "/api/v1/items/{item_id}/reinstate": {
        "post": _op(
            "Reinstate an EXPIRED item within the grace window (S-10) by paying the "
            "missed period(s) from the original expiry",
            "deposit",
            {"200": _json(_ref("Item"))},
            400,
            402,
            404,
            409,
            parameters=[_ITEM_ID],
        )
    },
    "/api/v1/reminders": {
        "get": _op(
            "Reminders due now (storage expiry, purge, lot lapse, low balance) and the "
            "latest notices",
            "read",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "due": {"type": "array", "items": _ref("Notice")},
                            "notices": {"type": "array", "items": _ref("Notice")},
                        },
                    }
                )
            },
            400,
        )
    },
    "/api/v1/usage": {
        "get": _op(
            "REC-10 usage: the current Beijing-month window, certified items against the "
            "monthly quota, the balance and the key's rate limits",
            "read",
            {"200": _json(_ref("Usage"))},
            400,
        )
    },
    "/api/v1/webhook": {
        "put": _op(
            "Set the organisation's REC-10 webhook: an https URL (http only where the "
            "operator allows it; no credentials in it) whose host is a public address "
            "(loopback, private, link-local, multicast and reserved addresses are refused "
            "with 422, and again at every delivery), and the notice kinds it gets (default "
            "all). Each notice is POSTed as JSON with X-TSA-Event, X-TSA-Delivery (the "
            "notice key: the same on retries) and X-TSA-Signature: t=<unix seconds>,"
            'v1=<hex HMAC-SHA256 of "<t>.<body>"> (refuse a t outside a few minutes of '
            "your clock), retried with backoff until a 2xx (redirects are not followed). "
            "Failures show as a category (timeout, connection refused, TLS error, DNS "
            "failure, blocked address, HTTP status). The answer holds the signing secret, "
            "shown this once; a PUT again replaces the URL, events and secret",
            "admin",
            {
                "201": _json(
                    _WEBHOOK_SET,
                    "set (the secret is shown once)",
                ),
                "200": _json(
                    _WEBHOOK_SET,
                    "replaced (a new secret)",
                ),
            },
            400,
            413,
            415,
            422,
            requestBody=_json_body(
                _object(
                    {
                        "url": {"type": "string", "format": "uri", "maxLength": 2048},
                        "events": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"enum": list(EVENTS)},
                        },
                    },
                    ("url",),
                )
            ),
        ),
        "get": _op(
            "The organisation's webhook and its delivery counts (never the secret)",
            "admin",
            {"200": _json(_ref("Webhook"))},
            400,
            404,
        ),
        "delete": _op(
            "Remove the organisation's webhook (undelivered notices are not sent)",
            "admin",
            {"200": _json(_object({"deleted": {"type": "boolean"}}))},
            400,
            404,
        ),
    },
    "/api/v1/forecast": {
        "get": _op(
            "The 12-month storage obligations forecast against the balance (REC-3)",
            "read",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "balance": _INT,
                            "total_due": _INT,
                            "shortfall": _INT,
                            "low_balance": {"type": "boolean"},
                            "months": {"type": "array", "items": {"type": "object"}},
                            "obligations": {"type": "array", "items": {"type": "object"}},
                        },
                    }
                )
            },
            400,
        )
    },
}
for _path in ("/api/v1/deposits", "/api/v1/deposits/upload"):
    OPENAPI_PATHS[_path]["post"]["responses"].update(_DEPOSIT_ERRORS)

DESCRIBED = Described(schemas=OPENAPI_SCHEMAS, paths=OPENAPI_PATHS)
