"""Organisations, roles and API keys: format, hashing, authentication, revocation,
expiry, role/scope rules; the secret is never stored anywhere."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from tests.accounts.conftest import ALL_SCOPES
from tsa_server.accounts import service as accounts_module
from tsa_server.accounts.errors import (
    AccountConflict,
    ApiKeyExpired,
    ApiKeyNotFound,
    ApiKeyRevoked,
    InvalidAccountInput,
    InvalidApiKey,
    MemberNotFound,
    OrganisationNotFound,
    PermissionDenied,
)
from tsa_server.accounts.key_rules import (
    ROLE_SCOPES,
    Principal,
    Role,
    Scope,
    check_grant,
    parse_scopes,
)
from tsa_server.accounts.keys import (
    LAST_USED_RESOLUTION,
    check_revoke,
    hash_secret,
    key_summary,
    parse_token,
)
from tsa_server.accounts.service import Accounts
from tsa_server.accounts.store import SqlAccountStore

READ = frozenset({Scope.READ})


def test_token_format_and_hash(accounts: Accounts, store: SqlAccountStore) -> None:
    org = accounts.create_organisation("Acme")
    created = accounts.create_key(org.id, scopes=READ, name="ci")
    prefix, key_id, secret = created.secret.split("_")
    assert prefix == "tsa" and key_id == created.key.id and len(key_id) == 16
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert parse_token(created.secret) == (key_id, secret)
    _, stored_hash = store.api_key_for_authentication(key_id)
    assert stored_hash == hash_secret(key_id, secret) and len(stored_hash) == 32
    assert secret not in repr(created) and secret not in repr(created.key)
    assert not {"secret", "secret_hash", "hash"} & set(key_summary(created.key, accounts.now()))


def test_two_keys_never_share_a_secret(accounts: Accounts) -> None:
    org = accounts.create_organisation("Acme")
    tokens = {accounts.create_key(org.id, scopes=READ).secret for _ in range(20)}
    assert len(tokens) == 20


def test_active_keys_are_capped(accounts: Accounts, monkeypatch) -> None:
    monkeypatch.setattr(accounts_module, "MAX_ACTIVE_KEYS", 3)
    org = accounts.create_organisation("Acme")
    made = [accounts.create_key(org.id, scopes=READ) for _ in range(3)]
    with pytest.raises(AccountConflict):
        accounts.create_key(org.id, scopes=READ)
    accounts.revoke_key(org.id, made[0].key.id)
    accounts.create_key(org.id, scopes=READ)


def test_the_secret_is_never_stored(accounts: Accounts, store: SqlAccountStore, db_path) -> None:
    org = accounts.create_organisation("Acme")
    created = [accounts.create_key(org.id, scopes=ALL_SCOPES, role=Role.OWNER) for _ in range(3)]
    for key in created:
        accounts.authenticate(key.secret)
    accounts.revoke_key(org.id, created[0].key.id)

    def stored_bytes() -> bytes:
        files = [db_path, *db_path.parent.glob(db_path.name + "-*")]
        return b"".join(p.read_bytes() for p in files if p.exists())

    for when in ("open (WAL)", "closed (checkpointed)"):
        data = stored_bytes()
        assert data, when
        for key in created:
            secret = key.secret.rsplit("_", 1)[1]
            assert secret.encode() not in data, when
            assert bytes.fromhex(secret) not in data, when
            assert key.secret.encode() not in data, when
            assert key.key.id.encode() in data  # the id is stored; the search works
        store.close()


def test_authenticate_gives_the_principal(accounts: Accounts, clock) -> None:
    org = accounts.create_organisation("Acme")
    member = accounts.add_member(org.id, "Ada", Role.ADMIN)
    created = accounts.create_key(
        org.id, scopes=frozenset({Scope.ADMIN, Scope.READ}), role=Role.ADMIN, member_id=member.id
    )
    principal = accounts.authenticate(created.secret)
    assert principal == Principal(
        org.id, created.key.id, Role.ADMIN, frozenset({Scope.ADMIN, Scope.READ}), member.id, None
    )
    assert accounts.key(org.id, created.key.id).last_used_at == clock.now


def test_last_used_is_written_at_most_once_a_minute(accounts: Accounts, clock) -> None:
    org = accounts.create_organisation("Acme")
    created = accounts.create_key(org.id, scopes=READ)
    first = clock.now
    accounts.authenticate(created.secret)
    clock.advance(LAST_USED_RESOLUTION - timedelta(milliseconds=1))
    accounts.authenticate(created.secret)
    assert accounts.key(org.id, created.key.id).last_used_at == first
    clock.advance(timedelta(milliseconds=1))
    accounts.authenticate(created.secret)
    assert accounts.key(org.id, created.key.id).last_used_at == clock.now


def _mutations(token: str) -> list[str]:
    key_id, secret = parse_token(token)
    other = "0" if secret[-1] != "0" else "1"
    return [
        "",
        "tsa_",
        token + "\n",
        " " + token,
        token.upper(),
        "Bearer " + token,
        token.replace("tsa_", "tsb_", 1),
        token.replace("tsa_", "tsa__", 1),
        f"tsa_{key_id}_{secret[:-1]}",  # truncated secret
        f"tsa_{key_id}_{secret}0",  # one digit too many
        f"tsa_{key_id}_{secret[:-1]}{other}",  # wrong secret, right key id
        f"tsa_{'0' * 16}_{secret}",  # unknown key id, right secret
        f"tsa_{key_id}:{secret}",
        f"tsa_{key_id}_{secret[:-1]}\u0661",  # a non-ASCII digit
    ]


def test_malformed_or_wrong_tokens_are_one_error(accounts: Accounts) -> None:
    org = accounts.create_organisation("Acme")
    created = accounts.create_key(org.id, scopes=READ)
    for token in _mutations(created.secret):
        with pytest.raises(InvalidApiKey) as info:
            accounts.authenticate(token)
        assert str(info.value) == "invalid API key", token
    accounts.authenticate(created.secret)


def test_revoked_keys_are_refused(accounts: Accounts, clock) -> None:
    org = accounts.create_organisation("Acme")
    created = accounts.create_key(org.id, scopes=READ)
    revoked = accounts.revoke_key(org.id, created.key.id, by="support")
    assert revoked.revoked_at == clock.now and revoked.revoked_by == "support"
    with pytest.raises(ApiKeyRevoked):
        accounts.authenticate(created.secret)
    clock.advance(timedelta(days=1))
    again = accounts.revoke_key(org.id, created.key.id)
    assert again.revoked_at == revoked.revoked_at and again.revoked_by == "support"
    assert accounts.key(org.id, created.key.id).state(clock.now) == "revoked"
    # a wrong secret for a revoked key says nothing about the key's state
    with pytest.raises(InvalidApiKey):
        accounts.authenticate(created.secret[:-1] + ("0" if created.secret[-1] != "0" else "1"))


def test_keys_expire_at_the_instant(accounts: Accounts, clock) -> None:
    org = accounts.create_organisation("Acme")
    expires = clock.now + timedelta(days=30)
    created = accounts.create_key(org.id, scopes=READ, expires_at=expires)
    clock.now = expires - timedelta(milliseconds=1)
    accounts.authenticate(created.secret)
    clock.now = expires  # half-open [created, expires)
    with pytest.raises(ApiKeyExpired):
        accounts.authenticate(created.secret)
    with pytest.raises(InvalidAccountInput):
        accounts.create_key(org.id, scopes=READ, expires_at=clock.now)


@pytest.mark.parametrize("role", list(Role))
def test_roles_bound_scopes(accounts: Accounts, role: Role) -> None:
    org = accounts.create_organisation("Acme")
    for scope in Scope:
        if scope in ROLE_SCOPES[role]:
            accounts.create_key(org.id, scopes=frozenset({scope}), role=role)
        else:
            with pytest.raises(InvalidAccountInput):
                accounts.create_key(org.id, scopes=frozenset({scope}), role=role)
    with pytest.raises(InvalidAccountInput):
        accounts.create_key(org.id, scopes=frozenset(), role=role)


def test_role_table() -> None:
    assert ROLE_SCOPES[Role.AUDITOR] == {Scope.READ}
    assert Scope.ADMIN not in ROLE_SCOPES[Role.MEMBER]
    assert ROLE_SCOPES[Role.OWNER] == ROLE_SCOPES[Role.ADMIN] == set(Scope)


def test_parse_scopes() -> None:
    assert parse_scopes(["read,deposit", "timestamp"]) == {
        Scope.READ,
        Scope.DEPOSIT,
        Scope.TIMESTAMP,
    }
    for bad in (["root"], ["read,"], [""], []):
        with pytest.raises(InvalidAccountInput):
            parse_scopes(bad)


def _principal(role: Role, scopes=None, key_id: str = "a" * 16) -> Principal:
    return Principal("org_x", key_id, role, frozenset(scopes or ROLE_SCOPES[role]))


def test_who_may_create_keys() -> None:
    check_grant(_principal(Role.OWNER), Role.OWNER, ALL_SCOPES)
    check_grant(_principal(Role.ADMIN), Role.ADMIN, ALL_SCOPES)
    check_grant(_principal(Role.ADMIN), Role.AUDITOR, READ)
    with pytest.raises(PermissionDenied):
        check_grant(_principal(Role.ADMIN), Role.OWNER, READ)
    with pytest.raises(PermissionDenied) as info:
        check_grant(_principal(Role.MEMBER), Role.AUDITOR, READ)
    assert info.value.scope == "admin"
    with pytest.raises(PermissionDenied):  # an owner key without the admin scope
        check_grant(_principal(Role.OWNER, {Scope.READ}), Role.AUDITOR, READ)
    # only scopes the creator holds itself (issue 13: admin-only made admin+read+...)
    admin_only = _principal(Role.ADMIN, {Scope.ADMIN})
    check_grant(admin_only, Role.ADMIN, frozenset({Scope.ADMIN}))
    for scopes in (READ, ALL_SCOPES, frozenset({Scope.ADMIN, Scope.DEPOSIT})):
        with pytest.raises(PermissionDenied, match="grant scopes it holds"):
            check_grant(admin_only, Role.MEMBER, scopes)


def test_who_may_revoke_keys(accounts: Accounts) -> None:
    org = accounts.create_organisation("Acme")
    owner = accounts.create_key(org.id, scopes=ALL_SCOPES, role=Role.OWNER).key
    admin = accounts.create_key(org.id, scopes=ALL_SCOPES, role=Role.ADMIN).key
    auditor = accounts.create_key(org.id, scopes=READ, role=Role.AUDITOR).key
    as_admin = _principal(Role.ADMIN, key_id=admin.id)
    check_revoke(as_admin, auditor)
    check_revoke(as_admin, admin)
    with pytest.raises(PermissionDenied):
        check_revoke(as_admin, owner)
    check_revoke(_principal(Role.OWNER, key_id=owner.id), admin)
    as_auditor = _principal(Role.AUDITOR, key_id=auditor.id)
    check_revoke(as_auditor, auditor)  # a key may always revoke itself
    with pytest.raises(PermissionDenied):
        check_revoke(as_auditor, admin)


def test_create_and_revoke_as_a_principal(accounts: Accounts, clock) -> None:
    org = accounts.create_organisation("Acme")
    owner = accounts.create_key(org.id, scopes=ALL_SCOPES, role=Role.OWNER)
    principal = accounts.authenticate(owner.secret)
    made = accounts.create_key_as(
        principal, scopes=READ, role=Role.AUDITOR, name="audit", expires_in=timedelta(days=7)
    )
    assert made.key.created_by == owner.key.id
    assert made.key.expires_at == clock.now + timedelta(days=7)
    revoked = accounts.revoke_key_as(principal, made.key.id)
    assert revoked.key.revoked_by == owner.key.id and revoked.cascaded == ()
    with pytest.raises(ApiKeyRevoked):
        accounts.authenticate(made.secret)


def test_keys_of_another_organisation_are_not_found(accounts: Accounts, two_orgs) -> None:
    a, b, key_a, key_b = two_orgs
    principal_a = accounts.authenticate(key_a.secret)
    for call in (
        lambda: accounts.key(a.id, key_b.key.id),
        lambda: accounts.revoke_key(a.id, key_b.key.id),
        lambda: accounts.revoke_key_as(principal_a, key_b.key.id),
        lambda: accounts.key(a.id, "../" + key_b.key.id),
        lambda: accounts.revoke_key_by_id("nonsense"),
    ):
        with pytest.raises(ApiKeyNotFound):
            call()
    assert [k.id for k in accounts.keys(a.id)] == [key_a.key.id]
    assert accounts.authenticate(key_b.secret).org_id == b.id  # untouched


def test_operator_revocation_by_key_id(accounts: Accounts, two_orgs) -> None:
    _, b, _, key_b = two_orgs
    assert accounts.revoke_key_by_id(key_b.key.id).org_id == b.id
    with pytest.raises(ApiKeyRevoked):
        accounts.authenticate(key_b.secret)


def test_names_members_and_organisations_are_checked(accounts: Accounts) -> None:
    with pytest.raises(InvalidAccountInput):
        accounts.create_organisation("  ")
    with pytest.raises(InvalidAccountInput):
        accounts.create_organisation("a\x00b")
    with pytest.raises(InvalidAccountInput):
        accounts.create_organisation("x" * 201)
    with pytest.raises(OrganisationNotFound):
        accounts.create_key("org_missing", scopes=READ)
    org = accounts.create_organisation("Acme")
    auditor = accounts.add_member(org.id, "Eve", Role.AUDITOR)
    with pytest.raises(InvalidAccountInput):  # a key cannot outrank its holder
        accounts.create_key(org.id, scopes=READ, role=Role.MEMBER, member_id=auditor.id)
    with pytest.raises(MemberNotFound):
        accounts.create_key(org.id, scopes=READ, member_id="mem_0000")
    other = accounts.create_organisation("Other")
    with pytest.raises(MemberNotFound):  # another organisation's member
        accounts.create_key(other.id, scopes=READ, role=Role.AUDITOR, member_id=auditor.id)


def test_key_rows_only_gain_use_and_one_revocation(accounts: Accounts, engine_db) -> None:
    org = accounts.create_organisation("Acme")
    created = accounts.create_key(org.id, scopes=READ)
    accounts.revoke_key(org.id, created.key.id)
    raw = engine_db.raw()
    for sql in (
        "DELETE FROM api_keys",
        "UPDATE api_keys SET scopes = 'admin read'",
        "UPDATE api_keys SET role = 'owner'",
        "UPDATE api_keys SET secret_hash = ?",
        "UPDATE api_keys SET revoked_at = NULL",
        "DELETE FROM organisations",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute(sql, (b"\0",) if "?" in sql else ())
    raw.close()
