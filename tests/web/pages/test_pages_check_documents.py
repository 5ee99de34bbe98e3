"""The verification center with documents, in a real browser against a real `tsa serve`
(issue 18 item 7, issue 19 item 3): a certificate PDF and an evidence kit downloaded
from the server are reported intact and VALID with their serial and genTime; one
changed byte of the PDF is reported broken with the reason; a kit with a changed
original, proof or checkpoint is INVALID naming the check; a zip bomb and an oversized
body are refused at once with a 4xx page; a token of another TSA is verified with the
trust roots the operator configured; the choice of what to check works from the
keyboard, in Chinese too, without a console error (strict CSP)."""

from __future__ import annotations

import hashlib
import http.client
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.rfc3161.tokenfactory import DATA, build_token, make_pki
from tests.support.documents import (
    Documents,
    changed_checkpoint,
    deposit_documents,
    member_path,
    members,
    rebuilt,
    zip_bomb,
)
from tests.support.tsa import TsaServer
from tests.web.pages.conftest import Site


@pytest.fixture(scope="module")
def docs(site: Site, hsm) -> Documents:
    return deposit_documents(site.server, hsm)


def submit(page, base: str, kind: str, path: Path) -> None:
    """Choose `kind` in the verification center, upload `path`, wait for the answer."""
    page.goto(base + "/check")
    page.check(f"input[name='check-kind'][value='{kind}']")
    page.set_input_files(f"#{kind}", str(path))
    page.click(f"#{kind}-form button[type=submit]")
    page.wait_for_selector("h1")


def rows(page) -> dict[str, tuple[str, str]]:
    cells = page.locator("table.checks tbody tr")
    out = {}
    for i in range(cells.count()):
        name, result, reason = (cells.nth(i).locator("td").nth(j).inner_text() for j in range(3))
        out[name] = (result, reason)
    return out


def test_a_certificate_pdf_is_intact_and_valid(page, site: Site, docs: Documents, tmp_path):
    path = tmp_path / "certificate.pdf"
    path.write_bytes(docs.pdf)
    submit(page, site.url, "certificate", path)
    assert page.inner_text("#verdict").startswith("VALID"), page.inner_text("main")
    checks = rows(page)
    assert checks["pdf_signature"][0] == "passed" and "intact" in checks["pdf_signature"][1]
    assert checks["pdf_document_timestamp"][0] == "passed"
    assert checks["message_imprint"][0] == "passed"
    facts = page.inner_text("#document-facts")
    assert hashlib.sha256(docs.original).hexdigest() in facts
    assert "TSA Development Document Signer" in facts
    main = page.inner_text("main")
    assert docs.item["serial"] in main and "Time (UTC)" in main
    assert docs.item["certified_at"][:10] in main  # genTime's date
    assert "Recorded in the public ledger" in page.inner_text("#ledger")
    assert page.console_errors == []


def test_one_changed_byte_of_the_pdf_is_reported_broken(page, site: Site, docs, tmp_path):
    broken = bytearray(docs.pdf)
    broken[len(broken) // 3] ^= 0x01
    path = tmp_path / "broken.pdf"
    path.write_bytes(bytes(broken))
    submit(page, site.url, "certificate", path)
    assert page.inner_text("#verdict").startswith("INVALID")
    failed = {n: r for n, (result, r) in rows(page).items() if result == "FAILED"}
    assert "BROKEN" in " ".join(failed.values()) or "damaged" in " ".join(failed.values())


def test_an_evidence_kit_is_valid(page, site: Site, docs: Documents, tmp_path):
    path = tmp_path / "kit.zip"
    path.write_bytes(docs.kit)
    submit(page, site.url, "kit", path)
    assert page.inner_text("#verdict").startswith("VALID"), page.inner_text("main")
    checks = rows(page)
    for name in ("kit_files", "ledger_checkpoint", "ledger_inclusion", "certificate", "original"):
        assert checks[name][0] == "passed", (name, checks[name])
    assert docs.item["serial"] in page.inner_text("main")


@pytest.mark.parametrize("change", ["original", "proof", "checkpoint"])
def test_a_tampered_kit_is_invalid_naming_the_check(page, site, docs, tmp_path, change):
    proof = member_path(docs.kit, "inclusion_proof")
    if change == "original":
        changes = {member_path(docs.kit, "original"): docs.original + b"!"}
        expected = {"kit_files", "message_imprint"}
    elif change == "proof":
        text = members(docs.kit)[proof].decode()
        head, sep, note = text.partition("\n\n")
        lines = head.split("\n")
        index = int(lines[1 if not lines[1].startswith("extra") else 2].split()[1])
        changed = text.replace(f"index {index}\n", f"index {index + 1}\n", 1)
        changes = {proof: changed.encode()}
        expected = {"kit_files", "ledger_inclusion"}
    else:
        changes = {proof: changed_checkpoint(members(docs.kit)[proof])}
        expected = {"kit_files", "ledger_checkpoint"}
    path = tmp_path / "kit.zip"
    path.write_bytes(rebuilt(docs.kit, changes))
    submit(page, site.url, "kit", path)
    assert page.inner_text("#verdict").startswith("INVALID")
    failed = {n for n, (result, _) in rows(page).items() if result == "FAILED"}
    assert expected <= failed, failed


def test_a_zip_bomb_is_refused_at_once(page, site: Site, tmp_path):
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bomb())
    started = time.monotonic()
    submit(page, site.url, "kit", path)
    assert time.monotonic() - started < 15
    assert "expands" in page.inner_text(".notice")
    assert page.locator("#verdict").count() == 0


def test_an_oversized_body_is_refused_before_it_is_sent(site: Site):
    conn = http.client.HTTPConnection("127.0.0.1", site.server.port, timeout=20)
    started = time.monotonic()
    try:
        conn.putrequest("POST", "/check/kit")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(1 << 30))
        conn.endheaders(b"--x\r\n")
        reply = conn.getresponse()
        body = reply.read().decode()
    finally:
        conn.close()
    assert reply.status == 413 and "MiB" in body
    assert time.monotonic() - started < 10
    for path in ("/check/certificate", "/check/kit"):
        conn = http.client.HTTPConnection("127.0.0.1", site.server.port, timeout=20)
        conn.request("POST", path, body=b"x", headers={"Content-Type": "text/plain"})
        assert 400 <= conn.getresponse().status < 500
        conn.close()


@pytest.fixture(scope="module")
def foreign_pki():
    return make_pki("ec", 93)


@pytest.fixture(scope="module")
def configured(tmp_path_factory, hsm, session_ntp, foreign_pki):
    """A server whose operator configured another TSA's root beside this TSA's CA."""
    root = tmp_path_factory.mktemp("check-foreign")
    trust = root / "trust"
    trust.mkdir()
    (trust / "foreign.pem").write_bytes(foreign_pki.root.public_bytes(Encoding.PEM))
    (trust / "ours.pem").write_bytes(Path(hsm.ca_file).read_bytes())
    server = TsaServer(root / "s", hsm, session_ntp.address, verify={"trust_roots": str(trust)})
    yield server.start()
    server.stop()


def test_a_token_of_another_tsa_with_configured_trust_roots(
    page, configured, foreign_pki, tmp_path
):
    token = tmp_path / "foreign.tsr"
    token.write_bytes(build_token(foreign_pki))
    base = configured.url.rstrip("/")
    page.goto(base + "/check")
    page.set_input_files("#token", str(token))
    page.fill("#digest", hashlib.sha256(DATA).hexdigest())
    page.click("#check-form button[type=submit]")
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict").startswith("VALID"), page.inner_text("main")
    assert "Test" in page.inner_text("dl.facts")  # the foreign TSA's name
    assert page.locator("#ledger").count() == 0  # not this TSA's: no ledger to look in


def test_the_choice_works_from_the_keyboard_in_chinese(browser, site: Site):
    ctx = browser.new_context(locale="zh-CN")
    tab = ctx.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        tab.goto(site.url + "/check")
        assert tab.is_visible("#check-form") and not tab.is_visible("#kit-form")
        assert "您要验证什么" in tab.inner_text("#check-choice")
        tab.focus("input[name='check-kind'][value='token']")
        tab.keyboard.press("ArrowDown")
        assert tab.is_visible("#certificate-form") and not tab.is_visible("#check-form")
        assert "上传" in tab.inner_text("#panel-certificate") and "MiB" in tab.inner_text(
            "#panel-certificate"
        )
        tab.keyboard.press("ArrowDown")
        assert tab.is_visible("#kit-form") and not tab.is_visible("#certificate-form")
        assert errors == []
    finally:
        ctx.close()
