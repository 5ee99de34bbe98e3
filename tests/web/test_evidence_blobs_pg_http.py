"""Stored originals shared by all nodes (issue 16, item 5): two `tsa serve` processes on
one PostgreSQL database, each with a blobs directory of its own; a file uploaded to one
is downloaded, byte for byte, from the other (its originals are in the database, not in
either directory), and `tsa backup --files-only` says it leaves them to PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.support.tsa import TSA_BIN, TsaServer, evidence_settings
from tests.web.test_evidence_http import FORM, Api, new_org


def node(make_server, url: str, unit: str, root: Path) -> TsaServer:
    return make_server(
        database={"url": url},
        ledger={
            "unit": unit,
            "origin": f"127.0.0.1/tsa/ledger/{unit}",
            "ops_origin": f"127.0.0.1/tsa/ledger/{unit}-ops",
        },
        evidence=evidence_settings(root / unit, max_upload_bytes=64 << 20),
    )


def test_an_original_uploaded_to_one_node_downloads_from_another(
    make_server, postgres, tmp_path: Path
) -> None:
    url = postgres.create_database()
    one = node(make_server, url, "node1", tmp_path)
    two = node(make_server, url, "node2", tmp_path)
    upgrade = subprocess.run(
        [TSA_BIN, "db", "upgrade", "--config", str(one.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    one.start(timeout=30)
    two.start(timeout=30)

    api = new_org(one, "Shared", units=2)
    data = os.urandom(3 << 20) + b"the end"
    original = tmp_path / "drawing.dwg"
    original.write_bytes(data)
    status, body = api.upload(FORM, [str(original)])
    assert status == 201, body
    item = body["items"][0]
    assert item["sha256"] == hashlib.sha256(data).hexdigest()

    other = Api(two, api.key, api.org)
    status, _, got = other.call("GET", f"/api/v1/items/{item['id']}/original", raw=True)
    assert status == 200 and got == data
    status, headers, kit = other.call("GET", f"/api/v1/items/{item['id']}/kit.zip", raw=True)
    assert status == 200 and headers["Content-Type"] == "application/zip" and len(kit) > len(data)
    for root in (tmp_path / "node1", tmp_path / "node2"):  # no original on either disk
        assert not [p for p in (root / "blobs").rglob("*") if p.is_file()]

    backup = subprocess.run(
        [TSA_BIN, "backup", "--files-only", "--config", str(two.config_path), str(tmp_path / "bk")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert backup.returncode == 0, backup.stderr
    assert "stored originals: in the PostgreSQL database" in backup.stdout
