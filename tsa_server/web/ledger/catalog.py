"""Every log of the TSA, whichever node writes it (issue 16): `GET /ledger/` lists them,
and `/ledger/<name>/...` serves each, on every node.

This node's own logs are the `LOGS` views (web/ledger/logs.py), also reachable as
"tokens" and "ops". With a shared [database], the other nodes' logs are read from the
`ledger_published` table (ledger/store/postgres_published.py) by a background task every
`REFRESH_S` seconds, off the event loop; a log another node publishes joins `LOGS`
(with a reader of its own) from the next refresh on. Without a database the catalog is this
node's logs alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from ledger.errors import LedgerError
from ledger.store.base import PublishedLog, Reader
from tsa_server.web.ledger.logs import LOGS, LogView, read

if TYPE_CHECKING:
    from tsa_server.wiring import Services

log = logging.getLogger("tsa.web.ledger")

REFRESH_S = 10.0
T = TypeVar("T")


class Catalog:
    """The TSA's published logs: this node's (`own`: name -> kind) and, with a database
    `url`, the others'."""

    def __init__(self, own: list[PublishedLog], url: str = "") -> None:
        self.url = url
        self.listed: list[PublishedLog] = list(own)
        self.own = {entry.name for entry in own}
        self.remote: dict[str, LogView] = {}  # views of other nodes' logs, by name
        self.refreshed = 0.0  # loop time of the last refresh

    def listing(self) -> list[dict[str, object]]:
        return [
            {
                **dataclasses.asdict(entry),
                "url": f"/ledger/{entry.name}/",
                "this_node": entry.name in self.own,
            }
            for entry in sorted(self.listed, key=lambda e: e.name)
        ]

    def _load(self, template: LogView) -> tuple[list[PublishedLog], dict[str, LogView]]:
        """In a thread: the published logs, and views of those not seen before."""
        from ledger.store.postgres import PostgresReader
        from ledger.store.postgres_published import published

        listed = published(self.url)
        added: dict[str, LogView] = {}
        for entry in listed:
            if entry.name in self.own or entry.name in self.remote:
                continue
            opener = functools.partial(PostgresReader, self.url, entry.name)
            added[entry.name] = dataclasses.replace(
                template,
                store=opener(),
                open_reader=opener,
                origin=entry.origin,
                vkey=entry.vkey,
                publish=None,
            )
        return listed, added

    async def refresh(self, template: LogView) -> dict[str, LogView]:
        """Read the published logs again; the views of logs not seen before (for LOGS)."""
        self.refreshed = asyncio.get_running_loop().time()
        listed, added = await asyncio.to_thread(self._load, template)
        own = [entry for entry in self.listed if entry.name in self.own]
        self.listed = own + [e for e in listed if e.name not in self.own]
        self.remote.update(added)
        return added

    def close(self) -> None:
        for view in self.remote.values():
            close = getattr(view.store, "close", None)
            if close is not None:
                close()


CATALOG = web.AppKey("ledger_catalog", Catalog)


def setup(app: web.Application, services: Services) -> None:
    """The catalog of `app` (after web/ledger/logs.setup): this node's logs and, with a
    database, the others', refreshed in the background while it runs and served as
    `LOGS` views of their own."""
    config = services.config.ledger
    own = [
        PublishedLog(
            config.log_names[kind],
            kind,
            config.unit,
            app[LOGS][kind].origin,
            app[LOGS][kind].vkey,
            services.chain_pem.decode() if kind == "tokens" else "",
        )
        for kind in ("tokens", "ops")
    ]
    url = services.config.database.url
    catalog = app[CATALOG] = Catalog(own, url)
    if not url:
        return

    async def refreshing(app: web.Application) -> AsyncIterator[None]:
        template = app[LOGS]["tokens"]

        async def run() -> None:
            while True:
                try:
                    app[LOGS].update(await catalog.refresh(template))
                except LedgerError as exc:
                    log.warning("the list of the TSA's logs was not refreshed: %s", exc)
                await asyncio.sleep(REFRESH_S)

        task = asyncio.get_running_loop().create_task(run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(catalog.close)

    app.cleanup_ctx.append(refreshing)


def token_logs(app: web.Application) -> list[LogView]:
    """This node's token log, then the other nodes' token logs the catalog has seen: where
    a token by serial is looked for (GET /tokens/{serial}, POST /verify)."""
    catalog = app.get(CATALOG)
    others = (
        []
        if catalog is None
        else [
            catalog.remote[e.name]
            for e in catalog.listed
            if e.kind == "tokens" and e.name in catalog.remote
        ]
    )
    return [app[LOGS]["tokens"], *others]


async def first_found(
    request: web.Request, work: Callable[[Reader], T], found: Callable[[T], bool]
) -> tuple[LogView, T]:
    """`work` on each token log (token_logs) in turn, until `found` says it found it; the
    log and what `work` gave (the last log's answer when none found it)."""
    views = token_logs(request.app)
    for view in views:
        result = await read(request, view, work)
        if found(result):
            break
    return view, result


async def listing(request: web.Request) -> web.Response:
    """GET /ledger/: every log of the TSA (fresh within a second: a node started just now
    is listed without waiting for the next background refresh)."""
    catalog = request.app[CATALOG]
    if catalog.url and asyncio.get_running_loop().time() - catalog.refreshed > 1.0:
        with contextlib.suppress(LedgerError):
            request.app[LOGS].update(await catalog.refresh(request.app[LOGS]["tokens"]))
    return web.json_response({"logs": catalog.listing()}, headers={"Cache-Control": "no-cache"})
