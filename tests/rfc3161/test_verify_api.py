"""The verifier's public surface: decoding forms, report shape, raising variant, and
robustness against garbage (never an asn1crypto traceback)."""

from __future__ import annotations

import base64
import json
from functools import cache

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsa_server.rfc3161.verify import (
    CHECKS,
    CertificateDecodeError,
    TokenDecodeError,
    VerificationError,
    VerifyOptions,
    load_certificates,
    load_crls,
    load_token,
    verify_token,
    verify_token_or_raise,
)

from .tokenfactory import DATA, Pki, TokenSpec, build_token, make_crl, make_pki, to_asn1

EXPECTED_ORDER = [
    "decoding",
    "status",
    "structure",
    "single_signer",
    "signer_certificate",
    "signature",
    "message_digest",
    "content_type",
    "signing_certificate",
    "algorithm_protection",
    "tsa_certificate_purpose",
    "certificate_chain",
    "revocation",
    "message_imprint",
    "nonce",
    "policy",
    "tsa_name",
    "expected_tsa_name",
]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki("ec", 60)


@pytest.fixture(scope="module")
def token(pki: Pki) -> bytes:
    return build_token(pki)


def pem(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def test_checks_come_in_a_fixed_order(token: bytes, pki: Pki) -> None:
    report = verify_token(token, VerifyOptions(trust_roots=[pki.root], data=DATA))
    assert [c.name for c in report.checks] == EXPECTED_ORDER
    assert [name for name, _, _ in CHECKS] == EXPECTED_ORDER[1:]
    assert all(c.reference.startswith("RFC") for c in report.checks)
    garbage = verify_token(b"\x30\x03\x02\x01\x00")
    assert [c.name for c in garbage.checks] == EXPECTED_ORDER


@pytest.mark.parametrize("form", ["der", "pem-pkcs7", "pem-timestamp", "base64", "b64-lines"])
def test_token_encodings(token: bytes, pki: Pki, form: str) -> None:
    bare = build_token(pki, TokenSpec(bare=True))
    encoded = {
        "der": token,
        "pem-pkcs7": pem(bare, "PKCS7").encode(),
        "pem-timestamp": pem(token, "TIMESTAMP RESPONSE").encode(),
        "base64": base64.b64encode(token),
        "b64-lines": base64.encodebytes(bare),
    }[form]
    loaded = load_token(encoded)
    assert loaded.content_info is not None
    if form != "der":
        assert load_token(encoded.decode()).kind == loaded.kind
    assert verify_token(encoded, VerifyOptions(trust_roots=[pki.root], data=DATA)).valid


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"   ",
        b"hello world!",
        b"\x30\x80",
        b"\x30\x03\x02\x01",
        b"\x04\x03abc",
        b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
        b"MAMCAQA",
        b"\xff" * 40,
    ],
)
def test_garbage_is_a_typed_error_or_a_report(garbage: bytes) -> None:
    with pytest.raises(TokenDecodeError):
        load_token(garbage)
    report = verify_token(garbage)
    assert not report.valid and report.fields is None
    assert report.checks[0].name == "decoding" and not report.checks[0].passed
    assert all(not c.passed for c in report.checks)


def test_truncated_token(token: bytes) -> None:
    with pytest.raises(TokenDecodeError):
        load_token(token[:-10])
    with pytest.raises(TokenDecodeError):
        load_token(token + b"\x00")


@cache
def fuzz_token() -> bytes:
    return build_token(make_pki("ec", 60))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_corruption_never_raises(data: st.DataObject) -> None:
    pki = make_pki("ec", 60)
    token = bytearray(fuzz_token())
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(token) - 1))
        token[index] = data.draw(st.integers(0, 255))
    report = verify_token(bytes(token), VerifyOptions(trust_roots=[pki.root], data=DATA))
    json.dumps(report.to_dict())
    assert report.valid == all(c.passed for c in report.checks)


def test_raising_variant(token: bytes, pki: Pki) -> None:
    good = VerifyOptions(trust_roots=[pki.root], data=DATA)
    assert verify_token_or_raise(token, good).valid
    with pytest.raises(VerificationError) as caught:
        verify_token_or_raise(token, VerifyOptions(trust_roots=[pki.root], data=b"other"))
    assert caught.value.check.name == "message_imprint"
    assert str(caught.value).startswith(
        "message_imprint: the SHA-256 imprint does not match the data (token: "
    )
    assert not caught.value.report.valid


def test_report_to_dict_is_json_ready(token: bytes, pki: Pki) -> None:
    report = verify_token(token, VerifyOptions(trust_roots=[pki.root], data=DATA, nonce=7))
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["valid"] is False
    assert as_dict["fields"]["gen_time"] == "2024-06-01T12:00:00+00:00"
    nonce = next(c for c in as_dict["checks"] if c["name"] == "nonce")
    assert nonce == {
        "name": "nonce",
        "passed": False,
        "reference": "RFC 3161 §2.4.2",
        "skipped": False,
        "reason": f"the nonce is {0x123456789ABCDEF0:#x}, 0x7 was expected",
    }


def test_options_accept_one_data_source_only() -> None:
    with pytest.raises(ValueError, match="at most one"):
        VerifyOptions(data=b"a", digest=b"b")


def test_certificates_in_every_form(pki: Pki) -> None:
    der = pki.root.public_bytes(Encoding.DER)
    bundle = b"".join(c.public_bytes(Encoding.PEM) for c in (pki.tsa, pki.inter, pki.root))
    assert len(load_certificates(bundle)) == 3
    assert load_certificates(der)[0].dump() == der
    assert load_certificates(base64.b64encode(der))[0].dump() == der
    bag = build_token(pki, TokenSpec(bare=True))  # a SignedData is a PKCS#7 certificate bag
    assert {c.dump() for c in load_certificates(bag)} == {
        to_asn1(pki.tsa).dump(),
        to_asn1(pki.inter).dump(),
    }
    for bad in (b"", b"nonsense", der[:-3]):
        with pytest.raises(CertificateDecodeError):
            load_certificates(bad)


def test_options_take_any_certificate_and_crl_form(token: bytes, pki: Pki) -> None:
    crls = [make_crl(pki.inter_key, pki.inter), make_crl(pki.root_key, pki.root)]
    crl_pem = b"".join(c.public_bytes(Encoding.PEM) for c in crls)
    assert len(load_crls(crl_pem)) == 2
    for roots, crl_form in (
        ([pki.root], crls),
        ([to_asn1(pki.root)], load_crls(crl_pem)),
        ([pki.root.public_bytes(Encoding.PEM)], [crl_pem]),
    ):
        report = verify_token(token, VerifyOptions(trust_roots=roots, crls=crl_form, data=DATA))
        assert report.valid, report.failures
        assert not report.check("revocation").skipped
