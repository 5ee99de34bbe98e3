"""REC-10 webhooks: each organisation's endpoint, and the delivery of its notices.

An organisation sets one endpoint (`PUT /api/v1/webhook`): an http(s) URL without
credentials and the notice kinds it wants (`fees.notices.NoticeKind` values; all by
default). It gets a signing secret once; the evidence database keeps it (HMAC needs the
secret itself) and nothing logs it.

`WebhookDispatcher` runs with the server: every `poll_s` seconds (or when woken) it
POSTs each notice of a webhook-enabled organisation made after the webhook, whose
delivery is not done and whose next attempt is due, as JSON::

    {"id": <notice key>, "event": <kind>, "organisation": <org id>, "notice": {...}}

with ``X-TSA-Event: <kind>``, ``X-TSA-Delivery: <notice key>`` (the same on every
retry: receivers deduplicate on it) and ``X-TSA-Signature: sha256=<hex HMAC-SHA256 of
the body with the secret>``. A 2xx answer delivers it; anything else (a redirect too:
redirects are never followed; a timeout; a refused connection) is retried after
`backoff_min_s`, doubling up to `backoff_max_s`, until `give_up_s` after the first
attempt. Attempts and the next attempt's time are stored, so a restart resumes where
it stopped. At most `concurrency` requests are in flight. Logs name the notice key and
the URL's origin only (a query may carry the receiver's own token), never the secret.

E-mail (REC-10's other channel) is not delivered here: there is no mail server in this
deployment. A mail sender would read the same `notices` rows and keep its own
send-once state beside `webhook_deliveries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tsa_server.evidence.store import EvidenceStore, notice_from_row
from tsa_server.evidence.times import dt, utc_now
from tsa_server.evidence.views import notice_json
from tsa_server.fees import FieldError, NoticeKind

log = logging.getLogger("tsa.evidence.webhooks")

#: Notice kinds a webhook may subscribe to (the `event` of each delivery).
EVENTS: tuple[str, ...] = tuple(k.value for k in NoticeKind)
MAX_URL_CHARS = 2048
SIGNATURE_HEADER = "X-TSA-Signature"
EVENT_HEADER = "X-TSA-Event"
DELIVERY_HEADER = "X-TSA-Delivery"


@dataclass(frozen=True)
class WebhookSettings:
    """Delivery timing ([evidence] webhook_* in the configuration)."""

    timeout_s: float = 5.0  # whole request, connect to last byte
    backoff_min_s: float = 10.0  # wait after the first failure; doubles each time
    backoff_max_s: float = 3600.0  # longest wait between two attempts
    give_up_s: float = 86400.0  # no attempt later than this after the first
    concurrency: int = 4  # requests in flight at once
    poll_s: float = 5.0  # how often due deliveries are looked for
    batch: int = 100  # deliveries taken per look


@dataclass(frozen=True)
class Delivery:
    """One notice to POST to one webhook."""

    org_id: str
    notice_id: int
    key: str
    event: str
    url: str
    body: bytes
    attempts: int  # made before this one
    first_attempt_at: datetime | None
    secret: str = field(repr=False)


@dataclass
class DispatchReport:
    delivered: int = 0
    failed: int = 0
    given_up: int = 0


# ------------------------------------------------------------------ endpoint settings


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """The X-TSA-Signature value: sha256=<hex HMAC-SHA256 of the body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(raw: Any) -> str:
    """An absolute http(s) URL with a host, no credentials and no fragment (FieldError)."""

    def bad(reason: str) -> FieldError:
        return FieldError({"url": reason})

    if not isinstance(raw, str) or not raw:
        raise bad("an http:// or https:// URL")
    if len(raw) > MAX_URL_CHARS or not raw.isascii() or not raw.isprintable() or " " in raw:
        raise bad(f"at most {MAX_URL_CHARS} printable ASCII characters (punycode hosts)")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise bad("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise bad("only http:// and https:// URLs")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise bad("credentials in the URL are refused: authenticate with the signature")
    if not parts.hostname:
        raise bad("the URL needs a host")
    if port == 0:
        raise bad("not a valid port")
    if parts.fragment or raw.endswith("#"):
        raise bad("no fragment (#...)")
    return raw


def check_events(raw: Any) -> tuple[str, ...] | None:
    """The subscribed kinds, sorted (None when absent: all, also kinds added later)."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        raise FieldError({"events": "a non-empty list of event names"})
    unknown = sorted(set(raw) - set(EVENTS))
    if unknown:
        raise FieldError({"events": f"unknown: {', '.join(unknown)}; known: {' '.join(EVENTS)}"})
    return tuple(sorted(set(raw)))


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: what logs show of it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def webhook_json(row: dict[str, Any]) -> dict[str, Any]:
    """The API's view of a stored webhook (never the secret)."""
    events = row["events"].split() if row.get("events") else list(EVENTS)
    return {
        "url": row["url"],
        "events": events,
        "all_events": not row.get("events"),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "deliveries": {
            "delivered": row.get("delivered", 0),
            "pending": row.get("pending", 0),
            "given_up": row.get("given_up", 0),
            "last_attempt": row.get("last_attempt"),
        },
    }


# ------------------------------------------------------------------ delivery


def backoff(attempts: int, settings: WebhookSettings) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1: backoff_min_s)."""
    exponent = min(max(attempts - 1, 0), 60)
    return timedelta(seconds=min(settings.backoff_min_s * 2**exponent, settings.backoff_max_s))


def delivery_of(row: dict[str, Any]) -> Delivery:
    notice = notice_from_row(row)
    body = {
        "id": notice.key,
        "event": notice.kind,
        "organisation": notice.org_id,
        "notice": notice_json(notice),
    }
    return Delivery(
        org_id=notice.org_id,
        notice_id=row["id"],
        key=notice.key,
        event=notice.kind,
        url=row["webhook_url"],
        body=json.dumps(body, sort_keys=True, separators=(",", ":")).encode(),
        attempts=row["attempts"],
        first_attempt_at=dt(row["first_attempt_at"]),
        secret=row["webhook_secret"],
    )


class WebhookDispatcher:
    """Delivers due notices (module docstring); `now` and `session` are injectable."""

    def __init__(
        self,
        store: EvidenceStore,
        settings: WebhookSettings | None = None,
        *,
        now: Callable[[], datetime] = utc_now,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or WebhookSettings()
        self.now = now
        self.session = session
        self._own_session = session is None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.concurrency),
                trust_env=False,  # no proxies from the environment
            )
        return self.session

    async def run_once(self) -> DispatchReport:
        """Attempt every delivery due now (bounded concurrency); what happened."""
        report = DispatchReport()
        now, rows = self.now(), []
        for org in self.store.organisations():  # one indexed look each (no webhook: none)
            rows += self.store.due_deliveries(org.id, now, self.settings.batch - len(rows))
            if len(rows) >= self.settings.batch:
                break
        if not rows:
            return report
        limit = asyncio.Semaphore(self.settings.concurrency)
        session = self._session()

        async def one(delivery: Delivery) -> None:
            async with limit:
                status, error = await self._post(session, delivery)
            self._record(delivery, status, error, report)

        await asyncio.gather(*(one(delivery_of(r)) for r in rows))
        return report

    async def _post(self, session: aiohttp.ClientSession, d: Delivery) -> tuple[int | None, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tsa-server-webhooks/1",
            EVENT_HEADER: d.event,
            DELIVERY_HEADER: d.key,
            SIGNATURE_HEADER: sign(d.secret, d.body),
        }
        try:
            async with session.post(
                d.url,
                data=d.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            ) as reply:
                if 200 <= reply.status < 300:
                    return reply.status, ""
                return reply.status, f"HTTP {reply.status}"
        except TimeoutError:
            return None, f"no answer within {self.settings.timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return None, type(exc).__name__

    def _record(self, d: Delivery, status: int | None, error: str, report: DispatchReport) -> None:
        now = self.now()
        attempts = d.attempts + 1
        delivered = not error
        next_at = given_up = None
        if not delivered:
            next_at = now + backoff(attempts, self.settings)
            first = d.first_attempt_at or now
            if next_at - first > timedelta(seconds=self.settings.give_up_s):
                given_up, next_at = True, None
        self.store.record_delivery(
            d.org_id,
            d.notice_id,
            now,
            status=status,
            error=error,
            delivered=delivered,
            next_attempt_at=next_at,
            given_up=bool(given_up),
        )
        if delivered:
            report.delivered += 1
        elif given_up:
            report.given_up += 1
            log.warning(
                "webhook %s to %s: giving up after %d attempts (%s)",
                d.key,
                origin(d.url),
                attempts,
                error,
            )
        else:
            report.failed += 1
            log.info(
                "webhook %s to %s failed (attempt %d: %s); next at %s",
                d.key,
                origin(d.url),
                attempts,
                error,
                next_at.isoformat() if next_at else "-",
            )

    async def loop(self) -> None:
        while True:
            try:
                report = await self.run_once()
                again = report.delivered + report.failed + report.given_up >= self.settings.batch
            except Exception:  # noqa: BLE001 - the next round retries
                log.exception("webhook delivery round failed")
                again = False
            if again:
                continue  # a full batch: more may be due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
            self._wake.clear()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.loop())

    def wake(self) -> None:
        """Look for due deliveries now (a deposit just made notices)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None
