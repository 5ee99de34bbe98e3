"""Regenerate the negative request vectors in this directory (see README.md).

Base requests come from the real `openssl ts -query`; each vector is one named mutation
of a base. Run from the repository root: `.venv/bin/python tests/vectors/requests/make_vectors.py`.
The output is deterministic except for the nonces openssl draws (regeneration changes
those bytes, not what each vector must give).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHA256_OID = bytes.fromhex("0609608648016503040201")


def openssl_query(*args: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.write_bytes(b"negative vector base\n")
        out = Path(tmp) / "q.tsq"
        subprocess.run(
            ["openssl", "ts", "-query", "-data", str(data), *args, "-out", str(out)],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()


def relength(der: bytes) -> bytes:
    """Fix the outer SEQUENCE length after an inner edit (all our bases are < 128 bytes)."""
    assert der[0] == 0x30 and der[1] < 0x80
    return bytes([0x30, len(der) - 2]) + der[2:]


def main() -> None:
    base = openssl_query("-sha256", "-cert")
    no_nonce = openssl_query("-sha256", "-no_nonce")
    md5 = openssl_query("-md5", "-cert")
    sha1 = openssl_query("-sha1", "-cert")
    policy = openssl_query("-sha256", "-tspolicy", "1.2.3.4.5.6.7")
    digest_at = base.index(SHA256_OID) + len(SHA256_OID) + 2 + 2  # NULL, then 04 20
    vectors = {
        "base-sha256-cert.tsq": (base, "granted", "openssl ts -query -sha256 -cert"),
        "base-no-nonce.tsq": (no_nonce, "granted", "openssl ts -query -sha256 -no_nonce"),
        "md5.tsq": (md5, "bad_alg", "openssl ts -query -md5 -cert"),
        "sha1.tsq": (sha1, "bad_alg", "openssl ts -query -sha1 -cert (SHA-1 off by default)"),
        "unknown-policy.tsq": (policy, "unaccepted_policy", "openssl -tspolicy 1.2.3.4.5.6.7"),
        "version-2.tsq": (
            base.replace(b"\x02\x01\x01", b"\x02\x01\x02", 1),
            "bad_request",
            "base with version INTEGER 1 -> 2",
        ),
        "truncated-by-1.tsq": (base[:-1], "bad_data_format", "base minus its last byte"),
        "trailing-garbage.tsq": (base + b"\x00\x00", "bad_data_format", "base + 00 00"),
        "outer-length-plus-1.tsq": (
            bytes([0x30, base[1] + 1]) + base[2:],
            "bad_data_format",
            "outer SEQUENCE length one too large",
        ),
        "digest-short-by-1.tsq": (
            relength(
                base[: digest_at - 1]
                + b"\x1f"
                + base[digest_at : digest_at + 31]
                + base[digest_at + 32 :]
            ),
            "bad_data_format",
            "sha256 imprint of 31 bytes (last byte removed, lengths fixed)",
        ),
        "hash-oid-unknown.tsq": (
            base.replace(SHA256_OID, bytes.fromhex("0609608648016503040263"), 1),
            "bad_alg",
            "sha256 OID last arc 1 -> 99 (2.16.840.1.101.3.4.2.99)",
        ),
        "not-der-random.tsq": (
            bytes(range(7, 71)),
            "bad_data_format",
            "64 bytes 07..46 (not ASN.1 at all)",
        ),
        "empty.tsq": (b"", "bad_data_format", "zero bytes"),
    }
    manifest = {}
    for name, (body, expect, how) in vectors.items():
        (HERE / name).write_bytes(body)
        manifest[name] = {"expect": expect, "how": how}
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
