"""Verifiable lookups of a ledger log: by serial, imprint, leaf hash and genTime window,
each match with its C2SP tlog-proof (docs/spec/ledger.md B.5).

Every answer is bounded by `[ledger] max_lookup_results` matches and built in the
ledger read pool (web/ledger/reads.py), on one checkpoint: the latest, or the one named
by `size` (the continuation links name it, so a walk over pages is one consistent
view even while the ledger grows). Answers that can hold more matches carry `next`,
the path of the following page, or null on the last one.

With `[ledger] public_entries = false` the lookups by serial, imprint and time need an
API key with the read scope (they yield tokens, or confirm an imprint or a serial);
a lookup by leaf hash (public in the hash tiles anyway) still answers anyone, with the
index and proof only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from ledger.serials import serial_text
from ledger.store.base import Entry, Reader, SignedCheckpoint
from tsa_server.rfc3161 import response
from tsa_server.web.handlers import REPLY_TYPE
from tsa_server.web.ledger import catalog
from tsa_server.web.ledger.logs import (
    LOGS,
    LogView,
    auditor,
    entries_refusal,
    log_view,
    pinned,
    proof_file,
    read,
)
from tsa_server.web.params import optional_int, query_int, serials

MAX_IMPRINT_BYTES = 64  # SHA-512, the longest hash a request may carry
NO_STORE = "private, no-store"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def matches(
    r: Reader, entries: Iterable[Entry | None], at: SignedCheckpoint, reveal: bool
) -> list[dict[str, object]]:
    """Each entry covered by `at` with its proof; serial, genTime and token only when
    `reveal` (entries are public, or the caller is an auditor)."""
    nodes = r.node_reader(at.size)
    return [
        {
            "index": e.index,
            "serial": serial_text(e.serial) if reveal else None,
            "gen_time": _iso(e.gen_time_ms) if reveal else None,
            "leaf_hash": e.leaf_hash.hex(),
            "token": base64.b64encode(e.token).decode() if reveal else None,
            "tlog_proof": proof_file(nodes, e.index, at),
        }
        for e in entries
        if e is not None and e.index < at.size
    ]


def _json(body: bytes, private: bool) -> web.Response:
    headers = {"Cache-Control": NO_STORE} if private else None
    return web.Response(body=body, content_type="application/json", headers=headers)


def _continuation(request: web.Request) -> Callable[..., str]:
    """Builds the path of another page of this lookup (read on the loop, called in the
    read pool)."""
    path, query = request.path, dict(request.query)

    def link(**params: int) -> str:
        return f"{path}?{urlencode({**query, **params})}"

    return link


def _hex(request: web.Request, name: str, low: int, high: int) -> bytes:
    text = request.match_info[name]
    try:
        value = bytes.fromhex(text) if len(text) <= 2 * high else b""
    except ValueError:
        value = b""
    if not low <= len(value) <= high:
        size = f"{low}" if low == high else f"{low} to {high}"
        raise web.HTTPBadRequest(text=f"{name} must be {size} bytes in hexadecimal\n")
    return value


async def by_serial(request: web.Request) -> web.Response:
    view = log_view(request)
    candidates = serials(request.match_info["serial"])
    if (refusal := await entries_refusal(request, view)) is not None:
        return refusal
    return await _one_match(request, view, lambda r: by_any_serial(r, candidates), True)


def by_any_serial(reader: Reader, candidates: tuple[int, ...]) -> Entry | None:
    """The entry of the first serial in ``candidates`` the log holds (a string of digits
    alone may be hex or decimal: ledger/serials.py)."""
    for serial in candidates:
        if (entry := reader.entry_by_serial(serial)) is not None:
            return entry
    return None


async def by_leaf_hash(request: web.Request) -> web.Response:
    view = log_view(request)
    leaf = _hex(request, "leaf_hash", 32, 32)
    # Anyone may map a leaf hash to its index and proof; the entry's contents follow
    # the privacy switch (a caller who sends a key must send a valid one).
    reveal = view.public_entries
    if not reveal and "Authorization" in request.headers:
        if (refusal := await auditor(request)) is not None:
            return refusal
        reveal = True
    return await _one_match(request, view, lambda r: r.entry_by_leaf_hash(leaf), reveal)


async def _one_match(
    request: web.Request,
    view: LogView,
    find: Callable[[Reader], Entry | None],
    reveal: bool,
) -> web.Response:
    """The entry ``find`` picks (if any), proved against the pinned or latest size."""
    size = optional_int(request, "size")

    def work(r: Reader) -> bytes:
        at = pinned(r, size)
        found = matches(r, [find(r)], at, reveal)
        return json.dumps({"size": at.size, "matches": found}).encode()

    return _json(await read(request, view, work), not view.public_entries)


async def by_imprint(request: web.Request) -> web.Response:
    """Entries with this imprint in index order, a page at a time (`start`: the first
    index of the page; `next` links the following page)."""
    view = log_view(request)
    imprint = _hex(request, "imprint", 1, MAX_IMPRINT_BYTES)
    if (refusal := await entries_refusal(request, view)) is not None:
        return refusal
    size, start = optional_int(request, "size"), query_int(request, "start", 0)
    limit = view.page_size
    link = _continuation(request)

    def work(r: Reader) -> bytes:
        at = pinned(r, size)
        found = [e for e in r.entries_by_imprint(imprint, limit + 1, start) if e.index < at.size]
        more = len(found) > limit
        return json.dumps(
            {
                "size": at.size,
                "matches": matches(r, found[:limit], at, True),
                "next": link(size=at.size, start=found[limit].index) if more else None,
            }
        ).encode()

    return _json(await read(request, view, work), not view.public_entries)


async def by_time(request: web.Request) -> web.Response:
    """Entries with from <= genTime < to (ms since the Unix epoch), a page at a time.

    genTime never decreases with the index, so the window is the index range
    [first, end), which every page states. The page that starts at `first` carries
    `boundary_before` (entry first - 1, genTime < from) and the page that ends at `end`
    carries `boundary_after` (entry end, genTime >= to), each with its proof: with the
    pages' contiguous indices in between, they prove that nothing in the window is
    left out. `next` continues at index `start` on the same checkpoint `size`.
    """
    view = log_view(request)
    if (refusal := await entries_refusal(request, view)) is not None:
        return refusal
    start_ms, end_ms = query_int(request, "from"), query_int(request, "to")
    if end_ms < start_ms:
        raise web.HTTPBadRequest(text="to must not be before from\n")
    size, cursor = optional_int(request, "size"), optional_int(request, "start")
    limit = view.page_size
    link = _continuation(request)

    def work(r: Reader) -> bytes:
        at = pinned(r, size)
        first = min(r.index_at_time(start_ms), at.size)
        end = min(r.index_at_time(end_ms), at.size)
        begin = first if cursor is None else cursor
        if not first <= begin <= end:
            raise web.HTTPBadRequest(
                text=f"start must lie within the window's indices {first}..{end}\n"
            )
        stop = min(end, begin + limit)
        before = [r.entry(first - 1)] if begin == first and first else []
        after = [r.entry(end)] if stop == end and end < at.size else []
        page = matches(r, [*before, *r.entries(begin, stop), *after], at, True)
        return json.dumps(
            {
                "size": at.size,
                "from": start_ms,
                "to": end_ms,
                "first": first,
                "end": end,
                "matches": page[len(before) : len(page) - len(after)],
                "boundary_before": page[0] if before else None,
                "boundary_after": page[-1] if after else None,
                "next": link(size=at.size, start=stop) if stop < end else None,
            }
        ).encode()

    return _json(await read(request, view, work), not view.public_entries)


async def token_by_serial(request: web.Request) -> web.Response:
    """GET /tokens/{serial}: the token of a serial again, as a TimeStampResp, from
    whichever node's token log holds it (web/ledger/catalog.py); with
    [ledger] public_entries = false only for an API key with the read scope (a token
    holds its message imprint)."""
    view = request.app[LOGS]["tokens"]
    candidates = serials(request.match_info["serial"])
    if (refusal := await entries_refusal(request, view)) is not None:
        return refusal
    _, entry = await catalog.first_found(
        request, lambda r: by_any_serial(r, candidates), lambda e: e is not None
    )
    if entry is None:
        raise web.HTTPNotFound(text="no token with this serial\n")
    reply = web.Response(body=response.granted(entry.token), content_type=REPLY_TYPE)
    if not view.public_entries:
        reply.headers["Cache-Control"] = "private, no-store"
    return reply
