"""Revocation with caller-supplied CRLs: RFC 5280 §6.3 and the TSA rules of RFC 3161 §4."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509

from tsa_server.rfc3161.verify import VerificationReport, VerifyOptions, verify_token

from .tokenfactory import DATA, Pki, build_token, make_crl, make_key, make_pki

BEFORE = datetime(2024, 5, 1, tzinfo=UTC)  # before genTime 2024-06-01
AFTER = datetime(2024, 6, 15, tzinfo=UTC)
TSA_SERIAL = 0x7A5A


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki("ec", 50)


@pytest.fixture(scope="module")
def token(pki: Pki) -> bytes:
    return build_token(pki)


def verify(
    token: bytes, pki: Pki, crls: list[x509.CertificateRevocationList]
) -> VerificationReport:
    return verify_token(token, VerifyOptions(trust_roots=[pki.root], data=DATA, crls=crls))


def crls_revoking_tsa(
    pki: Pki, *entries: tuple[int, datetime, x509.ReasonFlags | None]
) -> list[x509.CertificateRevocationList]:
    return [make_crl(pki.inter_key, pki.inter, list(entries)), make_crl(pki.root_key, pki.root)]


def test_no_crls_means_not_requested(token: bytes, pki: Pki) -> None:
    result = verify(token, pki, []).check("revocation")
    assert result.passed and result.skipped


def test_nothing_revoked(token: bytes, pki: Pki) -> None:
    report = verify(token, pki, crls_revoking_tsa(pki, (0x999, BEFORE, None)))
    assert report.valid, report.failures
    assert report.check("revocation").reason.startswith("none of the 2 certificate(s)")


@pytest.mark.parametrize(
    ("when", "reason", "valid"),
    [
        (AFTER, x509.ReasonFlags.superseded, True),
        (AFTER, x509.ReasonFlags.cessation_of_operation, True),
        (BEFORE, x509.ReasonFlags.superseded, False),
        (AFTER, x509.ReasonFlags.key_compromise, False),
        (AFTER, None, False),
        (AFTER, x509.ReasonFlags.remove_from_crl, True),
    ],
    ids=[
        "superseded-after",
        "ceased-after",
        "superseded-before",
        "key-compromise-after",
        "no-reason-after",
        "removed",
    ],
)
def test_tsa_certificate_revocation_rules(
    token: bytes, pki: Pki, when: datetime, reason: x509.ReasonFlags | None, valid: bool
) -> None:
    report = verify(token, pki, crls_revoking_tsa(pki, (TSA_SERIAL, when, reason)))
    assert report.valid is valid, report.failures
    if not valid:
        assert report.failures[0].name == "revocation"
        assert "was revoked on" in report.failures[0].reason


def test_revoked_intermediate(token: bytes, pki: Pki) -> None:
    crls = [
        make_crl(pki.inter_key, pki.inter),
        make_crl(pki.root_key, pki.root, [(2, BEFORE, x509.ReasonFlags.superseded)]),
    ]
    report = verify(token, pki, crls)
    assert report.failures[0].name == "revocation"
    assert "Test Intermediate ec 50" in report.failures[0].reason


def test_missing_crl_cannot_be_checked(token: bytes, pki: Pki) -> None:
    report = verify(token, pki, [make_crl(pki.inter_key, pki.inter)])
    failure = report.failures[0]
    assert failure.name == "revocation"
    assert failure.reason.startswith("could not be checked: no usable CRL from 'CN=Test Root")


def test_crl_with_a_bad_signature_is_not_used(token: bytes, pki: Pki) -> None:
    forged = make_crl(make_key("ec", 51), pki.inter)
    report = verify(token, pki, [forged, make_crl(pki.root_key, pki.root)])
    failure = report.failures[0]
    assert failure.name == "revocation" and "signature does not verify" in failure.reason


def test_stale_crl_is_not_used(token: bytes, pki: Pki) -> None:
    stale = make_crl(
        pki.inter_key,
        pki.inter,
        this_update=datetime(2024, 1, 1, tzinfo=UTC),
        next_update=datetime(2024, 2, 1, tzinfo=UTC),
    )
    report = verify(token, pki, [stale, make_crl(pki.root_key, pki.root)])
    assert "expired" in report.failures[0].reason
