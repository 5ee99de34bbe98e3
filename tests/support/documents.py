"""A certificate PDF and an evidence kit ZIP as a relying party gets them from a real
`tsa serve`: an original uploaded through the API, the signed certificate and the kit
downloaded once the ledger's checkpoint covers the token (so the kit holds its
inclusion proof), and what checking them needs (the CA, the TSA chain, the ledger key).
Also the ways to tamper with a kit the tests use."""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass

from asn1crypto import pem

from tests.support.tsa import Hsm, TsaServer
from tests.web.test_evidence_http import FORM, new_org
from tsa_server.evidence.checking import Trust
from tsa_server.rfc3161.verify_load import load_certificates

ORIGINAL = "春季目录 spring catalogue photo\n".encode() * 400
WORK = "春季产品目录照片 spring catalogue photos"


@dataclass(frozen=True)
class Documents:
    original: bytes
    item: dict
    pdf: bytes
    kit: bytes
    tsr: bytes
    trust: Trust


def trust_of(server: TsaServer, hsm: Hsm) -> Trust:
    ca = pem.unarmor(hsm.ca_file.read_bytes())[2]
    chain = [c.dump() for c in load_certificates(hsm.chain_file.read_bytes())]
    status, _, vkey = server.get("ledger/tokens/vkey")
    assert status == 200
    return Trust(roots=(ca,), certificates=tuple(chain), ledger_vkey=vkey.decode().strip())


def deposit_documents(server: TsaServer, hsm: Hsm, original: bytes = ORIGINAL) -> Documents:
    api = new_org(server, "Acme 设计有限公司", units=5)
    form = {**FORM, "work_content": WORK, "statement": "本人声明：该作品由本人独立创作。"}
    status, answer = api.upload(form, [("photo.jpg", [original])])
    assert status == 201, answer
    item = answer["items"][0]
    deadline = time.monotonic() + 30
    while True:  # the kit holds the inclusion proof once a checkpoint covers the entry
        status, _, kit = api.call("GET", f"/api/v1/items/{item['id']}/kit.zip", raw=True)
        assert status == 200, kit[:300]
        names = zipfile.ZipFile(io.BytesIO(kit)).namelist()
        if any(n.endswith("inclusion-proof.tlog") for n in names):
            break
        assert time.monotonic() < deadline, "no checkpoint covered the deposit"
        time.sleep(0.3)
    status, _, pdf = api.call("GET", f"/api/v1/items/{item['id']}/certificate.pdf", raw=True)
    assert status == 200 and pdf.startswith(b"%PDF-"), pdf[:300]
    status, _, tsr = api.call("GET", f"/api/v1/items/{item['id']}/token.tsr", raw=True)
    assert status == 200
    return Documents(original, item, pdf, kit, tsr, trust_of(server, hsm))


def members(kit: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(kit)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rebuilt(kit: bytes, changes: dict[str, bytes]) -> bytes:
    """The kit with some members' bytes replaced (the manifest left as it was)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members(kit).items():
            archive.writestr(name, changes.get(name, data))
    return out.getvalue()


def member_path(kit: bytes, role: str) -> str:
    manifest = json.loads(members(kit)["manifest.json"])
    return manifest["items"][0]["paths"][role]


def changed_checkpoint(proof: bytes) -> bytes:
    """The proof file with its checkpoint's tree size changed (signature left alone)."""
    head, sep, note = proof.decode().partition("\n\n")
    origin, size, rest = note.split("\n", 2)
    return (head + sep + f"{origin}\n{int(size) + 1}\n{rest}").encode()


def zip_bomb(size: int = 200 << 20) -> bytes:
    """A ZIP whose one member inflates from about 200 KB to `size` bytes of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("manifest.json", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                member.write(block)
    return out.getvalue()
