"""Organisations, roles, API keys: the key format, the role/scope rules, authentication.

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
this scheme. Comparison is constant-time (`hmac.compare_digest`).

Roles, scopes and delegation (a key never gains what its maker did not have; revoking a
key revokes the keys it made) are the rules of `key_rules`. A key's last use is noted at
most once per `LAST_USED_RESOLUTION`; the server hands the writes to a `KeyUseRecorder`
(evidence/key_use.py), which batches them off the event loop.

All time comes from an injected clock (`now`), aware UTC, millisecond precision.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from tsa_server.evidence.errors import (
    ApiKeyExpired,
    ApiKeyNotFound,
    ApiKeyRevoked,
    Conflict,
    InvalidApiKey,
    InvalidInput,
    MemberNotFound,
    OrganisationNotFound,
    PermissionDenied,
)
from tsa_server.evidence.key_rules import (
    ROLE_RANK,
    Principal,
    Role,
    Scope,
    check_grant,
    check_role_scopes,
    child_expiry,
)
from tsa_server.evidence.key_rules import ROLE_SCOPES as ROLE_SCOPES
from tsa_server.evidence.key_rules import parse_role as parse_role
from tsa_server.evidence.key_rules import parse_scopes as parse_scopes
from tsa_server.evidence.times import ts, utc_now

Now = Callable[[], datetime]

KEY_PREFIX = "tsa"
KEY_ID_HEX = 16  # 64 bits: unique enough for ids, and not a secret
SECRET_HEX = 64  # 256 bits from `secrets`
_TOKEN = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{{KEY_ID_HEX}}})_([0-9a-f]{{{SECRET_HEX}}})")
_KEY_ID = re.compile(rf"[0-9a-f]{{{KEY_ID_HEX}}}")
_HASH_LABEL = b"tsa-api-key-v1\x00"
#: Hashed when the key id is unknown, so that answer takes as long as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"no such key").digest()
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
        raise InvalidInput(f"{what} must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"{what} is longer than {MAX_NAME_CHARS} characters")
    if any(not ch.isprintable() for ch in name):
        raise InvalidInput(f"{what} must not contain control characters")
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


def _aware(value: datetime | None, what: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime")


class AccountStore(Protocol):
    """What `Accounts` needs from a store (EvidenceStore implements it)."""

    def insert_organisation(self, org: Organisation) -> None: ...
    def organisation(self, org_id: str) -> Organisation | None: ...
    def insert_member(self, member: Member) -> None: ...
    def member(self, org_id: str, member_id: str) -> Member | None: ...
    def insert_api_key(self, key: ApiKey, secret_hash: bytes) -> None: ...
    def api_key_for_authentication(self, key_id: str) -> tuple[ApiKey, bytes] | None: ...
    def api_key(self, org_id: str, key_id: str) -> ApiKey | None: ...
    def api_key_org(self, key_id: str) -> str | None: ...
    def api_keys(self, org_id: str) -> list[ApiKey]: ...
    def count_active_api_keys(self, org_id: str, now: datetime) -> int: ...
    def revoke_api_key(
        self, org_id: str, key_id: str, at: datetime, by: str
    ) -> tuple[ApiKey, list[ApiKey]] | None: ...
    def touch_api_keys(self, uses: Mapping[str, datetime]) -> None: ...


class KeyUse(Protocol):
    """Where `Accounts.authenticate` reports a key's use (`last_used_at`)."""

    def note(self, key: ApiKey, at: datetime) -> None: ...


class WriteUseNow:
    """Records a use at once, in the caller's thread (CLI, tests); the server batches
    them off the event loop instead (evidence/key_use.py)."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store

    def note(self, key: ApiKey, at: datetime) -> None:
        if use_is_news(key.last_used_at, at):
            self.store.touch_api_keys({key.id: at})


class Accounts:
    """Account operations over a store, with an injectable clock; `key_use` records
    when keys are used (default: written at once)."""

    def __init__(
        self, store: AccountStore, now: Now = utc_now, key_use: KeyUse | None = None
    ) -> None:
        self.store = store
        self.now = now
        self.key_use = key_use or WriteUseNow(store)

    def create_organisation(self, name: str) -> Organisation:
        org = Organisation(new_id("org"), check_name(name, "an organisation name"), self.now())
        self.store.insert_organisation(org)
        return org

    def organisation(self, org_id: str) -> Organisation:
        org = self.store.organisation(org_id)
        if org is None:
            raise OrganisationNotFound(f"no organisation {org_id}")
        return org

    def add_member(self, org_id: str, name: str, role: Role) -> Member:
        self.organisation(org_id)
        member = Member(new_id("mem"), org_id, check_name(name, "a member name"), role, self.now())
        self.store.insert_member(member)
        return member

    def create_key(
        self,
        org_id: str,
        *,
        scopes: frozenset[Scope],
        role: Role = Role.MEMBER,
        name: str = "",
        expires_at: datetime | None = None,
        member_id: str | None = None,
        created_by: str = "cli",
    ) -> CreatedKey:
        """A new key and its token. The token is in the result only: show it once."""
        _aware(expires_at, "expires_at")
        self.organisation(org_id)
        if not scopes:
            raise InvalidInput("a key needs at least one scope")
        check_role_scopes(role, scopes)
        if member_id is not None:
            member = self.store.member(org_id, member_id)
            if member is None:
                raise MemberNotFound(f"no member {member_id} in this organisation")
            if ROLE_RANK[role] > ROLE_RANK[member.role]:
                raise InvalidInput(f"member {member_id} is a {member.role}, not a {role}")
        now = self.now()
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("expires_at must be in the future")
        if self.store.count_active_api_keys(org_id, now) >= MAX_ACTIVE_KEYS:
            raise Conflict(f"the organisation already has {MAX_ACTIVE_KEYS} active keys")
        key_id, secret = secrets.token_hex(KEY_ID_HEX // 2), secrets.token_hex(SECRET_HEX // 2)
        key = ApiKey(
            id=key_id,
            org_id=org_id,
            name=check_name(name, "a key name", allow_empty=True),
            role=role,
            scopes=scopes,
            created_at=now,
            created_by=created_by,
            member_id=member_id,
            expires_at=expires_at,
        )
        self.store.insert_api_key(key, hash_secret(key_id, secret))
        return CreatedKey(key, f"{KEY_PREFIX}_{key_id}_{secret}")

    def create_key_as(
        self,
        principal: Principal,
        *,
        scopes: frozenset[Scope],
        role: Role = Role.MEMBER,
        name: str = "",
        expires_in: timedelta | None = None,
    ) -> CreatedKey:
        """A key made by `principal`: never more than it holds (`key_rules`)."""
        check_grant(principal, role, scopes)
        requested = None if expires_in is None else self.now() + expires_in
        expires_at = child_expiry(principal, requested)
        return self.create_key(
            principal.org_id,
            scopes=scopes,
            role=role,
            name=name,
            expires_at=expires_at,
            created_by=principal.key_id,
        )

    def authenticate(self, token: str) -> Principal:
        """The principal of a bearer token, or InvalidApiKey / ApiKeyRevoked /
        ApiKeyExpired. The secret is checked first: only its holder learns a key's state."""
        key_id, secret = parse_token(token)
        found = self.store.api_key_for_authentication(key_id)
        stored = found[1] if found else _DUMMY_HASH
        if not hmac.compare_digest(hash_secret(key_id, secret), stored) or found is None:
            raise InvalidApiKey()
        key = found[0]
        now = self.now()
        state = key.state(now)
        if state == "revoked":
            raise ApiKeyRevoked()
        if state == "expired":
            raise ApiKeyExpired()
        self.key_use.note(key, now)
        return Principal(key.org_id, key.id, key.role, key.scopes, key.member_id, key.expires_at)

    def keys(self, org_id: str) -> list[ApiKey]:
        return self.store.api_keys(org_id)

    def key(self, org_id: str, key_id: str) -> ApiKey:
        key = self.store.api_key(org_id, key_id) if is_key_id(key_id) else None
        if key is None:
            raise ApiKeyNotFound(f"no API key {key_id} in this organisation")
        return key

    def revoke(self, org_id: str, key_id: str, *, by: str = "cli") -> Revocation:
        """Revoke a key of `org_id` and every key it created, transitively, at one instant
        (idempotent: a revoked key keeps its first revocation; descendants it still has
        unrevoked are revoked now)."""
        self.key(org_id, key_id)
        done = self.store.revoke_api_key(org_id, key_id, self.now(), by)
        if done is None:
            raise ApiKeyNotFound(f"no API key {key_id} in this organisation")
        return Revocation(done[0], tuple(done[1]))

    def revoke_key(self, org_id: str, key_id: str, *, by: str = "cli") -> ApiKey:
        """`revoke`, answering the key itself."""
        return self.revoke(org_id, key_id, by=by).key

    def revoke_key_as(self, principal: Principal, key_id: str) -> Revocation:
        key = self.key(principal.org_id, key_id)
        check_revoke(principal, key)
        return self.revoke(principal.org_id, key_id, by=principal.key_id)

    def revoke_key_by_id(self, key_id: str) -> ApiKey:
        """Operator revocation (CLI): the key's organisation is looked up from its id."""
        org_id = self.store.api_key_org(key_id) if is_key_id(key_id) else None
        if org_id is None:
            raise ApiKeyNotFound(f"no API key {key_id}")
        return self.revoke_key(org_id, key_id)
