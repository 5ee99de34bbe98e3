"""The account endpoints against a real `tsa serve`, with organisations and keys made by
`tsa accounts` in a subprocess on the same configuration: 401/403 by the book, keys shown
once, and one organisation never reaching another's keys."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.tsa import TSA_BIN, TsaServer

pytestmark = pytest.mark.both_backends


def tsa_accounts(server: TsaServer, *args: str) -> str:
    result = subprocess.run(
        [TSA_BIN, "accounts", args[0], "--config", str(server.config_path), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class Client:
    def __init__(self, server: TsaServer, token: str | None) -> None:
        self.server, self.token = server, token

    def call(self, method: str, path: str, body=None, headers=None):
        headers = dict(headers or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        status, reply_headers, raw = self.server.request(method, path, body, headers)
        assert status < 500, raw
        assert reply_headers.get("Content-Type", "").startswith("application/json"), raw
        return status, reply_headers, json.loads(raw)


@pytest.fixture
def server(make_server, tmp_path: Path) -> TsaServer:
    running = make_server(
        evidence={"path": str(tmp_path / "evidence.sqlite"), "blobs": str(tmp_path / "blobs")}
    ).start()
    return running


def test_account_endpoints(server: TsaServer) -> None:
    org_a = tsa_accounts(server, "create-org", "Org A")
    org_b = tsa_accounts(server, "create-org", "Org B")
    owner_a = tsa_accounts(
        server,
        "create-key",
        "--org",
        org_a,
        "--role",
        "owner",
        "--scope",
        "admin,read,deposit,timestamp",
    )
    owner_b = tsa_accounts(
        server, "create-key", "--org", org_b, "--role", "owner", "--scope", "admin,read"
    )
    a, b = Client(server, owner_a), Client(server, owner_b)
    secrets = [owner_a, owner_b]

    # who am I
    status, _, body = a.call("GET", "/api/v1/account")
    assert status == 200 and body["organisation"] == {
        "id": org_a,
        "name": "Org A",
        "created_at": body["organisation"]["created_at"],
    }
    assert body["role"] == "owner" and body["scopes"] == ["admin", "deposit", "read", "timestamp"]
    assert body["key"]["id"] == owner_a.split("_")[1] and body["key"]["last_used_at"]

    # no key, a bad key, a key in the wrong place: 401 with a Bearer challenge
    for headers, path in (
        ({}, "/api/v1/account"),
        ({"Authorization": "Bearer tsa_0123456789abcdef_" + "0" * 64}, "/api/v1/account"),
        ({"Authorization": "Bearer " + owner_a[:-1]}, "/api/v1/keys"),
        ({"Authorization": "Basic " + owner_a}, "/api/v1/keys"),
        ({"Authorization": owner_a}, "/api/v1/keys"),
        ({}, "/api/v1/keys?api_key=" + owner_a),
    ):
        status, reply_headers, body = Client(server, None).call("GET", path, headers=headers)
        assert status == 401 and body["error"], (headers, path)
        assert reply_headers["WWW-Authenticate"].startswith('Bearer realm="tsa"')

    # the owner makes an auditor key (shown once) and a timestamp-only member key
    status, reply_headers, made = a.call(
        "POST", "/api/v1/keys", {"name": "auditors", "scopes": ["read"], "role": "auditor"}
    )
    assert status == 201 and made["secret"].startswith("tsa_")
    assert reply_headers["Cache-Control"] == "no-store"
    assert made["key"]["role"] == "auditor" and made["key"]["created_by"] == body_key_id(owner_a)
    auditor = Client(server, made["secret"])
    secrets.append(made["secret"])
    status, _, made = a.call(
        "POST", "/api/v1/keys", {"scopes": ["timestamp"], "expires_in_days": 30}
    )
    assert status == 201 and made["key"]["role"] == "member" and made["key"]["expires_at"]
    member = Client(server, made["secret"])
    secrets.append(made["secret"])

    # listing: every key of the organisation, never a secret
    status, _, listing = auditor.call("GET", "/api/v1/keys")
    assert status == 200 and len(listing["keys"]) == 3
    assert {k["id"] for k in listing["keys"]} == {body_key_id(s) for s in secrets if s != owner_b}
    text = json.dumps(listing)
    for secret in secrets:
        assert secret.rsplit("_", 1)[1] not in text

    # scopes and ranks: 403 with insufficient_scope
    status, reply_headers, _ = auditor.call("POST", "/api/v1/keys", {"scopes": ["read"]})
    assert status == 403 and 'error="insufficient_scope"' in reply_headers["WWW-Authenticate"]
    assert 'scope="admin"' in reply_headers["WWW-Authenticate"]
    status, _, _ = member.call("GET", "/api/v1/keys")
    assert status == 403
    status, _, made = a.call("POST", "/api/v1/keys", {"scopes": ["admin"], "role": "admin"})
    admin = Client(server, made["secret"])
    secrets.append(made["secret"])
    status, _, body = admin.call("POST", "/api/v1/keys", {"scopes": ["read"], "role": "owner"})
    assert status == 403 and "owner" in body["error"]
    status, _, _ = admin.call("DELETE", f"/api/v1/keys/{body_key_id(owner_a)}")
    assert status == 403

    check_bad_input(a)

    # another organisation's keys are invisible and untouchable
    status, _, listing = b.call("GET", "/api/v1/keys")
    assert [k["id"] for k in listing["keys"]] == [body_key_id(owner_b)]
    for key_id in (body_key_id(owner_a), "not-a-key", "..%2F..%2Fetc"):
        status, _, body = b.call("DELETE", f"/api/v1/keys/{key_id}")
        assert status == 404 and body["error"]
    status, _, body = a.call("DELETE", f"/api/v1/keys/{body_key_id(owner_b)}")
    assert status == 404
    assert b.call("GET", "/api/v1/account")[0] == 200

    # revocation: by an admin, or a key by itself; then 401 for good
    status, _, body = a.call("DELETE", f"/api/v1/keys/{body_key_id(member.token)}")
    assert status == 200 and body["key"]["state"] == "revoked"
    status, _, body = member.call("GET", "/api/v1/account")
    assert status == 401 and "revoked" in body["error"]
    status, _, body = auditor.call("DELETE", f"/api/v1/keys/{body_key_id(auditor.token)}")
    assert status == 200 and body["key"]["revoked_by"] == body_key_id(auditor.token)
    assert auditor.call("GET", "/api/v1/keys")[0] == 401
    status, _, body = a.call("DELETE", f"/api/v1/keys/{body_key_id(member.token)}")
    assert status == 200  # idempotent

    # the operator's CLI sees the same state, and nothing ever logged a secret
    listing = tsa_accounts(server, "list", "--org", org_a)
    assert listing.count("revoked") == 2
    log = server.log()
    for secret in secrets:
        assert secret.rsplit("_", 1)[1] not in log and secret.rsplit("_", 1)[1] not in listing


def body_key_id(token: str) -> str:
    return token.split("_")[1]


JSON = {"Content-Type": "application/json"}
BAD_KEY_REQUESTS = [
    (b"scopes=read", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    (b"{not json", JSON, 400),
    (b"[]", JSON, 400),
    (b"\xff\xfe", JSON, 400),
    (b'{"scopes": "read"}', JSON, 400),
    (b'{"scopes": ["root"]}', JSON, 400),
    (b'{"scopes": []}', JSON, 400),
    (b'{"scopes": ["read"], "role": "god"}', JSON, 400),
    (b'{"scopes": ["deposit"], "role": "auditor"}', JSON, 400),
    (b'{"scopes": ["read"], "expires_in_days": 0}', JSON, 400),
    (b'{"scopes": ["read"], "expires_in_days": true}', JSON, 400),
    (b'{"scopes": ["read"], "owner": "me"}', JSON, 400),
    (b'{"scopes": ["read"], "name": "a\\u0000b"}', JSON, 400),
    (b'{"name": "' + b"x" * 20_000 + b'"}', JSON, 413),
    (b"[" * 8000 + b"]" * 8000, JSON, 400),  # deep nesting: 400, not a RecursionError 500
    (b'{"scopes": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON, 400),
]


def check_bad_input(client: Client) -> None:
    """Bad input: 4xx with a JSON error, never 5xx (Client.call checks both)."""
    for body, headers, expected in BAD_KEY_REQUESTS:
        status, _, reply = client.call("POST", "/api/v1/keys", body, headers)
        assert status == expected and reply["error"], (body[:40], status, reply)


def test_members_endpoints(server: TsaServer) -> None:
    """People over the JSON API, with the organisation page's rules: an admin key adds a
    person who then signs in; nobody gives a role above their key's; the last owner
    stays; another organisation's member is unknown; the password is never echoed."""
    org = tsa_accounts(server, "create-org", "People Org")
    other = tsa_accounts(server, "create-org", "Other Org")
    owner = Client(
        server,
        tsa_accounts(
            server, "create-key", "--org", org, "--role", "owner", "--scope", "admin,read"
        ),
    )
    admin = Client(
        server,
        tsa_accounts(
            server, "create-key", "--org", org, "--role", "admin", "--scope", "admin,read"
        ),
    )
    reader = Client(
        server,
        tsa_accounts(server, "create-key", "--org", org, "--role", "member", "--scope", "read"),
    )
    stranger = Client(
        server,
        tsa_accounts(
            server, "create-key", "--org", other, "--role", "owner", "--scope", "admin,read"
        ),
    )
    password = "a long enough initial password"
    person = {"name": "Bo", "login": "bo@shop.example", "password": password, "role": "owner"}

    status, _, body = owner.call("POST", "/api/v1/members", person)
    assert status == 201 and body["member"]["role"] == "owner", body
    assert password not in json.dumps(body)
    bo = body["member"]["id"]
    assert owner.call("POST", "/api/v1/members", person)[0] == 409  # the login is taken
    status, _, body = admin.call("POST", "/api/v1/members", {**person, "login": "cy@x.example"})
    assert status == 403  # an admin key makes no owner
    status, _, body = admin.call(
        "POST", "/api/v1/members", {**person, "login": "cy@x.example", "role": "member"}
    )
    assert status == 201
    cy = body["member"]["id"]
    assert reader.call("POST", "/api/v1/members", {**person, "login": "d@x.example"})[0] == 403
    for bad in ({**person, "login": "e@x.example", "password": "short"}, {"name": "x"}, []):
        status, _, body = owner.call("POST", "/api/v1/members", bad)
        assert status == 400 and body["error"], (bad, body)

    status, _, body = reader.call("GET", "/api/v1/members")
    assert status == 200 and {m["id"] for m in body["members"]} >= {bo, cy}
    assert stranger.call("GET", "/api/v1/members")[2]["members"] == []
    assert stranger.call("DELETE", f"/api/v1/members/{bo}")[0] == 404

    assert admin.call("PUT", f"/api/v1/members/{bo}/role", {"role": "member"})[0] == 403
    status, _, body = owner.call("PUT", f"/api/v1/members/{cy}/role", {"role": "auditor"})
    assert status == 200 and body["member"]["role"] == "auditor"
    assert owner.call("PUT", f"/api/v1/members/{cy}/role", {"role": "god"})[0] == 400
    status, _, body = owner.call("DELETE", f"/api/v1/members/{cy}")
    assert status == 200 and body["removed"]["id"] == cy
    assert owner.call("DELETE", f"/api/v1/members/{cy}")[0] == 404
    status, _, body = owner.call("PUT", f"/api/v1/members/{bo}/role", {"role": "member"})
    assert status == 409 and "last owner" in body["error"]  # Bo is the only owner
    assert owner.call("DELETE", f"/api/v1/members/{bo}")[0] == 409
