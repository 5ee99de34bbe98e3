"""pyHanko against the real server: its HTTPTimeStamper gets tokens that its validator
finds intact, valid and trusted (with our CA as the only trust root), and a PDF signed
with a timestamp from the server validates with a trusted timestamp."""

from __future__ import annotations

import asyncio
import hashlib
import io

import pytest
from asn1crypto import keys, pem
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError, handle_tsp_response
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from tests.interop.helpers import (
    SIGNATURE_DIGEST,
    assert_fresh,
    assert_in_ledger,
    assert_stamps_signature,
    assert_token_covers,
    make_ca_and_signer,
    tst_info,
)
from tests.support.queries import failure_of, parse_response

pytestmark = pytest.mark.interop

TSA_SUBJECT_CN = "TSA Development Signer"


def load_certificate(path) -> asn1_x509.Certificate:
    _, _, der = pem.unarmor(path.read_bytes())
    return asn1_x509.Certificate.load(der)


def trusting(*roots: asn1_x509.Certificate) -> ValidationContext:
    return ValidationContext(trust_roots=list(roots))


async def validate_token(
    token, expected_imprint: bytes, context: ValidationContext
) -> TimestampSignatureStatus:
    kwargs = await validate_tst_signed_data(
        token["content"], context, lambda _algorithm: expected_imprint
    )
    return TimestampSignatureStatus(**kwargs)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512", "sha3_256"])
def test_http_timestamper_token_validates(tsa, hsm, hash_name):
    data = f"pyHanko interop {hash_name}".encode()
    digest = hashlib.new(hash_name, data).digest()
    ca = load_certificate(hsm.ca_file)

    async def scenario():
        stamper = HTTPTimeStamper(tsa.url)
        nonce, request = stamper.request_cms(digest, hash_name)
        response = await stamper.async_request_tsa_response(request)
        assert response["status"]["status"].native == "granted"
        # pyHanko's own response handling (status, nonce echo) accepts it.
        token = handle_tsp_response(response, nonce)
        assert tst_info(token)["nonce"].native == nonce
        again = await stamper.async_timestamp(digest, hash_name)
        return (
            token,
            again,
            await validate_token(token, digest, trusting(ca)),
            await validate_token(token, digest, trusting()),
            await validate_token(token, hashlib.new(hash_name, b"other").digest(), trusting(ca)),
        )

    token, again, status, untrusted, wrong_imprint = asyncio.run(scenario())
    for each in (token, again):
        assert_token_covers(each, data, hash_name)
        assert_in_ledger(tsa.ledger_path, each)
    assert tst_info(again)["serial_number"].native != tst_info(token)["serial_number"].native

    assert status.intact and status.valid and status.trusted, status.summary()
    assert status.summary() == "INTACT:TRUSTED"
    assert status.md_algorithm == SIGNATURE_DIGEST[hash_name]
    assert status.signing_cert.subject.native["common_name"] == TSA_SUBJECT_CN
    assert status.validation_path is not None
    assert status.validation_path.trust_anchor.certificate.dump() == ca.dump()
    assert_fresh(status.timestamp)
    assert status.timestamp == tst_info(token)["gen_time"].native
    # The same token without our CA as a trust root: sound, but not trusted.
    assert untrusted.intact and untrusted.valid and not untrusted.trusted
    # ... and for another imprint: not intact.
    assert not wrong_imprint.intact


def tiny_pdf() -> bytes:
    """A one-page PDF with a classic cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_pdf_signature_timestamp_validates(tsa, hsm):
    # A throwaway signer, generated now and kept in memory only.
    signing_ca, _, leaf, key = make_ca_and_signer(
        "pyHanko Interop Signer", ExtendedKeyUsageOID.EMAIL_PROTECTION
    )
    as_asn1 = [
        asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
        for c in (signing_ca, leaf)
    ]
    signing_root, signer_cert = as_asn1
    signer = signers.SimpleSigner(
        signing_cert=signer_cert,
        signing_key=keys.PrivateKeyInfo.load(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ),
        cert_registry=SimpleCertificateStore.from_certs(as_asn1),
    )
    ca = load_certificate(hsm.ca_file)

    async def scenario():
        writer = IncrementalPdfFileWriter(io.BytesIO(tiny_pdf()))
        signed = await signers.async_sign_pdf(
            writer,
            signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256"),
            signer=signer,
            timestamper=HTTPTimeStamper(tsa.url),
        )
        embedded = PdfFileReader(signed).embedded_signatures
        assert len(embedded) == 1
        signature = embedded[0]
        trusted = await async_validate_pdf_signature(
            signature, trusting(signing_root), trusting(ca)
        )
        untrusted = await async_validate_pdf_signature(
            signature, trusting(signing_root), trusting()
        )
        return signature, trusted, untrusted

    signature, status, untrusted = asyncio.run(scenario())
    assert status.intact and status.valid and status.trusted, status.summary()
    assert status.bottom_line
    assert status.summary() == "INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,UNTOUCHED"
    stamp = status.timestamp_validity
    assert stamp is not None
    assert stamp.intact and stamp.valid and stamp.trusted
    assert stamp.signing_cert.subject.native["common_name"] == TSA_SUBJECT_CN
    assert_fresh(stamp.timestamp)

    # The embedded token is the server's, over this signature's value.
    info = assert_stamps_signature(signature.signed_data, tsa.ledger_path, "sha256")
    assert info["gen_time"].native == stamp.timestamp

    # Without our CA the timestamp is untrusted and the signature no longer passes.
    assert untrusted.timestamp_validity is not None
    assert untrusted.timestamp_validity.intact and not untrusted.timestamp_validity.trusted
    assert not untrusted.bottom_line


def test_timestamper_gets_no_token_for_a_rejection(tsa):
    """SHA-1 is not accepted: the server rejects (badAlg, no token, as RFC 3161 2.4.2
    requires) and pyHanko yields no token. pyHanko does not reach its own refusal
    message: asn1crypto 1.5.1's TimeStampResp wrongly requires timeStampToken
    (wbond/asn1crypto#286), so reading the reply raises ValueError."""
    stamper = HTTPTimeStamper(tsa.url)
    digest = hashlib.sha1(b"x").digest()
    nonce, request = stamper.request_cms(digest, "sha1")
    status, _, body = tsa.post_query(request.dump())
    assert status == 200
    assert failure_of(body) == ("rejection", {"bad_alg"})
    assert parse_response(body)["time_stamp_token"].native is None
    with pytest.raises(
        (TimestampRequestError, ValueError), match="refused our request|time_stamp_token"
    ):
        asyncio.run(stamper.async_timestamp(digest, "sha1"))
