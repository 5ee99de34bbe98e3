"""People who sign in to the web pages: a member of an organisation with a login and a
password (argon2id, argon2-cffi), and their sessions.

- `set_password` (the operator's CLI, or the person changing their own) stores the
  argon2id hash of a password of `MIN_PASSWORD`..`MAX_PASSWORD` characters;
- `sign_in` checks login and password (an unknown login costs the same argon2 work as a
  wrong password, and says the same), asks `LoginLimits` first (accounts/login_limits.py),
  and opens a session: a fresh random 256-bit id, given to the browser only, stored as
  its SHA-256 with an absolute expiry (`SESSION_LIFETIME`);
- `session` finds the signed-in person of a session id (None when unknown or expired);
  `sign_out` ends one session; a password change ends all of the person's sessions.

A person acts with their member's role (accounts/key_rules.py): `Person.principal` is
what the API's handlers and rules see, so a page may do exactly what an API key of that
role may do.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import argon2

from tsa_server.accounts.errors import (
    AccountError,
    AuthenticationError,
    InvalidAccountInput,
    MemberNotFound,
)
from tsa_server.accounts.key_rules import ROLE_SCOPES, Principal, Role
from tsa_server.accounts.keys import Member
from tsa_server.accounts.login_limits import LoginLimits
from tsa_server.accounts.times import Now, dt, ts, utc_now
from tsa_server.database import Database
from tsa_server.database.tables import Tables

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_LOGIN = 200
SESSION_LIFETIME = timedelta(hours=12)
SESSION_BYTES = 32  # 256 bits

_HASHER = argon2.PasswordHasher()  # argon2id, RFC 9106's second recommended profile
_DUMMY_HASH = _HASHER.hash("no such person: the same work as a wrong password")


class SignInRefused(AuthenticationError):
    """Wrong login or password: one message for both."""

    def __init__(self) -> None:
        super().__init__("wrong login or password")


class SignInLocked(AccountError):
    """Too many failed sign-ins for this account or from this address."""

    def __init__(self, wait: timedelta) -> None:
        self.seconds = max(1, int(wait.total_seconds() + 0.999))
        super().__init__(f"too many failed sign-ins: try again in {self.seconds} s")


@dataclass(frozen=True)
class Person:
    """A signed-in member."""

    member: Member
    login: str
    session_expires_at: datetime

    @property
    def principal(self) -> Principal:
        m = self.member
        return Principal(m.org_id, f"person-{m.id}", m.role, ROLE_SCOPES[m.role], m.id)


def normal_login(text: str) -> str:
    login = text.strip().casefold()
    if (
        not 3 <= len(login) <= MAX_LOGIN
        or not login.isprintable()
        or any(c.isspace() for c in login)
    ):
        raise InvalidAccountInput(f"a login is 3 to {MAX_LOGIN} characters without spaces")
    return login


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidAccountInput(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


class PeopleStore(Tables):
    """The people and web_sessions tables of the evidence database."""

    def person(self, login: str) -> dict[str, Any] | None:
        return self._row("SELECT * FROM people WHERE login = ?", (login,))

    def person_of(self, member_id: str) -> dict[str, Any] | None:
        return self._row("SELECT * FROM people WHERE member_id = ?", (member_id,))

    def member(self, member_id: str) -> Member | None:
        row = self._row("SELECT * FROM members WHERE id = ?", (member_id,))
        if row is None:
            return None
        return Member(
            row["id"], row["org_id"], row["name"], Role(row["role"]), dt(row["created_at"])
        )

    def set_password(self, member: Member, login: str, password_hash: str, at: datetime) -> None:
        """Give `member` this login and password hash, ending their sessions."""
        with self._write() as conn:
            conn.execute("DELETE FROM people WHERE member_id = ?", (member.id,))
            conn.execute(
                "INSERT INTO people (member_id, org_id, login, password_hash, created_at,"
                " password_changed_at) VALUES (?, ?, ?, ?, ?, ?)",
                (member.id, member.org_id, login, password_hash, ts(at), ts(at)),
            )
            conn.execute("DELETE FROM web_sessions WHERE member_id = ?", (member.id,))

    def rehash(self, member_id: str, password_hash: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE people SET password_hash = ? WHERE member_id = ?",
                (password_hash, member_id),
            )

    def open_session(self, member: Member, id_hash: str, at: datetime, until: datetime) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (ts(at),))
            conn.execute(
                "INSERT INTO web_sessions (id_hash, member_id, org_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (id_hash, member.id, member.org_id, ts(at), ts(until)),
            )

    def session(self, id_hash: str) -> dict[str, Any] | None:
        return self._row("SELECT * FROM web_sessions WHERE id_hash = ?", (id_hash,))

    def close_session(self, id_hash: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,))


class People:
    """Passwords, sign-in and sessions over a `PeopleStore`."""

    def __init__(
        self,
        where: PeopleStore | Database,
        *,
        limits: LoginLimits | None = None,
        now: Now = utc_now,
    ) -> None:
        self.store = where if isinstance(where, PeopleStore) else PeopleStore(where, now=now)
        self.limits = limits or LoginLimits(now=now)
        self.now = now

    def set_password(self, org_id: str, member_id: str, login: str, password: str) -> str:
        """The operator's (or the person's own) setting of a login and password."""
        login = normal_login(login)
        check_password(password)
        member = self.store.member(member_id)
        if member is None or member.org_id != org_id:
            raise MemberNotFound(f"no member {member_id} in this organisation")
        holder = self.store.person(login)
        if holder is not None and holder["member_id"] != member_id:
            raise InvalidAccountInput(f"the login {login!r} is another member's")
        self.store.set_password(member, login, _HASHER.hash(password), self.now())
        return login

    def sign_in(self, login: str, password: str, address: str) -> tuple[Person, str]:
        """The person and a new session id (for their cookie only), or SignInRefused /
        SignInLocked. Slow (argon2): call it off the event loop."""
        try:
            login = normal_login(login)
        except InvalidAccountInput:
            login = login[:MAX_LOGIN]
        wait = self.limits.locked(login, address)
        if wait is not None:
            raise SignInLocked(wait)
        row = self.store.person(login) if len(password) <= MAX_PASSWORD else None
        try:
            _HASHER.verify(row["password_hash"] if row else _DUMMY_HASH, password[:MAX_PASSWORD])
            member = self.store.member(row["member_id"]) if row else None
        except argon2.exceptions.VerificationError:
            member = None
        except argon2.exceptions.InvalidHashError:
            member = None
        if row is None or member is None:
            locked = self.limits.failed(login, address)
            if locked is not None:
                raise SignInLocked(locked)
            raise SignInRefused()
        self.limits.succeeded(login)
        if _HASHER.check_needs_rehash(row["password_hash"]):
            self.store.rehash(member.id, _HASHER.hash(password))
        return self._open(member, login)

    def _open(self, member: Member, login: str) -> tuple[Person, str]:
        session_id = secrets.token_urlsafe(SESSION_BYTES)
        now = self.now()
        until = now + SESSION_LIFETIME
        self.store.open_session(member, session_hash(session_id), now, until)
        return Person(member, login, until), session_id

    def session(self, session_id: str) -> Person | None:
        if not session_id or len(session_id) > 100:
            return None
        row = self.store.session(session_hash(session_id))
        if row is None or dt(row["expires_at"]) <= self.now():
            return None
        member = self.store.member(row["member_id"])
        person = self.store.person_of(row["member_id"])
        if member is None or person is None:
            return None
        return Person(member, person["login"], dt(row["expires_at"]))

    def sign_out(self, session_id: str) -> None:
        self.store.close_session(session_hash(session_id))

    def change_password(self, person: Person, old: str, new: str) -> str:
        """Check the old password, store the new one (ending every session of the
        person) and open a new session: its id."""
        row = self.store.person_of(person.member.id)
        try:
            _HASHER.verify(row["password_hash"] if row else _DUMMY_HASH, old[:MAX_PASSWORD])
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            raise SignInRefused() from None
        self.set_password(person.member.org_id, person.member.id, person.login, new)
        return self._open(person.member, person.login)[1]
