"""Certification path building is bounded: path bombs (self-issued copies of a CA,
cross-signed meshes, oversized bags) are answered invalid, fast and with a reason, and
legitimate chains that need backtracking (cross-signed, rolled-over, re-issued roots)
still verify. Times are compared with a normal token's, measured in the same test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tsa_server.rfc3161.verify import VerificationReport, VerifyOptions, verify_token
from tsa_server.rfc3161.verify_chain import MAX_UNTRUSTED, validate_path
from tsa_server.rfc3161.verify_checks import MAX_EMBEDDED

from .pathbombs import best_time, ca_copies, copies_bomb, deadline, inter_cn, mesh_bomb
from .tokenfactory import (
    DATA,
    GEN_TIME,
    CertSpec,
    Pki,
    TokenSpec,
    build_token,
    make_cert,
    make_key,
    make_pki,
    to_asn1,
)

#: A bomb may cost this many normal verifications (parsing its extra certificates is
#: linear work; the old path builder took minutes for 50 copies). The machine is noisy.
FACTOR = 25


def verify(token: bytes, roots: list, **options: object) -> VerificationReport:
    return verify_token(token, VerifyOptions(trust_roots=roots, data=DATA, **options))


def failure(report: VerificationReport) -> tuple[str, str]:
    assert not report.valid
    first = report.failures[0]
    return first.name, first.reason


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki("ec", 60)


@pytest.fixture(scope="module")
def baseline(pki: Pki) -> float:
    """Seconds to verify a normal token of ``pki`` (best of five)."""
    token = build_token(pki)
    report, seconds = best_time(lambda: verify(token, [pki.root]), runs=5)
    assert report.valid
    return seconds


@pytest.mark.parametrize("copies", [7, 50])
def test_self_issued_copies_without_a_trusted_root(pki, baseline, copies):
    """The issue's bomb: no path can succeed, and the old builder tried every ordering
    of the copies (K=7 took seconds, each copy multiplied the work by about five)."""
    token = copies_bomb(pki, copies)
    other_root = make_pki("ec", 61).root
    with deadline(20):
        report, seconds = best_time(lambda: verify(token, [other_root]), runs=2)
    name, reason = failure(report)
    assert name == "certificate_chain"
    assert reason.startswith("no path to a trust root: no certificate for the issuer")
    assert seconds < FACTOR * baseline, (seconds, baseline)


@pytest.mark.parametrize("copies", [7, 50])
def test_self_issued_copies_beside_a_valid_chain(pki, baseline, copies):
    """The real intermediate is tried before its self-issued copies; the copies are
    one identity, so they never line up into longer chains."""
    token = copies_bomb(pki, copies)
    with deadline(20):
        report, seconds = best_time(lambda: verify(token, [pki.root]), runs=2)
    assert report.valid, report.failures
    assert seconds < FACTOR * baseline, (seconds, baseline)


def test_expired_signer_among_copies_is_bounded(baseline):
    """Every path reaches the root and fails on the signer: without loop detection by
    name and key, each ordering of the copies was a path to check."""
    pki = make_pki("ec", 62, not_before=datetime(2025, 1, 1, tzinfo=UTC))
    token = copies_bomb(pki, 50)
    with deadline(20):
        report, seconds = best_time(lambda: verify(token, [pki.root]), runs=2)
    name, reason = failure(report)
    assert name == "certificate_chain" and "is not valid at genTime" in reason
    assert seconds < FACTOR * baseline, (seconds, baseline)


def test_cross_signed_mesh_stops_at_the_work_bound(baseline):
    """Eight CA keys of one name certifying each other: distinct keys, so no loop rule
    applies, and every one of the ~8! paths ends at an expired root. The fixed budget
    ends the search with a reason that says so."""
    token, root = mesh_bomb(8)
    with deadline(20):
        report, seconds = best_time(lambda: verify(token, [root]), runs=2)
    name, reason = failure(report)
    assert name == "certificate_chain"
    assert "path building stopped at its bound" in reason and "58 certificates embedded" in reason
    assert seconds < FACTOR * baseline, (seconds, baseline)


def test_too_many_certificates_are_refused_before_any_work(pki, baseline):
    token = copies_bomb(pki, 200)
    with deadline(20):
        report, seconds = best_time(lambda: verify(token, [pki.root]))
    name, reason = failure(report)
    assert name == "structure"
    assert f"embeds 202 certificates; this verifier reads at most {MAX_EMBEDDED}" in reason
    assert seconds < FACTOR * baseline, (seconds, baseline)

    supplied = list(ca_copies(inter_cn(pki), pki.inter_key, MAX_UNTRUSTED))
    report = verify(build_token(pki), [pki.root], extra_certs=supplied)
    name, reason = failure(report)
    assert name == "certificate_chain"
    assert f"path building considers at most {MAX_UNTRUSTED}" in reason


# --- legitimate chains that need more than the first candidate ------------------------


def test_cross_signed_intermediate_backtracks_to_the_trusted_root():
    """The intermediate exists twice, certified by an untrusted root (first in the bag)
    and by the trusted one: the dead end is left for the other certificate."""
    keys = {name: make_key("ec", 640 + i) for i, name in enumerate(("a", "b", "i", "t"))}
    root_a = make_cert(CertSpec("Cross Root A", keys["a"], serial=1, ca=True))
    root_b = make_cert(CertSpec("Cross Root B", keys["b"], serial=2, ca=True))
    by_a = make_cert(CertSpec("Cross Inter", keys["i"], "Cross Root A", keys["a"], 3, ca=True))
    by_b = make_cert(CertSpec("Cross Inter", keys["i"], "Cross Root B", keys["b"], 4, ca=True))
    tsa = make_cert(CertSpec("Cross TSA", keys["t"], "Cross Inter", keys["i"], serial=5))
    pki = Pki(keys["b"], root_b, keys["i"], by_a, keys["t"], tsa)
    token = build_token(pki, TokenSpec(extra_embedded=(root_a, by_b)))
    report = verify(token, [root_b])
    assert report.valid, report.failures
    path = validate_path(
        to_asn1(tsa), [to_asn1(c) for c in (by_a, root_a, by_b)], [to_asn1(root_b)], GEN_TIME
    ).path
    assert [c.serial_number for c in path] == [5, 4, 2]


def test_key_rollover_link_found_among_self_issued_copies(baseline):
    """RFC 4210 root key rollover: the intermediate is signed with the new root key, the
    relying party trusts the old one. The new self-signed root and 40 copies of it come
    first; the path goes through the NewWithOld link, itself self-issued."""
    old, new = make_key("ec", 650), make_key("ec", 651)
    inter_key, tsa_key = make_key("ec", 652), make_key("ec", 653)
    old_root = make_cert(CertSpec("Roll Root", old, serial=1, ca=True))
    new_with_old = make_cert(CertSpec("Roll Root", new, "Roll Root", old, serial=3, ca=True))
    inter = make_cert(CertSpec("Roll Inter", inter_key, "Roll Root", new, serial=4, ca=True))
    tsa = make_cert(CertSpec("Roll TSA", tsa_key, "Roll Inter", inter_key, serial=5))
    new_roots = ca_copies("Roll Root", new, 40)
    pki = Pki(old, old_root, inter_key, inter, tsa_key, tsa)
    token = build_token(pki, TokenSpec(extra_embedded=(*new_roots, new_with_old)))
    with deadline(20):
        report, seconds = best_time(lambda: verify(token, [old_root]), runs=2)
    assert report.valid, report.failures
    chain = next(c for c in report.checks if c.name == "certificate_chain")
    assert chain.reason.count("'CN=Roll Root,O=TSA Tests'") == 2  # NewWithOld, old root
    assert seconds < FACTOR * baseline, (seconds, baseline)


def test_reissued_trust_anchor_tried_after_the_expired_one():
    """Two trusted certificates of one root key, the first expired at genTime: the path
    through it fails its checks, and the search goes on to the re-issued one."""
    root_key, inter_key, tsa_key = (make_key("ec", 660 + i) for i in range(3))
    ended = datetime(2023, 1, 1, tzinfo=UTC)
    expired = make_cert(CertSpec("Reissued Root", root_key, serial=1, not_after=ended, ca=True))
    current = make_cert(CertSpec("Reissued Root", root_key, serial=2, ca=True))
    inter = make_cert(CertSpec("Reissued Inter", inter_key, "Reissued Root", root_key, 3, ca=True))
    tsa = make_cert(CertSpec("Reissued TSA", tsa_key, "Reissued Inter", inter_key, serial=4))
    token = build_token(Pki(root_key, current, inter_key, inter, tsa_key, tsa))
    report = verify(token, [expired, current])
    assert report.valid, report.failures
    report = verify(token, [expired])
    name, reason = failure(report)
    assert name == "certificate_chain" and "is not valid at genTime" in reason


def test_tsa_verify_command_has_the_same_bound(tmp_path, monkeypatch, baseline):
    """`tsa verify` (and the audit, through the same validate_path) is bounded too."""
    from click.testing import CliRunner

    from tsa_server.cli import cli

    monkeypatch.chdir(tmp_path)
    token, root = mesh_bomb(8)
    (tmp_path / "bomb.tsr").write_bytes(token)
    (tmp_path / "doc.txt").write_bytes(DATA)
    (tmp_path / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    args = ["verify", "bomb.tsr", "--data", "doc.txt", "--ca", "root.pem"]
    with deadline(20):
        result, seconds = best_time(lambda: CliRunner().invoke(cli, args), runs=1)
    assert result.exit_code == 2, result.output
    assert "path building stopped at its bound" in result.output
    assert seconds < FACTOR * baseline + 1.0, (seconds, baseline)
