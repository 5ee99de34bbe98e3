"""The operations log (L-03): start-ups, clock sync lost and regained, and token-log
checkpoints are durable events in a second log with its own signed checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from ledger.store.sqlite import SqliteReader
from tests.support.queries import make_request
from tests.support.tsa import TsaServer

AUDIT = str(Path(sys.executable).with_name("tsa-ledger"))


def events(server: TsaServer) -> list[dict]:
    reader = SqliteReader(server.workdir / "ops.sqlite")
    try:
        return [json.loads(e.token) for e in reader.entries()]
    finally:
        reader.close()


def wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def test_events_are_logged_and_the_log_is_published(make_server, ntp) -> None:
    server = make_server().start()
    server.post_query(make_request(b"x"))
    ntp.offset = 5.0
    wait_for(lambda: any(e["kind"] == "clock" and not e["usable"] for e in events(server)))
    ntp.offset = 0.0
    wait_for(lambda: any(e["kind"] == "clock" and e["usable"] for e in events(server)))
    wait_for(lambda: any(e["kind"] == "checkpoint" and e["size"] >= 1 for e in events(server)))
    kinds = [e["kind"] for e in events(server)]
    assert kinds[0] == "start"
    start = events(server)[0]
    assert len(start["tsa_certificate_sha256"]) == 64 and "checkpoint_vkey" in start
    assert len(start["config_sha256"]) == 64
    times = [e["time_ms"] for e in events(server)]
    assert times == sorted(times)
    checkpoint = [e for e in events(server) if e["kind"] == "checkpoint"][-1]
    assert checkpoint["origin"].endswith("/ledger/tokens")
    status, _, text = server.get(f"/ledger/tokens/chain/{checkpoint['size']}")
    assert status == 200 and text.decode().strip() == checkpoint["chain_head"]

    wait_for(lambda: server.get("/ledger/ops/checkpoint")[0] == 200)
    vkey = server.get("/ledger/ops/vkey")[2].decode().strip()
    assert vkey.startswith("localhost/tsa/ledger/ops+")
    assert vkey != server.get("/ledger/tokens/vkey")[2].decode().strip()
    server.stop()
    result = subprocess.run(
        [
            AUDIT,
            "audit",
            "--quiet",
            "--not-tokens",
            "--vkey",
            vkey,
            str(server.workdir / "ops.sqlite"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
    # a restart is an event too
    server.start()
    assert [e["kind"] for e in events(server)].count("start") == 2
