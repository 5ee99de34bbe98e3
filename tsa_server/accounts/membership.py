"""The people of an organisation and their roles, changed by one of its owners or admins
(the organisation page, web/pages/organisation_people.py; an API endpoint would call the
same): add a person who signs in, change a person's role, remove a person. Also the
self sign-up of a new organisation with its first owner (`sign_up`).

The rules are key_rules.py's, applied to people (`Person.principal` is a key-like
principal with the member's role):

* acting needs the admin scope (owners and admins);
* nobody gives a role above their own, nor changes or removes a person whose role is
  above their own (an admin neither makes nor demotes nor removes an owner);
* an organisation keeps an owner: the last owner is neither given another role nor
  removed (checked inside the write transaction, so two people acting at once cannot
  both pass the check);
* nobody removes themselves (another owner or admin does);
* a key never holds more than the person who made it: when a person's role goes down,
  the API keys they made from the pages that the new role could not make are revoked
  (with the keys those made); when a person is removed, every key they made is, their
  login and sessions end, and the member row goes.

The operator's API keys for a member (``tsa accounts create-key --member``) name that
member for the record (keys are never deleted): such a member is not removed (409).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from tsa_server.accounts.errors import (
    AccountConflict,
    InvalidAccountInput,
    MemberNotFound,
    PermissionDenied,
)
from tsa_server.accounts.key_rules import ROLE_RANK, ROLE_SCOPES, Principal, Role, Scope
from tsa_server.accounts.keys import ApiKey, Member, Organisation, check_name
from tsa_server.accounts.login_limits import LoginLimits
from tsa_server.accounts.people import People, check_password, normal_login
from tsa_server.accounts.service import Accounts
from tsa_server.database.tables import Tables

# The refusals, fixed texts (the pages translate them by their English msgid).
HIGHER_ROLE = "Nobody can give a role higher than their own."
ABOVE_YOU = "Only an owner can change or remove an owner."
LAST_OWNER = "The organisation's last owner can neither be removed nor given another role."
NOT_YOURSELF = "You cannot remove yourself: another owner or admin can."
NAMED_BY_KEYS = (
    "API keys the operator made for this person name them: the operator keeps that "
    "record, so this person cannot be removed here."
)
LOGIN_TAKEN = "This login is already taken: choose another."

_OWNER_KEPT = (
    "(role <> 'owner' OR (SELECT COUNT(*) FROM members o"
    " WHERE o.org_id = ? AND o.role = 'owner') > 1)"
)


class _LastOwner(Exception):
    """Rolls back a removal that would leave no owner."""


class MembershipStore(Tables):
    """The two writes of membership changes the account store does not have."""

    def set_role(self, org_id: str, member_id: str, role: Role) -> bool:
        """Give the member `role` (False: it is the organisation's last owner)."""
        keep = "1 = 1" if role == Role.OWNER else _OWNER_KEPT
        params = (role.value, org_id, member_id) + (() if role == Role.OWNER else (org_id,))
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE members SET role = ? WHERE org_id = ? AND id = ? AND {keep}", params
            )
            return cursor.rowcount == 1

    def keys_naming(self, member_id: str) -> int:
        row = self._row("SELECT COUNT(*) AS n FROM api_keys WHERE member_id = ?", (member_id,))
        return int(row["n"]) if row else 0

    def remove(self, org_id: str, member_id: str) -> bool:
        """Delete the member, its login and sessions at once (False: the last owner)."""
        try:
            with self._write() as conn:
                conn.execute("DELETE FROM web_sessions WHERE member_id = ?", (member_id,))
                conn.execute("DELETE FROM people WHERE member_id = ?", (member_id,))
                deleted = conn.execute(
                    f"DELETE FROM members WHERE org_id = ? AND id = ? AND {_OWNER_KEPT}",
                    (org_id, member_id, org_id),
                ).rowcount
                if deleted != 1:
                    raise _LastOwner()
        except _LastOwner:
            return False
        return True


@dataclass(frozen=True)
class MembershipChange:
    """What a change did: the member as it is now, and the keys it revoked."""

    member: Member
    revoked: tuple[ApiKey, ...] = ()


def person_key_maker(member_id: str) -> str:
    """The `created_by` of keys a person makes (Person.principal's key id)."""
    return f"person-{member_id}"


class Membership:
    """Adding, re-roling and removing people, over the accounts and people services."""

    def __init__(self, accounts: Accounts, people: People, store: MembershipStore) -> None:
        self.accounts = accounts
        self.people = people
        self.store = store

    def _target(self, actor: Principal, member_id: str) -> Member:
        actor.require(Scope.ADMIN)
        member = self.accounts.store.member(actor.org_id, member_id)
        if member is None:
            raise MemberNotFound(f"no member {member_id} in this organisation")
        if ROLE_RANK[member.role] > ROLE_RANK[actor.role]:
            raise PermissionDenied(ABOVE_YOU)
        return member

    def _login_free(self, login: str) -> str:
        login = normal_login(login)
        if self.people.store.person(login) is not None:
            raise AccountConflict(LOGIN_TAKEN)
        return login

    def add_person(
        self, actor: Principal, *, name: str, login: str, password: str, role: Role
    ) -> Member:
        """A new member of the actor's organisation who signs in with `login`."""
        actor.require(Scope.ADMIN)
        if ROLE_RANK[role] > ROLE_RANK[actor.role]:
            raise PermissionDenied(HIGHER_ROLE)
        check_name(name, "a member name")
        check_password(password)
        login = self._login_free(login)
        member = self.accounts.add_member(actor.org_id, name, role)
        try:
            self.people.set_password(actor.org_id, member.id, login, password)
        except InvalidAccountInput:  # the login was taken meanwhile: no member without it
            self.store.remove(actor.org_id, member.id)
            raise AccountConflict(LOGIN_TAKEN) from None
        return member

    def change_role(self, actor: Principal, member_id: str, role: Role) -> MembershipChange:
        member = self._target(actor, member_id)
        if ROLE_RANK[role] > ROLE_RANK[actor.role]:
            raise PermissionDenied(HIGHER_ROLE)
        if role == member.role:
            return MembershipChange(member)
        if not self.store.set_role(actor.org_id, member_id, role):
            raise AccountConflict(LAST_OWNER)
        revoked = self._revoke_made_by(actor, member, lambda k: not _within(k, role))
        changed = Member(member.id, member.org_id, member.name, role, member.created_at)
        return MembershipChange(changed, revoked)

    def remove(self, actor: Principal, member_id: str) -> MembershipChange:
        member = self._target(actor, member_id)
        if member_id == actor.member_id:
            raise PermissionDenied(NOT_YOURSELF)
        if self.store.keys_naming(member_id):
            raise AccountConflict(NAMED_BY_KEYS)
        if member.role == Role.OWNER and self._owners(actor.org_id) <= 1:
            raise AccountConflict(LAST_OWNER)
        revoked = self._revoke_made_by(actor, member, lambda k: True)
        if not self.store.remove(actor.org_id, member_id):
            raise AccountConflict(LAST_OWNER)
        return MembershipChange(member, revoked)

    def _owners(self, org_id: str) -> int:
        return sum(m.role == Role.OWNER for m in self.accounts.store.members(org_id))

    def _revoke_made_by(
        self, actor: Principal, member: Member, which: Callable[[ApiKey], bool]
    ) -> tuple[ApiKey, ...]:
        maker = person_key_maker(member.id)
        done: list[ApiKey] = []
        for key in self.accounts.keys(member.org_id):
            if key.created_by == maker and key.revoked_at is None and which(key):
                revocation = self.accounts.revoke(member.org_id, key.id, by=actor.key_id)
                done += [revocation.key, *revocation.cascaded]
        return tuple(done)


def _within(key: ApiKey, role: Role) -> bool:
    """Could a person of `role` have made `key`?"""
    return ROLE_RANK[key.role] <= ROLE_RANK[role] and key.scopes <= ROLE_SCOPES[role]


#: Self sign-up's bounds: attempts per client address and per login within the window
#: (every attempt counts, successful or not), then a lock-out as long as the window.
SIGNUP_PER_ADDRESS = 5
SIGNUP_PER_LOGIN = 5
SIGNUP_WINDOW = timedelta(hours=1)


def signup_limits() -> LoginLimits:
    """The sign-in lock-out (login_limits.py) with sign-up's own counts."""
    return LoginLimits(
        account_failures=SIGNUP_PER_LOGIN,
        address_failures=SIGNUP_PER_ADDRESS,
        window=SIGNUP_WINDOW,
        lock_for=SIGNUP_WINDOW,
    )


def sign_up(
    accounts: Accounts,
    people: People,
    *,
    organisation: str,
    name: str,
    login: str,
    password: str,
) -> tuple[Organisation, Member]:
    """A new organisation with `name` as its owner, who signs in with `login` (self
    sign-up, [evidence] signup). Everything is checked before anything is made."""
    organisation = check_name(organisation, "an organisation name")
    check_name(name, "your name")
    check_password(password)
    login = normal_login(login)
    if people.store.person(login) is not None:
        raise AccountConflict(LOGIN_TAKEN)
    org = accounts.create_organisation(organisation)
    member = accounts.add_member(org.id, name, Role.OWNER)
    try:
        people.set_password(org.id, member.id, login, password)
    except InvalidAccountInput:  # the login was taken meanwhile by another sign-up
        raise AccountConflict(LOGIN_TAKEN) from None
    return org, member
