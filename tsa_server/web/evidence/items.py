"""An organisation's evidence items over HTTP (S-7 .. S-11):

``GET  /api/v1/items``                        read: the organisation's items
``GET  /api/v1/items/{id}``                   read: one item with its storage status
``GET  /api/v1/items/{id}/token.tsr``         read: the RFC 3161 reply, in every state
``GET  /api/v1/items/{id}/original``          read: the stored original, only while ACTIVE
``POST /api/v1/items/{id}/delete-original``   deposit: S-8 (confirmation required)
``POST /api/v1/items/{id}/reupload``          deposit: S-9, raw bytes, hash-checked
``POST /api/v1/items/{id}/auto-renew``        deposit: S-7 [EXT] renewal on or off
``POST /api/v1/items/{id}/reinstate``         deposit: S-10 within the grace window

Unknown items and other organisations' items are 404; an original that is locked is
409 (EXPIRED) or gone 410.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any
from urllib.parse import quote

from aiohttp import ClientPayloadError, web

from ledger.serials import serial_text
from tsa_server.accounts.key_rules import Scope
from tsa_server.evidence.blobs import CHUNK_BYTES
from tsa_server.evidence.deposit_requests import views
from tsa_server.evidence.service import EvidenceService
from tsa_server.fees.kit import safe_name
from tsa_server.rfc3161 import response
from tsa_server.web.api import Body, json_response, query_params, ref
from tsa_server.web.auth import require
from tsa_server.web.errors import BadRequest
from tsa_server.web.evidence.context import (
    INT,
    ITEM_ID,
    NoQuery,
    Offset,
    Page,
    fields,
    item_id_of,
    operation,
    org_of,
    query,
    service_of,
)


class ItemsQuery(Body):
    """GET /api/v1/items: a page, newest first."""

    limit: Page = 100
    offset: Offset = 0


class DeleteOriginal(Body):
    """POST /api/v1/items/{id}/delete-original (R-10: true only once downloaded)."""

    confirm_downloaded: bool


class AutoRenew(Body):
    """POST /api/v1/items/{id}/auto-renew."""

    auto_renew: bool


@require(Scope.READ)
async def list_items(request: web.Request) -> web.Response:
    asked = query(request, ItemsQuery)
    service = service_of(request)
    org = org_of(request)

    def answer() -> dict[str, Any]:
        items = service.items(org, limit=asked.limit, offset=asked.offset)
        return {
            "items": views(service, org, items),
            "limit": asked.limit,
            "offset": asked.offset,
            "total": service.store.count_items(org),
        }

    return web.json_response(await service.off_loop(answer))


@require(Scope.READ)
async def get_item(request: web.Request) -> web.Response:
    query(request, NoQuery)
    service = service_of(request)
    org = org_of(request)
    return web.json_response(await service.off_loop(_view_of, service, org, item_id_of(request)))


def _view_of(service: EvidenceService, org: str, item_id: str) -> dict[str, Any]:
    return service.view(org, service.item(org, item_id))


@require(Scope.READ)
async def token_tsr(request: web.Request) -> web.Response:
    """The TimeStampResp (granted) holding the item's token: `openssl ts -verify -in`."""
    query(request, NoQuery)
    service = service_of(request)
    org = org_of(request)
    item = await service.off_loop(service.item, org, item_id_of(request))
    assert item.token is not None and item.serial is not None
    return web.Response(
        body=response.granted(item.token),
        content_type="application/timestamp-reply",
        headers={"Content-Disposition": f'attachment; filename="{serial_text(item.serial)}.tsr"'},
    )


@require(Scope.READ)
async def original(request: web.Request) -> web.StreamResponse:
    """The stored original while ACTIVE; 409 when EXPIRED (locked), 410 when gone."""
    query(request, NoQuery)
    service = service_of(request)
    org = org_of(request)
    item_id = item_id_of(request)
    # 409 while EXPIRED (locked), 410 once gone: web/errors.py
    item, handle = await service.off_loop(service.open_original, org, item_id)
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
    file_name = safe_name(file_name, "") if file_name else ""
    fallback = "".join(c if c.isascii() and c.isalnum() or c in "._-" else "_" for c in file_name)
    fallback = fallback or sha256
    if not file_name:
        return f'attachment; filename="{fallback}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


@require(Scope.DEPOSIT)
async def delete_original(request: web.Request) -> web.Response:
    query(request, NoQuery)
    service = service_of(request)
    org = org_of(request)
    item_id = item_id_of(request)
    await service.off_loop(service.item, org, item_id)  # 404 before the body
    body = await fields(request, DeleteOriginal)
    delete = functools.partial(
        service.delete_original, downloaded_confirmed=body.confirm_downloaded
    )
    item = await service.off_loop(delete, org, item_id)
    return web.json_response(await service.off_loop(service.view, org, item))


@require(Scope.DEPOSIT)
async def reupload(request: web.Request) -> web.Response:
    """S-9: the original's bytes as application/octet-stream, streamed and hashed."""
    query(request, NoQuery)
    service = service_of(request)
    org = org_of(request)
    item_id = item_id_of(request)
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
    query(request, NoQuery)
    service = service_of(request)
    org = org_of(request)
    item_id = item_id_of(request)
    await service.off_loop(service.item, org, item_id)
    body = await fields(request, AutoRenew)
    item = await service.off_loop(service.set_auto_renew, org, item_id, body.auto_renew)
    return web.json_response(await service.off_loop(service.view, org, item))


@require(Scope.DEPOSIT)
async def reinstate(request: web.Request) -> web.Response:
    query(request, NoQuery)
    service = service_of(request)
    org = org_of(request)
    item = await service.off_loop(service.reinstate, org, item_id_of(request))
    return web.json_response(await service.off_loop(service.view, org, item))


# ------------------------------------------------------------------ OpenAPI

_ITEM = {"200": json_response(ref("Item"))}
_ITEMS = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": ref("Item")},
        "limit": INT,
        "offset": INT,
        "total": INT,
    },
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_PATH = "/api/v1/items/{item_id}"
OPERATIONS = (
    operation(
        "get",
        "/api/v1/items",
        "The organisation's certified items, newest first",
        "read",
        {"200": json_response(_ITEMS)},
        400,
        params=query_params(ItemsQuery),
    ),
    operation(
        "get",
        _PATH,
        "One item with its storage status and download links",
        "read",
        _ITEM,
        400,
        404,
        params=(ITEM_ID,),
    ),
    operation(
        "get",
        _PATH + "/token.tsr",
        "The item's RFC 3161 TimeStampResp, downloadable in every storage state",
        "read",
        {"200": {"description": "the .tsr", "content": {"application/timestamp-reply": _BINARY}}},
        400,
        404,
        params=(ITEM_ID,),
    ),
    operation(
        "get",
        _PATH + "/original",
        "The stored original while its storage is ACTIVE (S-10: 409 when EXPIRED, 410 "
        "when deleted or purged; the token stays downloadable)",
        "read",
        {
            "200": {
                "description": "the original's bytes",
                "content": {"application/octet-stream": _BINARY},
            }
        },
        400,
        404,
        409,
        410,
        params=(ITEM_ID,),
    ),
    operation(
        "post",
        _PATH + "/delete-original",
        "Delete the stored original (S-8); needs confirm_downloaded: true (R-10); no "
        "storage fee is charged afterwards",
        "deposit",
        _ITEM,
        400,
        404,
        409,
        413,
        415,
        422,
        body=DeleteOriginal,
        params=(ITEM_ID,),
    ),
    operation(
        "post",
        _PATH + "/reupload",
        "Re-upload a deleted or purged original (S-9): the bytes must hash to the "
        "certified SHA-256; the first 12-month period is debited at once (no free term)",
        "deposit",
        _ITEM,
        400,
        402,
        404,
        409,
        413,
        415,
        422,
        body={"required": True, "content": {"application/octet-stream": _BINARY}},
        params=(ITEM_ID,),
    ),
    operation(
        "post",
        _PATH + "/auto-renew",
        "Switch automatic storage renewal on or off (S-7 extension): off, the original "
        "expires without a debit at the end of the paid period",
        "deposit",
        _ITEM,
        400,
        404,
        409,
        413,
        415,
        422,
        body=AutoRenew,
        params=(ITEM_ID,),
    ),
    operation(
        "post",
        _PATH + "/reinstate",
        "Reinstate an EXPIRED item within the grace window (S-10) by paying the "
        "missed period(s) from the original expiry",
        "deposit",
        _ITEM,
        400,
        402,
        404,
        409,
        params=(ITEM_ID,),
    ),
)
