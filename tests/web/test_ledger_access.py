"""L-21 and on-demand publication: with public_entries off, entry bundles need an API
key with the read scope while hash tiles stay public; POST publish needs admin."""

from __future__ import annotations

import json
import time

from ledger.serials import serial_text
from tests.accounts.test_http import tsa_accounts
from tests.support.queries import make_request


def test_restricted_entries_and_publish_on_demand(make_server, tmp_path) -> None:
    server = make_server(
        ledger={"public_entries": False, "checkpoint_interval_s": 3600.0},
        evidence={"path": str(tmp_path / "e.sqlite"), "blobs": str(tmp_path / "blobs")},
    )
    org = tsa_accounts(server, "create-org", "Operator")
    customer = tsa_accounts(server, "create-org", "A customer")
    server.config_path.write_text(
        server.config_path.read_text().replace("[evidence]", f'[evidence]\noperators = ["{org}"]')
    )
    server.start()
    reader = tsa_accounts(
        server, "create-key", "--org", org, "--role", "auditor", "--scope", "read"
    )
    admin = tsa_accounts(
        server, "create-key", "--org", org, "--role", "owner", "--scope", "admin,read"
    )
    customer_admin = tsa_accounts(
        server, "create-key", "--org", customer, "--role", "owner", "--scope", "admin,read"
    )
    for i in range(3):
        server.post_query(make_request(b"%d" % i))
    # With an hour between checkpoints, only publishing on demand covers the new tokens.
    assert server.request("POST", "/ledger/tokens/publish")[0] == 401
    for key in (reader, customer_admin):  # no admin scope; not the operator's
        status, _, body = server.request(
            "POST", "/ledger/tokens/publish", b"", {"Authorization": f"Bearer {key}"}
        )
        assert status == 403, body
    status, _, body = server.request(
        "POST", "/ledger/tokens/publish", b"", {"Authorization": f"Bearer {admin}"}
    )
    assert status == 200 and json.loads(body)["size"] == 3
    assert server.get("/ledger/tokens/tile/0/000.p/3")[0] == 200  # hashes: public
    path = "/ledger/tokens/tile/entries/000.p/3"
    assert server.get(path)[0] == 401
    status, _, bundle = server.request("GET", path, None, {"Authorization": f"Bearer {reader}"})
    assert status == 200 and len(bundle) > 3 * 1000
    status, _, _ = server.request("GET", path, None, {"Authorization": "Bearer tsa_x_y"})
    assert status == 401


def test_private_entries_fence_every_path_to_a_token_or_an_imprint(make_server, tmp_path) -> None:
    """L-21 with public_entries off: /tokens/{serial} and the lookups by serial, imprint
    and time need the read scope (the same 401 whether or not a guess is right); a
    lookup by leaf hash answers anyone with the index and proof only; hash tiles,
    checkpoints and proofs stay public."""
    import base64
    import hashlib

    from tests.support.queries import parse_response

    server = make_server(
        ledger={"public_entries": False},
        evidence={"path": str(tmp_path / "e.sqlite"), "blobs": str(tmp_path / "blobs")},
    ).start()
    org = tsa_accounts(server, "create-org", "Auditors")
    reader = tsa_accounts(
        server, "create-key", "--org", org, "--role", "auditor", "--scope", "read"
    )
    depositor = tsa_accounts(
        server, "create-key", "--org", org, "--role", "member", "--scope", "deposit"
    )
    reply = parse_response(server.post_query(make_request(b"private document"))[2])
    token = reply["time_stamp_token"]
    tst = token["content"]["encap_content_info"]["content"].parsed
    serial = format(tst["serial_number"].native, "x")
    gen_ms = int(tst["gen_time"].native.timestamp() * 1000)
    imprint = hashlib.sha256(b"private document").hexdigest()
    guess = hashlib.sha256(b"not stamped").hexdigest()
    leaf = hashlib.sha256(b"\x00" + token.dump()).hexdigest()
    deadline = time.monotonic() + 15
    while int(server.get("/ledger/tokens/checkpoint")[2].decode().split("\n")[1]) < 1:
        assert time.monotonic() < deadline, "no checkpoint covers the token"
        time.sleep(0.1)

    def as_(key: str | None, path: str):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return server.request("GET", path, None, headers)

    fenced = [
        f"/tokens/{serial}",
        f"/ledger/tokens/lookup/serial/{serial}",
        f"/ledger/tokens/lookup/imprint/{imprint}",
        f"/ledger/tokens/lookup/imprint/{guess}",
        f"/ledger/tokens/lookup/time?from={gen_ms}&to={gen_ms + 1}",
        "/ledger/tokens/tile/entries/000.p/1",
    ]
    for path in fenced:
        status, _, body = as_(None, path)
        assert status == 401 and imprint.encode() not in body, (path, status)
        assert as_(depositor, path)[0] == 403, path
        status, headers, body = as_(reader, path)
        assert status == 200, (path, body)
        assert headers["Cache-Control"].startswith("private"), (path, headers)
    assert token.dump() in as_(reader, f"/tokens/{serial}")[2]
    found = json.loads(as_(reader, f"/ledger/tokens/lookup/imprint/{imprint}")[2])["matches"]
    assert base64.b64decode(found[0]["token"]) == token.dump()
    assert "Authorization" in as_(reader, fenced[-1])[1]["Vary"]

    # The leaf hash is public (hash tiles): anyone gets the index and proof, nothing more.
    status, _, body = as_(None, f"/ledger/tokens/lookup/leaf/{leaf}")
    (match,) = json.loads(body)["matches"]
    assert status == 200 and match["index"] == 0 and match["tlog_proof"]
    assert match["token"] is match["serial"] is match["gen_time"] is None
    (match,) = json.loads(as_(reader, f"/ledger/tokens/lookup/leaf/{leaf}")[2])["matches"]
    spelled = serial_text(tst["serial_number"].native)  # as openssl prints it (issue 20)
    assert match["serial"] == spelled and base64.b64decode(match["token"]) == token.dump()
    assert as_("tsa_x_y", f"/ledger/tokens/lookup/leaf/{leaf}")[0] == 401

    for public in (
        "/ledger/tokens/checkpoint",
        "/ledger/tokens/tile/0/000.p/1",
        "/ledger/tokens/proof/inclusion?index=0",
        "/ledger/tokens/tlog-proof/0",
    ):
        assert as_(None, public)[0] == 200, public
