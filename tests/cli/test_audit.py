"""`tsa audit`'s lean path against the full verifier, on tokens the real server issued.

Differential: for every token of a real ledger the lean inspection equals the full
one; for tampered tokens (a byte of the signature, of the TSTInfo, of the certificate;
a signature by another key) the lean path declines and the audit reports exactly what
the full verifier reports; `tsa audit` with and without --no-lean finds the same
failures in a tampered ledger copy, a row whose imprint disagrees with its token included.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ledger.store.base import Entry
from ledger.store.sqlite import SqliteReader
from tests.support.queries import make_request
from tests.support.tsa import TsaServer
from tsa_server.cli.audit import TokenInspector
from tsa_server.rfc3161.verify import VerifyOptions, load_certificates

TSA_BIN = str(Path(sys.executable).with_name("tsa"))
TRIGGERS = ("entries_no_update", "entries_no_delete", "entries_contiguous", "entries_monotone")


@pytest.fixture(scope="module")
def ledger_copy(tsa: TsaServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the live ledger holding tokens of every shape the server makes: three
    imprint hashes (three signature digests), with and without nonce and certificate."""
    for hash_name in ("sha256", "sha384", "sha512"):
        for nonce in (0, None):
            for cert_req in (True, False):
                request = make_request(
                    b"lean %s %s %s"
                    % (hash_name.encode(), bytes([nonce is None]), b"%d" % cert_req),
                    hash_name=hash_name,
                    nonce=nonce,
                    cert_req=cert_req,
                )
                status, _, _ = tsa.post_query(request)
                assert status == 200
    copy = tmp_path_factory.mktemp("lean") / "copy.sqlite"
    src, dst = sqlite3.connect(tsa.ledger_path), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    for trigger in TRIGGERS:
        dst.execute(f"DROP TRIGGER {trigger}")
    dst.commit()
    dst.close()
    return copy


@pytest.fixture
def configured(hsm) -> VerifyOptions:
    return VerifyOptions(
        trust_roots=load_certificates(hsm.ca_file.read_bytes()),
        extra_certs=load_certificates(hsm.chain_file.read_bytes()),
    )


def entries(path: Path) -> list[Entry]:
    reader = SqliteReader(path)
    try:
        return list(reader.entries())
    finally:
        reader.close()


def resign(token: bytes) -> bytes:
    """``token`` signed by a key that is not the TSA's, over the same attributes."""
    info = cms.ContentInfo.load(token)
    signer = info["content"]["signer_infos"][0]
    signed = b"\x31" + signer["signed_attrs"].dump()[1:]
    key = ec.generate_private_key(ec.SECP256R1())
    signer["signature"] = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return info.dump()


def flip(token: bytes, needle: bytes, offset: int) -> bytes:
    assert token.count(needle) == 1
    at = token.index(needle) + offset
    return token[:at] + bytes([token[at] ^ 0x01]) + token[at + 1 :]


def test_every_real_token_takes_the_lean_path_with_the_full_result(ledger_copy, configured) -> None:
    rows = entries(ledger_copy)
    assert len(rows) >= 12
    inspector = TokenInspector(configured)
    for entry in rows:
        lean = inspector(entry.token)
        assert lean == inspector.in_full(entry.token), entry.index
        assert not lean.problems and lean.binding is not None
        assert (lean.serial, lean.gen_time_ms, lean.imprint) == (
            entry.serial,
            entry.gen_time_ms,
            entry.imprint,
        )
    verifier = inspector.lean
    assert verifier is not None and (verifier.lean, verifier.declined) == (len(rows), 0)
    # One frame per (signature digest, certReq, policy, imprint hash) the session server
    # has issued: at least 3 digests x with/without certificate from this module; other
    # tests add policies and imprint hashes. Never one per token.
    assert 6 <= verifier.frames <= 32


def test_tampered_real_tokens_get_the_full_verifiers_findings(ledger_copy, configured, hsm) -> None:
    rows = entries(ledger_copy)
    with_cert = next(e for e in rows if len(e.token) > 1000 and e.imprint_alg == "sha256")
    cert = load_certificates(hsm.chain_file.read_bytes())[0].dump()
    token = with_cert.token
    bad_cert = flip(token, cert, len(cert) - 7)  # in the certificate's signature
    inspector = TokenInspector(configured)
    # With the TSA certificate supplied (as `tsa audit` does), the signer is the supplied
    # certificate the ESSCertIDv2 hash names: both paths accept, and agree.
    assert inspector(bad_cert) == inspector.in_full(bad_cert)
    assert not inspector.in_full(bad_cert).problems
    # With the trust roots alone, the embedded certificate is the only candidate.
    inspector = TokenInspector(VerifyOptions(trust_roots=configured.trust_roots))
    for entry in rows:  # every frame known, so the lean path's own checks decide
        if len(entry.token) > 1000:
            assert not inspector(entry.token).problems
    cases = {
        "signature byte": (token[:-6] + bytes([token[-6] ^ 1]) + token[-5:], "signature: "),
        "TSTInfo byte": (flip(token, with_cert.imprint, 5), "message_digest: "),
        "certificate byte": (bad_cert, "signing_certificate: "),
        "another key": (resign(token), "signature: "),
    }
    verifier = inspector.lean
    assert verifier is not None
    for name, (tampered, finding) in cases.items():
        assert verifier.verify(tampered) is None, name
        seen = inspector(tampered)
        assert seen == inspector.in_full(tampered), name
        assert any(p.startswith(finding) for p in seen.problems), (name, seen.problems)


def run_tsa_audit(hsm, path: Path, *extra: str) -> dict:
    result = subprocess.run(
        [
            TSA_BIN,
            "audit",
            "--json",
            "--quiet",
            "-j",
            "2",
            "--ca",
            str(hsm.ca_file),
            "--tsa-cert",
            str(hsm.chain_file),
            *extra,
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode in (0, 2), result.stderr
    return json.loads(result.stdout)


def test_tsa_audit_lean_and_full_find_the_same_failures(ledger_copy, hsm, tmp_path) -> None:
    copy = tmp_path / "tampered.sqlite"
    copy.write_bytes(ledger_copy.read_bytes())
    rows = entries(copy)
    conn = sqlite3.connect(copy)
    conn.execute("UPDATE entries SET imprint = ? WHERE idx = 3", (bytes(32),))
    conn.execute("UPDATE entries SET token = ? WHERE idx = 5", (resign(rows[5].token),))
    conn.commit()
    conn.close()
    lean = run_tsa_audit(hsm, copy)
    full = run_tsa_audit(hsm, copy, "--no-lean")
    assert lean["failures"] == full["failures"]
    assert (lean["root"], lean["size"]) == (full["root"], full["size"])
    found = {(f["index"], f["message"].split(":")[0]) for f in lean["failures"]}
    assert (3, "token imprint differs from the stored imprint") in found
    assert (5, "signature") in found
    clean = run_tsa_audit(hsm, ledger_copy)
    assert clean["ok"], clean["failures"]
