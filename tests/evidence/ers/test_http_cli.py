"""End to end on a real `tsa serve`: the server's renewal scheduler makes the evidence
record of a certified item (its token from the issuer on the server's event loop),
GET /api/v1/items/{id}/evidence-record.ers serves it (read scope; another organisation's
item is a 404), the kit carries it, the operations log records it, and
`tsa verify --evidence-record ITEM.ers --data FILE` checks it: exit 0 valid, 2 for a
changed file or a tampered record, 1 for a usage error, --json."""

from __future__ import annotations

import io
import json
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from ledger.serials import serial_text
from ledger.store.sqlite import SqliteReader
from tests.support.certified import issue, put_item
from tests.support.tsa import TSA_BIN, TsaServer
from tsa_server.evidence.store import EvidenceStore

CONTENT = b"an original work, deposited\n" * 100


def accounts(server: TsaServer, *args: str) -> str:
    result = subprocess.run(
        [TSA_BIN, "accounts", args[0], "--config", str(server.config_path), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TSA_BIN, "verify", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def server(make_server, tmp_path: Path):
    evidence = {
        "path": str(tmp_path / "evidence.sqlite"),
        "blobs": str(tmp_path / "blobs"),
        "renewal_interval_s": 0.2,
    }
    running = make_server(evidence=evidence).start()
    yield running


def test_record_made_served_kitted_and_verified(server: TsaServer, hsm, tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence.sqlite")
    org_a = accounts(server, "create-org", "Org A")
    org_b = accounts(server, "create-org", "Org B")
    key_a = accounts(server, "create-key", "--org", org_a, "--scope", "read")
    key_b = accounts(server, "create-key", "--org", org_b, "--scope", "read")
    item = put_item(store, org_a, CONTENT, issue(server, CONTENT))
    store.close()
    path = f"/api/v1/items/{item.id}/evidence-record.ers"

    def get(key: str | None, where: str = path) -> tuple[int, dict, bytes]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return server.request("GET", where, None, headers)

    deadline = time.monotonic() + 30
    while True:  # the scheduler runs every 0.2 s
        status, headers, record = get(key_a)
        if status != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, record
    assert headers["Content-Type"] == "application/octet-stream"
    assert f"evidence-{serial_text(item.serial)[2:]}.ers" in headers["Content-Disposition"]
    assert get(key_b)[0] == 404  # another organisation's item: like a missing one
    assert get(None)[0] == 401

    ops = SqliteReader(server.workdir / "ops.sqlite")
    events = [json.loads(e.token) for e in ops.entries()]
    ops.close()
    [created] = [e for e in events if e.get("kind") == "evidence_record_created"]
    assert created["org"] == org_a and created["items"] == 1

    status, _, kit = get(key_a, f"/api/v1/items/{item.id}/kit.zip")
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(kit)) as z:
        [name] = [n for n in z.namelist() if n.endswith("evidence-record.ers")]
        assert z.read(name) == record

    ers, data, ca = tmp_path / "item.ers", tmp_path / "work.bin", str(hsm.ca_file)
    ers.write_bytes(record)
    data.write_bytes(CONTENT)
    ok = verify("--evidence-record", str(ers), "--data", str(data), "--ca", ca)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("Evidence record: VALID")
    as_json = verify("--evidence-record", str(ers), "--data", str(data), "--ca", ca, "--json")
    body = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and body["valid"] and body["stamps"][0]["chain"] == 1

    changed = tmp_path / "changed.bin"
    changed.write_bytes(CONTENT + b"!")
    bad = verify("--evidence-record", str(ers), "--data", str(changed), "--ca", ca)
    assert bad.returncode == 2 and "does not cover the data" in bad.stdout, bad.stdout

    tampered = bytearray(record)
    tampered[-10] ^= 0x01  # inside the token's signature
    (tmp_path / "tampered.ers").write_bytes(bytes(tampered))
    bad = verify(
        "--evidence-record",
        str(tmp_path / "tampered.ers"),
        "--data",
        str(data),
        "--ca",
        ca,
        "--json",
    )
    assert bad.returncode == 2 and json.loads(bad.stdout)["valid"] is False

    for args, says in [
        (["--evidence-record", str(data), "--data", str(data), "--ca", ca], "evidence record"),
        (["--evidence-record", str(ers), "--ca", ca], "needs --data"),
        (
            ["--evidence-record", str(ers), "--data", str(tmp_path / "none"), "--ca", ca],
            "cannot read",
        ),
        ([str(ers), "--evidence-record", str(ers), "--data", str(data), "--ca", ca], "only"),
        (["--data", str(data), "--ca", ca], "give a TOKEN"),
    ]:
        usage = verify(*args)
        assert usage.returncode == 1, (args, usage.stdout, usage.stderr)
        assert says in usage.stderr and len(usage.stderr.strip().splitlines()) == 1, usage.stderr
