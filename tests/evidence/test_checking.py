"""The verification center's document checks (evidence/checking/) on a certificate PDF
and an evidence kit made by a real `tsa serve` (uploaded, then downloaded through the
API): intact and complete as made; a flipped byte, an update appended after signing,
an untrusted signer; a kit with a changed original, a changed proof, a changed
checkpoint, another ledger key; archives refused before anything is inflated (a zip
bomb, a path-traversal name, too many members); the CPU budget; the verdict."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile

import pytest
from pyhanko.pdf_utils.generic import pdf_string
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from tests.support.documents import (
    Documents,
    changed_checkpoint,
    deposit_documents,
    member_path,
    members,
    rebuilt,
    zip_bomb,
)
from tests.support.tsa import TsaServer, evidence_settings
from tsa_server.evidence.checking import DocumentCheck, DocumentRejected, Findings, Trust, combine
from tsa_server.evidence.checking.bounds import budget
from tsa_server.evidence.checking.kit import check_kit
from tsa_server.evidence.checking.pdf import check_certificate


@pytest.fixture(scope="module")
def docs(tmp_path_factory, hsm, session_ntp) -> Documents:
    root = tmp_path_factory.mktemp("checking")
    server = TsaServer(root, hsm, session_ntp.address, evidence=evidence_settings(root)).start()
    try:
        yield deposit_documents(server, hsm)
    finally:
        server.stop()


def by_name(findings: Findings) -> dict[str, DocumentCheck]:
    return {c.name: c for c in findings.checks}


def failed(findings: Findings) -> dict[str, str]:
    return {c.name: c.reason for c in findings.checks if not c.passed}


def test_a_certificate_as_made_is_intact_signed_and_time_stamped(docs: Documents) -> None:
    started = time.monotonic()
    found = check_certificate(docs.pdf, docs.trust)
    elapsed = time.monotonic() - started
    assert found.passed, found.checks
    checks = by_name(found)
    assert set(checks) == {
        "pdf_readable",
        "pdf_signature",
        "pdf_signer",
        "pdf_unchanged",
        "pdf_document_timestamp",
        "embedded_token",
    }
    assert "TSA Development Document Signer" in checks["pdf_signature"].reason
    assert found.token == docs.tsr  # the attached .tsr is the item's token
    assert found.digest == hashlib.sha256(docs.original).hexdigest() == docs.item["sha256"]
    facts = dict(found.facts)
    assert facts["certified_digest"] == "SHA256 " + docs.item["sha256"]
    assert facts["timestamp_by"].endswith("(this TSA)") and facts["signed_at"].endswith("UTC")
    assert elapsed < 10, elapsed  # measured about 0.3 s on two cores


def test_one_flipped_byte_is_reported_broken(docs: Documents) -> None:
    broken = bytearray(docs.pdf)
    broken[len(broken) // 3] ^= 0x01
    found = check_certificate(bytes(broken), docs.trust)
    assert not found.passed
    reasons = failed(found)
    assert "BROKEN" in reasons.get("pdf_signature", "") + reasons.get("pdf_readable", "damaged")
    assert "BROKEN" in reasons.get("pdf_document_timestamp", "BROKEN")


def test_an_update_appended_after_the_time_stamp_is_reported_modified(docs: Documents) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(docs.pdf))
    writer.root["/Lang"] = pdf_string("fr")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    found = check_certificate(out.getvalue(), docs.trust)
    reasons = failed(found)
    assert "MODIFIED" in reasons["pdf_document_timestamp"], reasons
    assert "MODIFIED" in reasons["pdf_unchanged"], reasons


def test_a_signer_without_a_configured_trust_root_is_not_trusted(docs: Documents) -> None:
    found = check_certificate(docs.pdf, Trust(roots=(), ledger_vkey=docs.trust.ledger_vkey))
    reasons = failed(found)
    assert "does not chain to a trust root" in reasons["pdf_signer"]
    assert "does not chain to a trust root" in reasons["pdf_document_timestamp"]


def test_what_is_not_a_pdf_is_refused(docs: Documents) -> None:
    with pytest.raises(DocumentRejected) as refused:
        check_certificate(docs.kit, docs.trust)
    assert refused.value.status == 400 and "not a PDF" in refused.value.reason
    found = check_certificate(b"%PDF-1.7\n" + bytes(2000), docs.trust)
    assert "damaged" in failed(found)["pdf_readable"]


def test_a_kit_as_made_passes_every_check(docs: Documents) -> None:
    found = check_kit(docs.kit, docs.trust)
    assert found.passed, found.checks
    checks = by_name(found)
    assert set(checks) >= {
        "kit_format",
        "kit_files",
        "ledger_key",
        "ledger_checkpoint",
        "ledger_inclusion",
        "certificate",
        "original",
    }
    assert not checks["ledger_inclusion"].skipped
    assert found.token == docs.tsr
    assert found.digest == hashlib.sha256(docs.original).hexdigest()
    assert found.digest_source.startswith("the kit's original")


def test_a_changed_original_fails_the_files_check_and_changes_the_digest(docs: Documents) -> None:
    original = member_path(docs.kit, "original")
    kit = rebuilt(docs.kit, {original: docs.original + b"!"})
    found = check_kit(kit, docs.trust)
    assert "CHANGED" in failed(found)["kit_files"] and original in failed(found)["kit_files"]
    assert found.digest == hashlib.sha256(docs.original + b"!").hexdigest()  # token: mismatch


def test_a_changed_proof_fails_the_inclusion_check(docs: Documents) -> None:
    path = member_path(docs.kit, "inclusion_proof")
    proof = members(docs.kit)[path].decode()
    lines = proof.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("index "))
    if lines[at + 1]:  # a path hash, changed
        lines[at + 1] = ("B" if lines[at + 1][0] != "B" else "C") + lines[at + 1][1:]
    else:  # an empty path (a tree of one): the index, changed
        lines[at] = f"index {int(lines[at][6:]) + 1}"
    found = check_kit(rebuilt(docs.kit, {path: "\n".join(lines).encode()}), docs.trust)
    reasons = failed(found)
    assert path in reasons["kit_files"]
    assert "does not lead from the token" in reasons["ledger_inclusion"]


def test_a_changed_checkpoint_fails_the_checkpoint_check(docs: Documents) -> None:
    path = member_path(docs.kit, "inclusion_proof")
    changed = changed_checkpoint(members(docs.kit)[path])
    reasons = failed(check_kit(rebuilt(docs.kit, {path: changed}), docs.trust))
    assert "not signed by this TSA's ledger key" in reasons["ledger_checkpoint"]


def test_a_kit_of_another_ledger_names_the_key(docs: Documents) -> None:
    other = Trust(docs.trust.roots, docs.trust.certificates, "other+01234567+AQ==")
    reasons = failed(check_kit(docs.kit, other))
    assert "not this TSA's ledger key" in reasons["ledger_key"]


def test_archives_are_refused_before_anything_is_inflated() -> None:
    bomb = zip_bomb()
    assert len(bomb) < 1 << 20
    started = time.monotonic()
    with pytest.raises(DocumentRejected) as refused:
        check_kit(bomb, Trust(roots=()))
    assert refused.value.status == 413 and "expands" in refused.value.reason
    assert time.monotonic() - started < 1
    for name, why in (("../evil.txt", "not a plain path"), ("/etc/passwd", "not a plain path")):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr(name, b"x")
        with pytest.raises(DocumentRejected) as refused:
            check_kit(out.getvalue(), Trust(roots=()))
        assert refused.value.status == 400 and why in refused.value.reason
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(100):
            archive.writestr(f"f{i}", b"x")
    with pytest.raises(DocumentRejected) as refused:
        check_kit(out.getvalue(), Trust(roots=()))
    assert refused.value.status == 413
    with pytest.raises(DocumentRejected) as refused:
        check_kit(b"%PDF-1.7 not a zip", Trust(roots=()))
    assert refused.value.status == 400


def test_the_cpu_budget_stops_a_check() -> None:
    started = time.monotonic()
    with pytest.raises(DocumentRejected) as refused:
        with budget(cpu_seconds=0.2):
            while True:
                sum(range(1000))
    assert refused.value.status == 422 and time.monotonic() - started < 5


def test_the_verdict_needs_every_document_check_and_the_token() -> None:
    good = Findings("kit", (DocumentCheck("kit_files", True, "ok"),), b"t", "00", "sha256", "x")
    token = {"valid": True, "checks": [], "fields": None, "ledger": None}
    assert combine(good, token)["valid"] is True
    assert combine(good, {**token, "valid": False})["valid"] is False
    assert combine(good, None)["valid"] is False
    missing = {"found": False, "reason": "no entry"}
    assert combine(good, {**token, "ledger": missing})["valid"] is False
    bad = Findings("kit", (DocumentCheck("kit_files", False, "changed"),), b"t", "00")
    report = combine(bad, token)
    assert report["valid"] is False and report["checks"][0]["name"] == "kit_files"
