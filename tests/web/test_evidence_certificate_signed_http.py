"""The evidence certificate as a reader gets it from a real `tsa serve` (issue 19 items
1, 2, 3, 5): deposits through the API (a digest deposited twice, hash-only then
uploaded, says `already_certified`), the certificate PDF rendered by pdftoppm with its
Chinese text (no poppler-data), PDF/A-3b structure read with pypdf, the PAdES signature
and the document time stamp checked by pdfsig and by pyHanko's validator with the
development CA as the trust root, a flipped byte reported by both, and the public
verification page the QR code leads to. One server and one certificate for the module:
signing is the slow part."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms, pem
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko_certvalidator import ValidationContext
from pypdf import PdfReader

from ledger.serials import serial_text
from tests.support.tsa import TsaServer, evidence_settings
from tests.web.test_evidence_http import FORM, new_org, sha

pytestmark = pytest.mark.both_backends

ORIGINAL = b"a product photo of the spring catalogue\n" * 300
WORK = "春季产品目录照片 spring catalogue photos"
STATEMENT = "本人声明：该作品由本人独立创作。I made these photos."
PNG = Path("/tmp/issue19-certificate.png")  # for people to look at


@pytest.fixture(scope="module")
def server(tmp_path_factory, hsm, session_ntp, on_backend):
    root = tmp_path_factory.mktemp("signed-certificate")
    disclosure = {
        "name": "Example Time-Stamping Service",
        "organisation": "Example Trust Services Ltd",
        "address": "1 Example Road, Beijing",
        "contact": "tsa@example.org",
    }
    started = TsaServer(
        root,
        hsm,
        session_ntp.address,
        evidence=evidence_settings(root),
        disclosure=disclosure,
        **on_backend(),
    ).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def deposited(server: TsaServer):
    """Three deposits of one digest: hash-only twice, then uploaded."""
    api = new_org(server, "Acme 设计有限公司", units=10)
    form = {**FORM, "work_content": WORK, "statement": STATEMENT}
    status, _, first = api.deposit(sha(ORIGINAL), **form)
    assert status == 201, first
    status, _, second = api.deposit(sha(ORIGINAL), **form)
    assert status == 201, second
    status, third = api.upload(form, [("photo.jpg", [ORIGINAL])])
    assert status == 201, third
    return api, [first["items"][0], second["items"][0], third["items"][0]]


@pytest.fixture(scope="module")
def signed(deposited, tmp_path_factory) -> tuple[bytes, dict, Path]:
    api, items = deposited
    item = items[2]
    status, headers, pdf = api.call("GET", f"/api/v1/items/{item['id']}/certificate.pdf", raw=True)
    assert status == 200 and headers["Content-Type"] == "application/pdf", pdf[:300]
    path = tmp_path_factory.mktemp("pdf") / "certificate.pdf"
    path.write_bytes(pdf)
    return pdf, item, path


def test_deposits_of_a_certified_digest_say_so(deposited) -> None:
    _, (first, second, third) = deposited
    assert first["already_certified"] == []
    assert [e["id"] for e in second["already_certified"]] == [first["id"]]
    assert second["already_certified"][0]["serial"] == first["serial"]
    assert second["already_certified"][0]["certified_at"] == first["certified_at"]
    assert [e["id"] for e in third["already_certified"]] == [first["id"], second["id"]]


def test_the_certificate_renders_with_its_chinese_text(signed) -> None:
    _, _, path = signed
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True)
    rows = fonts.stdout.splitlines()[2:]
    assert rows and all(" yes yes yes " in row for row in rows), fonts.stdout  # embedded
    assert "WenQuanYi" in fonts.stdout and "Helvetica" not in fonts.stdout
    out = path.with_suffix("")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "90", "-f", "1", "-l", "1", "-singlefile", str(path), str(out)],
        check=True,
        timeout=60,
        capture_output=True,
    )
    shutil.copyfile(out.with_suffix(".png"), PNG)
    assert PNG.stat().st_size > 20_000


def test_the_certificate_says_what_a_reader_needs(signed, server: TsaServer) -> None:
    pdf, item, _ = signed
    text = "".join("".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    for expected in (
        item["serial"],
        item["sha256"],
        "Acme设计有限公司",
        FORM["depositor"],
        WORK,
        STATEMENT,
        "photo.jpg",
        "ExampleTrustServicesLtd",
        "1ExampleRoad,Beijing",
        "tsa@example.org",
        f"{server.url}policy",
        f"{server.url}verify/serial/{item['serial']}",
        "北京时间",
        "历史存证",
        item["already_certified"][0]["serial"],
        item["already_certified"][1]["id"],
    ):
        assert "".join(expected.split()) in text, expected


def test_the_certificate_is_pdfa3_with_the_tsr_as_associated_file(signed, deposited) -> None:
    pdf, item, _ = signed
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    assert "/Encrypt" not in reader.trailer
    xmp = root["/Metadata"].get_object()
    assert not xmp.get("/Filter")  # unfiltered (pyHanko rewrites it with /Filter [])
    xml = xmp.get_data().decode()
    assert "<pdfaid:part>3</pdfaid:part>" in xml
    assert "<pdfaid:conformance>B</pdfaid:conformance>" in xml
    (intent,) = root["/OutputIntents"]
    intent = intent.get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    profile = intent["/DestOutputProfile"].get_object()
    assert profile["/N"] == 3 and profile.get_data()[36:40] == b"acsp"
    (spec,) = root["/AF"]
    spec = spec.get_object()
    assert spec["/AFRelationship"] == "/Supplement"
    assert spec["/F"] == f"{item['serial']}.tsr"
    tsr = spec["/EF"]["/F"].get_object().get_data()
    api, _ = deposited
    _, _, token = api.call("GET", f"/api/v1/items/{item['id']}/token.tsr", raw=True)
    assert tsr == token
    for page in reader.pages:  # no transparency
        assert "/Group" not in page
        for ext in (page["/Resources"].get("/ExtGState") or {}).values():
            ext = ext.get_object()
            assert ext.get("/SMask", "/None") == "/None" and ext.get("/CA", 1) == 1


def _pdfsig(path: Path) -> str:
    run = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60)
    return run.stdout + run.stderr


def _validate(path: Path, ca: asn1_x509.Certificate):
    context = ValidationContext(trust_roots=[ca], allow_fetching=False)
    with path.open("rb") as handle:
        signature, timestamp = PdfFileReader(handle).embedded_signatures
        return validate_pdf_signature(signature, context), validate_pdf_timestamp(
            timestamp, context
        )


def _ca(hsm) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(pem.unarmor(Path(hsm.certificates["ca"]).read_bytes())[2])


def test_pdfsig_and_pyhanko_report_the_signature_and_document_time_stamp(
    signed, hsm, server: TsaServer
) -> None:
    _, _, path = signed
    report = _pdfsig(path)
    first, second = report.split("Signature #2:")
    assert "Signer Certificate Common Name: TSA Development Document Signer" in first
    assert "Signature Validation: Signature is Valid." in first
    assert "ETSI.CAdES.detached" in first
    assert "Signature Field Name: TSA-DocTimeStamp" in second  # poppler 22 lists it,
    assert "Total document signed" in second  # but cannot check ETSI.RFC3161: pyHanko does
    signature, timestamp = _validate(path, _ca(hsm))
    assert signature.intact and signature.valid and signature.trusted, signature.summary()
    assert signature.bottom_line, signature.pretty_print_details()
    assert timestamp.intact and timestamp.valid and timestamp.trusted, timestamp.summary()
    # the document time stamp is a token of this TSA, in its ledger like every token
    with path.open("rb") as handle:
        contents = PdfFileReader(handle).embedded_signatures[1].signed_data
    tst = cms.ContentInfo({"content_type": "signed_data", "content": contents})
    info = tst["content"]["encap_content_info"]["content"].parsed
    serial = serial_text(info["serial_number"].native)
    status, _, body = server.get(f"ledger/tokens/lookup/serial/{serial}")
    assert status == 200 and b'"matches": [{' in body


def test_a_flipped_byte_breaks_both(signed, hsm, tmp_path: Path) -> None:
    pdf, _, _ = signed
    at = len(pdf) // 3  # inside the first revision: covered by both
    broken = bytearray(pdf)
    broken[at] ^= 0x01
    path = tmp_path / "broken.pdf"
    path.write_bytes(bytes(broken))
    report = _pdfsig(path)
    assert "Signature is Valid." not in report.split("Signature #2:")[0], report
    signature, timestamp = _validate(path, _ca(hsm))
    assert not signature.intact and not timestamp.intact


def test_downloading_again_neither_signs_nor_time_stamps_again(signed, deposited) -> None:
    pdf, item, _ = signed
    api, _ = deposited
    status, _, again = api.call("GET", f"/api/v1/items/{item['id']}/certificate.pdf", raw=True)
    assert status == 200 and again == pdf


def test_the_verification_page_is_readable_html(signed, server: TsaServer) -> None:
    _, item, _ = signed
    status, headers, body = server.get(f"verify/serial/{item['serial']}")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html"), page[:300]
    assert "<script" not in page and "default-src 'none'" in headers["Content-Security-Policy"]
    assert "<strong>VALID</strong>" in page and item["serial"] in page, page
    assert "UTC" in page and "北京时间" in page and "included: entry" in page
    assert "TSA Development Signer" in page
    status, _, body = server.get("verify/serial/0x0123456789ABCDEF")
    assert status == 404 and b"<h1>" in body
    status, _, body = server.get("verify/serial/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert status == 400 and b"<script>" not in body
