"""REC-10 webhooks: each organisation's endpoint, what a delivery looks like, and how it
is signed. Delivery itself is evidence/webhook_dispatch.py; where a webhook may point is
evidence/webhook_fence.py.

An organisation sets one endpoint (`PUT /api/v1/webhook`): an https URL (http only where
the operator allows it) without credentials, whose host is a public address, and the
notice kinds it wants (`fees.notices.NoticeKind` values; all by default). It gets a
signing secret once; the evidence database keeps it (HMAC needs the secret itself) and
nothing logs it.

Each notice of a webhook-enabled organisation made after the webhook is POSTed as JSON::

    {"id": <notice key>, "event": <kind>, "organisation": <org id>, "notice": {...}}

with ``X-TSA-Event: <kind>``, ``X-TSA-Delivery: <notice key>`` (the same on every
retry: receivers deduplicate on it) and ``X-TSA-Signature: t=<unix seconds>,v1=<hex
HMAC-SHA256 of "<t>.<body>" with the secret>`` (Stripe's scheme): the time is signed
with the body, so a receiver that refuses a ``t`` older than a few minutes
(`verify_signature`, `SIGNATURE_TOLERANCE_S`) cannot be fed a captured delivery again.
Every attempt is signed afresh. A 2xx answer delivers it; anything else (a redirect
too: redirects are never followed) is retried with backoff until `give_up_s` after the
first attempt.

E-mail (REC-10's other channel) is not delivered here: there is no mail server in this
deployment. A mail sender would read the same `notices` rows and keep its own
send-once state beside `webhook_deliveries`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from tsa_server.accounts.times import dt
from tsa_server.evidence.store.notices import notice_from_row
from tsa_server.evidence.views import notice_json
from tsa_server.evidence.webhook_fence import TargetPolicy, shown_error
from tsa_server.fees import FieldError, NoticeKind

#: Notice kinds a webhook may subscribe to (the `event` of each delivery).
EVENTS: tuple[str, ...] = tuple(k.value for k in NoticeKind)
MAX_URL_CHARS = 2048
SIGNATURE_HEADER = "X-TSA-Signature"
EVENT_HEADER = "X-TSA-Event"
DELIVERY_HEADER = "X-TSA-Delivery"
#: How old a signature's time a receiver should accept (README, `verify_signature`).
SIGNATURE_TOLERANCE_S = 300


@dataclass(frozen=True)
class WebhookSettings:
    """Delivery timing and fences ([evidence] webhook_* in the configuration)."""

    timeout_s: float = 5.0  # whole request, resolving and connecting to last byte
    backoff_min_s: float = 10.0  # wait after the first failure; doubles each time
    backoff_max_s: float = 3600.0  # longest wait between two attempts
    give_up_s: float = 86400.0  # no attempt later than this after the first
    concurrency: int = 4  # requests in flight at once, all organisations
    poll_s: float = 5.0  # how often due deliveries are looked for
    per_org_concurrency: int = 2  # requests in flight to one organisation's URL
    allow_http: bool = False  # plain-http URLs (default: https only)
    allowed_networks: tuple[str, ...] = ()  # CIDRs reachable although not public

    def policy(self) -> TargetPolicy:
        return TargetPolicy(self.allow_http, self.allowed_networks)


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


# ------------------------------------------------------------------ endpoint settings


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, at: int) -> str:
    """The X-TSA-Signature value of `body` sent at `at` (unix seconds)."""
    return f"t={at},v1={_mac(secret, at, body)}"


def _mac(secret: str, at: int, body: bytes) -> str:
    return hmac.new(secret.encode(), b"%d." % at + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, body: bytes, header: str, now: float, tolerance_s: float = SIGNATURE_TOLERANCE_S
) -> bool:
    """What a receiver does (README): the header's t within `tolerance_s` of its clock,
    and one of its v1 values the HMAC of "<t>.<body>" (compared in constant time)."""
    fields = [part.strip().partition("=") for part in header.split(",")]
    times = [value for name, _, value in fields if name == "t"]
    if len(times) != 1 or not times[0].isdigit() or abs(now - int(times[0])) > tolerance_s:
        return False
    expected = _mac(secret, int(times[0]), body)
    return any(name == "v1" and hmac.compare_digest(value, expected) for name, _, value in fields)


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


def check_webhook(url: Any, events: Any) -> tuple[str, tuple[str, ...] | None]:
    """check_url and check_events together: one FieldError naming every bad field."""
    errors: dict[str, str] = {}
    checked_url = checked_events = None
    try:
        checked_url = check_url(url)
    except FieldError as exc:
        errors.update(exc.fields)
    try:
        checked_events = check_events(events)
    except FieldError as exc:
        errors.update(exc.fields)
    if errors or checked_url is None:
        raise FieldError(errors)
    return checked_url, checked_events


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
            "last_attempt": _last_attempt(row.get("last_attempt")),
        },
    }


def _last_attempt(last: dict[str, Any] | None) -> dict[str, Any] | None:
    if last is None:
        return None
    return {**last, "last_error": shown_error(last.get("last_error"))}


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
