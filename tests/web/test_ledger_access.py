"""L-21 and on-demand publication: with public_entries off, entry bundles need an API
key with the read scope while hash tiles stay public; POST publish needs admin."""

from __future__ import annotations

import json

from tests.evidence.test_http import tsa_accounts
from tests.support.queries import make_request


def test_restricted_entries_and_publish_on_demand(make_server, tmp_path) -> None:
    server = make_server(
        ledger={"public_entries": False, "checkpoint_interval_s": 3600.0},
        evidence={"path": str(tmp_path / "e.sqlite"), "blobs": str(tmp_path / "blobs")},
    ).start()
    org = tsa_accounts(server, "create-org", "Auditors")
    reader = tsa_accounts(
        server, "create-key", "--org", org, "--role", "auditor", "--scope", "read"
    )
    admin = tsa_accounts(
        server, "create-key", "--org", org, "--role", "owner", "--scope", "admin,read"
    )
    for i in range(3):
        server.post_query(make_request(b"%d" % i))
    # With an hour between checkpoints, only publishing on demand covers the new tokens.
    assert server.request("POST", "/ledger/tokens/publish")[0] == 401
    status, _, body = server.request(
        "POST", "/ledger/tokens/publish", b"", {"Authorization": f"Bearer {reader}"}
    )
    assert status == 403
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
