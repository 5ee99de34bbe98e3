"""OpenSSL's `ts` command against the real server: queries made by `openssl ts -query`,
posted with curl, replies checked by `openssl ts -verify` and shown by `openssl ts -reply`."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from asn1crypto import tsp

from tests.interop.helpers import (
    REPLY_TYPE,
    assert_in_ledger,
    assert_token_covers,
    pem_certificates,
    run,
    token_of_reply,
)
from tests.support.tsa import QUERY_TYPE
from tsa_server.rfc3161.oids import DEFAULT_POLICY

pytestmark = pytest.mark.interop

# openssl digest option -> asn1crypto/hashlib name of the imprint algorithm
DIGESTS = {
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sha3-256": "sha3_256",
    "sha3-384": "sha3_384",
    "sha3-512": "sha3_512",
    "sm3": "sm3",
}
VERIFIED = "Verification: OK"
FAILED = "Verification: FAILED"


def make_query(
    workdir: Path,
    data: Path,
    digest: str = "sha256",
    *,
    cert: bool = True,
    nonce: bool = True,
    extra: tuple[str, ...] = (),
    name: str = "req",
) -> Path:
    query = workdir / f"{name}.tsq"
    args = ["openssl", "ts", "-query", "-data", data, f"-{digest}", "-out", query, *extra]
    if cert:
        args.append("-cert")
    if not nonce:
        args.append("-no_nonce")
    run(args)
    return query


def curl_post(url: str, query: Path, reply: Path) -> Path:
    """POST a query with the real curl binary; the reply must be 200 timestamp-reply."""
    proc = run(
        [
            "curl",
            "-sS",
            "--fail-with-body",
            "--max-time",
            "30",
            "-H",
            f"Content-Type: {QUERY_TYPE}",
            "--data-binary",
            f"@{query}",
            "-o",
            reply,
            "-w",
            "%{http_code} %{content_type}",
            url,
        ]
    )
    assert proc.stdout == f"200 {REPLY_TYPE}"
    return reply


def verify(reply: Path, *args: object, ok: bool = True):
    proc = run(["openssl", "ts", "-verify", "-in", reply, *args], ok=ok)
    lines = proc.stdout.splitlines()
    if ok:
        assert VERIFIED in lines, proc.stdout + proc.stderr
    else:
        assert FAILED in lines, proc.stdout + proc.stderr
    return proc


def subject_line(certificate: Path) -> str:
    """'/O=.../CN=...' as openssl prints names (ts -reply -text uses this form)."""
    proc = run(["openssl", "x509", "-in", certificate, "-noout", "-subject", "-nameopt", "compat"])
    return proc.stdout.strip().removeprefix("subject=")


@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no_nonce"])
@pytest.mark.parametrize("cert", [True, False], ids=["cert", "no_cert"])
@pytest.mark.parametrize("digest", list(DIGESTS))
def test_query_post_verify(tsa, hsm, tmp_path, digest, cert, nonce):
    data = tmp_path / "doc.txt"
    data.write_bytes(f"openssl interop {digest} cert={cert} nonce={nonce}\n".encode())
    query = make_query(tmp_path, data, digest, cert=cert, nonce=nonce)
    reply = curl_post(tsa.url, query, tmp_path / "reply.tsr")

    request = tsp.TimeStampReq.load(query.read_bytes())
    token = token_of_reply(reply.read_bytes())
    info = assert_token_covers(token, data.read_bytes(), DIGESTS[digest])
    assert info["nonce"].native == request["nonce"].native
    assert (request["nonce"].native is not None) == nonce
    assert info["policy"].dotted == DEFAULT_POLICY
    certificates = token["content"]["certificates"]
    if cert:
        assert [c.dump() for c in certificates] == pem_certificates(hsm.chain_file)[:1]
    else:
        assert not certificates
    assert_in_ledger(tsa.ledger_path, token)

    hex_digest = hashlib.new(DIGESTS[digest], data.read_bytes()).hexdigest()
    trust = ["-CAfile", hsm.ca_file]
    if not cert:
        trust += ["-untrusted", hsm.chain_file]
    verify(reply, "-queryfile", query, *trust)
    verify(reply, "-data", data, *trust)
    verify(reply, "-digest", hex_digest, *trust)
    if not cert:
        # No certificate in the token: without the TSA certificate openssl cannot verify.
        proc = verify(reply, "-queryfile", query, "-CAfile", hsm.ca_file, ok=False)
        assert "signer certificate not found" in proc.stderr


def test_verify_rejects_other_data_and_foreign_ca(tsa, hsm, tmp_path):
    data = tmp_path / "doc.txt"
    data.write_bytes(b"the stamped document\n")
    other = tmp_path / "other.txt"
    other.write_bytes(b"another document\n")
    reply = curl_post(tsa.url, make_query(tmp_path, data), tmp_path / "reply.tsr")
    verify(reply, "-data", data, "-CAfile", hsm.ca_file)

    proc = verify(reply, "-data", other, "-CAfile", hsm.ca_file, ok=False)
    assert "message imprint mismatch" in proc.stderr

    # The reply does not answer a query for other data, nor another query (another nonce)
    # for the same data.
    other_query = make_query(tmp_path, other, name="other")
    proc = verify(reply, "-queryfile", other_query, "-CAfile", hsm.ca_file, ok=False)
    assert "message imprint mismatch" in proc.stderr
    again_query = make_query(tmp_path, data, name="again")
    proc = verify(reply, "-queryfile", again_query, "-CAfile", hsm.ca_file, ok=False)
    assert "nonce mismatch" in proc.stderr

    foreign_ca = tmp_path / "foreign-ca.pem"
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            tmp_path / "foreign-ca.key",
            "-out",
            foreign_ca,
            "-subj",
            "/CN=Foreign Root",
            "-days",
            "2",
        ]
    )
    proc = verify(reply, "-data", data, "-CAfile", foreign_ca, ok=False)
    assert "unable to get local issuer certificate" in proc.stderr


def test_reply_text_shows_policy_nonce_accuracy_and_name(tsa, hsm, tmp_path):
    data = tmp_path / "doc.txt"
    data.write_bytes(b"inspect me\n")
    query = make_query(tmp_path, data, "sha384", extra=("-tspolicy", DEFAULT_POLICY))
    reply = curl_post(tsa.url, query, tmp_path / "reply.tsr")

    query_text = run(["openssl", "ts", "-query", "-in", query, "-text"]).stdout
    (nonce_line,) = [line for line in query_text.splitlines() if line.startswith("Nonce: ")]
    assert nonce_line != "Nonce: unspecified"
    text = run(["openssl", "ts", "-reply", "-in", reply, "-text"]).stdout
    lines = text.splitlines()

    token = token_of_reply(reply.read_bytes())
    info = assert_token_covers(token, data.read_bytes(), "sha384")
    assert "Status: Granted." in lines
    assert "Version: 1" in lines
    assert f"Policy OID: {DEFAULT_POLICY}" in lines
    assert "Hash Algorithm: sha384" in lines
    assert nonce_line in lines
    (serial_line,) = [line for line in lines if line.startswith("Serial number: 0x")]
    assert int(serial_line.removeprefix("Serial number: 0x"), 16) == info["serial_number"].native
    assert f"TSA: DirName:{subject_line(hsm.chain_file)}" in lines

    (accuracy_line,) = [line for line in lines if line.startswith("Accuracy: ")]
    match = re.fullmatch(
        r"Accuracy: (0x[0-9A-F]+|unspecified) seconds, (0x[0-9A-F]+|unspecified) millis, "
        r"(0x[0-9A-F]+|unspecified) micros",
        accuracy_line,
    )
    assert match, accuracy_line
    parts = [0 if part == "unspecified" else int(part, 16) for part in match.groups()]
    assert parts != [0, 0, 0], "the server always states an accuracy"
    accuracy = info["accuracy"].native
    assert parts == [
        accuracy.get("seconds") or 0,
        accuracy.get("millis") or 0,
        accuracy.get("micros") or 0,
    ]
    # The configured worst accuracy is 1000 ms (max_accuracy_ms default).
    assert parts[0] * 1_000_000 + parts[1] * 1000 + parts[2] <= 1_000_000
    assert "Ordering: no" in lines
    assert_in_ledger(tsa.ledger_path, token)


def test_include_chain_token_carries_both_certificates(make_server, hsm, tmp_path):
    server = make_server(tsa={"include_chain": True}).start()
    data = tmp_path / "doc.txt"
    data.write_bytes(b"chain please\n")
    query = make_query(tmp_path, data)
    reply = curl_post(server.url, query, tmp_path / "reply.tsr")

    token_file = tmp_path / "token.der"
    run(["openssl", "ts", "-reply", "-in", reply, "-token_out", "-out", token_file])
    printed = run(
        ["openssl", "pkcs7", "-inform", "DER", "-in", token_file, "-print_certs", "-noout"]
    ).stdout
    subjects = [line for line in printed.splitlines() if line.startswith("subject=")]
    assert len(subjects) == 2, printed
    token = token_of_reply(reply.read_bytes())
    chain = pem_certificates(hsm.chain_file)
    assert len(chain) == 2
    # CertificateSet is a SET: the order is not checked here (see the rfc3161-client test).
    assert sorted(c.dump() for c in token["content"]["certificates"]) == sorted(chain)
    assert_token_covers(token, data.read_bytes(), "sha256")
    assert_in_ledger(server.ledger_path, token)

    verify(reply, "-queryfile", query, "-CAfile", hsm.ca_file)
    verify(token_file, "-token_in", "-data", data, "-CAfile", hsm.ca_file)

    # certReq absent: no certificate at all, even with include_chain.
    bare_query = make_query(tmp_path, data, cert=False, name="bare")
    bare_reply = curl_post(server.url, bare_query, tmp_path / "bare.tsr")
    assert not token_of_reply(bare_reply.read_bytes())["content"]["certificates"]
    verify(bare_reply, "-queryfile", bare_query, "-CAfile", hsm.ca_file, ok=False)
    verify(
        bare_reply, "-queryfile", bare_query, "-CAfile", hsm.ca_file, "-untrusted", hsm.chain_file
    )
