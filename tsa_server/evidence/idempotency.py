"""Idempotent deposits: the ``Idempotency-Key`` header of POST /api/v1/deposits and
/api/v1/deposits/upload.

The first request with a key claims it (with its organisation and a SHA-256 of the
request) before anything is reserved; a 201 answer is then kept with the key and
replayed, byte for byte, to a retry of the same request for 24 hours (no second
reservation, no second token). Any other answer (402, 422, 429, 503, ...) releases the
key: nothing was certified, and a retry runs again. While the first request runs, a
retry gets InProgress (409); the same key with another request gets KeyReused (422).

A claim left by a server that stopped mid-request stays "in progress" until it expires:
its outcome is unknown (see GET /api/v1/items), and running it again could certify and
charge twice. Keys are per organisation: one organisation's keys never meet another's.

An upload's fingerprint needs its files' digests, known only once the files are read:
`answered` tells the upload handler, before it reads a byte, whether the key already
has an answer (then the files are only hashed, to recognise the retry, and nothing is
stored) or is in progress (409 at once); any other request runs every check.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tsa_server.evidence.errors import Conflict, InvalidInput
from tsa_server.evidence.records import canonical_json
from tsa_server.evidence.store.idempotency import IdempotencyStore

HEADER = "Idempotency-Key"
#: How long a key's answer is replayed.
TTL = timedelta(hours=24)
_KEY = re.compile(r"[\x20-\x7e]{1,100}")


class InProgress(Conflict):
    """The first request with this key is still running (HTTP 409)."""


class KeyReused(Conflict):
    """The key was used for a different request (HTTP 422)."""


@dataclass(frozen=True)
class Replay:
    """The stored answer of the first request."""

    status: int
    body: str
    request_sha256: str = ""


def check_key(value: str) -> str:
    """1-100 printable ASCII characters (InvalidInput otherwise)."""
    if not _KEY.fullmatch(value):
        raise InvalidInput(f"{HEADER} must be 1-100 printable ASCII characters")
    return value


def fingerprint(request: Any) -> str:
    """SHA-256 (hex) of the request's canonical JSON form."""
    return hashlib.sha256(canonical_json(request).encode("utf-8", "surrogatepass")).hexdigest()


class IdempotencyKeys:
    """Claims, answers and releases of idempotency keys in the evidence store."""

    def __init__(self, store: IdempotencyStore, now: Callable[[], datetime]) -> None:
        self.store = store
        self.now = now
        self.running: set[tuple[str, str]] = set()  # claims of this process

    def claim(self, org_id: str, key: str, request_sha256: str) -> Replay | None:
        """None: the key is ours, run the request, then finish() or release(). A Replay
        of the first answer; KeyReused or InProgress."""
        now = self.now()
        row = self.store.claim_idempotency_key(org_id, key, request_sha256, now, now + TTL)
        if row is None:
            self.running.add((org_id, key))
            return None
        if row["request_sha256"] != request_sha256:
            raise KeyReused(f"this {HEADER} was used for a different request")
        if row["status"] is None:
            raise self._in_progress(org_id, key)
        return Replay(row["status"], row["body"], request_sha256)

    def answered(self, org_id: str, key: str) -> Replay | None:
        """The key's kept answer (with its request's SHA-256), None when the key is
        free; InProgress while its first request runs. Claims nothing."""
        row = self.store.idempotency_key(org_id, key, self.now())
        if row is None:
            return None
        if row["status"] is None:
            raise self._in_progress(org_id, key)
        return Replay(row["status"], row["body"], row["request_sha256"])

    def _in_progress(self, org_id: str, key: str) -> InProgress:
        if (org_id, key) in self.running:
            return InProgress(f"a request with this {HEADER} is still in progress")
        return InProgress(
            f"a request with this {HEADER} was interrupted; its outcome is unknown "
            "(see GET /api/v1/items) until the key expires"
        )

    def finish(self, org_id: str, key: str, status: int, body: str) -> None:
        self.running.discard((org_id, key))
        self.store.finish_idempotency_key(org_id, key, status, body)

    def release(self, org_id: str, key: str) -> None:
        self.running.discard((org_id, key))
        self.store.release_idempotency_key(org_id, key)
