"""People who sign in (accounts/people.py) on each engine: argon2id hashes, sessions
stored only as hashes with an expiry, one answer for unknown logins and wrong passwords,
the lock-out per account and per address, a password change ending every session."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tsa_server.accounts.errors import InvalidAccountInput, MemberNotFound
from tsa_server.accounts.key_rules import Role
from tsa_server.accounts.login_limits import LoginLimits
from tsa_server.accounts.people import People, SignInLocked, SignInRefused, session_hash
from tsa_server.accounts.service import Accounts

PASSWORD = "a long enough password"


@pytest.fixture
def people(store, clock) -> People:
    return People(store.db, limits=LoginLimits(now=clock), now=clock)


@pytest.fixture
def member(accounts: Accounts, people: People):
    org = accounts.create_organisation("Shop")
    mem = accounts.add_member(org.id, "Ann", Role.AUDITOR)
    people.set_password(org.id, mem.id, " Ann@Shop.Example ", PASSWORD)
    return mem


def test_password_is_an_argon2id_hash_and_session_ids_are_stored_hashed(people, member):
    row = people.store.person("ann@shop.example")
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]
    person, session_id = people.sign_in("ANN@shop.example", PASSWORD, "192.0.2.1")
    assert person.member.id == member.id and person.principal.role == Role.AUDITOR
    assert len(session_id) >= 43  # 256 bits, URL-safe base64
    assert people.store.session(session_id) is None  # never the id itself
    assert people.store.session(session_hash(session_id)) is not None
    assert people.session(session_id).member.id == member.id
    people.sign_out(session_id)
    assert people.session(session_id) is None


def test_sessions_expire(people, member, clock):
    _, session_id = people.sign_in("ann@shop.example", PASSWORD, "192.0.2.1")
    clock.advance(timedelta(hours=12, seconds=1))
    assert people.session(session_id) is None


def test_unknown_login_and_wrong_password_say_the_same(people, member):
    with pytest.raises(SignInRefused) as unknown:
        people.sign_in("nobody@shop.example", PASSWORD, "192.0.2.1")
    with pytest.raises(SignInRefused) as wrong:
        people.sign_in("ann@shop.example", "not the password", "192.0.2.1")
    assert str(unknown.value) == str(wrong.value)


def test_lock_out_per_account_then_released(people, member, clock):
    for _ in range(4):
        with pytest.raises(SignInRefused):
            people.sign_in("ann@shop.example", "guess guess", "192.0.2.1")
    with pytest.raises(SignInLocked):
        people.sign_in("ann@shop.example", "guess guess", "192.0.2.1")
    with pytest.raises(SignInLocked) as locked:  # even the right password, from elsewhere
        people.sign_in("ann@shop.example", PASSWORD, "198.51.100.7")
    assert 0 < locked.value.seconds <= 15 * 60
    clock.advance(timedelta(minutes=15, seconds=1))
    people.sign_in("ann@shop.example", PASSWORD, "192.0.2.1")


def test_lock_out_per_address(people, member):
    for n in range(19):
        with pytest.raises(SignInRefused):
            people.sign_in(f"guess{n}@shop.example", "guess guess", "203.0.113.9")
    with pytest.raises(SignInLocked):
        people.sign_in("guess@shop.example", "guess guess", "203.0.113.9")
    with pytest.raises(SignInLocked):
        people.sign_in("ann@shop.example", PASSWORD, "203.0.113.9")
    people.sign_in("ann@shop.example", PASSWORD, "192.0.2.1")  # other addresses still may


def test_password_change_ends_every_session(people, member):
    person, first = people.sign_in("ann@shop.example", PASSWORD, "192.0.2.1")
    _, second = people.sign_in("ann@shop.example", PASSWORD, "192.0.2.2")
    with pytest.raises(SignInRefused):
        people.change_password(person, "wrong old one", "another long password")
    new = people.change_password(person, PASSWORD, "another long password")
    assert people.session(first) is None and people.session(second) is None
    assert people.session(new) is not None
    people.sign_in("ann@shop.example", "another long password", "192.0.2.1")


def test_bad_passwords_logins_and_members_are_refused(people, member, accounts):
    org = member.org_id
    with pytest.raises(InvalidAccountInput):
        people.set_password(org, member.id, "ann@shop.example", "short")
    with pytest.raises(InvalidAccountInput):
        people.set_password(org, member.id, "has space@x", PASSWORD)
    other = accounts.create_organisation("Other")
    with pytest.raises(MemberNotFound):  # a member of another organisation
        people.set_password(other.id, member.id, "x@other.example", PASSWORD)
    bo = accounts.add_member(org, "Bo", Role.MEMBER)
    with pytest.raises(InvalidAccountInput):  # Ann's login
        people.set_password(org, bo.id, "ann@shop.example", PASSWORD)
