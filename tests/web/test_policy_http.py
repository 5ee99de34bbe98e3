"""GET /policy (issue 17 item 9): the TSA disclosure statement generated from the real
server's configuration and certificate, in HTML with every configured text escaped."""

from __future__ import annotations

import hashlib
from html.parser import HTMLParser

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tsa_server.rfc3161.oids import DEFAULT_POLICY


class Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def test_disclosure_statement_from_the_configuration(make_server, hsm, ntp) -> None:
    server = make_server(
        tsa={"max_accuracy_ms": 250, "accepted_hashes": ["sha256", "sha512"]},
        disclosure={"name": "Example TSA", "contact": "tsa@example.org <script>alert(1)</script>"},
    ).start()
    status, headers, body = server.get("/policy")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    parsed = Text()
    parsed.feed(page)
    text = " ".join(parsed.parts)
    assert "script" not in parsed.tags
    cert = x509.load_pem_x509_certificates(hsm.chain_file.read_bytes())[0]
    for fact in (
        "Example TSA",
        DEFAULT_POLICY,
        "250 ms at worst",
        "sha256",
        "sha512",
        "ec-p256",
        f"{cert.serial_number:x}",
        hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        ntp.address,
        "tsa@example.org <script>alert(1)</script>",
        "append-only ledger",
    ):
        assert fact in text, fact
    assert "sha384" not in text  # only what is accepted


def test_disclosure_statement_as_pdf(make_server, hsm) -> None:
    import io

    from pypdf import PdfReader

    server = make_server(disclosure={"name": "Example TSA", "contact": "tsa@example.org"}).start()
    status, headers, body = server.get("/policy.pdf")
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert body.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(body))
    text = " ".join(page.extract_text() for page in reader.pages)
    cert = x509.load_pem_x509_certificates(hsm.chain_file.read_bytes())[0]
    for fact in (
        "TSA disclosure statement",
        "Example TSA",
        DEFAULT_POLICY,
        "sha256",
        "ec-p256",
        f"{cert.serial_number:x}",
        "tsa@example.org",
    ):
        assert fact in text, (fact, text[:500])
    assert server.get("/policy.pdf")[2] == body  # drawn once
