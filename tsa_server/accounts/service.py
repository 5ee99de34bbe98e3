"""The account operations: organisations, members, API keys and authentication, over
an `AccountStore` (accounts/store.py).

Roles, scopes and delegation (a key never gains what its maker did not have; revoking a
key revokes the keys it made) are the rules of `key_rules`. A key's last use is noted at
most once per `LAST_USED_RESOLUTION`; the server hands the writes to a `KeyUseRecorder`
(accounts/key_use.py), which batches them off the event loop.

All time comes from an injected clock (`now`), aware UTC, millisecond precision.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from tsa_server.accounts.errors import (
    AccountConflict,
    ApiKeyExpired,
    ApiKeyNotFound,
    ApiKeyRevoked,
    InvalidAccountInput,
    InvalidApiKey,
    MemberNotFound,
    OrganisationNotFound,
)
from tsa_server.accounts.key_rules import (
    ROLE_RANK,
    Principal,
    Role,
    Scope,
    check_grant,
    check_role_scopes,
    child_expiry,
)
from tsa_server.accounts.keys import (
    DUMMY_HASH,
    KEY_ID_HEX,
    KEY_PREFIX,
    MAX_ACTIVE_KEYS,
    SECRET_HEX,
    ApiKey,
    CreatedKey,
    Member,
    Organisation,
    Revocation,
    check_aware,
    check_name,
    check_revoke,
    hash_secret,
    is_key_id,
    new_id,
    parse_token,
    use_is_news,
)
from tsa_server.accounts.store import AccountStore
from tsa_server.accounts.times import Now, utc_now


class KeyUse(Protocol):
    """Where `Accounts.authenticate` reports a key's use (`last_used_at`)."""

    def note(self, key: ApiKey, at: datetime) -> None: ...


class WriteUseNow:
    """Records a use at once, in the caller's thread (CLI, tests); the server batches
    them off the event loop instead (accounts/key_use.py)."""

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
        check_aware(expires_at, "expires_at")
        self.organisation(org_id)
        if not scopes:
            raise InvalidAccountInput("a key needs at least one scope")
        check_role_scopes(role, scopes)
        if member_id is not None:
            member = self.store.member(org_id, member_id)
            if member is None:
                raise MemberNotFound(f"no member {member_id} in this organisation")
            if ROLE_RANK[role] > ROLE_RANK[member.role]:
                raise InvalidAccountInput(f"member {member_id} is a {member.role}, not a {role}")
        now = self.now()
        if expires_at is not None and expires_at <= now:
            raise InvalidAccountInput("expires_at must be in the future")
        if self.store.count_active_api_keys(org_id, now) >= MAX_ACTIVE_KEYS:
            raise AccountConflict(f"the organisation already has {MAX_ACTIVE_KEYS} active keys")
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
        stored = found[1] if found else DUMMY_HASH
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
