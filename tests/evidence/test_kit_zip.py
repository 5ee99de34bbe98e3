"""The evidence kit ZIP (REC-6): unpacked and checked the way an auditor would, offline —
`sha256sum -c`, the manifest's digests against every member, `openssl ts -verify` on the
original, the inclusion proof with the ledger library and `tsa-ledger verify-token` —
for a stored item, an expired one (everything but the original), hash-only items and a
selection of several items; a damaged original stops the kit."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from ledger.checkpoint import parse_vkey
from ledger.proof_file import ProofFile
from tests.support.certified import issue, openssl_verify, put_item
from tsa_server.accounts.service import Accounts
from tsa_server.evidence.blobs import FileBlobStore
from tsa_server.evidence.certificate import certificate_data
from tsa_server.evidence.kit_zip import (
    MANIFEST_PATH,
    SUMS_PATH,
    VKEY_PATH,
    KitError,
    KitItem,
    KitSources,
    build_kit,
)
from tsa_server.evidence.records import StorageState
from tsa_server.evidence.store import EvidenceStore
from tsa_server.rfc3161.verify_load import load_certificates, load_token

CREATED = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)
LEDGER_BIN = str(Path(sys.executable).parent / "tsa-ledger")


@pytest.fixture
def org(accounts: Accounts) -> str:
    return accounts.create_organisation("Org A").id


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture
def sources(tsa, hsm, blobs: FileBlobStore) -> KitSources:
    status, _, vkey = tsa.get("ledger/tokens/vkey")
    assert status == 200
    status, _, note = tsa.get("ledger/tokens/checkpoint")
    return KitSources(
        chain_pem=hsm.chain_file.read_bytes(),
        vkey=vkey.decode().strip(),
        origin=note.decode().split("\n", 1)[0],
        open_original=blobs.open,
    )


def kit_item(tsa, hsm, item) -> KitItem:
    chain = load_certificates(hsm.chain_file.read_bytes())
    data = certificate_data(item, tsa_chain=chain, base_url="https://tsa.example.test")
    status, _, proof = tsa.get(f"ledger/tokens/tlog-proof/{item.ledger_index}")
    assert status == 200
    return KitItem(item, data, proof.decode())


def build(items, sources) -> tuple[bytes, dict]:
    out = io.BytesIO()
    manifest = build_kit(items, sources, CREATED, out)
    return out.getvalue(), manifest


def unpack(kit: bytes, where: Path) -> dict:
    with zipfile.ZipFile(io.BytesIO(kit)) as z:
        assert z.testzip() is None
        z.extractall(where)
    return json.loads((where / MANIFEST_PATH).read_text())


def check_members(where: Path, manifest: dict) -> None:
    """Every member but the manifest and the sums is listed with its true digest."""
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {
        p.relative_to(where).as_posix()
        for p in where.rglob("*")
        if p.is_file() and p.name not in (MANIFEST_PATH, SUMS_PATH)
    }
    assert set(listed) == on_disk
    for path, f in listed.items():
        data = (where / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["size"]
    result = subprocess.run(
        ["sha256sum", "--strict", "-c", SUMS_PATH], cwd=where, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def check_ledger(folder: Path, serial: str, vkey_file: Path, index: int) -> None:
    proof_text = (folder / "inclusion-proof.tlog").read_text()
    proof = ProofFile.parse(proof_text)
    assert proof.index == index
    tsr = (folder / f"{serial}.tsr").read_bytes()
    token = load_token(tsr).content_info.dump()
    verifier = parse_vkey(vkey_file.read_text().strip()).verifier()
    assert proof.verify(token, verifier).size > index
    result = subprocess.run(
        [
            LEDGER_BIN,
            "verify-token",
            f"{serial}.tsr",
            "inclusion-proof.tlog",
            "--vkey",
            f"@{vkey_file}",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.startswith("OK"), result.stdout


def test_stored_item_kit_verifies_offline(
    tsa, hsm, store: EvidenceStore, org: str, blobs: FileBlobStore, sources, tmp_path: Path
) -> None:
    content = b"the original design, stored with the TSA\n" * 1000
    assert blobs.put(content).key == hashlib.sha256(content).hexdigest()
    item = put_item(store, org, content, issue(tsa, content), stored=True)
    kit, manifest = build([kit_item(tsa, hsm, item)], sources)
    where = tmp_path / "kit"
    assert unpack(kit, where) == manifest
    check_members(where, manifest)

    (entry,) = manifest["items"]
    serial = entry["serial"]
    folder = where / serial
    assert entry["original_included"] is True and entry["inclusion_proof"] is True
    assert entry["digests"]["sha256"] == item.sha256 and entry["size_bytes"] == len(content)
    assert entry["gen_time_beijing"].endswith("+08:00")
    original = folder / "original" / f"{item.sha256}.png"  # named by digest (+ extension)
    assert entry["original_file"] == f"original/{item.sha256}.png"
    assert entry["file_name"] == item.file_name  # the deposited name is data
    assert original.read_bytes() == content
    openssl_verify(original, folder / f"{serial}.tsr", folder / "ca-chain.pem")
    check_ledger(folder, serial, where / VKEY_PATH, item.ledger_index)
    pdf = PdfReader(folder / "certificate.pdf")
    assert pdf.attachments[f"{serial}.tsr"] == [(folder / f"{serial}.tsr").read_bytes()]
    readme = (where / "README.txt").read_text()
    assert "openssl ts -verify" in readme and "tsa-ledger verify-token" in readme
    assert manifest["ledger"]["origin"] == sources.origin
    assert manifest["format"] == "tsa-evidence-kit/2"
    # deterministic: the same inputs give the same archive
    assert build([kit_item(tsa, hsm, item)], sources)[0] == kit


@pytest.mark.parametrize(
    "state", [StorageState.EXPIRED, StorageState.ORIGINAL_DELETED, StorageState.PURGED]
)
def test_kit_without_original_has_everything_else(
    tsa, hsm, store: EvidenceStore, org: str, blobs: FileBlobStore, sources, tmp_path, state
) -> None:
    content = f"an original whose storage is {state}\n".encode()
    blobs.put(content)
    item = put_item(store, org, content, issue(tsa, content), stored=True, state=state)
    kit, manifest = build([kit_item(tsa, hsm, item)], sources)
    where = tmp_path / "kit"
    unpack(kit, where)
    check_members(where, manifest)
    (entry,) = manifest["items"]
    serial = entry["serial"]
    assert entry["original_included"] is False
    assert sorted(p.name for p in (where / serial).iterdir()) == sorted(
        [f"{serial}.tsr", "certificate.pdf", "ca-chain.pem", "inclusion-proof.tlog"]
    )
    assert not any("original/" in f["path"] for f in manifest["files"])
    (where / "copy-kept-by-the-owner").write_bytes(content)
    openssl_verify(
        where / "copy-kept-by-the-owner",
        where / serial / f"{serial}.tsr",
        where / serial / "ca-chain.pem",
    )
    check_ledger(where / serial, serial, where / VKEY_PATH, item.ledger_index)


def test_selection_of_hash_only_items(
    tsa, hsm, store: EvidenceStore, org: str, sources, tmp_path: Path
) -> None:
    contents = [b"first hash-only file", b"second hash-only file"]
    items = [put_item(store, org, c, issue(tsa, c)) for c in contents]
    kit, manifest = build([kit_item(tsa, hsm, i) for i in items], sources)
    where = tmp_path / "kit"
    unpack(kit, where)
    check_members(where, manifest)
    assert [e["item_id"] for e in manifest["items"]] == [i.id for i in items]
    for entry, item in zip(manifest["items"], items, strict=True):
        assert entry["original_included"] is False and entry["mode"] == "HASH_ONLY"
        check_ledger(where / entry["serial"], entry["serial"], where / VKEY_PATH, item.ledger_index)


def test_damaged_original_stops_the_kit(
    tsa, hsm, store: EvidenceStore, org: str, blobs: FileBlobStore, sources
) -> None:
    content = b"an original that will rot on disk"
    ref = blobs.put(content)
    item = put_item(store, org, content, issue(tsa, content), stored=True)
    blobs.path(ref.key).write_bytes(b"an original that will rot on disc")
    with pytest.raises(KitError, match="no longer matches"):
        build([kit_item(tsa, hsm, item)], sources)


def test_evidence_record_is_a_member_listed_and_explained(
    tsa, hsm, store: EvidenceStore, org: str, sources, tmp_path: Path
) -> None:
    """KitItem.evidence_record (RFC 4998, made elsewhere) goes in the item's folder as
    evidence-record.ers, is listed with its digest and named in the README."""
    content = b"an item with an evidence record"
    item = put_item(store, org, content, issue(tsa, content))
    record = b"\x30\x03\x02\x01\x01"  # any DER: the kit carries it, never parses it
    with_record = KitItem(**{**vars(kit_item(tsa, hsm, item)), "evidence_record": record})
    kit, manifest = build([with_record], sources)
    where = tmp_path / "kit"
    unpack(kit, where)
    check_members(where, manifest)
    (entry,) = manifest["items"]
    path = f"{entry['serial']}/evidence-record.ers"
    assert (where / path).read_bytes() == record
    assert entry["paths"]["evidence_record"] == path and path in entry["files"]
    assert "evidence-record.ers: RFC 4998" in (where / "README.txt").read_text()
    assert (
        build([kit_item(tsa, hsm, item)], sources)[1]["items"][0]["paths"]["evidence_record"]
        is None
    )
