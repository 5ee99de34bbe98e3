"""The rfc3161-client library (sigstore's TSA client) against the real server: its
request builder, its response decoder and its verifier."""

from __future__ import annotations

import hashlib

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from tests.interop.helpers import (
    REPLY_TYPE,
    assert_fresh,
    assert_in_ledger,
    assert_token_covers,
    make_ca_and_signer,
)
from tsa_server.rfc3161.oids import DEFAULT_POLICY

pytestmark = pytest.mark.interop

IMPRINT = {
    HashAlgorithm.SHA256: ("2.16.840.1.101.3.4.2.1", "sha256"),
    HashAlgorithm.SHA512: ("2.16.840.1.101.3.4.2.3", "sha512"),
}


def certificates(hsm) -> tuple[x509.Certificate, x509.Certificate]:
    """(TSA certificate, root CA) of the test token."""
    tsa_cert, _ca_in_chain = x509.load_pem_x509_certificates(hsm.chain_file.read_bytes())
    root = x509.load_pem_x509_certificate(hsm.ca_file.read_bytes())
    return tsa_cert, root


def stamp(tsa, message: bytes, algorithm: HashAlgorithm, cert_req: bool = True):
    request = (
        TimestampRequestBuilder()
        .data(message)
        .hash_algorithm(algorithm)
        .cert_request(cert_request=cert_req)
        .build()
    )
    status, headers, body = tsa.post_query(request.as_bytes())
    assert status == 200, body
    assert headers["Content-Type"] == REPLY_TYPE
    return request, decode_timestamp_response(body), body


@pytest.mark.parametrize("cert_req", [True, False], ids=["cert", "no_cert"])
@pytest.mark.parametrize("algorithm", list(IMPRINT), ids=lambda a: a.value)
def test_request_decode_verify(tsa, hsm, algorithm, cert_req):
    message = f"rfc3161-client interop {algorithm.value} cert_req={cert_req}".encode()
    request, response, _ = stamp(tsa, message, algorithm, cert_req)
    assert request.nonce is not None
    assert request.cert_req is cert_req

    assert response.status == PKIStatus.GRANTED
    info = response.tst_info
    oid, hash_name = IMPRINT[algorithm]
    assert info.message_imprint.hash_algorithm.dotted_string == oid
    assert info.message_imprint.message == hashlib.new(hash_name, message).digest()
    assert info.nonce == request.nonce
    assert info.policy.dotted_string == DEFAULT_POLICY
    assert_fresh(info.gen_time)
    assert info.accuracy.seconds or info.accuracy.millis or info.accuracy.micros

    tsa_cert, root = certificates(hsm)
    assert isinstance(info.name, x509.DirectoryName) and info.name.value == tsa_cert.subject
    eku = tsa_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    carried = response.signed_data.certificates
    assert carried == ({tsa_cert.public_bytes(Encoding.DER)} if cert_req else set())

    builder = (
        VerifierBuilder.from_request(request)
        .add_root_certificate(root)
        .common_name(tsa_cert.subject.rfc4514_string())
    )
    if not cert_req:
        builder = builder.tsa_certificate(tsa_cert)
    verifier = builder.build()
    assert verifier.verify_message(response, message) is True
    assert verifier.verify(response, hashlib.new(hash_name, message).digest()) is True

    token = cms.ContentInfo.load(response.time_stamp_token())
    assert_token_covers(token, message, hash_name)
    assert_in_ledger(tsa.ledger_path, token)


def test_verifier_rejects_wrong_message_nonce_and_root(tsa, hsm):
    message = b"rfc3161-client negative checks"
    request, response, _ = stamp(tsa, message, HashAlgorithm.SHA256)
    tsa_cert, root = certificates(hsm)

    def verifier(nonce: int, anchor: x509.Certificate):
        return VerifierBuilder(nonce=nonce, roots=[anchor]).build()

    assert verifier(request.nonce, root).verify_message(response, message) is True
    with pytest.raises(VerificationError, match="Mismatch between messages"):
        verifier(request.nonce, root).verify_message(response, message + b"!")
    with pytest.raises(VerificationError, match="Nonce mismatch"):
        verifier(request.nonce + 1, root).verify_message(response, message)
    foreign_root, _, _, _ = make_ca_and_signer("Foreign", ExtendedKeyUsageOID.TIME_STAMPING)
    with pytest.raises(VerificationError, match="Error while verifying certificates"):
        verifier(request.nonce, foreign_root).verify_message(response, message)
    # Another TSA certificate than the one that signed: refused.
    with pytest.raises(VerificationError, match="Embedded certificate does not match"):
        (
            VerifierBuilder(nonce=request.nonce, roots=[root], tsa_certificate=root)
            .build()
            .verify_message(response, message)
        )


def test_include_chain_token_decodes_and_verifies(make_server, hsm):
    """With [tsa] include_chain the token carries the TSA certificate and the CA.
    SignedData.certificates is a SET OF, which DER orders by encoding; rfc3161-client's
    DER parser (rust-asn1) rejects any other order (InvalidSetOrdering)."""
    server = make_server(tsa={"include_chain": True}).start()
    message = b"rfc3161-client with the whole chain"
    request, response, body = stamp(server, message, HashAlgorithm.SHA256)
    tsa_cert, root = certificates(hsm)
    assert response.signed_data.certificates == {
        tsa_cert.public_bytes(Encoding.DER),
        root.public_bytes(Encoding.DER),
    }
    verifier = VerifierBuilder.from_request(request).add_root_certificate(root).build()
    assert verifier.verify_message(response, message) is True
    token = cms.ContentInfo.load(response.time_stamp_token())
    assert_token_covers(token, message, "sha256")
    assert_in_ledger(server.ledger_path, token)
