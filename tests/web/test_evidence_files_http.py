"""GET /api/v1/items/{id}/certificate.pdf and /kit.zip against a real `tsa serve`: items
certified by the server's own tokens, put in its evidence database and blob store the
way the deposit service does; another organisation's item is a 404 exactly like a
missing id; certificate and kit for every storage state, the original only while the
storage is ACTIVE (S-10, A-6)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader

from ledger.checkpoint import parse_vkey
from ledger.proof_file import ProofFile
from ledger.serials import serial_text
from tests.support.certified import DEPOSITOR, issue, openssl_verify, put_item
from tests.support.tsa import TSA_BIN, TsaServer
from tsa_server.evidence.blobs import FileBlobStore
from tsa_server.evidence.records import ItemMode, NewItem, StorageState
from tsa_server.evidence.store import EvidenceStore
from tsa_server.rfc3161.verify_load import load_token

CONTENT = b"a product photo, deposited and stored\n" * 4000


def cli(server: TsaServer, *args: str) -> str:
    result = subprocess.run(
        [TSA_BIN, "accounts", args[0], "--config", str(server.config_path), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class Setup:
    def __init__(self, server: TsaServer, root: Path) -> None:
        self.server = server
        self.store = EvidenceStore(root / "evidence.sqlite")
        self.blobs = FileBlobStore(root / "blobs")
        self.org_a = cli(server, "create-org", "Org A")
        self.org_b = cli(server, "create-org", "Org B")
        self.key_a = cli(server, "create-key", "--org", self.org_a, "--scope", "read")
        self.key_b = cli(server, "create-key", "--org", self.org_b, "--scope", "read")
        self.key_a_deposit = cli(server, "create-key", "--org", self.org_a, "--scope", "deposit")

    def get(self, path: str, key: str | None) -> tuple[int, dict, bytes]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        status, reply_headers, body = self.server.request("GET", path, None, headers)
        assert status < 500, body
        return status, reply_headers, body


@pytest.fixture
def setup(make_server, tmp_path: Path):
    server = make_server(
        evidence={"path": str(tmp_path / "evidence.sqlite"), "blobs": str(tmp_path / "blobs")}
    ).start()
    made = Setup(server, tmp_path)
    yield made
    made.store.close()


def stored_item(setup: Setup, content: bytes = CONTENT, state=None):
    setup.blobs.put(content)
    issued = issue(setup.server, content)
    return put_item(setup.store, setup.org_a, content, issued, stored=True, state=state)


def test_certificate_pdf(setup: Setup, hsm, tmp_path: Path) -> None:
    item = stored_item(setup)
    status, headers, pdf = setup.get(f"/api/v1/items/{item.id}/certificate.pdf", setup.key_a)
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert "attachment" in headers["Content-Disposition"]
    assert headers["Cache-Control"] == "no-store"
    reader = PdfReader(io.BytesIO(pdf))
    text = "".join("".join(p.extract_text() for p in reader.pages).split())
    serial = serial_text(item.serial)  # the one spelling, as openssl prints it
    assert serial in text and item.sha256 in text and "".join(DEPOSITOR.split()) in text
    page = f"{setup.server.url}verify/serial/{serial}"
    assert page in text  # the QR and the printed link point at this server's page
    status, _, body = setup.server.get(page.removeprefix(setup.server.url))
    assert status == 200 and f"entry {item.ledger_index} of the public token log" in body.decode()
    ((name, (tsr,)),) = reader.attachments.items()
    (tmp_path / "photo").write_bytes(CONTENT)
    (tmp_path / name).write_bytes(tsr)
    openssl_verify(tmp_path / "photo", tmp_path / name, hsm.chain_file)


def test_certificate_links_ignore_the_host_header(setup: Setup) -> None:
    """The verification link and QR come from [server] public_url (default: the
    listening address), never from the Host header a client chooses."""
    item = stored_item(setup, b"host header " * 50)
    status, _, pdf = setup.server.request(
        "GET",
        f"/api/v1/items/{item.id}/certificate.pdf",
        None,
        {"Authorization": f"Bearer {setup.key_a}", "Host": "evil.example"},
    )
    assert status == 200
    text = "".join("".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "evil.example" not in text
    assert f"{setup.server.url}verify/serial/" in text


def test_kit_zip_with_original(setup: Setup, hsm, tmp_path: Path) -> None:
    item = stored_item(setup)
    status, headers, kit = setup.get(f"/api/v1/items/{item.id}/kit.zip", setup.key_a)
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert int(headers["Content-Length"]) == len(kit)
    with zipfile.ZipFile(io.BytesIO(kit)) as z:
        manifest = json.loads(z.read("manifest.json"))
        for f in manifest["files"]:
            assert hashlib.sha256(z.read(f["path"])).hexdigest() == f["sha256"]
        (entry,) = manifest["items"]
        serial = entry["serial"]
        assert entry["original_included"] is True
        assert z.read(f"{serial}/{entry['original_file']}") == CONTENT
        z.extractall(tmp_path)
    folder = tmp_path / serial
    openssl_verify(
        folder / entry["original_file"], folder / f"{serial}.tsr", folder / "ca-chain.pem"
    )
    proof = ProofFile.parse((folder / "inclusion-proof.tlog").read_text())
    status, _, vkey = setup.server.get("ledger/tokens/vkey")
    assert (tmp_path / "ledger.vkey").read_text().strip() == vkey.decode().strip()
    token = load_token((folder / f"{serial}.tsr").read_bytes()).content_info.dump()
    assert proof.index == item.ledger_index
    proof.verify(token, parse_vkey(vkey.decode().strip()).verifier())


@pytest.mark.parametrize(
    "state", [StorageState.EXPIRED, StorageState.ORIGINAL_DELETED, StorageState.PURGED]
)
def test_without_original_certificate_and_kit_remain(setup: Setup, state) -> None:
    item = stored_item(setup, f"an original now {state}".encode() * 100, state)
    status, _, pdf = setup.get(f"/api/v1/items/{item.id}/certificate.pdf", setup.key_a)
    assert status == 200 and pdf.startswith(b"%PDF-")
    status, _, kit = setup.get(f"/api/v1/items/{item.id}/kit.zip", setup.key_a)
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(kit)) as z:
        names = z.namelist()
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["items"][0]["original_included"] is False
    assert not any("/original/" in n for n in names)
    serial = manifest["items"][0]["serial"]
    for member in (f"{serial}.tsr", "certificate.pdf", "ca-chain.pem", "inclusion-proof.tlog"):
        assert f"{serial}/{member}" in names


def test_hash_only_item(setup: Setup) -> None:
    content = b"only my digest leaves my machine"
    item = put_item(setup.store, setup.org_a, content, issue(setup.server, content))
    for suffix in ("certificate.pdf", "kit.zip"):
        status, _, _ = setup.get(f"/api/v1/items/{item.id}/{suffix}", setup.key_a)
        assert status == 200


def test_other_accounts_and_missing_ids_look_the_same(setup: Setup) -> None:
    item = stored_item(setup)
    for suffix in ("certificate.pdf", "kit.zip"):
        theirs = setup.get(f"/api/v1/items/{item.id}/{suffix}", setup.key_b)
        missing = setup.get(f"/api/v1/items/itm_000000000000000000/{suffix}", setup.key_b)
        assert theirs[0] == missing[0] == 404
        assert json.loads(theirs[2])["error"].replace(item.id, "X") == json.loads(missing[2])[
            "error"
        ].replace("itm_000000000000000000", "X")
        assert setup.get(f"/api/v1/items/{item.id}/{suffix}", None)[0] == 401
        assert setup.get(f"/api/v1/items/{item.id}/{suffix}", setup.key_a_deposit)[0] == 403
        assert setup.get(f"/api/v1/items/{'x' * 5000}/{suffix}", setup.key_a)[0] == 404


def test_uncertified_item_is_a_conflict(setup: Setup) -> None:
    pending = setup.store.insert_item(
        setup.org_a, NewItem(mode=ItemMode.HASH_ONLY, sha256="cd" * 32)
    )
    for suffix in ("certificate.pdf", "kit.zip"):
        status, _, body = setup.get(f"/api/v1/items/{pending.id}/{suffix}", setup.key_a)
        assert status == 409 and "not certified" in json.loads(body)["error"]
