"""API keys and the account values: the key format, organisations, members and keys as
stored, and the pure helpers around them.

API keys look like ``tsa_<key id>_<secret>``: ``tsa_`` lets secret scanners and humans
recognise one, the key id (16 hex digits, not secret) lets logs, support and the key list
name a key without its secret, and the secret (256 random bits, 64 hex digits) is shown
once, at creation, and never stored: the store keeps only ``hash_secret(key_id, secret)``.

Why a plain SHA-256 and not bcrypt/scrypt/Argon2: slow hashes protect *low-entropy*
secrets (passwords) against offline guessing. Our secrets are 256 uniformly random
bits, so even a stolen database gives an attacker 2^256 guesses per key, slow hash or
not; a slow hash would only add milliseconds of CPU to every API call (and a cheap
denial of service). GitHub, Stripe and others store random tokens the same way. The key
id and a version label are hashed in as well, so a hash is bound to its key row and to
this scheme. Comparison is constant-time (`hmac.compare_digest`, accounts/service.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tsa_server.accounts.errors import InvalidAccountInput, InvalidApiKey, PermissionDenied
from tsa_server.accounts.key_rules import ROLE_RANK, Principal, Role, Scope
from tsa_server.accounts.times import ts

KEY_PREFIX = "tsa"
KEY_ID_HEX = 16  # 64 bits: unique enough for ids, and not a secret
SECRET_HEX = 64  # 256 bits from `secrets`
_TOKEN = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{{KEY_ID_HEX}}})_([0-9a-f]{{{SECRET_HEX}}})")
_KEY_ID = re.compile(rf"[0-9a-f]{{{KEY_ID_HEX}}}")
_HASH_LABEL = b"tsa-api-key-v1\x00"
#: Hashed when the key id is unknown, so that answer takes as long as a wrong secret.
DUMMY_HASH = hashlib.sha256(b"no such key").digest()
#: A key's last_used_at is written at most this often: each write is an fsync'd commit.
LAST_USED_RESOLUTION = timedelta(seconds=60)
#: Longest name of an organisation, member or key, in characters.
MAX_NAME_CHARS = 200
#: Longest key lifetime a caller may ask for.
MAX_KEY_DAYS = 3650
#: Most unrevoked keys an organisation may hold: bounds what one leaked admin key (or a
#: runaway script) can mint; revoking unused keys makes room.
MAX_ACTIVE_KEYS = 100


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Member:
    id: str
    org_id: str
    name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    """A key as stored and listed: never its secret."""

    id: str
    org_id: str
    name: str
    role: Role
    scopes: frozenset[Scope]
    created_at: datetime
    created_by: str  # "cli", or the id of the key that created it
    member_id: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    last_used_at: datetime | None = None
    revoked_via: str | None = None  # the creator whose revocation revoked this key

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:  # half-open (G-3)
            return "expired"
        return "active"


@dataclass(frozen=True)
class Revocation:
    """A revoked key and the keys revoked with it (those it created, transitively)."""

    key: ApiKey
    cascaded: tuple[ApiKey, ...] = ()


@dataclass(frozen=True)
class CreatedKey:
    """The one moment the secret exists outside the caller's hands: show it, drop it."""

    key: ApiKey
    secret: str  # the whole bearer token, tsa_<id>_<secret>

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"CreatedKey(key={self.key!r}, secret='tsa_{self.key.id}_…')"


# Pure helpers


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def hash_secret(key_id: str, secret: str) -> bytes:
    return hashlib.sha256(_HASH_LABEL + key_id.encode() + b"\x00" + secret.encode()).digest()


def parse_token(token: str) -> tuple[str, str]:
    """(key id, secret) of a well-formed token; InvalidApiKey for anything else."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise InvalidApiKey()
    return match.group(1), match.group(2)


def is_key_id(text: str) -> bool:
    return _KEY_ID.fullmatch(text) is not None


def check_name(name: str, what: str, *, allow_empty: bool = False) -> str:
    name = name.strip()
    if not name and not allow_empty:
        raise InvalidAccountInput(f"{what} must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidAccountInput(f"{what} is longer than {MAX_NAME_CHARS} characters")
    if any(not ch.isprintable() for ch in name):
        raise InvalidAccountInput(f"{what} must not contain control characters")
    return name


def key_summary(key: ApiKey, now: datetime) -> dict[str, Any]:
    """A key as JSON-ready values for listings (HTTP and CLI): never a secret or hash."""
    return {
        "id": key.id,
        "name": key.name,
        "role": str(key.role),
        "scopes": sorted(str(s) for s in key.scopes),
        "state": key.state(now),
        "created_at": ts(key.created_at),
        "created_by": key.created_by,
        "member_id": key.member_id,
        "expires_at": ts(key.expires_at),
        "revoked_at": ts(key.revoked_at),
        "revoked_by": key.revoked_by,
        "revoked_via": key.revoked_via,
        "last_used_at": ts(key.last_used_at),
    }


def check_revoke(principal: Principal, key: ApiKey) -> None:
    """May `principal` revoke `key` (of its own organisation)? Itself always; others with
    the admin scope, and only keys of a role no higher than its own."""
    if key.id == principal.key_id:
        return
    principal.require(Scope.ADMIN)
    if ROLE_RANK[key.role] > ROLE_RANK[principal.role]:
        raise PermissionDenied(f"a {principal.role} key cannot revoke {key.role} keys")


def use_is_news(last_used_at: datetime | None, at: datetime) -> bool:
    """Is a use at `at` worth writing down (the last recorded one is a resolution old)?"""
    return last_used_at is None or at - last_used_at >= LAST_USED_RESOLUTION


def check_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime")
