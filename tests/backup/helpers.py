"""What the backup tests share: the real `tsa` CLI run in a server's state directory
(its relative paths, var/..., are relative to it), tokens issued over HTTP, and reading
the real ledger files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.support.queries import failure_of, make_request, parse_response
from tests.support.tsa import TSA_BIN, TsaServer


def tsa(server: TsaServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`tsa ARGS --config <server's config>` in the server's state directory."""
    return subprocess.run(
        [TSA_BIN, *args, "--config", str(server.config_path)],
        cwd=server.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        check=False,
    )


def issue(server: TsaServer, label: bytes) -> int:
    """One token over /tsr; its serial."""
    status, _, body = server.post_query(make_request(label), "/tsr")
    assert status == 200 and failure_of(body)[0] == "granted", body
    token = parse_response(body)["time_stamp_token"]
    return int(token["content"]["encap_content_info"]["content"].parsed["serial_number"].native)


def serials(ledger: Path) -> list[int]:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return [int(row[0], 16) for row in conn.execute("SELECT serial FROM entries ORDER BY idx")]
    finally:
        conn.close()


def ops_events(ops: Path) -> list[dict]:
    conn = sqlite3.connect(f"file:{ops}?mode=ro", uri=True)
    try:
        return [
            json.loads(row[0]) for row in conn.execute("SELECT token FROM entries ORDER BY idx")
        ]
    finally:
        conn.close()


def published_size(server: TsaServer) -> int:
    path = server.workdir / "var" / "ledger" / "tokens" / "checkpoint"
    if not path.exists():
        return -1
    return int(path.read_text().split("\n")[1])


def wait_published(server: TsaServer, size: int, timeout: float = 15.0) -> None:
    """Until the token log's published checkpoint covers ``size`` entries."""
    deadline = time.monotonic() + timeout
    while published_size(server) < size:
        assert time.monotonic() < deadline, f"checkpoint {size} not published"
        time.sleep(0.05)


def epoch_of(serial: int) -> int:
    return (serial >> 64) & ((1 << 56) - 1)
