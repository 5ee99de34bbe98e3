"""Delivering webhooks (evidence/webhooks.py says what a delivery is): fenced, bounded per
organisation, and off the event loop for everything that touches the database.

`WebhookDispatcher` runs with the server. Whenever it is woken (a deposit made notices, a
delivery finished) or every `poll_s` seconds, it starts the due deliveries that the
bounds allow: at most `concurrency` requests in flight in all, and at most
`per_org_concurrency` to any one organisation's URL, taking organisations in turn. It
never waits for a round to finish: each delivery is a task of its own, whose end frees
its slots at once. So a receiver that never answers holds at most its own
organisation's slots, each for at most `timeout_s` per attempt, and then backs off;
every other organisation's notices keep flowing.

Each attempt: a plain-http URL is refused unless allowed, a literal address is judged
by the fence, a name is resolved through `FencedResolver` (every address judged, only
judged addresses connected to: DNS rebinding is caught at connect time; TLS checks the
certificate against the URL's host). Redirects are not followed, no proxy comes from
the environment, no cookie is kept, and the receiver's answer body is never read
(aiohttp buffers at most `READ_BUFFER` bytes of it, then the connection is closed). A
failure is stored as its category (webhook_fence.failure), never as a raw error. A 2xx
answer delivers the notice; anything else is retried after `backoff_min_s`, doubling
up to `backoff_max_s`, until `give_up_s` after the first attempt. Attempts and the
next attempt's time are stored, so a restart resumes where it stopped. Logs name the
notice key and the URL's origin only (a query may carry the receiver's own token),
never the secret.

The database work (finding due deliveries, recording outcomes: an fsync'd commit each)
runs in one worker thread on a connection of its own, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from tsa_server.accounts.times import utc_now
from tsa_server.evidence.store import EvidenceStore
from tsa_server.evidence.store.jobs import JOB_LEASE_MIN, job_holder
from tsa_server.evidence.webhook_fence import (
    BLOCKED,
    PLAIN_HTTP,
    FencedResolver,
    failure,
    literal_refusal,
)
from tsa_server.evidence.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Delivery,
    WebhookSettings,
    backoff,
    delivery_of,
    origin,
    sign,
)

log = logging.getLogger("tsa.evidence.webhooks")

#: Bytes of a receiver's answer aiohttp buffers at most (it is never read).
READ_BUFFER = 16 * 1024
T = TypeVar("T")

DELIVERED, FAILED, GIVEN_UP = "delivered", "failed", "given_up"


class WebhookDispatcher:
    """Delivers due notices (module docstring). `store` names the database (the
    dispatcher opens its own connection to it); `now`, `session` and `ssl_context` (the
    CAs receivers' certificates are checked against) are injectable."""

    def __init__(
        self,
        store: EvidenceStore,
        settings: WebhookSettings | None = None,
        *,
        now: Callable[[], datetime] = utc_now,
        session: aiohttp.ClientSession | None = None,
        ssl_context: ssl.SSLContext | None = None,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or WebhookSettings()
        self.now = now
        self.session = session
        self.ssl_context = ssl_context
        self._own_session = session is None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._inflight: dict[str, set[int]] = {}  # organisation -> notice ids in flight
        self._deliveries: set[asyncio.Task[str]] = set()
        self._turn = 0  # where the next look at organisations starts (fairness)
        self._thread: ThreadPoolExecutor | None = None  # one worker: the database's
        self._holder = holder or job_holder()  # this node, holding the "webhooks" job
        self._db: EvidenceStore | None = None  # used in that thread only

    # ---------------------------------------------------------------- the database

    async def _in_thread(self, work: Callable[[EvidenceStore], T]) -> T:
        def run() -> T:
            if self._db is None:
                self._db = EvidenceStore(self.store.db, now=self.store.now)
            return work(self._db)

        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="webhooks")
        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    def _due(
        self, db: EvidenceStore, now: datetime, busy: dict[str, frozenset[int]], room: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Due deliveries to start now within the bounds, organisations in turn from
        `_turn`; and where the next look starts."""
        orgs = db.webhook_orgs()
        if not orgs:
            return [], 0
        start = self._turn % len(orgs)
        chosen: list[dict[str, Any]] = []
        looked = 0
        for org_id in orgs[start:] + orgs[:start]:
            if len(chosen) >= room:
                break
            looked += 1
            flying = busy.get(org_id, frozenset())
            free = min(self.settings.per_org_concurrency - len(flying), room - len(chosen))
            if free <= 0:
                continue
            rows = db.due_deliveries(org_id, now, len(flying) + free)
            chosen += [r for r in rows if r["id"] not in flying][:free]
        return chosen, start + looked

    # ---------------------------------------------------------------- scheduling

    async def _fill(self) -> list[asyncio.Task[str]]:
        """Start what is due and allowed; the deliveries started."""
        room = self.settings.concurrency - len(self._deliveries)
        if room <= 0:
            return []
        now = self.now()
        lease = now + max(timedelta(seconds=10 * self.settings.poll_s), JOB_LEASE_MIN)
        held = await self._in_thread(lambda db: db.hold_job("webhooks", self._holder, now, lease))
        if not held:  # another node of the cluster delivers (evidence/store/jobs.py)
            return []
        busy = {org: frozenset(ids) for org, ids in self._inflight.items()}
        rows, self._turn = await self._in_thread(lambda db: self._due(db, now, busy, room))
        started = []
        for row in rows:
            d = delivery_of(row)
            flying = self._inflight.setdefault(d.org_id, set())
            if d.notice_id in flying:  # started meanwhile by another look
                continue
            flying.add(d.notice_id)
            task = asyncio.get_running_loop().create_task(self._deliver(d))
            self._deliveries.add(task)
            started.append(task)
        return started

    async def _deliver(self, d: Delivery) -> str:
        try:
            status, error = await self._post(d)
            return await self._record(d, status, error)
        finally:
            flying = self._inflight.get(d.org_id, set())
            flying.discard(d.notice_id)
            if not flying:
                self._inflight.pop(d.org_id, None)
            self._deliveries.discard(asyncio.current_task())
            self._wake.set()  # its slots are free: look for more

    async def run_once(self) -> dict[str, int]:
        """Start every due delivery the bounds allow now and wait for them: how many were
        delivered, failed (to be retried) and given up."""
        outcomes = await asyncio.gather(*await self._fill())
        return {kind: outcomes.count(kind) for kind in (DELIVERED, FAILED, GIVEN_UP)}

    # ---------------------------------------------------------------- one attempt

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(
                limit=self.settings.concurrency,
                resolver=FencedResolver(self.settings.policy()),
                use_dns_cache=False,  # every new connection resolves and is judged again
                ssl=self.ssl_context or True,
            )
            self.session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # no proxies from the environment
                cookie_jar=aiohttp.DummyCookieJar(),  # receivers' cookies go nowhere
                read_bufsize=READ_BUFFER,
            )
        return self.session

    async def _post(self, d: Delivery) -> tuple[int | None, str]:
        url = URL(d.url)  # as aiohttp reads it
        if url.scheme != "https" and not self.settings.allow_http:
            return None, PLAIN_HTTP
        if literal_refusal(url.raw_host or "", self.settings.policy()) is not None:
            return None, BLOCKED
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tsa-server-webhooks/1",
            EVENT_HEADER: d.event,
            DELIVERY_HEADER: d.key,
            SIGNATURE_HEADER: sign(d.secret, d.body, int(self.now().timestamp())),
        }
        try:
            async with self._session().post(
                url,
                data=d.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            ) as reply:
                status = reply.status
        except (aiohttp.ClientError, OSError, ValueError) as exc:  # TimeoutError: OSError
            return None, failure(exc)
        return status, "" if 200 <= status < 300 else f"HTTP {status}"

    async def _record(self, d: Delivery, status: int | None, error: str) -> str:
        now = self.now()
        attempts = d.attempts + 1
        next_at, outcome = None, DELIVERED
        if error:
            next_at, outcome = now + backoff(attempts, self.settings), FAILED
            first = d.first_attempt_at or now
            if next_at - first > timedelta(seconds=self.settings.give_up_s):
                next_at, outcome = None, GIVEN_UP
        await self._in_thread(
            lambda db: db.record_delivery(
                d.org_id,
                d.notice_id,
                now,
                status=status,
                error=error,
                delivered=outcome == DELIVERED,
                next_attempt_at=next_at,
                given_up=outcome == GIVEN_UP,
            )
        )
        where = origin(d.url)
        if outcome == GIVEN_UP:
            log.warning(
                "webhook %s to %s: giving up after %d attempts (%s)", d.key, where, attempts, error
            )
        elif outcome == FAILED:
            when = next_at.isoformat() if next_at else "-"
            log.info(
                "webhook %s to %s failed (attempt %d: %s); next at %s",
                d.key,
                where,
                attempts,
                error,
                when,
            )
        return outcome

    # ---------------------------------------------------------------- running

    async def loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._fill()
            except sqlite3.Error as exc:  # a locked or busy database: the next look retries
                log.warning("webhook deliveries not looked for: %s", exc)
            except Exception:  # noqa: BLE001 - the next look retries
                log.exception("looking for webhook deliveries failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.loop())

    def wake(self) -> None:
        """Look for due deliveries now (a deposit just made notices)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop looking; deliveries in flight are cancelled (and tried again later)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_db)
            self._thread.shutdown(wait=False)
            self._thread = None

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
