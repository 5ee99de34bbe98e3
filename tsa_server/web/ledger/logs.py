"""HTTP face of the ledger logs: each log is a C2SP tlog-tiles prefix
(/ledger/tokens/, /ledger/ops/, /ledger/<name>/ for every log of the TSA: catalog.py)
with checkpoint, tiles, entry bundles and vkey, plus
proofs, archived checkpoints, chain heads (here) and verifiable lookups
(web/ledger/lookup.py) (docs/spec/ledger.md B.5, L-11).

Only what a signed checkpoint covers is served: an auditor never sees a tile or proof
that no signed root commits to. Every read, even of one row (a checkpoint, a chain
head), runs in the ledger read pool (web/ledger/reads.py), on a reader of its own: on
PostgreSQL a row is a network round trip, and the writer's store may be committing.
With `[ledger] public_entries = false` (L-21) entries and everything that yields or
confirms one need an API key with the read scope; hash tiles, checkpoints and proofs
stay public.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from ledger.errors import LedgerError
from ledger.merkle import NodeReader
from ledger.proof_file import ProofFile
from ledger.proofs import inclusion_proof
from ledger.store.base import Reader, SignedCheckpoint
from ledger.tiles import CHECKPOINT_PAGE, encode_entry_bundle, parse_tile_path
from tsa_server.accounts.errors import PermissionDenied
from tsa_server.accounts.key_rules import Scope
from tsa_server.web import auth
from tsa_server.web.errors import DOMAIN_ERRORS, error_response
from tsa_server.web.ledger.reads import ReaderPool
from tsa_server.web.params import non_negative_int, optional_int, path_int, query_int

if TYPE_CHECKING:
    from tsa_server.wiring import Services

IMMUTABLE = "public, max-age=31536000, immutable"
# Restricted entry bundles: cacheable by the auditor's own client, never by a shared cache.
PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
CHECKPOINT_MAX_AGE = "public, max-age=5"
T = TypeVar("T")


@dataclass(frozen=True)
class LogView:
    """One published log: its store, origin and note verifier key."""

    store: Reader
    open_reader: Callable[[], Reader]  # another reader, for a read thread of its own
    origin: str
    vkey: str
    public_entries: bool = True
    publish: Callable[[], Awaitable[SignedCheckpoint | None]] | None = None
    page_size: int = 100  # [ledger] max_lookup_results: entries with proofs per answer
    operators: tuple[str, ...] = ()  # [evidence] operators: whose admin keys may publish


LOGS = web.AppKey("ledger_logs", dict)
READS = web.AppKey("ledger_reads", ReaderPool)


def setup(app: web.Application, services: Services) -> None:
    """The published logs of `services` (as "tokens" and "ops", and by their names when
    the node has a `[ledger] unit`) and the read pool that serves them. The other nodes'
    logs join `LOGS` as web/ledger/catalog.py finds them."""
    config = services.config.ledger
    views = {
        kind: LogView(
            log.store,
            log.open_reader,
            log.origin,
            log.publisher.vkey,
            public_entries=config.public_entries,
            publish=log.publisher.publish_now,
            page_size=config.max_lookup_results,
            operators=services.config.evidence.operators,
        )
        for kind, log in services.logs.items()
    }
    app[LOGS] = {**views, **{config.log_names[kind]: v for kind, v in views.items()}}

    pool = app[READS] = ReaderPool()  # its threads start with the first read

    async def reads(_: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(pool.close)  # lets the reads in progress end

    app.cleanup_ctx.append(reads)


def log_view(request: web.Request) -> LogView:
    """The log a request names: this node's, or another node's (web/ledger/catalog.py)."""
    view: LogView | None = request.app[LOGS].get(request.match_info["log"])
    if view is None:
        raise web.HTTPNotFound(text="no such log: GET /ledger/ lists them\n")
    return view


async def read(request: web.Request, view: LogView, work: Callable[[Reader], T]) -> T:
    """`work(reader)` in the read pool, on that thread's own reader of this log."""
    return await request.app[READS].run(view.origin, view.open_reader, work)


async def auditor(request: web.Request) -> web.Response | None:
    """None when the request carries an API key with the read scope (L-21: entries may be
    restricted to auditors); otherwise the 401/403/429 answer to send."""
    try:
        principal = await auth.authenticated(request)
        limited = auth.rate_limited(request, principal)
        if limited is not None:
            return limited
        principal.require(Scope.READ)
    except DOMAIN_ERRORS as exc:
        return error_response(exc)
    return None


async def entries_refusal(request: web.Request, view: LogView) -> web.Response | None:
    """None when this request may read entries (tokens, imprints, serials) of `view`."""
    return None if view.public_entries else await auditor(request)


def published(store: Reader) -> SignedCheckpoint:
    latest = store.latest_checkpoint()
    if latest is None:
        raise web.HTTPNotFound(text="no checkpoint published yet\n")
    return latest


def pinned(store: Reader, size: int | None) -> SignedCheckpoint:
    """The archived checkpoint of `size`, or the latest one when `size` is None."""
    if size is None:
        return published(store)
    found = store.checkpoint_at(size)
    if found is None:
        raise web.HTTPBadRequest(text="size must be the size of an archived checkpoint\n")
    return found


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def _text(body: str, cache: str | None = None) -> web.Response:
    headers = {"Cache-Control": cache} if cache else None
    return web.Response(text=body, content_type="text/plain", charset="utf-8", headers=headers)


async def checkpoint(request: web.Request) -> web.Response:
    view = log_view(request)
    return _text((await read(request, view, published)).note, CHECKPOINT_MAX_AGE)


async def archived_checkpoint(request: web.Request) -> web.Response:
    view, size = log_view(request), path_int(request, "size")
    found = await read(request, view, lambda r: r.checkpoint_at(size))
    if found is None:
        raise web.HTTPNotFound(text="no checkpoint of that size\n")
    return _text(found.note, IMMUTABLE)


async def checkpoint_list(request: web.Request) -> web.Response:
    """The sizes of the archived checkpoints, one per line, ascending, for auditors and
    mirrors: at most CHECKPOINT_PAGE an answer; `?after=<size>` lists those above it,
    and `Link: <...>; rel="next"` names the next page while there is one."""
    view = log_view(request)
    after = optional_int(request, "after")
    start = -1 if after is None else after
    sizes = await read(request, view, lambda r: r.checkpoint_sizes(start, CHECKPOINT_PAGE + 1))
    headers = {}
    if len(sizes) > CHECKPOINT_PAGE:
        sizes = sizes[:CHECKPOINT_PAGE]
        headers["Link"] = f'<?after={sizes[-1]}>; rel="next"'
    text = "".join(f"{s}\n" for s in sizes)
    return web.Response(text=text, content_type="text/plain", headers=headers)


async def vkey(request: web.Request) -> web.Response:
    return web.Response(text=log_view(request).vkey + "\n", content_type="text/plain")


async def chain_head(request: web.Request) -> web.Response:
    view, size = log_view(request), path_int(request, "size")
    found = await read(request, view, lambda r: r.checkpoint_at(size))
    if found is None:
        raise web.HTTPNotFound(text="chain heads are served for checkpointed sizes\n")
    return web.Response(text=found.chain_head.hex() + "\n", content_type="text/plain")


async def tile(request: web.Request) -> web.Response:
    view = log_view(request)
    try:
        tile_id = parse_tile_path("tile/" + request.match_info["path"])
    except LedgerError:
        raise web.HTTPNotFound(text="not a tile path\n") from None
    if tile_id.entries and (refusal := await entries_refusal(request, view)) is not None:
        return refusal

    def work(r: Reader) -> bytes:
        start, end = tile_id.leaf_range()
        if end > published(r).size:
            raise web.HTTPNotFound(text="tile beyond the published tree\n")
        if tile_id.entries:
            return encode_entry_bundle(r.entry_bundle(tile_id.index, tile_id.width))
        return r.tile_hashes(tile_id.level, tile_id.index, tile_id.width)

    body = await read(request, view, work)
    private = tile_id.entries and not view.public_entries
    headers = {"Cache-Control": PRIVATE_IMMUTABLE if private else IMMUTABLE}
    if private:
        headers["Vary"] = "Authorization"
    response = web.Response(body=body, content_type="application/octet-stream", headers=headers)
    if tile_id.entries:
        response.enable_compression()
    return response


async def inclusion(request: web.Request) -> web.Response:
    view = log_view(request)
    size_param = optional_int(request, "size")
    index = query_int(request, "index")

    def work(r: Reader) -> dict[str, object]:
        checkpoint_ = pinned(r, size_param)
        size = checkpoint_.size
        if index >= size:
            raise web.HTTPBadRequest(text="size must be a checkpointed size above index\n")
        entry = r.entry(index)
        assert entry is not None  # every index below a checkpointed size is stored
        return {
            "index": index,
            "size": size,
            "root": base64.b64encode(checkpoint_.root).decode(),
            "leaf_hash": base64.b64encode(entry.leaf_hash).decode(),
            "proof": _b64(r.inclusion_proof(index, size)),
        }

    return web.json_response(await read(request, view, work))


async def consistency(request: web.Request) -> web.Response:
    view = log_view(request)
    old, new_param = query_int(request, "old"), optional_int(request, "new")

    def work(r: Reader) -> dict[str, object]:
        new = published(r).size if new_param is None else new_param
        first, second = r.checkpoint_at(old), r.checkpoint_at(new)
        if first is None or second is None or not 0 < old <= new:
            raise web.HTTPBadRequest(
                text="old and new must be checkpointed sizes, 0 < old <= new\n"
            )
        return {
            "old": old,
            "new": new,
            "old_root": base64.b64encode(first.root).decode(),
            "new_root": base64.b64encode(second.root).decode(),
            "proof": _b64(r.consistency_proof(old, new)),
        }

    return web.json_response(await read(request, view, work))


def proof_file(nodes: NodeReader, index: int, checkpoint_: SignedCheckpoint) -> str:
    """The tlog-proof of leaf `index` up to `checkpoint_`, its path read through `nodes`
    (one node reader for a whole answer: neighbouring leaves share most of their path)."""
    path = tuple(inclusion_proof(index, checkpoint_.size, nodes))
    return ProofFile(index, path, checkpoint_.note).encode()


async def tlog_proof(request: web.Request) -> web.Response:
    view = log_view(request)
    index = non_negative_int(request.match_info["index"], "index")

    def work(r: Reader) -> str:
        latest = published(r)
        if index >= latest.size:
            raise web.HTTPNotFound(text="index not covered by the latest checkpoint\n")
        return proof_file(r.node_reader(latest.size), index, latest)

    return web.Response(text=await read(request, view, work), content_type="text/plain")


@auth.require(Scope.ADMIN)
async def publish(request: web.Request) -> web.Response:
    """Sign a checkpoint now rather than at the next interval (operators, tests)."""
    view = log_view(request)
    if view.publish is None:
        raise web.HTTPNotFound(text="this log is not published here\n")
    if request[auth.PRINCIPAL].org_id not in view.operators:
        # Signing and fsyncing on demand is the operator's call, not any customer's.
        raise PermissionDenied("only the platform operator's admin keys publish checkpoints")
    signed = await view.publish()
    size = signed.size if signed is not None else (await read(request, view, published)).size
    return web.json_response({"size": size, "new": signed is not None})
