"""Domain errors to HTTP answers: the one table.

Handlers of the JSON API let the errors of the accounts, evidence, fee and names layers
propagate; the errors middleware (web/handlers.py) answers each from `_TABLE`, the first
row whose class matches (rows go from the specific to the general). Every answer is a
JSON object with an `error` message a client can act on, and `Cache-Control: no-store`.
An error of ours with no row is a fault: logged, 500, no detail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tsa_server.accounts.errors import (
    AccountConflict,
    AccountError,
    AccountNotFound,
    AuthenticationError,
    InvalidAccountInput,
    PermissionDenied,
)
from tsa_server.evidence.errors import (
    BlobNotFound,
    BlobTooLarge,
    Conflict,
    EvidenceError,
    InvalidBlobKey,
    InvalidInput,
    NotFound,
    OriginalGone,
)
from tsa_server.evidence.idempotency import KeyReused
from tsa_server.evidence.service import MonthlyQuotaExceeded
from tsa_server.fees import (
    ConfirmationRequired,
    DigestMismatch,
    FeeError,
    FieldError,
    InsufficientCredits,
    InvalidEntry,
    LedgerConflict,
    NotAllowed,
    OriginalLocked,
    QuotaExceeded,
    StateError,
)
from tsa_server.names.errors import (
    InvalidNameRequest,
    NameRefused,
    NamesConflict,
    NamesError,
    NoSuchName,
    NotPermitted,
    NotTimestamped,
    RefusalKind,
    VersionRequired,
)
from tsa_server.names.policy_edits import StaleVersion

log = logging.getLogger("tsa.web.errors")

REALM = "tsa"


class BadRequest(Exception):
    """A request refused by the HTTP layer itself (framing, media type, size, an unknown
    query parameter...) before any use case runs: its status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class MissingKey(AuthenticationError):
    """No Authorization header at all: a bare challenge (RFC 6750 section 3.1)."""

    def __init__(self) -> None:
        super().__init__("an API key is required: Authorization: Bearer <API key>")


def json_error(
    status: int, reason: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    body = {"error": reason, **extra}
    return web.json_response(
        body, status=status, headers={"Cache-Control": "no-store", **(headers or {})}
    )


def challenge(error: str | None = None, **params: str) -> dict[str, str]:
    """The WWW-Authenticate header of a 401 or 403 (RFC 6750 section 3)."""
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    parts.extend(f'{name}="{value}"' for name, value in params.items())
    return {"WWW-Authenticate": "Bearer " + ", ".join(parts)}


def instant(value: datetime) -> str:
    """An aware instant as ISO 8601 UTC with Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# What a refused organisation can do about it (GET /api/v1/credits shows its lots).
CREDITS_HINT = (
    "credits are bought from this TSA's operator, who grants them to the organisation "
    "(`tsa fees grant`); GET /api/v1/credits shows the balance and each lot's lapse date"
)


def _credits(exc: InsufficientCredits) -> web.Response:
    return json_error(
        402,
        f"{exc}: {CREDITS_HINT}",
        needed=exc.needed,
        available=exc.available,
        lapsed=exc.lapsed,
    )


def _monthly_quota(exc: MonthlyQuotaExceeded) -> web.Response:
    """429 naming the quota, its use and limit; Retry-After: the next Beijing month."""
    usage = exc.usage
    return json_error(
        429,
        str(exc),
        {"Retry-After": str(exc.retry_after)},
        quota="monthly_item_quota",
        used=usage.used,
        limit=usage.limit,
        requested=exc.requested,
        window_start=instant(usage.start),
        window_end=instant(usage.end),
        retry_after=exc.retry_after,
    )


def _forbidden(exc: PermissionDenied) -> web.Response:
    params = {"scope": exc.scope} if exc.scope else {}
    return json_error(403, str(exc), challenge("insufficient_scope", **params))


def _status(status: int) -> Callable[[Exception], web.Response]:
    return lambda exc: json_error(status, str(exc))


def _name_refused(exc: NameRefused) -> web.Response:
    """The registry's refusal: its reason code, detail and the field at fault."""
    status = {RefusalKind.INPUT: 400, RefusalKind.FORBIDDEN: 403}.get(exc.kind, 409)
    r = exc.refused
    field = r.field.value if r.field else None
    body = {"error": str(exc), "reason": r.reason.value, "detail": r.detail, "field": field}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


_TABLE: tuple[
    tuple[type[Exception] | tuple[type[Exception], ...], Callable[[Any], web.Response]], ...
] = (
    (BadRequest, lambda exc: json_error(exc.status, exc.reason)),
    # The fee layer (fees/).
    (InsufficientCredits, _credits),
    (FieldError, lambda exc: json_error(422, str(exc), fields=exc.fields)),
    ((DigestMismatch, ConfirmationRequired), _status(422)),
    ((StateError, LedgerConflict, InvalidEntry), _status(409)),
    (NotAllowed, _status(403)),
    (OriginalLocked, _status(409)),  # S-10: EXPIRED (evidence.OriginalGone: 410)
    (MonthlyQuotaExceeded, _monthly_quota),
    (QuotaExceeded, _status(429)),
    (FeeError, _status(400)),
    # Keys (accounts/) and the evidence layer (evidence/).
    (MissingKey, lambda exc: json_error(401, str(exc), challenge())),
    (AuthenticationError, lambda exc: json_error(401, str(exc), challenge("invalid_token"))),
    (PermissionDenied, _forbidden),
    ((NotFound, BlobNotFound), _status(404)),
    (OriginalGone, _status(410)),
    ((InvalidInput, InvalidBlobKey), _status(400)),
    (BlobTooLarge, _status(413)),
    (KeyReused, _status(422)),  # an Idempotency-Key used for another request
    (Conflict, _status(409)),
    # Accounts' own (accounts/; authentication and permission are above).
    (AccountNotFound, _status(404)),
    (InvalidAccountInput, _status(400)),
    (AccountConflict, _status(409)),
    # The handle registry (names/).
    (NameRefused, _name_refused),
    (StaleVersion, lambda exc: json_error(412, str(exc), {"ETag": exc.current}, etag=exc.current)),
    (InvalidNameRequest, _status(400)),
    (NotPermitted, _status(403)),
    (NoSuchName, _status(404)),
    (NamesConflict, _status(409)),
    (VersionRequired, _status(428)),
    (NotTimestamped, _status(503)),
)

#: The roots whose errors this table answers (the middleware catches these).
DOMAIN_ERRORS: tuple[type[Exception], ...] = (
    BadRequest,
    FeeError,
    EvidenceError,
    AccountError,
    NamesError,
)


def error_response(exc: Exception) -> web.Response:
    """The HTTP answer for a domain error."""
    for kinds, answer in _TABLE:
        if isinstance(exc, kinds):
            return answer(exc)
    log.error("unmapped %s: %s", type(exc).__name__, exc)
    return json_error(500, "internal error")
