"""Differential tests: our verdict against ``openssl ts -verify`` and rfc3161-client.

Each case states the three verdicts. Where they agree the verifiers confirm each
other; the cases where they differ are known and deliberate:

============================  =====  =======  ===============  =================================
case                          ours   openssl  rfc3161-client   why
============================  =====  =======  ===============  =================================
rsa-pss, ed25519              valid  invalid  invalid          both use OpenSSL's PKCS#7 layer,
                                                               which lacks RSASSA-PSS and
                                                               (3.0) Ed25519 with signed attrs
ski-sid                       valid  invalid  invalid          PKCS#7 SignerInfo v1 only; no
                                                               subjectKeyIdentifier SID
ber-encoded                   valid  valid    invalid          rfc3161-client parses DER only
no-ess-attribute              inval  invalid  valid            client skips RFC 3161 §2.4.1
bad-algorithm-protection      inval  valid    valid            neither checks RFC 6211
tsa-field-names-another       inval  invalid  valid            client ignores the tsa field
digicert1 / smimesign-digicert valid valid    invalid          client rejects the non-DER SET
                                                               ordering these real tokens have
============================  =====  =======  ===============  =================================

openssl is given ``-attime genTime``; without it, it validates certificates at the
current time (see test_openssl_checks_certificates_now_without_attime).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from rfc3161_client import VerifierBuilder, decode_timestamp_response

from tsa_server.rfc3161.verify import VerifyOptions, load_certificates, verify_token

from .tokenfactory import (
    DATA,
    GEN_TIME,
    TokenSpec,
    build_token,
    flip_bit,
    make_pki,
    to_ber,
    token_parts,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
]

OURS = Path(__file__).parents[1] / "vectors" / "third_party"
SIGSTORE = OURS / "rfc3161-client"


@dataclass(frozen=True)
class Case:
    token: bytes  # a TimeStampResp
    data: bytes
    roots: list[x509.Certificate]
    untrusted: list[x509.Certificate] = field(default_factory=list)
    tsa_certificate: x509.Certificate | None = None  # for rfc3161-client, certificate-less tokens
    tsa_name: str | None = None


def pyca(path: Path) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(c.dump()) for c in load_certificates(path.read_bytes())]


def as_response(bare: bytes) -> bytes:
    """Wrap a bare token, unchanged, in a granted TimeStampResp."""
    body = b"\x30\x03\x02\x01\x00" + bare
    return b"\x30\x82" + len(body).to_bytes(2, "big") + body


def own(kind: str, index: int, spec: TokenSpec | None = None, **tsa: object) -> Case:
    pki = make_pki(kind, index, **tsa)
    return Case(build_token(pki, spec), DATA, [pki.root], pki.chain)


def _flipped_signature() -> Case:
    case = own("ec", 80)
    signature = token_parts(case.token)[1]["signature"].native
    return Case(
        flip_bit(case.token, signature, len(signature) - 1), DATA, case.roots, case.untrusted
    )


def _own_cases() -> dict[str, Case]:
    ec = own("ec", 80)
    two_ekus = (ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING)
    return {
        "ecdsa": ec,
        "rsa-pkcs1": own("rsa", 80),
        "ess-v1": own("ec", 80, TokenSpec(ess="v1")),
        "negative-serial": own("ec", 80, TokenSpec(serial=-5)),
        "flipped-signature": _flipped_signature(),
        "other-data": Case(ec.token, DATA + b"x", ec.roots, ec.untrusted),
        "wrong-root": Case(ec.token, DATA, [make_pki("ec", 81).root], ec.untrusted),
        "two-signer-infos": own("ec", 80, TokenSpec(signer_infos=2)),
        "eku-not-critical": own("ec", 82, eku_critical=False),
        "eku-not-only-timestamping": own("ec", 83, eku=two_ekus),
        "expired-tsa-cert-inside": own(
            "ec",
            84,
            not_before=datetime(2023, 1, 1, tzinfo=UTC),
            not_after=datetime(2025, 1, 1, tzinfo=UTC),
        ),
        "gen-time-before-tsa-cert": own("ec", 85, not_before=datetime(2025, 1, 1, tzinfo=UTC)),
        "rsa-pss": own("rsa", 80, TokenSpec(scheme="pss")),
        "ed25519": own("ed25519", 80, TokenSpec(digest_alg="sha512")),
        "ski-sid": own("ec", 80, TokenSpec(sid="ski")),
        "ber-encoded": Case(to_ber(ec.token), DATA, ec.roots, ec.untrusted),
        "no-ess-attribute": own("ec", 80, TokenSpec(ess=None)),
        "bad-algorithm-protection": own("ec", 80, TokenSpec(cap_digest_alg="sha384")),
        "tsa-field-names-another": own("ec", 80, TokenSpec(tsa_cn="Someone Else")),
    }


def _third_party_cases() -> dict[str, Case]:
    sigstage, local = (
        pyca(SIGSTORE / "sigstage" / "ts_chain.pem"),
        pyca(SIGSTORE / "test_tsa" / "ts_chain.pem"),
    )
    freetsa_tsa = pyca(OURS / "dotnet-runtime" / "freetsa-tsa.pem")
    digicert, verisign = (
        pyca(OURS / "roots" / n)
        for n in ("digicert-assured-id-root-ca.pem", "verisign-universal-root.pem")
    )

    def read(path: Path) -> bytes:
        return path.read_bytes()

    injected = read(SIGSTORE / "test_tsa" / "response-injected-certs.tsr")
    return {
        "sigstage-sha256": Case(
            read(SIGSTORE / "sigstage" / "response-sha256.tsr"),
            b"hello",
            sigstage[-1:],
            sigstage[:-1],
        ),
        "sigstage-bad-signature": Case(
            read(SIGSTORE / "sigstage" / "response-invalid-signature.tsr"),
            b"hello",
            sigstage[-1:],
            sigstage[:-1],
        ),
        "sigstage-no-certificates": Case(
            read(SIGSTORE / "sigstage" / "response-no-embedded-cert.tsr"),
            b"hello",
            sigstage[-1:],
            sigstage[:-1],
            tsa_certificate=sigstage[0],
        ),
        "local-tsa": Case(
            read(SIGSTORE / "test_tsa" / "response.tsr"), b"hello", local[-1:], local[:-1]
        ),
        "local-tsa-other-instance": Case(
            read(SIGSTORE / "test_tsa" / "other_response.tsr"), b"hello", local[-1:], local[:-1]
        ),
        "local-tsa-injected-certs": Case(injected, b"hello", local[-1:], local[:-1]),
        "local-tsa-injected-pinned": Case(
            injected, b"hello", local[-1:], local[:-1], tsa_name="CN=Spoofed TSA"
        ),
        "freetsa-expired-tsa-cert": Case(
            as_response(read(OURS / "dotnet-runtime" / "freetsa1.tst")),
            b"This is a test.\n",
            pyca(OURS / "roots" / "freetsa-cacert.pem"),
            freetsa_tsa,
            tsa_certificate=freetsa_tsa[0],
        ),
        "symantec1": Case(
            as_response(read(OURS / "dotnet-runtime" / "symantec1.tst")), b"Hello, world!", verisign
        ),
        "digicert1": Case(
            as_response(read(OURS / "dotnet-runtime" / "digicert1.tst")),
            b"My TST signer attributes are sorted incorrectly.",
            digicert,
        ),
        "smimesign-digicert": Case(read(OURS / "smimesign" / "digicert.tsr"), b"hello\n", digicert),
        "smimesign-symantec-with-certs": Case(
            read(OURS / "smimesign" / "symantec-with-certs.tsr"), b"hello\n", verisign
        ),
    }


@cache
def cases() -> dict[str, Case]:
    return {**_own_cases(), **_third_party_cases()}


#: case -> (ours, openssl ts -verify, rfc3161-client); None where a verifier cannot express it
EXPECTED: dict[str, tuple[bool, bool | None, bool | None]] = {
    "ecdsa": (True, True, True),
    "rsa-pkcs1": (True, True, True),
    "ess-v1": (True, True, True),
    "negative-serial": (True, True, True),
    "flipped-signature": (False, False, False),
    "other-data": (False, False, False),
    "wrong-root": (False, False, False),
    "two-signer-infos": (False, False, False),
    "eku-not-critical": (False, False, False),
    "eku-not-only-timestamping": (False, False, False),
    "expired-tsa-cert-inside": (True, True, True),
    "gen-time-before-tsa-cert": (False, False, False),
    "rsa-pss": (True, False, False),
    "ed25519": (True, False, False),
    "ski-sid": (True, False, False),
    "ber-encoded": (True, True, False),
    "no-ess-attribute": (False, False, True),
    "bad-algorithm-protection": (False, True, True),
    "tsa-field-names-another": (False, False, True),
    "sigstage-sha256": (True, True, True),
    "sigstage-bad-signature": (False, False, False),
    "sigstage-no-certificates": (True, True, True),
    "local-tsa": (True, True, True),
    "local-tsa-other-instance": (False, False, False),
    "local-tsa-injected-certs": (True, True, True),
    "local-tsa-injected-pinned": (False, None, False),  # openssl ts cannot pin a TSA name
    "freetsa-expired-tsa-cert": (True, True, True),
    "symantec1": (True, True, True),
    "digicert1": (True, True, False),
    "smimesign-digicert": (True, True, False),
    "smimesign-symantec-with-certs": (True, True, True),
}


def ours(case: Case) -> tuple[bool, datetime | None]:
    options = VerifyOptions(
        trust_roots=case.roots, extra_certs=case.untrusted, data=case.data, tsa_name=case.tsa_name
    )
    report = verify_token(case.token, options)
    return report.valid, report.fields.gen_time if report.fields else None


def _pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def openssl(case: Case, tmp: Path, attime: datetime | None) -> bool:
    paths = {name: tmp / name for name in ("token.tsr", "data", "roots.pem", "untrusted.pem")}
    paths["token.tsr"].write_bytes(case.token)
    paths["data"].write_bytes(case.data)
    paths["roots.pem"].write_bytes(_pem(case.roots))
    command = [
        "openssl",
        "ts",
        "-verify",
        "-in",
        str(paths["token.tsr"]),
        "-data",
        str(paths["data"]),
        "-CAfile",
        str(paths["roots.pem"]),
    ]
    if case.untrusted:
        paths["untrusted.pem"].write_bytes(_pem(case.untrusted))
        command += ["-untrusted", str(paths["untrusted.pem"])]
    if attime is not None:
        command += ["-attime", str(int(attime.timestamp()))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return done.returncode == 0 and "Verification: OK" in done.stdout


def rfc3161_client(case: Case) -> bool:
    intermediates = [c for c in case.untrusted if c != case.tsa_certificate]
    builder = VerifierBuilder(
        roots=case.roots,
        intermediates=intermediates,
        tsa_certificate=case.tsa_certificate,
        common_name=case.tsa_name,
    )
    try:
        return builder.build().verify_message(decode_timestamp_response(case.token), case.data)
    except Exception:  # the client reports every refusal as an exception
        return False


@pytest.mark.parametrize("name", list(EXPECTED))
def test_verdicts(name: str, tmp_path: Path) -> None:
    case, expected = cases()[name], EXPECTED[name]
    valid, gen_time = ours(case)
    # openssl validates at the time given; use the token's genTime as we do.
    at = gen_time or GEN_TIME
    verdicts = (
        valid,
        None if expected[1] is None else openssl(case, tmp_path, at),
        None if expected[2] is None else rfc3161_client(case),
    )
    assert verdicts == expected


def test_openssl_checks_certificates_now_without_attime(tmp_path: Path) -> None:
    """Without -attime openssl judges the chain at the current time, we at genTime."""
    expired = cases()["expired-tsa-cert-inside"]
    not_yet = cases()["gen-time-before-tsa-cert"]
    assert (ours(expired)[0], openssl(expired, tmp_path, None)) == (True, False)
    assert (ours(not_yet)[0], openssl(not_yet, tmp_path, None)) == (False, True)


@pytest.mark.parametrize("name", ["rsa-pss", "ski-sid"])
def test_openssl_cms_confirms_what_its_pkcs7_layer_cannot_parse(name: str, tmp_path: Path) -> None:
    """The PSS and SKI-SID tokens are sound: OpenSSL's CMS layer (not used by ``ts``)
    verifies them, signature, chain and timeStamping purpose included."""
    case = cases()[name]
    info = tmp_path / "token.der"
    info.write_bytes(tsp.TimeStampResp.load(case.token)["time_stamp_token"].dump())
    (tmp_path / "roots.pem").write_bytes(_pem(case.roots))
    (tmp_path / "chain.pem").write_bytes(_pem(case.untrusted))
    command = [
        "openssl",
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        str(info),
        "-CAfile",
        str(tmp_path / "roots.pem"),
        "-certfile",
        str(tmp_path / "chain.pem"),
        "-purpose",
        "timestampsign",
        "-attime",
        str(int(GEN_TIME.timestamp())),
        "-out",
        str(tmp_path / "tstinfo.der"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert ours(case)[0]
