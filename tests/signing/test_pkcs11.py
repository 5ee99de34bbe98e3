"""Keys generated in SoftHSM: attributes that keep them in the token, and signatures of
every supported type verified with pyca/cryptography, as whole tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import pkcs11
import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from hypothesis import given, settings
from hypothesis import strategies as st
from pkcs11 import Attribute, ObjectClass

from tests.support.queries import make_request
from tsa_server.errors import SignerUnavailable
from tsa_server.rfc3161.oids import DEFAULT_ACCEPTED_HASHES, DEFAULT_POLICY
from tsa_server.rfc3161.request import Profile, parse_request
from tsa_server.rfc3161.token import TokenTemplate, TokenValues, to_be_signed
from tsa_server.signing.base import KeySpec
from tsa_server.signing.certs import issue_certificate, name_from_text
from tsa_server.signing.pkcs11 import Pkcs11Signer, TokenLocation, generate_key, open_session
from tsa_server.wiring import token_location

PROFILE = Profile(frozenset(DEFAULT_ACCEPTED_HASHES), (DEFAULT_POLICY,))
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def location(hsm_config) -> TokenLocation:
    """The session token, with one key of every type (labelled by type) added to it."""
    location = token_location(hsm_config)
    session = open_session(location, rw=True)
    try:
        for spec in KeySpec:
            generate_key(session, spec, spec.value)
    finally:
        session.close()
    return location


@pytest.mark.parametrize("spec", list(KeySpec), ids=lambda s: s.value)
def test_private_keys_are_sensitive_and_never_extractable(location, spec) -> None:
    session = open_session(location)
    try:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=spec.value)
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.ALWAYS_SENSITIVE] is True
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(pkcs11.PKCS11Error):
            key[Attribute.VALUE]  # noqa: B018 - reading the secret must fail
    finally:
        session.close()


def test_generating_over_an_existing_label_is_refused(location) -> None:
    session = open_session(location, rw=True)
    try:
        with pytest.raises(ValueError, match="already holds"):
            generate_key(session, KeySpec.EC_P256, "ec-p256")
    finally:
        session.close()


def verify(spki: bytes, signature: bytes, message: bytes, digest: str, pss: bool) -> None:
    public = load_der_public_key(spki)
    algorithm = getattr(hashes, digest.upper())()
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, message)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, message, ec.ECDSA(algorithm))
    elif pss:
        public.verify(
            signature,
            message,
            padding.PSS(padding.MGF1(algorithm), algorithm.digest_size),
            algorithm,
        )
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, message, padding.PKCS1v15(), algorithm)


CASES = [(s, False) for s in KeySpec] + [(KeySpec.RSA2048, True)]


@pytest.mark.parametrize(("spec", "pss"), CASES, ids=lambda c: str(getattr(c, "value", c)))
def test_every_key_type_makes_a_verifiable_token(location, spec, pss) -> None:
    signer = Pkcs11Signer(location, spec.value, rsa_pss=pss)
    ca = Pkcs11Signer(location, "ec-p256")
    try:
        ca_cert = issue_certificate(
            ca, None, name_from_text("Test CA"), ca.public_key_info(), now=NOW, days=30, ca=True
        )
        cert = issue_certificate(
            ca,
            ca_cert,
            name_from_text("Test TSA"),
            signer.public_key_info(),
            now=NOW,
            days=30,
            ca=False,
        )
        template = TokenTemplate(spec, [cert, ca_cert], rsa_pss=pss)
        request = parse_request(make_request(b"x", hash_name="sha384"), PROFILE)
        digest = template.signature_digest(request)
        tst = template.tst_info(request, TokenValues(1 << 120, NOW, 1000))
        attrs = template.signed_attributes(tst, digest)
        token = template.assemble(
            tst, attrs, signer.sign(to_be_signed(attrs), digest), digest, True
        )
    finally:
        signer.close()
        ca.close()
    info = cms.ContentInfo.load(token)["content"]["signer_infos"][0]
    used = info["digest_algorithm"]["algorithm"].native
    assert used == ("sha512" if spec is KeySpec.ED25519 else "sha384")
    verify(
        signer.public_key_info(),
        info["signature"].native,
        info["signed_attrs"].untag().dump(force=True),
        used,
        pss,
    )
    if pss:
        assert info["signature_algorithm"]["algorithm"].native == "rsassa_pss"


def test_token_location_never_shows_the_pin(location) -> None:
    # A wrong PIN is tested against a fresh process in tests/test_server.py: in this process
    # the session's signer keeps the token logged in.
    assert location.pin not in repr(location) and location.pin not in str(location)


def test_unknown_token_and_key_labels(location) -> None:
    with pytest.raises(SignerUnavailable, match="no PKCS#11 token"):
        Pkcs11Signer(
            TokenLocation(location.module, "nope", location.pin, location.softhsm_conf), "ec-p256"
        )
    with pytest.raises(SignerUnavailable, match="no private key labelled"):
        Pkcs11Signer(location, "missing-key")


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([64, 96, 132]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_ecdsa_der_matches_python_pkcs11_encoding(raw: bytes) -> None:
    from pkcs11.util.ec import encode_ecdsa_signature

    from tsa_server.signing.pkcs11 import _ecdsa_der

    assert _ecdsa_der(raw) == encode_ecdsa_signature(raw)


@pytest.mark.parametrize("spec", list(KeySpec), ids=lambda s: s.value)
def test_the_signer_signs_with_a_session_copy_that_stays_locked(location, spec) -> None:
    signer = Pkcs11Signer(location, spec.value)
    try:
        key = signer._copy  # what C_Sign is called on for batches
        assert key is not None and key[Attribute.TOKEN] is False  # a session object
        assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False
        with pytest.raises(pkcs11.PKCS11Error):
            key[Attribute.VALUE]  # noqa: B018 - the copy's secret is as unreadable
        signatures = signer.sign_many([b"m", b"n"], ["sha256", "sha256"])
        verify(signer.public_key_info(), signatures[1], b"n", "sha256", False)
    finally:
        signer.close()
    session = open_session(location)  # nothing was added to the token itself
    try:
        found = list(session.get_objects({Attribute.LABEL: spec.value}))
        assert sorted(o.object_class for o in found) == [
            ObjectClass.PUBLIC_KEY,
            ObjectClass.PRIVATE_KEY,
        ]
    finally:
        session.close()


def test_a_key_the_token_may_not_copy_signs_as_it_is(location) -> None:
    session = open_session(location, rw=True)
    try:
        session.generate_keypair(
            pkcs11.KeyType.RSA,
            2048,
            label="uncopyable",
            store=True,
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.COPYABLE: False,
            },
            public_template={Attribute.VERIFY: True},
        )
    finally:
        session.close()
    signer = Pkcs11Signer(location, "uncopyable")
    try:
        key = signer._copy
        assert key is not None and key[Attribute.TOKEN] is True  # the copy was refused
        verify(signer.public_key_info(), signer.sign(b"m", "sha256"), b"m", "sha256", False)
    finally:
        signer.close()


def test_a_key_gone_from_the_token_signs_no_batch_with_its_copy(location) -> None:
    """The session copy would outlive the key: a batch touches the key first."""
    session = open_session(location, rw=True)
    try:
        generate_key(session, KeySpec.EC_P256, "doomed")
    finally:
        session.close()
    signer = Pkcs11Signer(location, "doomed")
    try:
        assert len(signer.sign_many([b"a", b"b"], ["sha256", "sha256"])) == 2
        session = open_session(location, rw=True)
        try:
            template = {Attribute.LABEL: "doomed", Attribute.TOKEN: True}  # not the copy
            template[Attribute.CLASS] = ObjectClass.PRIVATE_KEY
            (key,) = session.get_objects(template)
            key.destroy()
        finally:
            session.close()
        with pytest.raises(SignerUnavailable, match="no private key labelled 'doomed'"):
            signer.sign_many([b"a", b"b", b"c"], ["sha256"] * 3)
    finally:
        signer.close()
