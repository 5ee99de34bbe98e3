"""Shared by the interop tests: run the real third-party tools, take the time-stamp tokens
out of what they produce, and check those tokens against the data, the clock and the
server's ledger."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import sqlite3
import subprocess
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pytest
from asn1crypto import cms, pem, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.queries import parse_response

REPLY_TYPE = "application/timestamp-reply"
# id-aa-timeStampToken: a CMS signer's RFC 3161 token over its signature (RFC 3161 App. A).
TIMESTAMP_TOKEN_ATTR = "1.2.840.113549.1.9.16.2.14"
# Authenticode's RFC 3161 counter-signature (what osslsigncode -ts and signtool /tr add).
MS_TIMESTAMP_ATTR = "1.3.6.1.4.1.311.3.3.1"
# genTime must be this close to the test machine's clock (the test NTP responder is it).
MAX_SKEW = dt.timedelta(seconds=30)
# The digest the TSA signs with, by imprint algorithm (SHA-3 imprints sign with SHA-2).
SIGNATURE_DIGEST = {
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sha3_256": "sha256",
    "sha3_384": "sha384",
    "sha3_512": "sha512",
    "sm3": "sha256",
}
SM3_OID = "1.2.156.10197.1.401"  # asn1crypto has no name for it


def imprint_algorithm(token_or_info: cms.ContentInfo | tsp.TSTInfo) -> str:
    """The imprint's hash algorithm as a hashlib name."""
    info = token_or_info if isinstance(token_or_info, tsp.TSTInfo) else tst_info(token_or_info)
    name = info["message_imprint"]["hash_algorithm"]["algorithm"].native
    return "sm3" if name == SM3_OID else name


def tool(name: str) -> str:
    """The path of a required command; a missing tool fails the test, never skips it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name!r} is not on PATH: the interop tests drive the real tool "
            f"(scripts/bootstrap --test installs it)",
            pytrace=False,
        )
    return path


def run(
    args: Sequence[object], *, ok: bool | None = True, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a tool. ok=True requires exit status 0, ok=False a non-zero one, None either."""
    argv = [str(arg) for arg in args]
    argv[0] = tool(argv[0])
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if ok is not None and (proc.returncode == 0) != ok:
        want = "exit status 0" if ok else "a non-zero exit status"
        pytest.fail(
            f"expected {want} from: {' '.join(argv)}\nexit status {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return proc


def token_of_reply(body: bytes) -> cms.ContentInfo:
    """The token of a DER TimeStampResp, which must be granted."""
    reply = parse_response(body)
    assert reply["status"]["status"].native == "granted", reply["status"].native
    return reply["time_stamp_token"]


def tst_info(token: cms.ContentInfo) -> tsp.TSTInfo:
    assert token["content_type"].native == "signed_data"
    encap = token["content"]["encap_content_info"]
    assert encap["content_type"].native == "tst_info"
    return encap["content"].parsed


def signer_digest(token: cms.ContentInfo) -> str:
    """The digest algorithm of the token's one SignerInfo (asn1crypto name)."""
    signers = token["content"]["signer_infos"]
    assert len(signers) == 1
    return signers[0]["digest_algorithm"]["algorithm"].native


def assert_fresh(gen_time: dt.datetime) -> None:
    now = dt.datetime.now(dt.UTC)
    assert gen_time.tzinfo is not None, gen_time
    assert abs(now - gen_time) < MAX_SKEW, f"genTime {gen_time} is not close to now ({now})"


def assert_token_covers(
    token: cms.ContentInfo, data: bytes, hash_name: str | None = None
) -> tsp.TSTInfo:
    """The token's imprint is the hash of data (with hash_name when given), its genTime is
    close to now and the TSA signed with the digest that follows the imprint."""
    info = tst_info(token)
    imprint = info["message_imprint"]
    algorithm = imprint_algorithm(info)
    if hash_name is not None:
        assert algorithm == hash_name
    assert imprint["hashed_message"].native == hashlib.new(algorithm, data).digest()
    assert_fresh(info["gen_time"].native)
    assert signer_digest(token) == SIGNATURE_DIGEST[algorithm]
    return info


def assert_in_ledger(ledger_path: Path, token: cms.ContentInfo) -> None:
    """The token a client got is, byte for byte, the ledger's entry of its serial."""
    info = tst_info(token)
    serial = format(info["serial_number"].native, "040x")
    uri = f"file:{ledger_path}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        row = db.execute(
            "SELECT token, imprint_alg, imprint FROM entries WHERE serial = ?", (serial,)
        ).fetchone()
    assert row is not None, f"serial {serial} is not in the ledger {ledger_path}"
    stored, imprint_alg, imprint = row
    assert bytes(stored) == token.dump()
    assert imprint_alg == imprint_algorithm(info)
    assert bytes(imprint) == info["message_imprint"]["hashed_message"].native


def embedded_tokens(signed_data: cms.SignedData) -> list[tuple[cms.ContentInfo, bytes]]:
    """(token, the signature value it stamps) for every RFC 3161 token in the unsigned
    attributes of the signers of a CMS/PKCS#7 signature (JAR, PDF, Authenticode)."""
    found = []
    for signer in signed_data["signer_infos"]:
        attributes = signer["unsigned_attrs"]
        if not isinstance(attributes, cms.CMSAttributes):
            continue
        for attribute in attributes:
            if attribute["type"].dotted in (TIMESTAMP_TOKEN_ATTR, MS_TIMESTAMP_ATTR):
                for value in attribute["values"]:
                    token = cms.ContentInfo.load(value.dump())
                    found.append((token, signer["signature"].native))
    return found


def assert_stamps_signature(
    signed_data: cms.SignedData, ledger_path: Path, hash_name: str | None = None
) -> tsp.TSTInfo:
    """The one embedded token stamps its signer's signature value, is fresh and is the
    server's (ledger) token."""
    tokens = embedded_tokens(signed_data)
    assert len(tokens) == 1, f"expected one embedded time-stamp token, found {len(tokens)}"
    token, signature = tokens[0]
    info = assert_token_covers(token, signature, hash_name)
    assert_in_ledger(ledger_path, token)
    return info


def pem_certificates(path: Path) -> list[bytes]:
    """The DER certificates of a PEM file, in order."""
    return [der for _, _, der in pem.unarmor(path.read_bytes(), multiple=True)]


def make_ca_and_signer(
    common_name: str, eku: x509.ObjectIdentifier
) -> tuple[
    x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate, ec.EllipticCurvePrivateKey
]:
    """A throwaway CA and an end-entity certificate with the given EKU, made at test time
    (never stored outside the test's tmp dir): (ca, ca key, leaf, leaf key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca, ca_key, leaf, key


def write_pem(path: Path, *items: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    """Certificates and (unencrypted, test-only) keys as PEM."""
    blobs = []
    for item in items:
        if isinstance(item, x509.Certificate):
            blobs.append(item.public_bytes(serialization.Encoding.PEM))
        else:
            blobs.append(
                item.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    path.write_bytes(b"".join(blobs))
    return path
