"""Java's jarsigner against the real server: `jarsigner -tsa URL` stamps a JAR signature,
`jarsigner -verify -strict` shows and verifies the timestamp when our CA is trusted (and
reports an invalid TSA chain when it is not)."""

from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import cms

from tests.interop.helpers import assert_stamps_signature, run

pytestmark = pytest.mark.interop

PASSWORD = "interop-test"  # of throwaway keystores in the test's tmp dir
SIGNER_DN = "CN=Interop Code Signer"
TSA_DN = "CN=TSA Development Signer, O=Development only - not trusted"
# Stable output: English day and month names, dates in UTC.
JAVA_ENV = ["-J-Duser.language=en", "-J-Duser.country=US", "-J-Duser.timezone=UTC"]
# jarsigner -strict exit code bit for "chain not validated" (signer or TSA chain).
CHAIN_NOT_VALIDATED = 64


@dataclass
class Keystores:
    signing: Path  # the signer's key and chain, and our TSA CA as a trusted entry
    trust: Path  # trusted entries: the code-signing CA and our TSA CA
    trust_without_tsa: Path  # trusted entry: the code-signing CA only


def keytool(keystore: Path, *args: object):
    return run(
        [
            "keytool",
            "-noprompt",
            "-keystore",
            keystore,
            "-storetype",
            "PKCS12",
            "-storepass",
            PASSWORD,
            *args,
        ]
    )


@pytest.fixture(scope="module")
def keystores(tmp_path_factory, hsm) -> Keystores:
    """Throwaway code-signing CA and signer made with keytool, and the truststores."""
    work = tmp_path_factory.mktemp("jarsigner-keys")
    signing = work / "signing.p12"
    ec = ["-keyalg", "EC", "-groupname", "secp256r1", "-validity", "30"]
    keytool(
        signing,
        "-genkeypair",
        "-alias",
        "codeca",
        *ec,
        "-dname",
        "CN=Interop Code CA",
        "-ext",
        "bc:c",
    )
    keytool(signing, "-genkeypair", "-alias", "signer", *ec, "-dname", SIGNER_DN)
    keytool(signing, "-certreq", "-alias", "signer", "-file", work / "signer.csr")
    keytool(
        signing,
        "-gencert",
        "-alias",
        "codeca",
        "-infile",
        work / "signer.csr",
        "-outfile",
        work / "signer.pem",
        "-rfc",
        "-validity",
        "30",
        "-ext",
        "ku:c=digitalSignature",
        "-ext",
        "eku=codeSigning",
    )
    keytool(signing, "-exportcert", "-alias", "codeca", "-rfc", "-file", work / "codeca.pem")
    chain = work / "signer-chain.pem"
    chain.write_bytes((work / "signer.pem").read_bytes() + (work / "codeca.pem").read_bytes())
    keytool(signing, "-importcert", "-alias", "signer", "-file", chain)
    keytool(signing, "-importcert", "-alias", "tsaca", "-file", hsm.ca_file)

    trust = work / "trust.p12"
    keytool(trust, "-importcert", "-alias", "codeca", "-file", work / "codeca.pem")
    keytool(trust, "-importcert", "-alias", "tsaca", "-file", hsm.ca_file)
    trust_without_tsa = work / "trust-without-tsa.p12"
    keytool(trust_without_tsa, "-importcert", "-alias", "codeca", "-file", work / "codeca.pem")
    return Keystores(signing, trust, trust_without_tsa)


def make_jar(path: Path) -> Path:
    """A small JAR, written like the `jar` tool does: no POSIX attributes (jarsigner warns
    that it does not protect them)."""
    entries = {
        "META-INF/MANIFEST.MF": "Manifest-Version: 1.0\r\nCreated-By: tsa interop test\r\n\r\n",
        "hello/Hello.txt": "hello from the interop test\n",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as jar:
        for name, text in entries.items():
            entry = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            entry.create_system = 0  # MS-DOS: no Unix mode bits
            entry.external_attr = 0
            jar.writestr(entry, text)
    return path


def sign_jar(tsa_url: str, keystores: Keystores, workdir: Path, tsa_digest: str) -> Path:
    signed = workdir / "signed.jar"
    proc = run(
        [
            "jarsigner",
            *JAVA_ENV,
            "-keystore",
            keystores.signing,
            "-storetype",
            "PKCS12",
            "-storepass",
            PASSWORD,
            "-tsa",
            tsa_url,
            "-tsadigestalg",
            tsa_digest,
            "-signedjar",
            signed,
            make_jar(workdir / "app.jar"),
            "signer",
        ]
    )
    assert "jar signed." in proc.stdout.splitlines(), proc.stdout
    assert "Warning" not in proc.stdout, proc.stdout
    return signed


def verify_jar(signed: Path, truststore: Path, *, ok: bool):
    return run(
        [
            "jarsigner",
            *JAVA_ENV,
            "-verify",
            "-strict",
            "-verbose",
            "-keystore",
            truststore,
            "-storetype",
            "PKCS12",
            "-storepass",
            PASSWORD,
            signed,
        ],
        ok=ok,
    )


def timestamped_line(output: str) -> tuple[str, dt.datetime]:
    """The `Timestamped by "DN" on DATE` line: (DN, DATE)."""
    (line,) = [
        line.strip() for line in output.splitlines() if line.strip().startswith("Timestamped by ")
    ]
    name, _, when = line.removeprefix('Timestamped by "').partition('" on ')
    stamped = dt.datetime.strptime(when, "%a %b %d %H:%M:%S UTC %Y").replace(tzinfo=dt.UTC)
    return name, stamped


def signature_block(signed: Path) -> cms.SignedData:
    with zipfile.ZipFile(signed) as jar:
        blocks = [
            name for name in jar.namelist() if name.startswith("META-INF/") and name.endswith(".EC")
        ]
        assert blocks == ["META-INF/SIGNER.EC"], jar.namelist()
        content = cms.ContentInfo.load(jar.read(blocks[0]))
    assert content["content_type"].native == "signed_data"
    return content["content"]


@pytest.mark.parametrize("tsa_digest", ["SHA-256", "SHA-512"])
def test_jarsigner_timestamp_verified_with_trusted_tsa(tsa, keystores, tmp_path, tsa_digest):
    signed = sign_jar(tsa.url, keystores, tmp_path, tsa_digest)
    proc = verify_jar(signed, keystores.trust, ok=True)
    lines = [line.strip() for line in proc.stdout.splitlines()]
    assert "jar verified." in lines, proc.stdout
    assert not any(line.startswith(("Warning", "Error")) for line in lines), proc.stdout
    assert f'- Signed by "{SIGNER_DN}"' in lines
    assert f"Timestamp digest algorithm: {tsa_digest}" in lines
    # The TSA signs with the digest of the imprint (P-256 key).
    signature_algorithm = tsa_digest.replace("-", "") + "withECDSA"
    assert f"Timestamp signature algorithm: {signature_algorithm}, 256-bit key" in lines
    name, stamped = timestamped_line(proc.stdout)
    assert name == TSA_DN

    # The token in the JAR's signature block is the server's, over the JAR signature.
    hash_name = tsa_digest.replace("-", "").lower()
    info = assert_stamps_signature(signature_block(signed), tsa.ledger_path, hash_name)
    assert stamped == info["gen_time"].native.replace(microsecond=0)


def test_jarsigner_reports_untrusted_tsa(tsa, keystores, tmp_path):
    signed = sign_jar(tsa.url, keystores, tmp_path, "SHA-256")
    proc = verify_jar(signed, keystores.trust_without_tsa, ok=False)
    assert proc.returncode == CHAIN_NOT_VALIDATED, proc.stdout
    lines = [line.strip() for line in proc.stdout.splitlines()]
    assert "jar verified, with signer errors." in lines, proc.stdout
    assert any(
        line.startswith("This jar contains entries whose TSA certificate chain is invalid.")
        for line in lines
    ), proc.stdout
    # The timestamp is still shown; only its chain is not trusted.
    assert timestamped_line(proc.stdout)[0] == TSA_DN
