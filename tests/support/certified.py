"""Certified evidence items for the certificate and evidence-kit tests: a real token from
a running server (POST /tsr), its ledger index from the public lookup, and the item put
in a real EvidenceStore with insert_item/update_item (what the deposit service does)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms, tsp  # noqa: F401 - tsp registers TSTInfo with cms

from tests.support.queries import failure_of, make_request, parse_response
from tests.support.tsa import TsaServer
from tsa_server.evidence.records import Item, ItemMode, NewItem, StorageState
from tsa_server.evidence.store import EvidenceStore

STATEMENT = "本人声明：该作品由本人独立创作完成，创作时间早于本证书所载时间。I made this work."
DEPOSITOR = "张三 (Zhang San)"


@dataclass(frozen=True)
class Issued:
    reply: bytes  # TimeStampResp DER
    token: bytes  # TimeStampToken (ContentInfo) DER
    serial: int
    index: int


def issue(server: TsaServer, data: bytes) -> Issued:
    """A real token for `data` from `server`, and its ledger index once a checkpoint
    covers it (the server publishes every 0.3 s in tests)."""
    deadline = time.monotonic() + 20
    while True:  # a loaded machine may delay NTP polls: timeNotAvailable, then granted
        status, _, reply = server.post_query(make_request(data), "/tsr")
        assert status == 200
        token = parse_response(reply)["time_stamp_token"]
        if token.native is not None:
            break
        assert time.monotonic() < deadline, f"no token: {failure_of(reply)}"
        time.sleep(0.2)
    tst = token["content"]["encap_content_info"]["content"].parsed
    serial = tst["serial_number"].native
    while True:
        status, _, body = server.get(f"ledger/tokens/lookup/serial/{serial:x}")
        matches = json.loads(body)["matches"] if status == 200 else []
        if matches:
            return Issued(reply, token.dump(), serial, matches[0]["index"])
        assert time.monotonic() < deadline, "the token never reached a checkpoint"
        time.sleep(0.1)


def gen_time(token: bytes):
    tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    return tst["gen_time"].native


def put_item(
    store: EvidenceStore,
    org_id: str,
    data: bytes,
    issued: Issued,
    *,
    stored: bool = False,
    state: StorageState | None = None,
    file_name: str = "作品设计图 v1.png",
    statement: str = STATEMENT,
) -> Item:
    """The item of `data`, certified by `issued`; STORED items get `state` afterwards."""
    sha256 = hashlib.sha256(data).hexdigest()
    new = NewItem(
        mode=ItemMode.STORED if stored else ItemMode.HASH_ONLY,
        sha256=sha256,
        sha512=hashlib.sha512(data).hexdigest(),
        size=len(data),
        file_name=file_name,
        media_type="image/png",
        title="原创设计图",
        statement=statement,
        depositor=DEPOSITOR,
        blob_key=sha256 if stored else None,
    )
    item = store.insert_item(org_id, new)
    item = store.update_item(
        org_id,
        item.id,
        token=issued.token,
        ledger_index=issued.index,
        serial=issued.serial,
        certified_at=gen_time(issued.token),
    )
    if state is not None and state is not StorageState.ACTIVE:
        changes = {"storage_state": state}
        if state in (StorageState.ORIGINAL_DELETED, StorageState.PURGED):
            changes["blob_key"] = None
        item = store.update_item(org_id, item.id, **changes)
    return item


def openssl_verify(data_file: Path, tsr_file: Path, ca_file: Path) -> str:
    """`openssl ts -verify` for real; its output (asserting it says OK)."""
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(data_file),
            "-in",
            str(tsr_file),
            "-CAfile",
            str(ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "Verification: OK" in result.stdout, (
        result.stdout + result.stderr
    )
    return result.stdout
