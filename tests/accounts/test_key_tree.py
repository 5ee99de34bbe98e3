"""API keys as a tree (issue 13, items 10 and 11): a key never holds more than the key
that made it (role, scopes, expiry), revoking a key revokes every key it made, recorded
with `revoked_via`; the schema refuses a key outside its creator even from an sqlite3
shell; databases made before the rule are migrated once; and last uses batched by the
`KeyUseRecorder` are written at most once a minute per key."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from tests.accounts.conftest import ALL_SCOPES, START
from tsa_server.accounts.errors import ApiKeyExpired, ApiKeyRevoked, PermissionDenied
from tsa_server.accounts.key_rules import Role, Scope
from tsa_server.accounts.key_use import KeyUseRecorder
from tsa_server.accounts.keys import LAST_USED_RESOLUTION, key_summary
from tsa_server.accounts.service import Accounts
from tsa_server.accounts.store import SqlAccountStore
from tsa_server.accounts.times import ts

READ = frozenset({Scope.READ})
ADMIN = frozenset({Scope.ADMIN})


def test_a_created_key_holds_only_scopes_its_creator_holds(accounts: Accounts) -> None:
    org = accounts.create_organisation("Acme")
    admin_only = accounts.create_key(org.id, scopes=ADMIN, role=Role.ADMIN)
    principal = accounts.authenticate(admin_only.secret)
    for scopes in (ALL_SCOPES, READ, ADMIN | READ):
        with pytest.raises(PermissionDenied, match="lacks"):
            accounts.create_key_as(principal, scopes=scopes, role=Role.ADMIN)
    made = accounts.create_key_as(principal, scopes=ADMIN, role=Role.ADMIN)
    assert made.key.scopes == ADMIN and made.key.created_by == admin_only.key.id
    assert {k.id for k in accounts.keys(org.id)} == {admin_only.key.id, made.key.id}


def test_a_child_never_outlives_its_creator(accounts: Accounts, clock) -> None:
    org = accounts.create_organisation("Acme")
    tomorrow = clock.now + timedelta(days=1)
    parent = accounts.create_key(org.id, scopes=ALL_SCOPES, role=Role.ADMIN, expires_at=tomorrow)
    as_parent = accounts.authenticate(parent.secret)
    inherited = accounts.create_key_as(as_parent, scopes=READ, role=Role.AUDITOR)
    assert inherited.key.expires_at == tomorrow  # none asked: the creator's
    with pytest.raises(PermissionDenied, match="cannot expire later"):
        accounts.create_key_as(as_parent, scopes=READ, expires_in=timedelta(days=2))
    earlier = accounts.create_key_as(as_parent, scopes=READ, expires_in=timedelta(hours=1))
    assert earlier.key.expires_at == clock.now + timedelta(hours=1)
    # and so on down the tree
    child = accounts.create_key_as(as_parent, scopes=ALL_SCOPES, role=Role.ADMIN)
    grandchild = accounts.create_key_as(accounts.authenticate(child.secret), scopes=READ)
    assert child.key.expires_at == grandchild.key.expires_at == tomorrow
    clock.now = tomorrow
    for key in (parent, inherited, child, grandchild):
        with pytest.raises(ApiKeyExpired):
            accounts.authenticate(key.secret)


def test_revoking_a_key_revokes_what_it_made_transitively(accounts: Accounts, clock) -> None:
    org = accounts.create_organisation("Acme")
    root = accounts.create_key(org.id, scopes=ALL_SCOPES, role=Role.OWNER)
    sibling = accounts.create_key(org.id, scopes=ALL_SCOPES, role=Role.OWNER)  # also the CLI's
    parent = accounts.create_key_as(
        accounts.authenticate(root.secret),
        scopes=ALL_SCOPES,
        role=Role.ADMIN,
        expires_in=timedelta(days=1),
    )
    as_parent = accounts.authenticate(parent.secret)
    child = accounts.create_key_as(as_parent, scopes=ALL_SCOPES, role=Role.ADMIN)
    grandchild = accounts.create_key_as(accounts.authenticate(child.secret), scopes=READ)
    clock.advance(timedelta(minutes=5))

    done = accounts.revoke_key_as(as_parent, parent.key.id)  # the key revokes itself
    assert done.key.revoked_at == clock.now and done.key.revoked_via is None
    assert {k.id: k.revoked_via for k in done.cascaded} == {
        child.key.id: parent.key.id,
        grandchild.key.id: child.key.id,
    }
    for key in done.cascaded:
        assert key.revoked_at == clock.now and key.revoked_by == parent.key.id
        assert key_summary(key, clock.now)["revoked_via"] == key.revoked_via
    for key in (parent, child, grandchild):
        with pytest.raises(ApiKeyRevoked):
            accounts.authenticate(key.secret)
    # the creator of the revoked key and the CLI's other keys (no parent) live on
    accounts.authenticate(root.secret)
    accounts.authenticate(sibling.secret)
    with pytest.raises(PermissionDenied, match="outlives"):  # a revoked key makes nothing
        accounts.create_key_as(as_parent, scopes=READ)


def test_the_schema_keeps_a_key_within_its_creator(accounts: Accounts, engine_db) -> None:
    org = accounts.create_organisation("Acme")
    parent = accounts.create_key(
        org.id, scopes=READ, role=Role.MEMBER, expires_at=START + timedelta(days=1)
    ).key
    raw = engine_db.raw()
    insert = (
        "INSERT INTO api_keys (id, org_id, name, role, scopes, secret_hash, created_at,"
        " created_by, expires_at) VALUES (?, ?, '', ?, ?, ?, ?, ?, ?)"
    )
    within = ts(START + timedelta(hours=1))
    for n, (role, scopes, expires) in enumerate(
        [
            ("admin", "read", within),  # a higher role
            ("member", "deposit read", within),  # a scope the creator lacks
            ("member", "read", None),  # no expiry under a creator that has one
            ("member", "read", ts(START + timedelta(days=2))),  # a later one
        ]
    ):
        with pytest.raises(sqlite3.IntegrityError, match="outlives"):
            raw.execute(
                insert, (f"{n:016x}", org.id, role, scopes, b"\0", ts(START), parent.id, expires)
            )
    raw.execute(insert, ("f" * 16, org.id, "auditor", "read", b"\0", ts(START), parent.id, within))
    for sql in ("UPDATE api_keys SET expires_at = NULL", "UPDATE api_keys SET revoked_via = 'x'"):
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute(sql)
    raw.close()


def _legacy_database(path: Path) -> None:
    """A database as made before issue 13: no revoked_via, no creator trigger."""
    SqlAccountStore(path).close()
    raw = sqlite3.connect(path)
    raw.executescript(
        "DROP TRIGGER api_keys_fixed; DROP TRIGGER api_keys_within_creator;"
        " ALTER TABLE api_keys DROP COLUMN revoked_via;"
        " INSERT INTO organisations VALUES ('org_a', 'A', '2025-01-01T00:00:00.000Z');"
    )
    rows = [  # id, created_by, expires_at, revoked_at
        ("a" * 16, "cli", "2025-06-01T00:00:00.000Z", None),
        ("b" * 16, "a" * 16, None, None),  # an orphan-to-be: no expiry under an expiring key
        ("c" * 16, "b" * 16, "2030-01-01T00:00:00.000Z", None),
        ("d" * 16, "cli", None, "2025-02-01T00:00:00.000Z"),  # revoked, its child was not
        ("e" * 16, "d" * 16, None, None),
        ("f" * 16, "e" * 16, None, None),
    ]
    raw.executemany(
        "INSERT INTO api_keys (id, org_id, name, role, scopes, secret_hash, created_at,"
        " created_by, expires_at, revoked_at, revoked_by) VALUES"
        " (?, 'org_a', '', 'owner', 'admin read', x'00', '2025-01-01T00:00:00.000Z', ?, ?, ?,"
        " CASE WHEN ?4 IS NULL THEN NULL ELSE 'cli' END)",
        rows,
    )
    raw.commit()
    raw.close()


def test_an_old_database_is_migrated_once(db_path: Path, clock) -> None:
    _legacy_database(db_path)
    store = SqlAccountStore(db_path, now=clock)
    try:
        keys = {k.id[0]: k for k in store.api_keys("org_a")}
        june = keys["a"].expires_at
        assert keys["b"].expires_at == june and keys["c"].expires_at == june
        assert [keys[k].state(clock.now) for k in "abc"] == ["active"] * 3
        for name, via in (("e", "d"), ("f", "e")):
            assert keys[name].revoked_by == "migration" and keys[name].revoked_via == via * 16
        assert keys["d"].revoked_by == "cli" and keys["d"].revoked_via is None
    finally:
        store.close()
    raw = sqlite3.connect(db_path)  # the rules hold again, and a second open changes nothing
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE api_keys SET expires_at = NULL")
    before = raw.execute("SELECT * FROM api_keys ORDER BY id").fetchall()
    SqlAccountStore(db_path).close()
    assert raw.execute("SELECT * FROM api_keys ORDER BY id").fetchall() == before
    raw.close()


def test_key_uses_are_written_in_batches_at_most_once_a_minute(
    accounts: Accounts, store: SqlAccountStore, db_path: Path, clock
) -> None:
    org = accounts.create_organisation("Acme")
    one = accounts.create_key(org.id, scopes=READ)
    two = accounts.create_key(org.id, scopes=READ)

    async def scenario() -> list[int]:
        recorder = KeyUseRecorder(db_path, flush_s=3600)
        counting = Accounts(store, now=clock, key_use=recorder)
        written = []
        try:
            for _ in range(50):  # many requests: nothing is written while they run
                counting.authenticate(one.secret)
                counting.authenticate(two.secret)
            assert store.api_key(org.id, one.key.id).last_used_at is None
            written.append(await recorder.flush())  # both, in one transaction
            clock.advance(LAST_USED_RESOLUTION - timedelta(milliseconds=1))
            counting.authenticate(one.secret)
            written.append(await recorder.flush())  # within the minute: nothing
            clock.advance(timedelta(milliseconds=1))
            counting.authenticate(one.secret)
        finally:
            await recorder.stop()  # writes what is pending
        return written

    assert asyncio.run(scenario()) == [2, 0]
    assert store.api_key(org.id, one.key.id).last_used_at == clock.now
    assert store.api_key(org.id, two.key.id).last_used_at == START
