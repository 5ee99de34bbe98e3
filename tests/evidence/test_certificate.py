"""The PDF certificate (REC-4), read back: its text (pypdf), the embedded `.tsr` checked
with real `openssl ts -verify`, the QR code decoded by zbarimg from the page rendered by
pdftoppm, determinism, and long Chinese statements flowing onto further pages."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.support.certified import DEPOSITOR, STATEMENT, issue, openssl_verify, put_item
from tsa_server.accounts.service import Accounts
from tsa_server.evidence.certificate import (
    NotCertified,
    certificate_data,
    tsr_of,
)
from tsa_server.evidence.certificate_pdf import render_certificate, seconds_beijing, seconds_utc
from tsa_server.evidence.records import ItemMode, NewItem, StorageState
from tsa_server.evidence.store import EvidenceStore
from tsa_server.rfc3161.verify_load import load_certificates

BASE = "https://tsa.example.test"
CONTENT = b"\x89PNG a design drawing, deposited as evidence\n" * 50


@pytest.fixture
def org(accounts: Accounts) -> str:
    return accounts.create_organisation("Org A").id


@pytest.fixture
def chain(hsm):
    return load_certificates(hsm.chain_file.read_bytes())


@pytest.fixture
def issued(tsa):
    return issue(tsa, CONTENT)


def pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_certificate_states_everything_and_carries_a_token_openssl_verifies(
    store: EvidenceStore, org: str, issued, chain, hsm, tmp_path: Path
) -> None:
    item = put_item(store, org, CONTENT, issued, stored=True)
    data = certificate_data(item, tsa_chain=chain, base_url=BASE, holder_handle="联合信任")
    pdf = render_certificate(data)
    assert pdf.startswith(b"%PDF-")

    text = pdf_text(pdf)
    squeezed = "".join(text.split())
    for expected in (
        data.serial_hex,
        item.sha256,
        item.sha512,
        seconds_utc(data.gen_time),  # without microseconds
        seconds_beijing(data.gen_time),  # Beijing time, +08:00
        "北京时间",
        DEPOSITOR,
        "联合信任",
        data.policy_oid,
        f"{len(CONTENT):,} bytes",
        "stored",
        item.file_name,
        "openssl ts -verify",
    ):
        assert "".join(expected.split()) in squeezed, expected
    assert "".join(STATEMENT.split()) in squeezed  # Chinese rendered and extractable
    assert "CN=" in data.tsa_name and data.tsa_name.replace(" ", "") in squeezed
    assert data.gen_time.utcoffset().total_seconds() == 0

    reader = PdfReader(io.BytesIO(pdf))
    attachments = reader.attachments
    assert list(attachments) == [data.tsr_name]
    (tsr,) = attachments[data.tsr_name]
    assert tsr == issued.reply  # the token the server issued, byte for byte
    (tmp_path / "design.png").write_bytes(CONTENT)
    (tmp_path / data.tsr_name).write_bytes(tsr)
    (tmp_path / "ca-chain.pem").write_bytes(hsm.chain_file.read_bytes())
    openssl_verify(tmp_path / "design.png", tmp_path / data.tsr_name, tmp_path / "ca-chain.pem")
    # and a changed original fails
    (tmp_path / "changed.png").write_bytes(CONTENT + b" ")
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(tmp_path / "changed.png"),
            "-in",
            str(tmp_path / data.tsr_name),
            "-CAfile",
            str(tmp_path / "ca-chain.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0


def test_rendering_is_deterministic_and_dated_by_gen_time(
    store: EvidenceStore, org: str, issued, chain
) -> None:
    item = put_item(store, org, CONTENT, issued)
    data = certificate_data(item, tsa_chain=chain, base_url=BASE)
    first, second = render_certificate(data), render_certificate(data)
    assert first == second
    info = PdfReader(io.BytesIO(first)).metadata
    assert info.creation_date.replace(microsecond=0) == data.gen_time.replace(microsecond=0)
    assert data.serial_hex in info.title
    assert "hash only" in pdf_text(first)
    assert "Trade name" not in pdf_text(first)  # no handle, no row


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (StorageState.ACTIVE, "original stored"),
        (StorageState.EXPIRED, "storage expired"),
        (StorageState.ORIGINAL_DELETED, "deleted by the depositor"),
        (StorageState.PURGED, "purged"),
    ],
)
def test_storage_status_in_every_state(
    store: EvidenceStore, org: str, issued, chain, state, words
) -> None:
    item = put_item(store, org, CONTENT, issued, stored=True, state=state)
    data = certificate_data(item, tsa_chain=chain, base_url=BASE)
    assert words in data.storage_status
    assert words.replace(" ", "") in "".join(pdf_text(render_certificate(data)).split())


@pytest.mark.skipif(
    not (shutil.which("pdftoppm") and shutil.which("zbarimg")),
    reason="needs poppler-utils and zbar-tools (scripts/bootstrap --test)",
)
def test_qr_code_decodes_to_the_verification_url(
    store: EvidenceStore, org: str, issued, chain, tmp_path: Path
) -> None:
    item = put_item(store, org, CONTENT, issued, stored=True)
    data = certificate_data(item, tsa_chain=chain, base_url=BASE, holder_handle="联合信任")
    assert data.verify_url == f"{BASE}/verify/serial/{data.serial_hex}"
    (tmp_path / "c.pdf").write_bytes(render_certificate(data))
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "110",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(tmp_path / "c.pdf"),
            str(tmp_path / "page"),
        ],
        check=True,
        timeout=60,
    )
    png = tmp_path / "page.png"
    shutil.copyfile(png, "/tmp/certificate.png")  # for people to look at
    decoded = subprocess.run(
        ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(png)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.stdout.strip() == data.verify_url, decoded.stderr


def test_long_chinese_statement_flows_onto_more_pages(
    store: EvidenceStore, org: str, issued, chain
) -> None:
    statement = ("本作品为原创。" * 700 + "结束语。")[:9_000]
    item = put_item(store, org, CONTENT, issued, statement=statement, file_name="长" * 200)
    pdf = render_certificate(certificate_data(item, tsa_chain=chain, base_url=BASE))
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 2
    squeezed = "".join(pdf_text(pdf).split())
    assert statement[-40:] in squeezed and "长" * 200 in squeezed
    assert "opensslts-verify" in squeezed  # the recipe still comes after it


def test_uncertified_item_and_bare_token(store: EvidenceStore, org: str, issued, chain) -> None:
    item = store.insert_item(org, NewItem(mode=ItemMode.HASH_ONLY, sha256="ab" * 32))
    with pytest.raises(NotCertified):
        certificate_data(item, tsa_chain=chain, base_url=BASE)
    assert tsr_of(issued.token) == issued.reply  # a bare token is wrapped as granted
    assert tsr_of(issued.reply) == issued.reply
    with pytest.raises(NotCertified):
        tsr_of(b"\x30\x03\x02\x01\x00")
