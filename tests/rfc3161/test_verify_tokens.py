"""The verifier against tokens built in memory by tokenfactory: valid ones, then each
single mutation, which must fail with the check that guards it named first."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from tsa_server.rfc3161.verify import VerificationReport, VerifyOptions, verify_token

from .tokenfactory import (
    DATA,
    NONCE,
    POLICY,
    CertSpec,
    Pki,
    TokenSpec,
    build_token,
    flip_bit,
    make_cert,
    make_key,
    make_pki,
    to_asn1,
    to_ber,
    token_parts,
)


def options(pki: Pki, **overrides: object) -> VerifyOptions:
    values: dict[str, object] = {
        "trust_roots": [pki.root],
        "data": DATA,
        "nonce": NONCE,
        "policy": POLICY,
    }
    values.update(overrides)
    return VerifyOptions(**values)  # type: ignore[arg-type]


def assert_valid(report: VerificationReport) -> None:
    assert report.valid, [(c.name, c.reason) for c in report.failures]
    assert not report.failures


def assert_fails_first(report: VerificationReport, name: str) -> str:
    """The token is invalid and ``name`` is the first failed check; returns its reason."""
    assert not report.valid
    assert report.failures, "invalid without a failed check"
    assert report.failures[0].name == name, [(c.name, c.reason) for c in report.failures]
    return report.failures[0].reason


@pytest.fixture(scope="module")
def ec_pki() -> Pki:
    return make_pki("ec")


@pytest.fixture(scope="module")
def ec_token(ec_pki: Pki) -> bytes:
    return build_token(ec_pki)


# --- valid tokens ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("ec", TokenSpec()),
        ("ec384", TokenSpec(digest_alg="sha384", imprint_alg="sha512")),
        ("rsa", TokenSpec()),
        ("rsa", TokenSpec(scheme="pss", digest_alg="sha384")),
        ("ed25519", TokenSpec(digest_alg="sha512")),
    ],
    ids=["ecdsa-p256", "ecdsa-p384", "rsa-pkcs1", "rsa-pss", "ed25519"],
)
def test_valid_token_for_each_signature_scheme(kind: str, spec: TokenSpec) -> None:
    pki = make_pki(kind)
    report = verify_token(build_token(pki, spec), options(pki, tsa_name=f"Test TSA {kind} 0"))
    assert_valid(report)
    assert report.check("algorithm_protection").reason.startswith("CMSAlgorithmProtection")
    assert "with issuerSerial" in report.check("signing_certificate").reason


def test_valid_token_fields(ec_pki: Pki, ec_token: bytes) -> None:
    fields = verify_token(ec_token, options(ec_pki)).fields
    assert fields is not None and fields.signer is not None
    assert fields.kind == "TimeStampResp" and fields.status == 0
    assert fields.serial_number == 0x5EED
    assert fields.gen_time == datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert fields.gen_time_text == "2024-06-01T12:00:00Z"
    assert fields.policy == POLICY and fields.nonce == NONCE
    assert fields.imprint_algorithm == "sha256"
    assert fields.imprint_hex == hashlib.sha256(DATA).hexdigest()
    assert fields.accuracy is not None and fields.accuracy.seconds == 1
    assert fields.tsa_name == fields.signer.subject == "CN=Test TSA ec 0,O=TSA Tests"
    assert fields.signer.serial_number == 0x7A5A
    assert fields.signer.not_before == datetime(2020, 1, 1, tzinfo=UTC)


def test_gen_time_keeps_its_original_precision(ec_pki: Pki) -> None:
    token = build_token(ec_pki, TokenSpec(gen_time="20240601120000.123456789Z"))
    report = verify_token(token, options(ec_pki))
    assert_valid(report)
    assert report.fields is not None
    assert report.fields.gen_time_text == "2024-06-01T12:00:00.123456789Z"
    assert report.fields.gen_time.microsecond == 123456


def test_negative_serial_number_is_reported_as_is(ec_pki: Pki) -> None:
    report = verify_token(build_token(ec_pki, TokenSpec(serial=-0x1234)), options(ec_pki))
    assert_valid(report)
    assert report.fields is not None and report.fields.serial_number == -0x1234


def test_bare_token_and_ber_encoding(ec_pki: Pki) -> None:
    bare = build_token(ec_pki, TokenSpec(bare=True))
    for token in (bare, to_ber(bare), to_ber(build_token(ec_pki))):
        assert_valid(verify_token(token, options(ec_pki)))
    assert b"\x24\x80" in to_ber(bare), "the eContent must be a constructed OCTET STRING"


def test_subject_key_identifier_sid(ec_pki: Pki) -> None:
    report = verify_token(build_token(ec_pki, TokenSpec(sid="ski")), options(ec_pki))
    assert_valid(report)
    assert "subjectKeyIdentifier" in report.check("signer_certificate").reason


def test_ess_cert_id_v1_and_other_v2_hashes(ec_pki: Pki) -> None:
    for spec in (
        TokenSpec(ess="v1"),
        TokenSpec(ess="v1", ess_issuer_serial=False),
        TokenSpec(ess="v2", ess_alg="sha512"),
        TokenSpec(cap=False),
    ):
        assert_valid(verify_token(build_token(ec_pki, spec), options(ec_pki)))


def test_data_stream_and_digest_forms(ec_pki: Pki) -> None:
    big = bytes(range(256)) * 12_000  # three read chunks
    token = build_token(ec_pki, TokenSpec(data=big, imprint_alg="sha384"))
    digest = hashlib.sha384(big).digest()
    for form in (
        {"data": big},
        {"stream": io.BytesIO(big)},
        {"digest": digest},
        {"digest": digest, "digest_algorithm": "SHA-384"},
    ):
        assert_valid(verify_token(token, options(ec_pki, **{"data": None, **form})))
    wrong = options(ec_pki, data=None, digest=digest, digest_algorithm="sha256")
    assert_fails_first(verify_token(token, wrong), "message_imprint")


def test_pinned_tsa_certificate_as_trust_root(ec_pki: Pki) -> None:
    report = verify_token(
        build_token(ec_pki, TokenSpec(embed=())), options(ec_pki, trust_roots=[ec_pki.tsa])
    )
    assert_valid(report)
    assert "a trust root" in report.check("signer_certificate").reason


# --- single mutations ------------------------------------------------------------------


def test_flipped_bit_in_signature(ec_token: bytes, ec_pki: Pki) -> None:
    _, info, _ = token_parts(ec_token)
    signature = info["signature"].native
    token = flip_bit(ec_token, signature, offset=len(signature) - 1)
    assert "signature" in assert_fails_first(verify_token(token, options(ec_pki)), "signature")


def test_flipped_bit_in_tst_info(ec_token: bytes, ec_pki: Pki) -> None:
    _, _, econtent = token_parts(ec_token)
    serial = b"\x02\x02\x5e\xed"
    assert serial in econtent
    token = flip_bit(ec_token, econtent, offset=econtent.index(serial) + 3)
    report = verify_token(token, options(ec_pki))
    assert "messageDigest" in assert_fails_first(report, "message_digest")
    assert report.check("signature").passed, "the signed attributes were not touched"


def test_flipped_bit_in_a_signed_attribute(ec_token: bytes, ec_pki: Pki) -> None:
    signing_time = b"\x17\x0d240601120000Z"  # the UTCTime of the signingTime attribute
    token = flip_bit(ec_token, signing_time, offset=2)
    assert_fails_first(verify_token(token, options(ec_pki)), "signature")


def test_flipped_bit_in_the_embedded_certificate(ec_token: bytes, ec_pki: Pki) -> None:
    cert_der = to_asn1(ec_pki.tsa).dump()
    inside = cert_der.index(b"Test TSA ec 0") + 5
    token = flip_bit(ec_token, cert_der, offset=inside)
    report = verify_token(token, options(ec_pki))
    assert "hash does not match" in assert_fails_first(report, "signing_certificate")
    assert not report.check("certificate_chain").passed
    # The genuine certificate, supplied alongside, is the one the signed ESSCertID binds.
    assert_valid(verify_token(token, options(ec_pki, extra_certs=[ec_pki.tsa])))


def test_another_file(ec_token: bytes, ec_pki: Pki) -> None:
    reason = assert_fails_first(
        verify_token(ec_token, options(ec_pki, data=DATA + b"!")), "message_imprint"
    )
    assert reason.startswith("the SHA-256 imprint does not match the data (token: ")


def test_another_nonce_and_missing_nonce(ec_token: bytes, ec_pki: Pki) -> None:
    assert_fails_first(verify_token(ec_token, options(ec_pki, nonce=NONCE + 1)), "nonce")
    no_nonce = build_token(ec_pki, TokenSpec(nonce=None))
    assert "no nonce" in assert_fails_first(verify_token(no_nonce, options(ec_pki)), "nonce")


def test_wrong_policy(ec_token: bytes, ec_pki: Pki) -> None:
    assert_fails_first(verify_token(ec_token, options(ec_pki, policy="1.2.3.4")), "policy")


def test_missing_certificate_unless_supplied(ec_pki: Pki) -> None:
    token = build_token(ec_pki, TokenSpec(embed=()))
    reason = assert_fails_first(verify_token(token, options(ec_pki)), "signer_certificate")
    assert reason.startswith("no embedded or supplied certificate matches the SID")
    report = verify_token(token, options(ec_pki))
    assert report.check("signature").reason.startswith("could not be checked: ")
    supplied = options(ec_pki, extra_certs=ec_pki.chain)
    report = verify_token(token, supplied)
    assert_valid(report)
    assert "supplied beside the token" in report.check("signer_certificate").reason


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"eku_critical": False}, "not critical"),
        ({"eku": (ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING)}, "only"),
        ({"eku": None}, "0 extendedKeyUsage"),
    ],
    ids=["non-critical", "extra-eku", "no-eku"],
)
def test_tsa_certificate_purpose(overrides: dict[str, object], needle: str) -> None:
    pki = make_pki("ec", 10 + len(str(overrides)) % 7, **overrides)
    report = verify_token(build_token(pki), options(pki))
    assert needle in assert_fails_first(report, "tsa_certificate_purpose")


def test_expired_tsa_certificate_still_valid_at_gen_time() -> None:
    pki = make_pki(
        "ec",
        20,
        not_before=datetime(2023, 1, 1, tzinfo=UTC),
        not_after=datetime(2025, 1, 1, tzinfo=UTC),
    )
    report = verify_token(build_token(pki), options(pki))
    assert_valid(report)
    assert report.fields is not None and report.fields.signer is not None
    assert report.fields.signer.not_after < datetime.now(UTC)


def test_gen_time_outside_certificate_validity() -> None:
    pki = make_pki("ec", 21, not_before=datetime(2025, 1, 1, tzinfo=UTC))
    reason = assert_fails_first(verify_token(build_token(pki), options(pki)), "certificate_chain")
    assert "is not valid at genTime 2024-06-01T12:00:00+00:00" in reason


def test_wrong_trust_root(ec_token: bytes, ec_pki: Pki) -> None:
    other = make_pki("ec", 1)
    report = verify_token(ec_token, options(ec_pki, trust_roots=[other.root]))
    assert "no path to a trust root" in assert_fails_first(report, "certificate_chain")
    no_roots = verify_token(ec_token, options(ec_pki, trust_roots=[]))
    reason = assert_fails_first(no_roots, "certificate_chain")
    assert reason == "could not be checked: no trust roots were given"


def test_intermediate_that_is_not_a_ca() -> None:
    root_key, inter_key, tsa_key = make_key("ec", 30), make_key("ec", 31), make_key("ec", 32)
    root = make_cert(CertSpec("NCA Root", root_key, serial=1, ca=True))
    inter = make_cert(CertSpec("NCA Inter", inter_key, "NCA Root", root_key, serial=2, eku=None))
    tsa = make_cert(CertSpec("NCA TSA", tsa_key, "NCA Inter", inter_key, serial=3))
    pki = Pki(root_key, root, inter_key, inter, tsa_key, tsa)
    reason = assert_fails_first(verify_token(build_token(pki), options(pki)), "certificate_chain")
    assert "basicConstraints cA is not set" in reason


def test_spoofed_certificates_in_the_bag(ec_pki: Pki) -> None:
    """A bag whose first certificate imitates the TSA must not decide who signed."""
    impostor_key = make_key("ec", 40)
    same_name = make_cert(CertSpec("Test TSA ec 0", impostor_key, serial=0x7A5A))
    same_sid = make_cert(
        CertSpec("Impostor", impostor_key, "Test Intermediate ec 0", impostor_key, serial=0x7A5A)
    )
    spec = TokenSpec(extra_embedded=(same_name, same_sid), extra_embedded_first=True)
    report = verify_token(build_token(ec_pki, spec), options(ec_pki, tsa_name="Test TSA ec 0"))
    assert_valid(report)
    assert report.fields is not None and report.fields.signer is not None
    assert (
        report.fields.signer.sha256_fingerprint
        == hashlib.sha256(to_asn1(ec_pki.tsa).dump()).hexdigest()
    )
    spoofed = options(ec_pki, tsa_name="Impostor")
    assert_fails_first(verify_token(build_token(ec_pki, spec), spoofed), "expected_tsa_name")


def test_expected_tsa_name_forms(ec_token: bytes, ec_pki: Pki) -> None:
    for name in ("Test TSA ec 0", "CN=Test TSA ec 0,O=TSA Tests", "cn=test tsa EC 0, o=tsa tests"):
        assert_valid(verify_token(ec_token, options(ec_pki, tsa_name=name)))
    for name in ("Test TSA", "CN=Test TSA ec 0", "O=TSA Tests,CN=Test TSA ec 0"):
        assert_fails_first(
            verify_token(ec_token, options(ec_pki, tsa_name=name)), "expected_tsa_name"
        )


def test_tsa_field_naming_someone_else(ec_pki: Pki) -> None:
    token = build_token(ec_pki, TokenSpec(tsa_cn="Another TSA"))
    assert "Another TSA" in assert_fails_first(verify_token(token, options(ec_pki)), "tsa_name")


def test_signing_certificate_attribute_problems(ec_pki: Pki) -> None:
    cases = {
        "neither SigningCertificate": TokenSpec(ess=None),
        "another serial number": TokenSpec(ess_serial=0x7A5B),
    }
    for needle, spec in cases.items():
        reason = assert_fails_first(
            verify_token(build_token(ec_pki, spec), options(ec_pki)), "signing_certificate"
        )
        assert needle in reason


def test_algorithm_protection_mismatch(ec_pki: Pki) -> None:
    token = build_token(ec_pki, TokenSpec(cap_digest_alg="sha384"))
    assert "digestAlgorithm" in assert_fails_first(
        verify_token(token, options(ec_pki)), "algorithm_protection"
    )


def test_more_than_one_signer_info(ec_pki: Pki) -> None:
    token = build_token(ec_pki, TokenSpec(signer_infos=2))
    report = verify_token(token, options(ec_pki))
    assert "2 SignerInfos" in assert_fails_first(report, "single_signer")
    assert report.check("signature").reason.startswith("could not be checked")


def test_rejected_request(ec_pki: Pki) -> None:
    report = verify_token(build_token(ec_pki, TokenSpec(status=2)), options(ec_pki))
    reason = assert_fails_first(report, "status")
    assert reason == "the TSA answered rejection: refused by test"
    assert report.fields is None
    assert all(not c.passed for c in report.checks[2:] if not c.skipped)


def test_malformed_gen_time(ec_pki: Pki) -> None:
    token = build_token(ec_pki, TokenSpec(gen_time="202406011200Z"))
    assert "genTime" in assert_fails_first(verify_token(token, options(ec_pki)), "structure")


def test_nothing_to_compare_the_imprint_with(ec_token: bytes, ec_pki: Pki) -> None:
    report = verify_token(ec_token, options(ec_pki, data=None))
    reason = assert_fails_first(report, "message_imprint")
    assert reason.startswith("could not be checked: no data")
