"""The certificate PDF and the evidence kit ZIP of one item (REC-4, REC-6, S-10, A-6).

``GET /api/v1/items/{item_id}/certificate.pdf``  scope read: the item's certificate
``GET /api/v1/items/{item_id}/kit.zip``          scope read: the evidence kit
``GET /api/v1/items/{item_id}/evidence-record.ers``  scope read: its RFC 4998 record

Both are served for every certified item in every storage state: only the original is
ever left out of the kit (when storage expired, or the original was deleted or purged).
Another organisation's item is answered exactly like a missing id (404); an item without
a token yet is 409. Nothing heavy runs on the event loop that issues time-stamps:
reading the item (the evidence store gives each thread its own connection) and checking
its token run in worker threads, the PDF is drawn in the renderer's process (pure-Python
CPU that would otherwise hold the interpreter lock; evidence/render_pool.py), and the
kit is written to a temporary file in a thread (originals copied in chunks), then
streamed. Only the ledger's inclusion proof (O(log n) reads) and the trade-name lookup
stay on the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO

from aiohttp import web

from ledger.proof_file import ProofFile
from ledger.serials import serial_text
from ledger.store.base import Reader, SignedCheckpoint
from tsa_server.accounts.key_rules import Scope
from tsa_server.evidence.certificate import (
    CertificateData,
    NotCertified,
    certificate_data,
)
from tsa_server.evidence.certificate_pdf import render_certificate
from tsa_server.evidence.errors import BlobError, ItemNotFound
from tsa_server.evidence.kit_zip import KitError, KitItem, KitSources, build_kit
from tsa_server.evidence.records import Item
from tsa_server.evidence.store import EvidenceStore
from tsa_server.web.api import Described, Operation, json_response, ref
from tsa_server.web.auth import PRINCIPAL, evidence_store, require
from tsa_server.web.errors import BadRequest, json_error
from tsa_server.web.evidence.context import EVIDENCE, ITEM_ID, OPERATOR, RENDERER
from tsa_server.web.handlers import STATE
from tsa_server.web.ledger.logs import LOGS, LogView, read
from tsa_server.web.policy import POLICY

log = logging.getLogger("tsa.web.evidence_files")
STREAM_CHUNK = 1 << 20
TOKENS_LOG = "tokens"


def _stored(store: EvidenceStore, org_id: str, item_id: str) -> tuple[Item, dict[str, Any]]:
    """The item and its storage record (expiry, handle, work content; {} when there is
    none), with the organisation's name and its items of the same SHA-256 (history)."""
    item = store.item(org_id, item_id)
    if item is None:  # another organisation's id finds nothing either
        raise ItemNotFound(f"no item {item_id}")
    terms = dict(store.item_terms(org_id, item_id) or {})
    org = store.organisation(org_id)
    terms["_organisation"] = org.name if org is not None else ""
    terms["_same_digest"] = store.items_by_sha256(org_id, item.sha256)
    return item, terms


def _holder_handle(request: web.Request, org_id: str, terms: dict[str, Any]) -> str | None:
    """The organisation's current trade name from the registry, else the deposit's."""
    names = request.app[STATE].names
    held = names.handle_of(org_id) if names is not None else None
    return held or terms.get("handle") or None


async def _item_data(request: web.Request) -> tuple[Item, CertificateData]:
    """The requested item and its certificate's content (409 when not certified)."""
    item_id = request.match_info["item_id"]
    if len(item_id) > 100:
        raise ItemNotFound(f"no item {item_id[:100]}")
    org_id = request[PRINCIPAL].org_id
    item, terms = await asyncio.to_thread(_stored, evidence_store(request), org_id, item_id)
    state = request.app[STATE]
    issue = functools.partial(
        certificate_data,
        # every key's chain: the item's token may be signed by a key since rotated out
        tsa_chain=[cert for chain in state.issuer.keys.chains() for cert in chain],
        base_url=state.public_url,
        holder_handle=_holder_handle(request, org_id, terms),
        storage_expires_at=terms.get("expires_at"),
        work_content=terms.get("work_content") or "",
        organisation=terms["_organisation"],
        operator=request.app.get(OPERATOR),
        same_digest=terms["_same_digest"],
    )
    try:  # reads and checks the token: CPU, off the loop
        return item, await asyncio.to_thread(issue, item)
    except NotCertified as exc:
        raise BadRequest(409, str(exc)) from None


def _file_name(data: CertificateData, suffix: str) -> str:
    return f"evidence-{data.serial_hex}{suffix}"


@require(Scope.READ)
async def certificate(request: web.Request) -> web.Response:
    _, data = await _item_data(request)
    pdf = await _render(request, data)
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{_file_name(data, ".pdf")}"',
        },
    )


async def _render(request: web.Request, data: CertificateData) -> bytes:
    """The certificate PDF, drawn and signed in the renderer's worker process
    (render_pool.py); its document time stamp comes from this server's Issuer, into the
    ledger like every token."""
    renderer = request.app.get(RENDERER)
    if renderer is None:  # an app set up without it (in-process tests)
        return await asyncio.to_thread(render_certificate, data)
    issuer = request.app[STATE].issuer

    async def timestamp(digest: bytes) -> bytes:
        issued = await issuer.timestamp(digest, "sha256")
        if issued.token is None:
            raise BadRequest(503, "the TSA cannot time-stamp the certificate now: retry later")
        return issued.token

    return await renderer.render(data, timestamp)


async def _proof(request: web.Request, view: LogView | None, index: int | None) -> str | None:
    """The tlog-proof of ledger entry `index`, publishing a checkpoint first when the
    latest one does not cover it yet; None when no signed checkpoint covers it."""
    if view is None or index is None:
        return None

    def latest(reader: Reader) -> SignedCheckpoint | None:
        return reader.latest_checkpoint()

    signed = await read(request, view, latest)
    if (signed is None or index >= signed.size) and view.publish is not None:
        await view.publish()
        signed = await read(request, view, latest)
    if signed is None or index >= signed.size:
        return None
    size = signed.size
    path = await read(request, view, lambda r: tuple(r.inclusion_proof(index, size)))
    return ProofFile(index, path, signed.note).encode()


def _open_original(request: web.Request) -> Callable[[str], BinaryIO]:
    service = request.app.get(EVIDENCE)  # the deposit service holds the blob store
    blobs = service.blobs if service is not None else None

    def open_original(key: str) -> BinaryIO:
        if blobs is None:
            raise KitError("this server keeps no originals")
        return blobs.open(key)

    return open_original


def _now(request: web.Request) -> datetime:
    service = request.app.get(EVIDENCE)
    return service.now() if service is not None else datetime.now(UTC)


@require(Scope.READ)
async def kit(request: web.Request) -> web.StreamResponse:
    item, data = await _item_data(request)
    view = request.app[LOGS].get(TOKENS_LOG)
    record = await asyncio.to_thread(
        evidence_store(request).evidence_record, request[PRINCIPAL].org_id, item.id
    )
    proof = await _proof(request, view, item.ledger_index)
    kit_item = KitItem(item, data, proof, evidence_record=record)
    pdf = await _render(request, data)
    state = request.app[STATE]
    statement = request.app.get(POLICY)  # the disclosure statement: operator, contact
    sources = KitSources(
        chain_pem=state.chain_pem,
        vkey=view.vkey if view else "",
        origin=view.origin if view else "",
        open_original=_open_original(request),
        public_url=state.public_url,
        operator=statement.name if statement else "",
        contact=statement.contact if statement else "",
    )
    spool = tempfile.TemporaryFile()
    try:
        try:
            build = functools.partial(build_kit, certificates=[pdf])
            await asyncio.to_thread(build, [kit_item], sources, _now(request), spool)
        except (KitError, BlobError, OSError) as exc:
            log.error("evidence kit of %s failed: %s", item.id, exc)
            return json_error(500, "the evidence kit could not be built")
        size = spool.tell()
        spool.seek(0)
        reply = web.StreamResponse(
            headers={
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="{_file_name(data, ".zip")}"',
                "Cache-Control": "no-store",
            }
        )
        reply.content_length = size
        await reply.prepare(request)
        while chunk := await asyncio.to_thread(spool.read, STREAM_CHUNK):
            await reply.write(chunk)
        await reply.write_eof()
        return reply
    finally:
        spool.close()


@require(Scope.READ)
async def evidence_record(request: web.Request) -> web.Response:
    """The item's RFC 4998 evidence record (DER, `tsa verify --evidence-record`); 409
    until the renewal scheduler has made it (evidence/ers/renewal.py)."""
    item_id = request.match_info["item_id"]
    if len(item_id) > 100:
        raise ItemNotFound(f"no item {item_id[:100]}")
    org_id = request[PRINCIPAL].org_id
    store = evidence_store(request)
    item, _ = await asyncio.to_thread(_stored, store, org_id, item_id)
    record = await asyncio.to_thread(store.evidence_record, org_id, item_id)
    if item.serial is None:
        raise BadRequest(409, "the item is not certified yet")
    if record is None:
        raise BadRequest(
            409, "the item's evidence record is made by the renewal scheduler's next run"
        )
    name = f"evidence-{serial_text(item.serial)[2:]}.ers"
    return web.Response(
        body=record,
        content_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _binary(media_type: str, description: str) -> dict[str, Any]:
    schema = {"type": "string", "format": "binary"}
    return {"description": description, "content": {media_type: {"schema": schema}}}


def _file_operation(path: str, summary: str, media_type: str, description: str) -> Operation:
    errors = {
        401: "no or bad API key",
        403: "the key lacks the read scope",
        404: "no such item in the key's organisation",
        409: "the item is not certified yet",
    }
    return Operation(
        "get",
        path,
        summary,
        {
            "200": _binary(media_type, description),
            **{str(code): json_response(ref("Error"), text) for code, text in errors.items()},
        },
        params=(ITEM_ID,),
        description="Needs an API key with the `read` scope. Served for every "
        "certified item in every storage state (REC-4, A-6).",
    )


DESCRIBED = Described(
    operations=(
        _file_operation(
            "/api/v1/items/{item_id}/certificate.pdf",
            "The item's evidence certificate (PDF): serial, digests, genTime in UTC and "
            "Beijing time, TSA, policy, depositor, handle, statement, storage status, a QR "
            "code to the public token lookup, an openssl recipe, and the .tsr attached",
            "application/pdf",
            "the certificate, deterministic for the item's state",
        ),
        _file_operation(
            "/api/v1/items/{item_id}/kit.zip",
            "The item's evidence kit (REC-6): original (only while storage is ACTIVE), .tsr, "
            "certificate PDF, CA chain, ledger inclusion proof (C2SP tlog-proof), ledger key, "
            "manifest.json with every member's SHA-256, SHA256SUMS and README.txt",
            "application/zip",
            "the kit",
        ),
        _file_operation(
            "/api/v1/items/{item_id}/evidence-record.ers",
            "The item's RFC 4998 evidence record (DER): the archive timestamps over the "
            "hash tree its digest is in, renewed before they weaken; check it with "
            "`tsa verify --evidence-record ITEM.ers --data FILE` (409: not made yet)",
            "application/octet-stream",
            "the evidence record",
        ),
    )
)
