"""API keys made by API keys, against a real `tsa serve` (issue 13, items 10, 11 and the
key part of 7): a key cannot grant scopes it lacks nor outlive its maker, revoking a key
revokes the keys it made, and a key's "last used" write never holds up a request."""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path

import pytest

from tests.accounts.test_http import Client, body_key_id, tsa_accounts
from tests.support.tsa import TsaServer


@pytest.fixture
def server(make_server, tmp_path: Path) -> TsaServer:
    return make_server(
        evidence={"path": str(tmp_path / "evidence.sqlite"), "blobs": str(tmp_path / "blobs")}
    ).start()


def owner_of_new_org(server: TsaServer) -> tuple[str, Client]:
    org = tsa_accounts(server, "create-org", "Delegating Ltd")
    token = tsa_accounts(
        server, "create-key", "--org", org, "--role", "owner", "--scope", "admin,read,deposit"
    )
    return org, Client(server, token)


def make_key(creator: Client, **fields) -> tuple[int, dict]:
    status, _, body = creator.call("POST", "/api/v1/keys", fields)
    return status, body


def test_a_key_cannot_grant_scopes_it_lacks(server: TsaServer) -> None:
    _, owner = owner_of_new_org(server)
    status, body = make_key(owner, name="keys only", role="admin", scopes=["admin"])
    assert status == 201, body
    admin_only = Client(server, body["secret"])
    assert admin_only.call("GET", "/api/v1/items")[0] == 403

    # issue 13: this key made a key with every scope, which then read the items
    for scopes in (["admin", "read", "deposit", "timestamp"], ["read"], ["deposit", "admin"]):
        status, body = make_key(admin_only, role="admin", scopes=scopes)
        assert status == 403 and "lacks" in body["error"], (scopes, body)
    status, body = make_key(admin_only, role="member", scopes=["admin"])  # role: as before
    assert status == 400, body
    status, body = make_key(admin_only, role="admin", scopes=["admin"])
    assert status == 201 and body["key"]["scopes"] == ["admin"], body
    # the owner's own keys still get what it holds, and no more
    assert make_key(owner, scopes=["read", "deposit"])[0] == 201
    assert make_key(owner, scopes=["timestamp"])[0] == 403


def test_a_child_key_never_outlives_or_survives_its_maker(server: TsaServer) -> None:
    org, owner = owner_of_new_org(server)
    status, body = make_key(owner, role="admin", scopes=["admin", "read"], expires_in_days=1)
    assert status == 201, body
    parent = Client(server, body["secret"])
    parent_expiry = body["key"]["expires_at"]

    # issue 13: a key that expires tomorrow made a key with no expiry
    status, body = make_key(parent, name="forever?", role="admin", scopes=["admin", "read"])
    assert status == 201 and body["key"]["expires_at"] == parent_expiry, body
    child = Client(server, body["secret"])
    status, body = make_key(parent, scopes=["read"], expires_in_days=30)
    assert status == 403 and "cannot expire later" in body["error"], body
    status, body = make_key(child, role="auditor", scopes=["read"])
    assert status == 201 and body["key"]["expires_at"] == parent_expiry
    grandchild = Client(server, body["secret"])

    # ... then revoked itself: the keys it made (transitively) go with it
    status, _, body = parent.call("DELETE", f"/api/v1/keys/{body_key_id(parent.token)}")
    assert status == 200 and body["key"]["state"] == "revoked", body
    ids = {body_key_id(c.token): c for c in (child, grandchild)}
    assert {k["id"]: k["revoked_via"] for k in body["revoked_with"]} == {
        body_key_id(child.token): body_key_id(parent.token),
        body_key_id(grandchild.token): body_key_id(child.token),
    }
    for client in (parent, *ids.values()):
        status, _, body = client.call("GET", "/api/v1/account")
        assert status == 401 and "revoked" in body["error"]
    listed = {k["id"]: k for k in owner.call("GET", "/api/v1/keys")[2]["keys"]}
    for key_id in ids:
        key = listed[key_id]
        assert key["state"] == "revoked" and key["revoked_by"] == body_key_id(parent.token)
    assert owner.call("GET", "/api/v1/account")[0] == 200  # its maker (the CLI's) lives on
    assert "revoked" in tsa_accounts(server, "list", "--org", org)


def test_recording_a_keys_use_never_waits_for_the_database(
    server: TsaServer, tmp_path: Path
) -> None:
    """A CLI holding the evidence database's write lock used to stall every request whose
    key was due a "last used" write (on the event loop, up to the 5 s busy timeout)."""
    org, owner = owner_of_new_org(server)
    token = tsa_accounts(server, "create-key", "--org", org, "--role", "auditor", "--scope", "read")
    fresh = Client(server, token)

    def timed(client: Client) -> float:
        start = time.perf_counter()
        status, _, _ = client.call("GET", "/api/v1/account")
        assert status == 200
        return time.perf_counter() - start

    baseline = statistics.median(timed(owner) for _ in range(5))
    db = sqlite3.connect(tmp_path / "evidence.sqlite", isolation_level=None)
    db.execute("PRAGMA busy_timeout=10000")
    db.execute("BEGIN IMMEDIATE")  # what `tsa accounts ...` holds while it writes
    try:
        locked = max(timed(fresh) for _ in range(3))  # never used: its use is news
    finally:
        db.execute("ROLLBACK")
    assert locked < max(1.0, 20 * baseline), (locked, baseline)

    deadline = time.monotonic() + 30  # written by the next batch once the lock is gone
    while True:
        (used,) = db.execute(
            "SELECT last_used_at FROM api_keys WHERE id = ?", (body_key_id(fresh.token),)
        ).fetchone()
        if used is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    db.close()
    assert used is not None
    assert "Traceback" not in server.log()
