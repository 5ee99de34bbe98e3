"""Token profile of docs/spec/token-profile.md, checked on tokens built by the DER template and
signed in SoftHSM: structure, attributes, digests, encodings, size."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms, core
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from tests.support.queries import make_request
from tsa_server.pki import der
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
from tsa_server.rfc3161.request import Profile, parse_request
from tsa_server.rfc3161.token import TokenTemplate, TokenValues, to_be_signed
from tsa_server.wiring import load_chain

PROFILE = Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,))
GEN_TIME = datetime(2026, 11, 22, 10, 30, 15, 120_000, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(hsm_config, signer) -> TokenTemplate:
    return TokenTemplate(signer.key_spec, load_chain(hsm_config))


def build(template, signer, body: bytes, fields: TokenValues | None = None) -> bytes:
    request = parse_request(body, PROFILE)
    fields = fields or TokenValues(serial=(1 << 120) | 7, gen_time=GEN_TIME, accuracy_micros=2000)
    digest = template.signature_digest(request)
    tst = template.tst_info(request, fields)
    attrs = template.signed_attributes(tst, digest)
    return template.assemble(
        tst, attrs, signer.sign(to_be_signed(attrs), digest), digest, request.cert_req
    )


def signed_data(token: bytes) -> cms.SignedData:
    info = cms.ContentInfo.load(token, strict=True)
    assert info["content_type"].native == "signed_data"
    return info["content"]


def test_token_is_byte_identical_to_asn1crypto_encoding(template, signer) -> None:
    token = build(template, signer, make_request(b"x"))
    reparsed = cms.ContentInfo.load(token)
    _ = reparsed.native  # parse everything
    assert reparsed.dump(force=True) == token


def test_signed_data_shape(template, signer, hsm_config) -> None:
    chain = load_chain(hsm_config)
    sd = signed_data(build(template, signer, make_request(b"x")))
    assert sd["version"].native == "v3"
    assert sd["encap_content_info"]["content_type"].native == "tst_info"
    assert len(sd["signer_infos"]) == 1
    info = sd["signer_infos"][0]
    assert info["version"].native == "v1"
    sid = info["sid"].chosen
    assert isinstance(sid, cms.IssuerAndSerialNumber)
    assert sid["serial_number"].native == chain[0].serial_number
    assert sid["issuer"] == chain[0].issuer
    assert [c.chosen.dump() for c in sd["certificates"]] == [chain[0].dump()]


def test_no_certificates_without_cert_req(template, signer) -> None:
    sd = signed_data(build(template, signer, make_request(b"x", cert_req=False)))
    assert isinstance(sd["certificates"], core.Void) or len(sd["certificates"]) == 0


def test_full_chain_when_configured(hsm_config, signer) -> None:
    chain = load_chain(hsm_config)
    full = TokenTemplate(signer.key_spec, chain, include_chain=True)
    sd = signed_data(build(full, signer, make_request(b"x")))
    # DER SET OF: sorted by encoding, whatever the chain order.
    assert [c.chosen.dump() for c in sd["certificates"]] == sorted(c.dump() for c in chain)


def test_signed_attributes(template, signer, hsm_config) -> None:
    chain = load_chain(hsm_config)
    sd = signed_data(build(template, signer, make_request(b"x", hash_name="sha384")))
    info = sd["signer_infos"][0]
    attrs = {a["type"].native: a["values"][0] for a in info["signed_attrs"]}
    assert set(attrs) == {
        "content_type",
        "message_digest",
        "signing_certificate_v2",
        "cms_algorithm_protection",
    }
    assert attrs["content_type"].native == "tst_info"
    econtent = sd["encap_content_info"]["content"].contents
    assert attrs["message_digest"].native == hashlib.sha384(econtent).digest()
    ess = attrs["signing_certificate_v2"]["certs"][0]
    assert ess["hash_algorithm"]["algorithm"].native == "sha256"
    assert ess["cert_hash"].native == hashlib.sha256(chain[0].dump()).digest()
    assert ess["issuer_serial"]["serial_number"].native == chain[0].serial_number
    assert ess["issuer_serial"]["issuer"][0].chosen == chain[0].issuer
    protection = attrs["cms_algorithm_protection"]
    assert protection["digest_algorithm"]["algorithm"].native == "sha384"
    assert protection["signature_algorithm"].dump()[1:] == info["signature_algorithm"].dump()[1:]
    # DER: SET OF in ascending order of encodings.
    encoded = [a.dump() for a in info["signed_attrs"]]
    assert encoded == sorted(encoded)


@pytest.mark.parametrize(
    ("imprint", "signature_digest"),
    [
        ("sha256", "sha256"),
        ("sha384", "sha384"),
        ("sha512", "sha512"),
        ("sha3_256", "sha256"),
        ("sha3_384", "sha384"),
        ("sha3_512", "sha512"),
        ("sm3", "sha256"),
    ],
)
def test_signature_digest_follows_imprint(template, signer, imprint, signature_digest) -> None:
    sd = signed_data(build(template, signer, make_request(b"x", hash_name=imprint)))
    info = sd["signer_infos"][0]
    assert info["digest_algorithm"]["algorithm"].native == signature_digest
    assert info["signature_algorithm"]["algorithm"].native == f"{signature_digest}_ecdsa"
    assert [a["algorithm"].native for a in sd["digest_algorithms"]] == [signature_digest]
    public = load_der_public_key(signer.public_key_info())
    signed = info["signed_attrs"].untag().dump(force=True)
    algorithm = getattr(hashes, signature_digest.upper())()
    public.verify(info["signature"].native, signed, ec.ECDSA(algorithm))


def test_tst_info_fields(template, signer, hsm_config) -> None:
    body = make_request(b"x", nonce=0x1234567890ABCDEF)
    sd = signed_data(build(template, signer, body))
    tst = sd["encap_content_info"]["content"].parsed
    assert tst["version"].native == "v1"
    assert tst["policy"].native == DEFAULT_POLICY
    assert tst["message_imprint"]["hashed_message"].native == hashlib.sha256(b"x").digest()
    assert tst["serial_number"].native == (1 << 120) | 7
    assert tst["gen_time"].native == GEN_TIME
    assert tst["accuracy"].native == {"seconds": None, "millis": 2, "micros": None}
    assert isinstance(tst["ordering"], core.Void) or tst["ordering"].native is False
    assert tst["nonce"].native == 0x1234567890ABCDEF
    assert tst["tsa"].chosen == load_chain(hsm_config)[0].subject
    assert b"\x01\x01\x00" not in tst.contents[:8]  # ordering FALSE is omitted (DEFAULT)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC), b"20260102030405Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 500_000, tzinfo=UTC), b"20260102030405.5Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 120_000, tzinfo=UTC), b"20260102030405.12Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 7_999, tzinfo=UTC), b"20260102030405.007Z"),
    ],
)
def test_gen_time_der_has_no_trailing_zeros(moment, text) -> None:
    assert der.generalized_time(moment)[2:] == text


@pytest.mark.parametrize(
    ("micros", "native"),
    [
        (1000, {"seconds": None, "millis": 1, "micros": None}),
        (1_500_250, {"seconds": 1, "millis": 500, "micros": 250}),
        (2_000_000, {"seconds": 2, "millis": None, "micros": None}),
    ],
)
def test_accuracy_encoding(template, signer, micros, native) -> None:
    fields = TokenValues(serial=5, gen_time=GEN_TIME, accuracy_micros=micros)
    sd = signed_data(build(template, signer, make_request(b"x"), fields))
    assert sd["encap_content_info"]["content"].parsed["accuracy"].native == native


def test_token_size_is_stable_and_small(template, signer) -> None:
    sizes = set()
    for i in range(40):
        fields = TokenValues(
            serial=(1 << 120) | (i << 64) | i * 977,
            gen_time=GEN_TIME + timedelta(milliseconds=i * 37),
            accuracy_micros=2000,
        )
        sizes.add(len(build(template, signer, make_request(b"%d" % i), fields)))
    # ECDSA DER signatures vary by a couple of bytes; nothing else may.
    assert max(sizes) - min(sizes) <= 3
    assert max(sizes) < 4096
