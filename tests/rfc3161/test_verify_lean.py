"""The lean verifier against the full one, on tokens built with in-memory keys.

Differential: a token the lean path accepts is one the full verifier accepts, with the
same TSTInfo values; every tampering (signature, TSTInfo, certificate, another key,
genTime outside the certificates' validity) is declined by the lean path, and the full
verifier names the check that fails. Tokens in any other shape take the full verifier.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tsa_server.rfc3161 import verify_lean
from tsa_server.rfc3161.verify import VerificationReport, VerifyOptions, verify_token
from tsa_server.rfc3161.verify_context import parse_gen_time
from tsa_server.rfc3161.verify_lean import LeanToken, LeanVerifier
from tsa_server.rfc3161.verify_lean_der import NotLean, split_token
from tsa_server.rfc3161.verify_lean_der import _gen_time_ms as gen_time_ms
from tsa_server.rfc3161.verify_lean_template import Template

from .tokenfactory import Pki, TokenSpec, build_token, make_key, make_pki, to_asn1, to_ber

BARE = TokenSpec(bare=True)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BARE_IMPRINT = hashlib.sha256(BARE.data).digest()


def options_for(pki: Pki) -> VerifyOptions:
    return VerifyOptions(trust_roots=[pki.root])


def full(token: bytes, options: VerifyOptions) -> VerificationReport:
    return verify_token(token, options)


def failed(report: VerificationReport) -> set[str]:
    """The failed checks an auditor counts (the imprint needs the document)."""
    return {c.name for c in report.failures} - {"message_imprint"}


def token_at(pki: Pki, serial: int, **changes: object) -> bytes:
    spec = replace(BARE, serial=serial, nonce=serial * 7919, **changes)  # type: ignore[arg-type]
    return build_token(pki, spec)


def agree(lean: LeanToken | None, report: VerificationReport) -> None:
    assert lean is not None, [(c.name, c.reason) for c in report.failures]
    assert not failed(report)
    fields = report.fields
    assert fields is not None
    assert (lean.serial, lean.gen_time, lean.imprint.hex()) == (
        fields.serial_number,
        fields.gen_time,
        fields.imprint_hex,
    )


@pytest.mark.parametrize(
    ("kind", "scheme", "digest"),
    [
        ("ec", None, "sha256"),
        ("ec384", None, "sha384"),
        ("rsa", "pkcs1", "sha256"),
        ("rsa", "pss", "sha512"),
        ("ed25519", None, "sha512"),
    ],
)
def test_valid_tokens_of_one_frame_agree_with_the_full_verifier(kind, scheme, digest) -> None:
    pki = make_pki(kind)
    options = options_for(pki)
    verifier = LeanVerifier(options)
    times = ("20240601120000Z", "20240601120000.5Z", "20250102030405.12Z", "20300101000000.999Z")
    for serial, gen_time in enumerate(times, 1):
        token = token_at(pki, serial, gen_time=gen_time, scheme=scheme, digest_alg=digest)
        agree(verifier.verify(token), full(token, options))
    assert (verifier.lean, verifier.declined) == (len(times), 0)
    assert verifier.templated == len(times) - 1  # all but the first by the frame's template


def _resign(token: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """``token`` with its signature replaced by ``key``'s over the same attributes."""
    info = cms.ContentInfo.load(token)
    signer = info["content"]["signer_infos"][0]
    signed = b"\x31" + signer["signed_attrs"].dump()[1:]
    signer["signature"] = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return info.dump(force=False)


def _flip(token: bytes, needle: bytes, offset: int) -> bytes:
    assert token.count(needle) == 1
    position = token.index(needle) + offset
    return token[:position] + bytes([token[position] ^ 0x01]) + token[position + 1 :]


def test_tampered_tokens_are_declined_and_the_full_verifier_names_why(monkeypatch) -> None:
    pki = make_pki("ec")
    options = options_for(pki)
    verifier = LeanVerifier(options)
    assert verifier.verify(token_at(pki, 1)) is not None  # the frame, verified in full
    good = token_at(pki, 2)
    imprint = hashlib.sha256(BARE.data).digest()
    cert_der = to_asn1(pki.tsa).dump()
    same_frame = {
        "signature byte": (good[:-6] + bytes([good[-6] ^ 0x01]) + good[-5:], {"signature"}),
        "TSTInfo byte": (_flip(good, imprint, 3), {"message_digest"}),
        "another key": (_resign(good, make_key("ec", 7)), {"signature"}),
        "genTime after notAfter": (
            token_at(pki, 3, gen_time="20450101000000Z"),
            {"certificate_chain"},
        ),
    }
    new_frame = {
        "certificate byte": (_flip(good, cert_der, len(cert_der) - 5), {"certificate_chain"}),
        "another TSA": (token_at(make_pki("ec", 1), 4), {"certificate_chain"}),
    }
    reports = {
        name: full(token, options) for name, (token, _) in {**same_frame, **new_frame}.items()
    }
    for name, (token, expected) in new_frame.items():
        assert verifier.verify(token) is None, name
        assert expected <= failed(reports[name]), (name, failed(reports[name]))

    def no_full_verification(*_args: object) -> None:
        raise AssertionError("the lean path consulted the full verifier")

    # Same frame: the lean path's own per-token checks decline, without the full verifier.
    monkeypatch.setattr(verify_lean, "verify_token", no_full_verification)
    for name, (token, expected) in same_frame.items():
        assert verifier.verify(token) is None, name
        assert expected <= failed(reports[name]), (name, failed(reports[name]))
    assert verifier.verify(good) is not None  # declining never spoils the frame
    assert verifier.frames == 1


def test_other_shapes_take_the_full_verifier() -> None:
    pki = make_pki("ec")
    options = options_for(pki)
    verifier = LeanVerifier(options)
    assert verifier.verify(token_at(pki, 1)) is not None
    shapes = {
        "ordering TRUE": token_at(pki, 2, ordering=True),
        "subjectKeyIdentifier SID": token_at(pki, 3, sid="ski"),
        "BER": to_ber(token_at(pki, 4)),
        "TimeStampResp, not a bare token": build_token(pki, replace(BARE, bare=False)),
        "microsecond genTime": token_at(pki, 5, gen_time="20240601120000.000001Z"),
        "decimal comma in genTime": token_at(pki, 6, gen_time="20240601120000,5Z"),
    }
    for name, token in shapes.items():
        assert not failed(full(token, options)), name  # valid: only the path differs
        assert verifier.verify(token) is None, name
    assert verifier.declined == len(shapes)


def test_a_bad_first_token_does_not_poison_its_frame() -> None:
    pki = make_pki("ec")
    options = options_for(pki)
    verifier = LeanVerifier(options)
    bad = token_at(pki, 1)
    bad = bad[:-6] + bytes([bad[-6] ^ 0x01]) + bad[-5:]
    assert verifier.verify(bad) is None
    for serial in (2, 3):
        agree(verifier.verify(token_at(pki, serial)), full(token_at(pki, serial), options))


def test_frames_beyond_the_limit_take_the_full_verifier() -> None:
    pki, other = make_pki("ec"), make_pki("ec", 1)
    options = VerifyOptions(trust_roots=[pki.root, other.root])
    verifier = LeanVerifier(options, max_frames=1)
    assert verifier.verify(token_at(pki, 1)) is not None
    token = token_at(other, 2)
    assert not failed(full(token, options))
    assert verifier.verify(token) is None


def test_per_token_expectations_are_refused() -> None:
    pki = make_pki("ec")
    with pytest.raises(ValueError, match="nonce"):
        LeanVerifier(VerifyOptions(trust_roots=[pki.root], nonce=5))


def test_a_template_splits_its_frame_only() -> None:
    """Every byte of a token outside its per-token values (eContent, messageDigest,
    signature) is compared: changing any one makes the template decline the token,
    whether the header walk for its size was kept (the layout) or is done afresh."""
    pki = make_pki("ec")
    first, good = token_at(pki, 1), token_at(pki, 2)
    template = Template(first)
    split = split_token(good)
    *values, token = template.split(good)
    assert values == [split.econtent, split.message_digest, split.signed_attrs, split.signature]
    assert (token.serial, token.gen_time, token.imprint) == (2, split.token.gen_time, BARE_IMPRINT)
    per_token = set()
    for value in (split.econtent, split.message_digest, split.signature):
        at = good.index(value)
        per_token |= set(range(at, at + len(value)))
    # In the TSTInfo, its version, policy and imprint algorithm (up to the hash) are the frame's.
    head = good.index(split.econtent) + split.econtent.index(template.tst_head)
    per_token -= set(range(head, head + len(template.tst_head)))
    for walked in (False, True):  # good's layout kept, then forgotten: walked afresh
        for position in sorted(set(range(len(good))) - per_token):
            changed = good[:position] + bytes([good[position] ^ 0x01]) + good[position + 1 :]
            if walked:
                template._layouts.clear()
            with pytest.raises(NotLean):
                template.split(changed)
            assert len(template._layouts) <= 1  # at most good's: its bytes up to the eContent
        assert template.split(good)[4].serial == 2


def test_a_template_checks_the_tstinfo_values() -> None:
    pki = make_pki("ec")
    template = Template(token_at(pki, 1))
    others = {  # other shapes, and other frames: the TSTInfo's constant parts differ
        "ordering": token_at(pki, 2, ordering=True),
        "decimal comma": token_at(pki, 3, gen_time="20240601120000,5Z"),
        "another tsa name": token_at(pki, 4, tsa_cn="Another TSA"),
        "no tsa name": token_at(pki, 5, tsa_field=False),
        "another policy": token_at(pki, 6, policy="1.2.3.4.5"),
    }
    for name, token in others.items():
        with pytest.raises(NotLean):
            template.split(token)
            pytest.fail(name)
    assert template.split(token_at(pki, 7))[4].serial == 7


@pytest.mark.parametrize(
    "text",
    [
        "20240601120000Z",
        "20240601120000.5Z",
        "20240229235959.999Z",
        "19700101000000.01Z",
        "20991231235959.1Z",
    ],
)
def test_gen_time_in_milliseconds_agrees_with_the_full_parser(text: str) -> None:
    when, _ = parse_gen_time(text.encode())
    assert gen_time_ms(text.encode()) == (when - _EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    "text",
    [
        "20230229120000Z",
        "20241301120000Z",
        "20240600120000Z",
        "20240601240000Z",
        "20240601126000Z",
        "20240601120060Z",
        "00000601120000Z",
        "20240601120000.Z",
        "20240601120000.1234Z",
        "20240601120000",
    ],
)
def test_gen_time_out_of_calendar_or_shape_is_not_lean(text: str) -> None:
    with pytest.raises(NotLean):
        gen_time_ms(text.encode())
