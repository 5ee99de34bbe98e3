"""The verifier against tokens issued by the real server (`tsa serve`).

Every token verifies; each single mutation (a flipped bit in the signature, in the
TSTInfo, in a signed attribute, in the embedded certificate; other data; another nonce;
another policy; no certificate and none supplied) fails, with the check that guards it
named. Differential: for every token and mutation here our verdict agrees with
``openssl ts -verify`` and with rfc3161-client's verifier.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from asn1crypto import tsp
from cryptography import x509
from rfc3161_client import VerifierBuilder, decode_timestamp_response

from tests.support.queries import make_request, parse_response, random_nonce
from tsa_server.rfc3161.oids import DEFAULT_POLICY
from tsa_server.rfc3161.verify import VerificationReport, VerifyOptions, verify_token

from .tokenfactory import flip_bit, token_parts

OTHER_POLICY = "1.3.6.1.4.1.99999.7"


@dataclass(frozen=True)
class Stamped:
    """A token the server issued and what it was issued for."""

    response: bytes  # DER TimeStampResp
    data: bytes
    hash_name: str
    nonce: int | None
    cert_req: bool


def stamp(
    tsa, data: bytes, hash_name: str = "sha256", *, nonce: bool = True, cert_req: bool = True
) -> Stamped:
    """Ask the real server for a token over ``data``."""
    value = random_nonce() if nonce else None
    status, _, body = tsa.post_query(
        make_request(data, hash_name=hash_name, nonce=value, cert_req=cert_req)
    )
    assert status == 200, body
    assert parse_response(body)["status"]["status"].native == "granted", body
    return Stamped(body, data, hash_name, value, cert_req)


def bare_token(response: bytes) -> bytes:
    """The TimeStampToken (ContentInfo) DER inside a TimeStampResp."""
    return tsp.TimeStampResp.load(response)["time_stamp_token"].dump()


def pyca_certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


@dataclass(frozen=True)
class Case:
    """One verification question, asked of all three verifiers."""

    stamped: Stamped
    token: bytes  # the TimeStampResp, possibly mutated
    data: bytes
    nonce: int | None = None
    policy: str | None = None
    supply_tsa_cert: bool = False  # give the TSA certificate for certificate-less tokens
    failures: frozenset[str] = field(default_factory=frozenset)  # our expected failures


def ours(case: Case, hsm) -> VerificationReport:
    options = VerifyOptions(
        trust_roots=[hsm.ca_file.read_bytes()],
        extra_certs=[c.dump() for c in _chain(hsm)] if case.supply_tsa_cert else (),
        data=case.data,
        nonce=case.nonce,
        policy=case.policy,
    )
    return verify_token(case.token, options)


def _chain(hsm):
    from tsa_server.rfc3161.verify import load_certificates

    return load_certificates(hsm.chain_file.read_bytes())


def openssl(case: Case, hsm, tmp: Path) -> bool:
    token = tmp / "token.tsr"
    token.write_bytes(case.token)
    command = ["openssl", "ts", "-verify", "-in", str(token), "-CAfile", str(hsm.ca_file)]
    if case.nonce is not None or case.policy is not None:
        # openssl checks nonce and policy against a request: build the one expected.
        query = tmp / "query.tsq"
        query.write_bytes(
            make_request(
                case.data, hash_name=case.stamped.hash_name, nonce=case.nonce, policy=case.policy
            )
        )
        command += ["-queryfile", str(query)]
    else:
        data = tmp / "data"
        data.write_bytes(case.data)
        command += ["-data", str(data)]
    if case.supply_tsa_cert:
        command += ["-untrusted", str(hsm.chain_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return done.returncode == 0 and "Verification: OK" in done.stdout


def rfc3161_client(case: Case, hsm) -> bool:
    tsa_cert, *intermediates = pyca_certs(hsm.chain_file)
    builder = VerifierBuilder(
        roots=pyca_certs(hsm.ca_file),
        intermediates=intermediates,
        tsa_certificate=tsa_cert if case.supply_tsa_cert else None,
        nonce=case.nonce,
        policy_id=x509.ObjectIdentifier(case.policy) if case.policy else None,
    )
    digest = hashlib.new(case.stamped.hash_name, case.data).digest()
    try:
        return builder.build().verify(decode_timestamp_response(case.token), digest)
    except Exception:  # the client reports every refusal as an exception
        return False


# --- the tokens ---------------------------------------------------------------------------

HASHES = ("sha256", "sha384", "sha512", "sha3_256")
VARIANTS = [
    (hash_name, nonce, cert_req)
    for hash_name in HASHES
    for nonce in (True, False)
    for cert_req in (True, False)
]


def variant_id(variant: tuple[str, bool, bool]) -> str:
    hash_name, nonce, cert_req = variant
    return f"{hash_name}-{'nonce' if nonce else 'no_nonce'}-{'cert' if cert_req else 'no_cert'}"


@pytest.fixture(scope="module")
def issued(tsa) -> dict[str, Stamped]:
    """One token per variant, from the session's server."""
    return {
        variant_id(v): stamp(tsa, f"ours {variant_id(v)}".encode(), v[0], nonce=v[1], cert_req=v[2])
        for v in VARIANTS
    }


def valid_case(stamped: Stamped) -> Case:
    return Case(
        stamped,
        stamped.response,
        stamped.data,
        nonce=stamped.nonce,
        supply_tsa_cert=not stamped.cert_req,
    )


def _flip_in_signature(response: bytes) -> bytes:
    signature = token_parts(response)[1]["signature"].native
    return flip_bit(response, signature, len(signature) - 1)


def _flip_in_tst_info(response: bytes) -> bytes:
    tst = tsp.TSTInfo.load(token_parts(response)[2])
    serial = tst["serial_number"].dump()
    return flip_bit(response, serial, len(serial) - 1)


def _signed_attribute(response: bytes, name: str) -> bytes:
    for attr in token_parts(response)[1]["signed_attrs"]:
        if attr["type"].native == name:
            return attr.dump()
    raise AssertionError(f"no {name} attribute")


def _flip_in_message_digest(response: bytes) -> bytes:
    attr = _signed_attribute(response, "message_digest")
    return flip_bit(response, attr, len(attr) - 1)


def _flip_in_signing_certificate(response: bytes) -> bytes:
    """A bit of the certHash inside the signingCertificateV2 attribute."""
    assert _signed_attribute(response, "signing_certificate_v2")
    cert = token_parts(response)[0]["certificates"][0].chosen.dump()
    return flip_bit(response, hashlib.sha256(cert).digest(), 7)


def _flip_in_certificate(response: bytes) -> bytes:
    cert = token_parts(response)[0]["certificates"][0].chosen.dump()
    return flip_bit(response, cert, len(cert) - 1)  # the CA's signature over it


MUTATIONS = {
    "signature-bit": (_flip_in_signature, {"signature"}),
    "tst-info-bit": (_flip_in_tst_info, {"message_digest"}),
    "message-digest-attribute-bit": (_flip_in_message_digest, {"signature", "message_digest"}),
    "signing-certificate-attribute-bit": (
        _flip_in_signing_certificate,
        {"signature", "signing_certificate"},
    ),
    "certificate-bit": (_flip_in_certificate, {"signing_certificate", "certificate_chain"}),
}


def _mutation_cases(stamped: Stamped, nocert: Stamped) -> dict[str, Case]:
    base = valid_case(stamped)
    cases = {
        name: Case(
            stamped,
            mutate(stamped.response),
            stamped.data,
            nonce=stamped.nonce,
            failures=frozenset(failures),
        )
        for name, (mutate, failures) in MUTATIONS.items()
    }
    cases["other-data"] = Case(
        stamped,
        base.token,
        stamped.data + b"!",
        nonce=stamped.nonce,
        failures=frozenset({"message_imprint"}),
    )
    cases["other-nonce"] = Case(
        stamped, base.token, stamped.data, nonce=stamped.nonce + 1, failures=frozenset({"nonce"})
    )
    cases["wrong-policy"] = Case(
        stamped,
        base.token,
        stamped.data,
        nonce=stamped.nonce,
        policy=OTHER_POLICY,
        failures=frozenset({"policy"}),
    )
    cases["right-policy"] = Case(
        stamped, base.token, stamped.data, nonce=stamped.nonce, policy=DEFAULT_POLICY
    )
    cases["missing-certificate"] = Case(
        nocert,
        nocert.response,
        nocert.data,
        nonce=nocert.nonce,
        failures=frozenset(
            {
                "signer_certificate",
                "signature",
                "signing_certificate",
                "tsa_certificate_purpose",
                "certificate_chain",
                "tsa_name",
            }
        ),
    )
    return cases


@pytest.fixture(scope="module")
def mutations(issued) -> dict[str, Case]:
    return _mutation_cases(issued["sha256-nonce-cert"], issued["sha256-nonce-no_cert"])


# --- our verifier -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [variant_id(v) for v in VARIANTS])
def test_every_issued_token_is_valid(issued, hsm, name):
    stamped = issued[name]
    report = ours(valid_case(stamped), hsm)
    assert report.valid, [(c.name, c.reason) for c in report.failures]
    fields = report.fields
    assert fields is not None and fields.imprint_algorithm == stamped.hash_name
    assert fields.nonce == stamped.nonce and fields.policy == DEFAULT_POLICY
    assert fields.signer is not None and "CN=" in fields.signer.subject
    # The bare token verifies too (what the ledger and GET /tokens hold).
    assert verify_token(
        bare_token(stamped.response),
        VerifyOptions(
            trust_roots=[hsm.ca_file.read_bytes()], extra_certs=list(_chain(hsm)), data=stamped.data
        ),
    ).valid


@pytest.mark.parametrize(
    "name", [*MUTATIONS, "other-data", "other-nonce", "wrong-policy", "missing-certificate"]
)
def test_each_mutation_fails_its_check(mutations, hsm, name):
    case = mutations[name]
    report = ours(case, hsm)
    assert not report.valid
    assert {c.name for c in report.failures} == case.failures, [
        (c.name, c.reason) for c in report.failures
    ]


def test_missing_certificate_reason_and_supplied_certificate(mutations, hsm):
    case = mutations["missing-certificate"]
    report = ours(case, hsm)
    first = report.failures[0]
    assert first.name == "signer_certificate"
    assert "no embedded or supplied certificate" in first.reason
    assert report.check("certificate_chain").reason.startswith("could not be checked")
    supplied = ours(
        Case(case.stamped, case.token, case.data, nonce=case.nonce, supply_tsa_cert=True), hsm
    )
    assert supplied.valid
    assert "supplied beside the token" in supplied.check("signer_certificate").reason


def test_right_policy_passes(mutations, hsm):
    report = ours(mutations["right-policy"], hsm)
    assert report.valid and not report.check("policy").skipped


def test_every_mutation_is_a_single_change(mutations):
    """Each bit-flip case differs from its original in exactly one bit."""
    for name in MUTATIONS:
        case = mutations[name]
        before, after = case.stamped.response, case.token
        assert len(before) == len(after)
        diff = [a ^ b for a, b in zip(before, after, strict=True) if a != b]
        assert len(diff) == 1 and diff[0].bit_count() == 1, name


# --- differential -------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_verdicts_agree_with_openssl_and_rfc3161_client(issued, mutations, hsm, tmp_path):
    cases = {f"token {name}": valid_case(s) for name, s in issued.items()}
    cases.update({f"mutation {name}": case for name, case in mutations.items()})
    disagreements = {}
    for name, case in cases.items():
        verdicts = (ours(case, hsm).valid, openssl(case, hsm, tmp_path), rfc3161_client(case, hsm))
        expected = not case.failures
        if verdicts != (expected,) * 3:
            disagreements[name] = verdicts
    assert not disagreements, disagreements
