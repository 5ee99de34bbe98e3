"""People and roles (accounts/membership.py) on each engine: no role above one's own,
no acting on a higher role, the last owner kept, nobody removing themselves, a person's
page-made keys revoked when the person is demoted below them or removed, and self
sign-up checking everything before it makes anything."""

from __future__ import annotations

import pytest

from tsa_server.accounts.errors import AccountConflict, InvalidAccountInput, PermissionDenied
from tsa_server.accounts.key_rules import Role, Scope
from tsa_server.accounts.login_limits import LoginLimits
from tsa_server.accounts.membership import (
    ABOVE_YOU,
    HIGHER_ROLE,
    LAST_OWNER,
    NAMED_BY_KEYS,
    NOT_YOURSELF,
    Membership,
    MembershipStore,
    sign_up,
)
from tsa_server.accounts.people import People, Person
from tsa_server.accounts.service import Accounts

PASSWORD = "a long enough password"


@pytest.fixture
def people(store, clock) -> People:
    return People(store.db, limits=LoginLimits(now=clock), now=clock)


@pytest.fixture
def rules(accounts: Accounts, people: People, store) -> Membership:
    return Membership(accounts, people, MembershipStore(store.db))


def _person(rules: Membership, org: str, name: str, role: Role) -> Person:
    member = rules.accounts.add_member(org, name, role)
    login = rules.people.set_password(org, member.id, f"{name}@x.example", PASSWORD)
    return rules.people.sign_in(login, PASSWORD, "192.0.2.9")[0]


def test_nobody_gives_or_touches_a_role_above_their_own(rules: Membership) -> None:
    org = rules.accounts.create_organisation("Shop").id
    owner = _person(rules, org, "own", Role.OWNER)
    admin = _person(rules, org, "adm", Role.ADMIN)
    with pytest.raises(PermissionDenied, match=HIGHER_ROLE):
        rules.add_person(
            admin.principal, name="X", login="x@x.example", password=PASSWORD, role=Role.OWNER
        )
    with pytest.raises(PermissionDenied, match=ABOVE_YOU):
        rules.change_role(admin.principal, owner.member.id, Role.MEMBER)
    with pytest.raises(PermissionDenied, match=ABOVE_YOU):
        rules.remove(admin.principal, owner.member.id)
    added = rules.add_person(
        admin.principal, name="Mei", login="Mei@X.example", password=PASSWORD, role=Role.MEMBER
    )
    member = rules.people.sign_in("mei@x.example", PASSWORD, "192.0.2.9")[0]
    assert member.member.id == added.id
    with pytest.raises(PermissionDenied, match="admin scope"):
        rules.change_role(member.principal, admin.member.id, Role.AUDITOR)
    with pytest.raises(PermissionDenied, match=HIGHER_ROLE):
        rules.change_role(admin.principal, added.id, Role.OWNER)
    assert rules.change_role(owner.principal, added.id, Role.OWNER).member.role == Role.OWNER


def test_the_last_owner_stays_and_nobody_removes_themselves(rules: Membership) -> None:
    org = rules.accounts.create_organisation("Shop").id
    owner = _person(rules, org, "own", Role.OWNER)
    with pytest.raises(AccountConflict, match=LAST_OWNER):
        rules.change_role(owner.principal, owner.member.id, Role.ADMIN)
    with pytest.raises(PermissionDenied, match=NOT_YOURSELF):
        rules.remove(owner.principal, owner.member.id)
    second = _person(rules, org, "two", Role.OWNER)
    rules.change_role(second.principal, owner.member.id, Role.ADMIN)
    # the store's own check, whatever the caller read before
    assert not rules.store.set_role(org, second.member.id, Role.MEMBER)
    assert not rules.store.remove(org, second.member.id)
    assert rules.accounts.store.member(org, second.member.id).role == Role.OWNER


def test_demotion_and_removal_revoke_the_persons_keys_beyond_them(rules: Membership) -> None:
    org = rules.accounts.create_organisation("Shop").id
    owner = _person(rules, org, "own", Role.OWNER)
    admin = _person(rules, org, "adm", Role.ADMIN)
    admin_key = rules.accounts.create_key_as(
        admin.principal, scopes=frozenset(Scope), role=Role.ADMIN
    )
    read_key = rules.accounts.create_key_as(
        admin.principal, scopes=frozenset({Scope.READ}), role=Role.MEMBER
    )
    child = rules.accounts.create_key(
        org, scopes=frozenset({Scope.READ}), created_by=admin_key.key.id
    )
    change = rules.change_role(owner.principal, admin.member.id, Role.MEMBER)
    assert {k.id for k in change.revoked} == {admin_key.key.id, child.key.id}
    assert rules.accounts.key(org, read_key.key.id).revoked_at is None
    change = rules.remove(owner.principal, admin.member.id)
    assert [k.id for k in change.revoked] == [read_key.key.id]
    assert rules.accounts.store.member(org, admin.member.id) is None
    assert rules.people.store.person("adm@x.example") is None


def test_a_member_named_by_operator_keys_is_not_removed(rules: Membership) -> None:
    org = rules.accounts.create_organisation("Shop").id
    owner = _person(rules, org, "own", Role.OWNER)
    member = _person(rules, org, "mem", Role.MEMBER)
    rules.accounts.create_key(org, scopes=frozenset({Scope.READ}), member_id=member.member.id)
    with pytest.raises(AccountConflict, match="operator"):
        rules.remove(owner.principal, member.member.id)
    assert NAMED_BY_KEYS.startswith("API keys the operator")


def test_sign_up_checks_before_it_makes(accounts: Accounts, people: People) -> None:
    before = len(accounts.store.organisations())
    with pytest.raises(InvalidAccountInput):
        sign_up(accounts, people, organisation="S", name="N", login="n@x.example", password="short")
    org, member = sign_up(
        accounts, people, organisation="Studio", name="Nan", login="N@X.example", password=PASSWORD
    )
    assert member.role == Role.OWNER and member.org_id == org.id
    with pytest.raises(AccountConflict):
        sign_up(
            accounts, people, organisation="Two", name="N", login="n@x.example", password=PASSWORD
        )
    assert len(accounts.store.organisations()) == before + 1
