"""Roles, scopes and delegation: what an API key may hold, and what it may hand on.

Roles bound what a key may hold (`ROLE_SCOPES`): owner and admin may hold every scope,
member all but admin, auditor only read. A key acts with one role.

Keys form a tree: a key made over the API is a child of the key that made it (its
``created_by``); keys made by the operator's CLI have no parent. A key can never gain
what its maker did not have (`check_grant`, `child_expiry`):

* its role is no higher than its creator's (`ROLE_RANK`), and creating needs the admin
  scope;
* its scopes are a subset of its creator's scopes;
* it expires no later than its creator: a creator with an expiry passes it on when the
  request names none, and a later expiry is refused.

Revocation follows the tree the other way (accounts/store.py ``revoke_api_key``):
revoking a key revokes every key it created, transitively, at the same instant, each
recorded with ``revoked_via`` (its creator). Any key may revoke itself (the first thing
to do with a leaked key); other keys only with the admin scope and a role no higher than
its own (accounts.py ``check_revoke``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tsa_server.accounts.errors import InvalidAccountInput, PermissionDenied
from tsa_server.accounts.times import ts


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    AUDITOR = "auditor"


class Scope(enum.StrEnum):
    TIMESTAMP = "timestamp"  # obtain timestamps (RFC 3161 and hash-only certification)
    DEPOSIT = "deposit"  # deposit items, upload and delete originals
    READ = "read"  # read items, certificates, credit entries, the key list
    ADMIN = "admin"  # manage the organisation's keys (and later members, purchases)


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.OWNER: frozenset(Scope),
    Role.ADMIN: frozenset(Scope),
    Role.MEMBER: frozenset({Scope.TIMESTAMP, Scope.DEPOSIT, Scope.READ}),
    Role.AUDITOR: frozenset({Scope.READ}),
}
ROLE_RANK: dict[Role, int] = {Role.AUDITOR: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the organisation, the key and what it may do."""

    org_id: str
    key_id: str
    role: Role
    scopes: frozenset[Scope]
    member_id: str | None = None
    expires_at: datetime | None = None  # the key's own expiry: its children's latest

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(f"this API key lacks the {scope} scope", scope=str(scope))


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise InvalidAccountInput(f"unknown role {text!r}: one of {', '.join(Role)}") from None


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scopes from names (each value may also be comma-separated); at least one."""
    scopes = set()
    for value in values:
        for name in value.split(","):
            name = name.strip()
            try:
                scopes.add(Scope(name))
            except ValueError:
                raise InvalidAccountInput(
                    f"unknown scope {name!r}: one of {', '.join(Scope)}"
                ) from None
    if not scopes:
        raise InvalidAccountInput("a key needs at least one scope")
    return frozenset(scopes)


def check_role_scopes(role: Role, scopes: frozenset[Scope]) -> None:
    extra = scopes - ROLE_SCOPES[role]
    if extra:
        raise InvalidAccountInput(
            f"the {role} role cannot hold the scope(s) {', '.join(sorted(extra))}"
        )


def check_grant(principal: Principal, role: Role, scopes: frozenset[Scope]) -> None:
    """May `principal` create a key with `role` and `scopes`? Admin scope, no higher
    role, and only scopes it holds itself."""
    principal.require(Scope.ADMIN)
    if ROLE_RANK[role] > ROLE_RANK[principal.role]:
        raise PermissionDenied(f"a {principal.role} key cannot create {role} keys")
    extra = scopes - principal.scopes
    if extra:
        raise PermissionDenied(
            "a key can only grant scopes it holds itself; this API key lacks "
            + ", ".join(sorted(extra))
        )


def child_expiry(principal: Principal, requested: datetime | None) -> datetime | None:
    """The expiry of a key `principal` creates: the requested one, never later than the
    creator's own; the creator's when none is requested."""
    limit = principal.expires_at
    if limit is None:
        return requested
    if requested is None:
        return limit
    if requested > limit:
        raise PermissionDenied(
            f"this API key expires at {ts(limit)}: a key it creates cannot expire later "
            "(ask for an earlier expiry, or none to inherit this key's)"
        )
    return requested
