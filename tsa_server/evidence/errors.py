"""Errors of the evidence layer. Every message is client-safe: no secrets, no paths.

web/errors.py maps them to HTTP in its table (the account errors are
tsa_server.accounts.errors); the CLI turns any TSAError into one line.
"""

from __future__ import annotations

from tsa_server.errors import TSAError


class EvidenceError(TSAError):
    """Root of the evidence layer's errors."""


class InvalidInput(EvidenceError, ValueError):
    """A value a caller supplied is malformed or out of bounds (HTTP 400)."""


class NotFound(EvidenceError, LookupError):
    """No such thing in this organisation (HTTP 404). Another organisation's things are
    reported exactly like missing ones, so ids reveal nothing across accounts."""


class ItemNotFound(NotFound):
    pass


class Conflict(EvidenceError):
    """The request contradicts stored state (HTTP 409)."""


class OriginalGone(EvidenceError):
    """The stored original was deleted or purged, or never stored (HTTP 410): the token
    and the certificate stay (S-10). A locked (EXPIRED) original is fees.OriginalLocked."""


class ItemImmutable(Conflict):
    """An update touching what a certified item can no longer change."""


class IdempotencyConflict(Conflict):
    """An idempotency key reused for a different credit entry."""


class BlobError(EvidenceError):
    """Blob store failures."""


class InvalidBlobKey(BlobError, ValueError):
    """A blob key that is not 64 lowercase hex digits (never turned into a path)."""

    def __init__(self) -> None:
        super().__init__("a blob key is 64 lowercase hexadecimal digits")


class BlobNotFound(BlobError, LookupError):
    def __init__(self) -> None:
        super().__init__("no such blob")


class BlobTooLarge(BlobError):
    """The stream exceeded the size limit; nothing was kept (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload exceeds the limit of {limit} bytes")
        self.limit = limit
