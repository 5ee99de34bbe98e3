"""HTTP face of the ledger logs: each log is a C2SP tlog-tiles prefix
(/ledger/tokens/, /ledger/ops/) with checkpoint, tiles, entry bundles and vkey, plus
proofs, archived checkpoints, chain heads and verifiable lookups (ledger.md B.5, L-11).

Only what a signed checkpoint covers is served: an auditor never sees a tile or proof
that no signed root commits to.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from ledger.errors import LedgerError
from ledger.proof_file import ProofFile
from ledger.store.base import SignedCheckpoint
from ledger.store.sqlite import SqliteReader
from ledger.tiles import encode_entry_bundle, parse_tile_path
from tsa_server.evidence.accounts import Scope
from tsa_server.evidence.errors import EvidenceError
from tsa_server.web import auth

IMMUTABLE = "public, max-age=31536000, immutable"
CHECKPOINT_MAX_AGE = "public, max-age=5"


@dataclass(frozen=True)
class LogView:
    """One published log: its store, origin and note verifier key."""

    store: SqliteReader
    origin: str
    vkey: str
    public_entries: bool = True
    publish: Callable[[], Awaitable[SignedCheckpoint | None]] | None = None


LOGS = web.AppKey("ledger_logs", dict)


def _log(request: web.Request) -> LogView:
    view = request.app[LOGS].get(request.match_info["log"])
    if view is None:
        raise web.HTTPNotFound(text="no such log\n")
    return view


def _auditor(request: web.Request) -> web.Response | None:
    """None when the request carries an API key with the read scope (L-21: entries may be
    restricted to auditors); otherwise the 401/403 answer to send."""
    try:
        principal = auth.accounts(request).authenticate(auth.bearer_token(request))
        principal.require(Scope.READ)
    except (EvidenceError, auth.BadRequest) as exc:
        return auth.error_response(exc)
    return None


def _published(view: LogView) -> SignedCheckpoint:
    latest = view.store.latest_checkpoint()
    if latest is None:
        raise web.HTTPNotFound(text="no checkpoint published yet\n")
    return latest


def _int(request: web.Request, name: str, default: int | None = None) -> int:
    text = request.query.get(name)
    if text is None:
        if default is None:
            raise web.HTTPBadRequest(text=f"missing parameter {name}\n")
        return default
    if not text.isdigit() or len(text) > 20:
        raise web.HTTPBadRequest(text=f"{name} must be a non-negative integer\n")
    return int(text)


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


async def checkpoint(request: web.Request) -> web.Response:
    latest = _published(_log(request))
    return web.Response(
        text=latest.note,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": CHECKPOINT_MAX_AGE},
    )


async def archived_checkpoint(request: web.Request) -> web.Response:
    view = _log(request)
    text = request.match_info["size"]
    found = view.store.checkpoint_at(int(text)) if text.isdigit() and len(text) < 21 else None
    if found is None:
        raise web.HTTPNotFound(text="no checkpoint of that size\n")
    return web.Response(
        text=found.note,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": IMMUTABLE},
    )


async def checkpoint_list(request: web.Request) -> web.Response:
    """The sizes of every archived checkpoint, one per line (for auditors and mirrors)."""
    sizes = [str(c.size) for c in _log(request).store.checkpoints()]
    return web.Response(text="\n".join(sizes) + "\n", content_type="text/plain")


async def vkey(request: web.Request) -> web.Response:
    return web.Response(text=_log(request).vkey + "\n", content_type="text/plain")


async def chain_head(request: web.Request) -> web.Response:
    view = _log(request)
    text = request.match_info["size"]
    found = view.store.checkpoint_at(int(text)) if text.isdigit() and len(text) < 21 else None
    if found is None:
        raise web.HTTPNotFound(text="chain heads are served for checkpointed sizes\n")
    return web.Response(text=found.chain_head.hex() + "\n", content_type="text/plain")


async def tile(request: web.Request) -> web.Response:
    view = _log(request)
    try:
        tile_id = parse_tile_path("tile/" + request.match_info["path"])
    except LedgerError:
        raise web.HTTPNotFound(text="not a tile path\n") from None
    size = _published(view).size
    start, end = tile_id.leaf_range()
    if end > size:
        raise web.HTTPNotFound(text="tile beyond the published tree\n")
    if tile_id.entries:
        if not view.public_entries and (refusal := _auditor(request)) is not None:
            return refusal
        body = encode_entry_bundle(view.store.entry_bundle(tile_id.index, tile_id.width))
    else:
        body = view.store.tile_hashes(tile_id.level, tile_id.index, tile_id.width)
    response = web.Response(
        body=body, content_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
    )
    if tile_id.entries:
        response.enable_compression()
    return response


async def inclusion(request: web.Request) -> web.Response:
    view = _log(request)
    published = _published(view).size
    size = _int(request, "size", published)
    index = _int(request, "index")
    checkpoint_ = view.store.checkpoint_at(size)
    if checkpoint_ is None or index >= size:
        raise web.HTTPBadRequest(text="size must be a checkpointed size above index\n")
    entry = view.store.entry(index)
    return web.json_response(
        {
            "index": index,
            "size": size,
            "root": base64.b64encode(checkpoint_.root).decode(),
            "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
            "proof": _b64(view.store.inclusion_proof(index, size)),
        }
    )


async def consistency(request: web.Request) -> web.Response:
    view = _log(request)
    old, new = _int(request, "old"), _int(request, "new", _published(view).size)
    first, second = view.store.checkpoint_at(old), view.store.checkpoint_at(new)
    if first is None or second is None or not 0 < old <= new:
        raise web.HTTPBadRequest(text="old and new must be checkpointed sizes, 0 < old <= new\n")
    return web.json_response(
        {
            "old": old,
            "new": new,
            "old_root": base64.b64encode(first.root).decode(),
            "new_root": base64.b64encode(second.root).decode(),
            "proof": _b64(view.store.consistency_proof(old, new)),
        }
    )


def _proof_file(view: LogView, index: int, latest: SignedCheckpoint) -> str:
    path = tuple(view.store.inclusion_proof(index, latest.size))
    return ProofFile(index, path, latest.note).encode()


async def tlog_proof(request: web.Request) -> web.Response:
    view = _log(request)
    text = request.match_info["index"]
    latest = _published(view)
    if not text.isdigit() or len(text) > 20 or int(text) >= latest.size:
        raise web.HTTPNotFound(text="index not covered by the latest checkpoint\n")
    return web.Response(text=_proof_file(view, int(text), latest), content_type="text/plain")


def _answer(view: LogView, entries, latest: SignedCheckpoint) -> list[dict]:
    return [
        {
            "index": e.index,
            "serial": format(e.serial, "x"),
            "gen_time": _iso(e.gen_time_ms),
            "leaf_hash": e.leaf_hash.hex(),
            "token": base64.b64encode(e.token).decode() if view.public_entries else None,
            "tlog_proof": _proof_file(view, e.index, latest),
        }
        for e in entries
        if e is not None and e.index < latest.size
    ]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _hex(request: web.Request, name: str, size: int | None = None) -> bytes:
    try:
        value = bytes.fromhex(request.match_info[name])
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be hexadecimal\n") from None
    if size is not None and len(value) != size:
        raise web.HTTPBadRequest(text=f"{name} must be {size} bytes\n")
    return value


async def by_serial(request: web.Request) -> web.Response:
    view, text = _log(request), request.match_info["serial"].lower().removeprefix("0x")
    try:
        serial = int(text, 16)
    except ValueError:
        raise web.HTTPBadRequest(text="serial must be hexadecimal\n") from None
    latest = _published(view)
    return web.json_response(
        {
            "size": latest.size,
            "matches": _answer(view, [view.store.entry_by_serial(serial)], latest),
        }
    )


async def by_imprint(request: web.Request) -> web.Response:
    view, latest = _log(request), None
    imprint = _hex(request, "imprint")
    latest = _published(view)
    return web.json_response(
        {
            "size": latest.size,
            "matches": _answer(view, view.store.entries_by_imprint(imprint), latest),
        }
    )


async def by_leaf_hash(request: web.Request) -> web.Response:
    view = _log(request)
    latest = _published(view)
    entry = view.store.entry_by_leaf_hash(_hex(request, "leaf_hash", 32))
    return web.json_response({"size": latest.size, "matches": _answer(view, [entry], latest)})


async def by_time(request: web.Request) -> web.Response:
    """Entries with from <= genTime < to (ms since the Unix epoch), with the leaves just
    outside the range and their proofs: genTime never decreases with the index, so the
    two boundary leaves prove that nothing in the window is left out."""
    view = _log(request)
    latest = _published(view)
    start_ms, end_ms = _int(request, "from"), _int(request, "to")
    if end_ms < start_ms:
        raise web.HTTPBadRequest(text="to must not be before from\n")
    first = min(view.store.index_at_time(start_ms), latest.size)
    end = min(view.store.index_at_time(end_ms), latest.size)
    if end - first > 1000:
        raise web.HTTPRequestEntityTooLarge(
            max_size=1000,
            actual_size=end - first,
            text="more than 1000 entries: narrow the range\n",
        )
    entries = list(view.store.entries(first, end))
    before = _answer(view, [view.store.entry(first - 1)] if first else [], latest)
    after = _answer(view, [view.store.entry(end)] if end < latest.size else [], latest)
    return web.json_response(
        {
            "size": latest.size,
            "from": start_ms,
            "to": end_ms,
            "matches": _answer(view, entries, latest),
            "boundary_before": before[0] if before else None,
            "boundary_after": after[0] if after else None,
        }
    )


@auth.require(Scope.ADMIN)
async def publish(request: web.Request) -> web.Response:
    """Sign a checkpoint now rather than at the next interval (operators, tests)."""
    view = _log(request)
    if view.publish is None:
        raise web.HTTPNotFound(text="this log is not published here\n")
    signed = await view.publish()
    latest = signed or _published(view)
    return web.json_response({"size": latest.size, "new": signed is not None})
