"""osslsigncode against the real server: Authenticode-sign a minimal PE with an RFC 3161
timestamp (`-ts URL`) and verify it, the TSA chain anchored at our CA."""

from __future__ import annotations

import datetime as dt
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import cms

from tests.interop.helpers import assert_fresh, assert_stamps_signature, run

pytestmark = pytest.mark.interop

TIMESTAMP_OK = "Timestamp Server Signature verification: ok"
TIMESTAMP_FAILED = "Timestamp Server Signature verification: failed"


def tiny_pe32() -> bytes:
    """A valid minimal PE32 console image for i386: headers and one .text section holding
    a `ret`. File alignment 0x200, section alignment 0x1000, 16 empty data directories
    (Authenticode puts its signature in the security directory, index 4)."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, len(dos))  # e_lfanew: PE header right after
    coff = struct.pack(
        "<HHIIIHH",
        0x014C,  # Machine: i386
        1,  # NumberOfSections
        0,
        0,
        0,  # TimeDateStamp, PointerToSymbolTable, NumberOfSymbols
        0xE0,  # SizeOfOptionalHeader (PE32, 16 data directories)
        0x0102,  # EXECUTABLE_IMAGE | 32BIT_MACHINE
    )
    optional = struct.pack(
        "<HBB9I6H4I2H6I",
        0x010B,
        14,
        0,  # PE32 magic, linker version
        0x200,
        0,
        0,  # SizeOfCode, SizeOfInitializedData, SizeOfUninitializedData
        0x1000,
        0x1000,
        0x2000,  # AddressOfEntryPoint, BaseOfCode, BaseOfData
        0x400000,
        0x1000,
        0x200,  # ImageBase, SectionAlignment, FileAlignment
        6,
        0,
        0,
        0,
        6,
        0,  # OS, image, subsystem versions
        0,
        0x2000,
        0x200,
        0,  # Win32VersionValue, SizeOfImage, SizeOfHeaders, CheckSum
        3,
        0,  # Subsystem: console; DllCharacteristics
        0x100000,
        0x1000,
        0x100000,
        0x1000,  # stack and heap reserve/commit
        0,
        16,  # LoaderFlags, NumberOfRvaAndSizes
    ) + bytes(16 * 8)
    assert len(optional) == 0xE0
    section = struct.pack(
        "<8sIIIIIIHHI", b".text", 1, 0x1000, 0x200, 0x200, 0, 0, 0, 0, 0x60000020
    )  # CODE | EXECUTE | READ
    headers = bytes(dos) + b"PE\0\0" + coff + optional + section
    return headers.ljust(0x200, b"\0") + b"\xc3".ljust(0x200, b"\0")


@dataclass
class CodeSigning:
    ca: Path
    certs: Path
    key: Path


@pytest.fixture(scope="module")
def code_signing(tmp_path_factory) -> CodeSigning:
    """A throwaway code-signing CA and signer (openssl, in the test's tmp dir)."""
    work = tmp_path_factory.mktemp("osslsigncode-keys")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run(
        [
            "openssl",
            "req",
            "-x509",
            *ec,
            "-keyout",
            work / "ca.key",
            "-out",
            work / "ca.pem",
            "-subj",
            "/CN=Interop Code CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]
    )
    run(
        [
            "openssl",
            "req",
            *ec,
            "-keyout",
            work / "signer.key",
            "-out",
            work / "signer.csr",
            "-subj",
            "/CN=Interop Code Signer",
        ]
    )
    extensions = work / "signer.ext"
    extensions.write_text(
        "basicConstraints=critical,CA:false\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=codeSigning\n"
    )
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            work / "signer.csr",
            "-CA",
            work / "ca.pem",
            "-CAkey",
            work / "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            extensions,
            "-out",
            work / "signer.pem",
        ]
    )
    return CodeSigning(work / "ca.pem", work / "signer.pem", work / "signer.key")


def sign_pe(tsa_url: str, code_signing: CodeSigning, workdir: Path, digest: str) -> Path:
    unsigned = workdir / "tiny.exe"
    unsigned.write_bytes(tiny_pe32())
    signed = workdir / "signed.exe"
    proc = run(
        [
            "osslsigncode",
            "sign",
            "-certs",
            code_signing.certs,
            "-key",
            code_signing.key,
            "-h",
            digest,
            "-ts",
            tsa_url,
            "-in",
            unsigned,
            "-out",
            signed,
        ]
    )
    assert "Succeeded" in proc.stdout.splitlines(), proc.stdout + proc.stderr
    return signed


def verify_pe(signed: Path, ca: Path, tsa_ca: Path):
    return run(
        ["osslsigncode", "verify", "-CAfile", ca, "-TSA-CAfile", tsa_ca, "-in", signed], ok=None
    )


@pytest.mark.parametrize("digest", ["sha256", "sha512"])
def test_osslsigncode_timestamp_verified(tsa, hsm, code_signing, tmp_path, digest):
    signed = sign_pe(tsa.url, code_signing, tmp_path, digest)
    proc = verify_pe(signed, code_signing.ca, hsm.ca_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = report_lines(proc.stdout)
    assert TIMESTAMP_OK in lines, proc.stdout + proc.stderr
    assert "Signature verification: ok" in lines
    assert "Number of verified signatures: 1" in lines
    assert "Succeeded" in lines
    assert f"Hash Algorithm: {digest}" in lines
    # The timestamp was verified by our TSA's chain: the issuer of the TSA certificate.
    assert "Issuer: /O=Development only - not trusted/CN=TSA Development Root CA" in lines
    stamped = dt.datetime.strptime(
        field(lines, "Timestamp time", "The signature is timestamped"), "%b %d %H:%M:%S %Y GMT"
    ).replace(tzinfo=dt.UTC)
    assert_fresh(stamped)

    extracted = tmp_path / "signature.der"
    run(["osslsigncode", "extract-signature", "-in", signed, "-out", extracted])
    content = cms.ContentInfo.load(pkcs7_of(extracted.read_bytes()))
    # osslsigncode asks for an imprint with the -h digest, over the Authenticode signature.
    info = assert_stamps_signature(content["content"], tsa.ledger_path, digest)
    assert stamped == info["gen_time"].native.replace(microsecond=0)
    serials = [line for line in lines if line.startswith("Timestamp serial number: ")]
    for line in serials:  # printed since osslsigncode 2.6 (Debian 12's 2.5 does not)
        assert int(line.split(": ")[1], 16) == info["serial_number"].native


def pkcs7_of(extracted: bytes) -> bytes:
    """The PKCS#7 of `extract-signature`'s output: osslsigncode 2.5 writes the PE's
    WIN_CERTIFICATE (dwLength, wRevision, wCertificateType: 8 bytes) around it."""
    length, revision, kind = struct.unpack_from("<IHH", extracted)
    if extracted[:1] != b"\x30" and revision == 0x0200 and kind == 2:
        return extracted[8:length]
    return extracted


def report_lines(stdout: str) -> list[str]:
    """osslsigncode's report, one stripped line each, with `name : value` (2.5) written
    `name: value` (2.6 and later) so the checks hold on both."""
    return [re.sub(r"\s+:\s", ": ", line.strip()) for line in stdout.splitlines()]


def field(lines: list[str], *names: str) -> str:
    """The value of the first line named by one of ``names`` (versions name it apart)."""
    for line in lines:
        for name in names:
            if line.startswith(name + ": "):
                return line.removeprefix(name + ": ")
    raise AssertionError(f"no line {' or '.join(names)} in {lines}")


def test_osslsigncode_timestamp_fails_without_our_ca(tsa, code_signing, tmp_path):
    signed = sign_pe(tsa.url, code_signing, tmp_path, "sha256")
    # Only the code-signing CA as TSA trust anchor: the timestamp cannot be verified.
    proc = verify_pe(signed, code_signing.ca, code_signing.ca)
    lines = report_lines(proc.stdout)
    assert TIMESTAMP_FAILED in lines, proc.stdout + proc.stderr
    assert TIMESTAMP_OK not in lines
