"""Two nodes on one PostgreSQL database (issue 16): each `tsa serve` has its own
`[ledger] unit`, writes its own logs, lists every log of the TSA at GET /ledger/ and
serves the other node's log as its own node does; serials never collide; each node's
operations log records its listing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from asn1crypto import tsp

from ledger.store.postgres import PostgresReader
from tests.support.queries import make_request
from tests.support.tsa import TSA_BIN, TsaServer


def node(make_server, url: str, unit: str) -> TsaServer:
    return make_server(
        database={"url": url},
        ledger={
            "unit": unit,
            "origin": f"127.0.0.1/tsa/ledger/{unit}",
            "ops_origin": f"127.0.0.1/tsa/ledger/{unit}-ops",
        },
    )


def serial_of(body: bytes) -> int:
    token = tsp.TimeStampResp.load(body)["time_stamp_token"]
    return token["content"]["encap_content_info"]["content"].parsed["serial_number"].native


def test_two_nodes_share_a_database_and_serve_every_log(make_server, postgres) -> None:
    url = postgres.create_database()
    one, two = node(make_server, url, "node1"), node(make_server, url, "node2")
    upgrade = subprocess.run(
        [TSA_BIN, "db", "upgrade", "--config", str(one.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    one.start(timeout=30)
    two.start(timeout=30)

    serials = []
    for n in range(6):
        server = (one, two)[n % 2]
        status, _, body = server.post_query(make_request(b"doc %d" % n, nonce=n + 1))
        assert status == 200
        serials.append(serial_of(body))
    assert len(set(serials)) == 6
    # each serial is in its own node's log, under the log's name
    for n, serial in enumerate(serials):
        name = ("node1", "node2")[n % 2]
        reader = PostgresReader(url, name)
        try:
            assert reader.entry_by_serial(serial) is not None
        finally:
            reader.close()

    listing = json.loads(one.get("ledger/")[2])["logs"]
    names = {entry["name"]: entry for entry in listing}
    assert set(names) == {"node1", "node1-ops", "node2", "node2-ops"}
    assert names["node1"]["this_node"] and not names["node2"]["this_node"]
    assert names["node2"]["origin"] == "127.0.0.1/tsa/ledger/node2"
    assert "BEGIN CERTIFICATE" in names["node2"]["certificate"]
    assert names["node2"]["vkey"] == two.get("ledger/node2/vkey")[2].decode().strip()
    assert json.loads(two.get("ledger/")[2])["logs"] == [
        {**entry, "this_node": not entry["this_node"]} for entry in listing
    ]

    # node 1 serves node 2's log: the same signed checkpoint and lookups
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        theirs = two.get("ledger/node2/checkpoint")
        ours = one.get("ledger/node2/checkpoint")
        if theirs[0] == ours[0] == 200 and theirs[2] == ours[2] and b"\n3\n" in theirs[2]:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"node 1 does not serve node 2's checkpoint: {ours} {theirs}")
    status, _, found = one.get(f"ledger/node2/lookup/serial/{serials[1]:x}")
    assert status == 200 and json.loads(found)["matches"], found
    assert one.get("ledger/node3/checkpoint")[0] == 404
    status, _, again = one.get(f"tokens/{serials[1]:x}")  # node 2's token, asked of node 1
    assert status == 200 and serial_of(again) == serials[1]

    # the listing is in each node's operations log
    ops = PostgresReader(url, "node1-ops")
    try:
        events = [json.loads(e.token) for e in ops.entries(0)]
    finally:
        ops.close()
    listed = [e for e in events if e.get("kind") == "log_listed"]
    assert {e["log"] for e in listed} == {"node1", "node1-ops"}, events[:3]

    # one audit of node 1's URL replays every log of the TSA
    audit = subprocess.run(
        [str(Path(sys.executable).with_name("tsa-ledger")), "audit", "--quiet", "--json", one.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    reports = json.loads(audit.stdout)
    assert sorted(r["source"].rsplit("/", 2)[-2] for r in reports) == sorted(names)
    assert all(r["ok"] for r in reports)
