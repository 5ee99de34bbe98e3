"""Real tokens from other TSAs and other test suites, each verifying or failing exactly as
its README says (tests/vectors/third_party/README.md and
tests/vectors/third_party/rfc3161-client/README.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import tsp

from tsa_server.rfc3161.verify import (
    VerificationReport,
    VerifyOptions,
    load_certificates,
    verify_token,
)

OURS = Path(__file__).parents[1] / "vectors" / "third_party"
SIGSTORE = OURS / "rfc3161-client"
HELLO = b"hello"


def read(path: Path) -> bytes:
    return path.read_bytes()


def certs(path: Path) -> list:
    return load_certificates(read(path))


def request_nonce(path: Path) -> int:
    return tsp.TimeStampReq.load(read(path))["nonce"].native


def failed(report: VerificationReport) -> list[str]:
    return [c.name for c in report.failures]


def assert_valid(report: VerificationReport) -> None:
    assert report.valid, [(c.name, c.reason) for c in report.failures]


def sigstage(**kwargs: object) -> VerifyOptions:
    chain = certs(SIGSTORE / "sigstage" / "ts_chain.pem")
    return VerifyOptions(trust_roots=chain[-1:], **kwargs)  # type: ignore[arg-type]


def local_tsa(**kwargs: object) -> VerifyOptions:
    """Trust the local TSA's root; supply only its intermediate (the leaf must come
    from the token's own bag)."""
    chain = certs(SIGSTORE / "test_tsa" / "ts_chain.pem")
    return VerifyOptions(
        trust_roots=chain[-1:],
        extra_certs=chain[1:2],
        **kwargs,  # type: ignore[arg-type]
    )


# --- sigstore: sigstage.dev TSA ----------------------------------------------------------


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_sigstage_responses_verify(hash_name: str) -> None:
    report = verify_token(
        read(SIGSTORE / "sigstage" / f"response-{hash_name}.tsr"),
        sigstage(data=HELLO, tsa_name="CN=sigstore-tsa,O=sigstore.dev"),
    )
    assert_valid(report)
    assert report.fields is not None and report.fields.imprint_algorithm == hash_name
    assert report.fields.policy == "1.3.6.1.4.1.57264.2"
    assert "embedded in the token" in report.check("signer_certificate").reason


def test_sigstage_altered_signature_fails() -> None:
    report = verify_token(
        read(SIGSTORE / "sigstage" / "response-invalid-signature.tsr"), sigstage(data=HELLO)
    )
    assert failed(report) == ["signature"]


def test_sigstage_token_without_certificates() -> None:
    token = read(SIGSTORE / "sigstage" / "response-no-embedded-cert.tsr")
    report = verify_token(token, sigstage(data=HELLO))
    assert failed(report)[0] == "signer_certificate"
    leaf = certs(SIGSTORE / "sigstage" / "ts_chain.pem")[:1]
    assert_valid(verify_token(token, sigstage(data=HELLO, extra_certs=leaf)))


def test_sigstage_request_does_not_match() -> None:
    nonce = request_nonce(SIGSTORE / "sigstage" / "request.der")
    report = verify_token(
        read(SIGSTORE / "sigstage" / "response-sha256.tsr"), sigstage(data=HELLO, nonce=nonce)
    )
    assert failed(report) == ["nonce"]


# --- sigstore: locally run TSA -----------------------------------------------------------


def test_local_tsa_response_answers_its_request() -> None:
    nonce = request_nonce(SIGSTORE / "test_tsa" / "request.der")
    report = verify_token(
        read(SIGSTORE / "test_tsa" / "response.tsr"), local_tsa(data=HELLO, nonce=nonce)
    )
    assert_valid(report)
    assert report.fields is not None and report.fields.nonce == nonce


def test_spoofed_extra_certificate_does_not_fool_the_verifier() -> None:
    token = read(SIGSTORE / "test_tsa" / "response-injected-certs.tsr")
    report = verify_token(token, local_tsa(data=HELLO, tsa_name="CN=Test TSA Timestamping,O=local"))
    assert_valid(report)  # the signer comes from the SID, and the bag's impostors are ignored
    assert "embedded in the token" in report.check("signer_certificate").reason
    assert report.fields is not None and report.fields.signer is not None
    assert report.fields.signer.issuer == "CN=Test TSA Intermediate,O=local"
    for pinned in ("Spoofed TSA", "CN=Spoofed TSA"):
        assert failed(verify_token(token, local_tsa(data=HELLO, tsa_name=pinned))) == [
            "expected_tsa_name"
        ]


def test_response_from_another_tsa_instance_fails() -> None:
    report = verify_token(read(SIGSTORE / "test_tsa" / "other_response.tsr"), local_tsa(data=HELLO))
    assert failed(report) == ["certificate_chain"]
    assert "issued by another 'CN=Test TSA Intermediate,O=local'" in report.failures[0].reason


# --- dotnet/runtime Rfc3161 test data ----------------------------------------------------


def freetsa(**kwargs: object) -> VerifyOptions:
    return VerifyOptions(
        trust_roots=certs(OURS / "roots" / "freetsa-cacert.pem"),
        **kwargs,  # type: ignore[arg-type]
    )


FREETSA_TSA = OURS / "dotnet-runtime" / "freetsa-tsa.pem"
FREETSA_DATA = b"This is a test.\n"


def test_freetsa_token_with_expired_tsa_certificate_verifies_at_gen_time() -> None:
    token = read(OURS / "dotnet-runtime" / "freetsa1.tst")
    report = verify_token(token, freetsa(data=FREETSA_DATA, extra_certs=certs(FREETSA_TSA)))
    assert_valid(report)
    fields = report.fields
    assert fields is not None and fields.signer is not None
    assert fields.kind == "TimeStampToken" and fields.status is None
    assert fields.signer.not_after == datetime(2026, 3, 11, 1, 57, 39, tzinfo=UTC)
    assert fields.gen_time_text == "2017-12-18T17:34:16.800812Z"
    assert fields.gen_time == datetime(2017, 12, 18, 17, 34, 16, 800812, tzinfo=UTC)
    assert (fields.serial_number, fields.policy, fields.ordering) == (0x064F64, "1.2.3.4.1", True)
    assert fields.nonce == 0x9631_D170_EA3B_92D4
    assert fields.accuracy is not None and (
        fields.accuracy.seconds,
        fields.accuracy.millis,
        fields.accuracy.micros,
    ) == (1, 500, 100)
    assert fields.imprint_algorithm == "sha384"
    assert report.check("signing_certificate").reason.startswith("ESSCertID (SHA-1)")


def test_freetsa_token_needs_its_certificate() -> None:
    token = read(OURS / "dotnet-runtime" / "freetsa1.tst")
    assert failed(verify_token(token, freetsa(data=FREETSA_DATA)))[0] == "signer_certificate"
    pinned = VerifyOptions(trust_roots=certs(FREETSA_TSA), data=FREETSA_DATA)
    assert_valid(verify_token(token, pinned))


def test_symantec_bare_token_with_embedded_chain() -> None:
    report = verify_token(
        read(OURS / "dotnet-runtime" / "symantec1.tst"),
        VerifyOptions(
            trust_roots=certs(OURS / "roots" / "verisign-universal-root.pem"), data=b"Hello, world!"
        ),
    )
    assert_valid(report)
    assert report.check("signature").reason.startswith("the RSA PKCS#1 v1.5 with SHA-256")


def test_digicert_token_with_unsorted_signed_attributes() -> None:
    """The signed attributes are not in DER order: hashing a re-encoding would fail."""
    report = verify_token(
        read(OURS / "dotnet-runtime" / "digicert1.tst"),
        VerifyOptions(
            trust_roots=certs(OURS / "roots" / "digicert-assured-id-root-ca.pem"),
            data=b"My TST signer attributes are sorted incorrectly.",
        ),
    )
    assert_valid(report)
    assert report.fields is not None and report.fields.tsa_name is None


# --- github/smimesign ietf-cms/timestamp fixtures ----------------------------------------

SMIME_DATA = b"hello\n"


def test_smimesign_tokens_with_certificates() -> None:
    for name, root in (
        ("symantec-with-certs", "verisign-universal-root.pem"),
        ("digicert", "digicert-assured-id-root-ca.pem"),
    ):
        options = VerifyOptions(trust_roots=certs(OURS / "roots" / root), data=SMIME_DATA)
        assert_valid(verify_token(read(OURS / "smimesign" / f"{name}.tsr"), options))


def test_smimesign_symantec_token_with_certificates_from_elsewhere() -> None:
    """Same TSA certificate as dotnet's Symantec1 token: supplied from that token's bag."""
    token = read(OURS / "smimesign" / "symantec.tsr")
    roots = certs(OURS / "roots" / "verisign-universal-root.pem")
    alone = verify_token(token, VerifyOptions(trust_roots=roots, data=SMIME_DATA))
    assert failed(alone)[0] == "signer_certificate"
    bag = load_certificates(read(OURS / "dotnet-runtime" / "symantec1.tst"))
    supplied = VerifyOptions(trust_roots=roots, extra_certs=bag, data=SMIME_DATA)
    assert_valid(verify_token(token, supplied))


@pytest.mark.parametrize("name", ["comodo", "globalsign"])
def test_smimesign_tokens_whose_certificate_is_unavailable(name: str) -> None:
    """No certificates are embedded and none are published with them: decodable, readable,
    but never valid."""
    report = verify_token(read(OURS / "smimesign" / f"{name}.tsr"), VerifyOptions(data=SMIME_DATA))
    assert not report.valid
    assert failed(report)[0] == "signer_certificate"
    assert report.check("message_imprint").passed
    assert report.check("structure").passed
    assert report.fields is not None and report.fields.signer is None
