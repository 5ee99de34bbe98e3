"""POST /verify against the real server: multipart and JSON requests, the report and
its ledger inclusion proof, the size bounds, the configured trust roots and time zone,
and malformed input, which always gets a 4xx with a reason and never a 5xx."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import tsp
from cryptography.hazmat.primitives.serialization import Encoding

from ledger.merkle import MemoryTree
from ledger.proofs import verify_inclusion
from ledger.serials import serial_text
from tests.rfc3161.test_verify_ours import Stamped, bare_token, stamp
from tests.rfc3161.tokenfactory import DATA, build_token, flip_bit, make_pki, token_parts
from tests.support.tsa import TsaServer
from tsa_server.rfc3161.oids import DEFAULT_POLICY

pytestmark = pytest.mark.both_backends

Part = tuple[str, bytes, str | None]  # name, value, filename


def multipart(*parts: Part) -> tuple[bytes, str]:
    """A multipart/form-data body with the parts in the order given, and its type."""
    boundary = "verify-" + secrets.token_hex(8)
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def post_multipart(server: TsaServer, *parts: Part) -> tuple[int, dict]:
    body, content_type = multipart(*parts)
    return _answer(server.request("POST", "/verify", body, {"Content-Type": content_type}))


def post_json(server: TsaServer, payload: object) -> tuple[int, dict]:
    body = json.dumps(payload).encode()
    return _answer(server.request("POST", "/verify", body, {"Content-Type": "application/json"}))


def _answer(reply: tuple[int, dict, bytes]) -> tuple[int, dict]:
    status, headers, body = reply
    assert status < 500, body
    assert headers["Content-Type"].startswith("application/json"), (status, body)
    return status, json.loads(body)


def token_and_data(stamped: Stamped, data: bytes | None = None) -> tuple[Part, Part]:
    return (
        ("token", stamped.response, "reply.tsr"),
        ("data", stamped.data if data is None else data, "doc.bin"),
    )


def failed(report: dict) -> set[str]:
    return {c["name"] for c in report["checks"] if not c["passed"]}


@pytest.fixture(scope="module")
def stamped(tsa) -> Stamped:
    return stamp(tsa, b"verify over http")


# --- the report ---------------------------------------------------------------------------


def test_token_and_data_file(tsa, stamped):
    status, report = post_multipart(tsa, *token_and_data(stamped))
    assert status == 200
    assert report["valid"] is True, report["checks"]
    names = [c["name"] for c in report["checks"]]
    assert names[:3] == ["decoding", "status", "structure"] and "message_imprint" in names
    for check in report["checks"]:
        assert set(check) == {"name", "passed", "reason", "reference", "skipped"}
        assert check["passed"] and check["reason"]
    imprint = next(c for c in report["checks"] if c["name"] == "message_imprint")
    assert imprint["reason"] == "the SHA-256 imprint matches the uploaded data"
    assert report["compared_with"] == {
        "data_bytes": len(stamped.data),
        "algorithm": "sha256",
        "digest": hashlib.sha256(stamped.data).hexdigest(),
    }

    fields = report["fields"]
    assert fields["policy"] == DEFAULT_POLICY
    assert fields["imprint_algorithm"] == "sha256"
    assert fields["imprint_hex"] == hashlib.sha256(stamped.data).hexdigest()
    assert fields["nonce"] == serial_text(stamped.nonce)  # a string: beyond JavaScript's 2^53
    token = tsp.TimeStampResp.load(stamped.response)["time_stamp_token"]
    tst = token["content"]["encap_content_info"]["content"].parsed
    assert fields["serial_number"] == serial_text(tst["serial_number"].native)
    assert fields["gen_time_utc"].endswith("Z") and fields["time_zone"] == "UTC"
    local = datetime.fromisoformat(fields["gen_time_local"])
    assert local == datetime.fromisoformat(fields["gen_time_utc"].replace("Z", "+00:00"))
    assert local.utcoffset().total_seconds() == 0
    assert fields["accuracy"]["seconds"] or fields["accuracy"]["millis"]
    assert fields["tsa_name"].startswith("CN=") or "CN=" in fields["tsa_name"]
    signer = fields["signer"]
    assert "CN=" in signer["subject"] and signer["not_before"] < signer["not_after"]

    assert report["issued_by_this_tsa"] is True
    ledger = report["ledger"]
    assert ledger["found"] is True and ledger["token_matches"] is True
    # Against the latest signed checkpoint (its note), or the current tree until one
    # covers the entry (test_verify_bounds_http.py checks the signed case).
    assert (ledger["checkpoint"] is None) != (ledger["checkpoint_pending"] is None)
    leaf = hashlib.sha256(b"\x00" + bare_token(stamped.response)).digest()
    assert ledger["leaf_hash"] == leaf.hex()
    proof = [bytes.fromhex(h) for h in ledger["inclusion_proof"]]
    root = bytes.fromhex(ledger["root"])
    verify_inclusion(ledger["index"], ledger["tree_size"], leaf, proof, root)
    with tsa.ledger() as reader:
        leaves = [e.leaf_hash for e in reader.entries(0, ledger["tree_size"])]
    assert MemoryTree(leaves).root() == root


def test_token_and_hex_digest_multipart_and_json(tsa, stamped):
    digest = hashlib.sha256(stamped.data).hexdigest()
    status, report = post_multipart(
        tsa,
        ("token", stamped.response, "t.tsr"),
        ("digest", digest.upper().encode(), None),
        ("digest_algorithm", b"SHA-256", None),
        ("nonce", hex(stamped.nonce).encode(), None),
        ("policy", DEFAULT_POLICY.encode(), None),
    )
    assert status == 200 and report["valid"] is True, report
    assert report["compared_with"] == {"digest": digest}
    status, report = post_json(
        tsa,
        {
            "token": base64.b64encode(stamped.response).decode(),
            "digest": digest,
            "nonce": stamped.nonce,
            "policy": DEFAULT_POLICY,
        },
    )
    assert status == 200 and report["valid"] is True, report
    assert report["ledger"]["found"] is True


def test_invalid_is_a_verdict_not_an_error(tsa, stamped):
    status, report = post_multipart(tsa, *token_and_data(stamped, b"another file"))
    assert status == 200 and report["valid"] is False
    assert failed(report) == {"message_imprint"}
    imprint = next(c for c in report["checks"] if c["name"] == "message_imprint")
    assert imprint["reason"].startswith("the SHA-256 imprint does not match the uploaded data")
    # the file's digest beside the token's: a wrong file is told apart from a damaged token
    assert f"the uploaded data: {report['compared_with']['digest']})" in imprint["reason"]

    payload = {
        "token": base64.b64encode(stamped.response).decode(),
        "digest": hashlib.sha256(stamped.data).hexdigest(),
    }
    for key, value, check in [
        ("nonce", str(stamped.nonce + 1), "nonce"),
        ("policy", "1.3.6.1.4.1.99999.7", "policy"),
        ("digest_algorithm", "sha512", "message_imprint"),
    ]:
        status, report = post_json(tsa, {**payload, key: value})
        assert status == 200 and report["valid"] is False
        assert failed(report) == {check}, report["checks"]


def test_certificate_less_token_uses_this_tsa_chain(tsa):
    nocert = stamp(tsa, b"no certificate in the token", cert_req=False)
    status, report = post_multipart(tsa, *token_and_data(nocert))
    assert status == 200 and report["valid"] is True, report["checks"]
    signer = next(c for c in report["checks"] if c["name"] == "signer_certificate")
    assert "supplied" in signer["reason"]
    assert report["ledger"]["found"] is True


def test_sha3_token_with_streamed_multi_megabyte_data(tsa):
    data = secrets.token_bytes(3 << 20)
    big = stamp(tsa, data, "sha3_256")
    status, report = post_multipart(tsa, *token_and_data(big))
    assert status == 200 and report["valid"] is True, report["checks"]
    assert report["compared_with"]["data_bytes"] == len(data)
    assert report["compared_with"]["digest"] == hashlib.sha3_256(data).hexdigest()


def test_unsupported_imprint_algorithm_is_never_valid(tsa):
    """The server issues SM3 imprints; the verifier cannot hash SM3: not valid, 200."""
    sm3 = stamp(tsa, b"sm3 document", "sm3")
    status, report = post_multipart(tsa, *token_and_data(sm3))
    assert status == 200 and report["valid"] is False
    assert failed(report) == {"message_imprint"}
    imprint = next(c for c in report["checks"] if c["name"] == "message_imprint")
    assert imprint["reason"].startswith("could not be checked: unsupported imprint hash")
    assert report["compared_with"]["digest"] is None
    assert report["ledger"]["found"] is True


def test_altered_token_is_not_the_ledger_entry(tsa, stamped):
    signature = token_parts(stamped.response)[1]["signature"].native
    altered = flip_bit(stamped.response, signature, len(signature) - 1)
    status, report = post_multipart(tsa, ("token", altered, "t.tsr"), ("data", stamped.data, "d"))
    assert status == 200 and report["valid"] is False
    assert failed(report) == {"signature"}
    assert report["issued_by_this_tsa"] is False
    ledger = report["ledger"]
    assert ledger["found"] is True and ledger["token_matches"] is False
    assert "inclusion_proof" not in ledger and "different token" in ledger["reason"]


def test_another_tsa_token_has_no_ledger_section(tsa):
    pki = make_pki("ec", 91)
    token = build_token(pki)
    status, report = post_multipart(tsa, ("token", token, "t.tsr"), ("data", DATA, "d"))
    assert status == 200 and report["valid"] is False
    assert failed(report) == {"certificate_chain"}, report["checks"]
    assert report["issued_by_this_tsa"] is False and report["ledger"] is None


# --- malformed requests -------------------------------------------------------------------


def _bad_cases(stamped: Stamped) -> dict[str, tuple[bytes, str, int, str]]:
    token = ("token", stamped.response, "t.tsr")
    digest = ("digest", hashlib.sha256(stamped.data).hexdigest().encode(), None)

    def mp(*parts: Part) -> tuple[bytes, str]:
        return multipart(*parts)

    cases = {
        "data-before-token": (*mp(("data", b"x", "d"), token), 400, "before the data"),
        "no-token": (*mp(digest), 400, "token is missing"),
        "no-data-or-digest": (*mp(token), 400, "give the data"),
        "data-and-digest": (*mp(token, ("data", b"x", "d"), digest), 400, "not both"),
        "bad-hex": (*mp(token, ("digest", b"zz12", None)), 400, "not hexadecimal"),
        "garbage-token": (
            *mp(("token", b"\x30\x03garbage", "t"), digest),
            400,
            "not a time-stamp token",
        ),
        "random-token": (
            *mp(("token", secrets.token_bytes(64), "t"), digest),
            400,
            "not a time-stamp token",
        ),
        "duplicate-part": (*mp(token, token, digest), 400, "given twice"),
        "unknown-part": (*mp(token, digest, ("comment", b"hi", None)), 400, "unknown part"),
        "bad-nonce": (*mp(token, digest, ("nonce", b"twelve", None)), 400, "nonce"),
        "bad-policy": (*mp(token, digest, ("policy", b"not.an oid", None)), 400, "dotted OID"),
        "bad-certificates": (
            *mp(token, digest, ("certificates", b"nope", "c.pem")),
            400,
            "certificates",
        ),
        "no-boundary": (b"--x\r\n", "multipart/form-data", 400, "malformed multipart"),
        "truncated-multipart": (
            mp(token, digest)[0][:-40],
            mp(token, digest)[1],
            400,
            "malformed multipart",
        ),
        "not-json": (b"{not json", "application/json", 400, "not valid JSON"),
        "json-array": (b"[]", "application/json", 400, "must be an object"),
        "json-unknown-key": (
            b'{"token": "AA==", "extra": 1}',
            "application/json",
            400,
            "unknown key",
        ),
        "json-bad-base64": (
            b'{"token": "@@@", "digest": "00"}',
            "application/json",
            400,
            "not a time-stamp token",
        ),
        "json-token-number": (b'{"token": 5, "digest": "00"}', "application/json", 400, "base64"),
        "json-data": (b'{"token": "AA==", "data": "AA=="}', "application/json", 400, "multipart"),
        "text-plain": (b"hello", "text/plain", 415, "send multipart/form-data"),
        "timestamp-query": (b"\x30\x00", "application/timestamp-query", 415, "send"),
    }
    return cases


BAD_NAMES = [
    "data-before-token",
    "no-token",
    "no-data-or-digest",
    "data-and-digest",
    "bad-hex",
    "garbage-token",
    "random-token",
    "duplicate-part",
    "unknown-part",
    "bad-nonce",
    "bad-policy",
    "bad-certificates",
    "no-boundary",
    "truncated-multipart",
    "not-json",
    "json-array",
    "json-unknown-key",
    "json-bad-base64",
    "json-token-number",
    "json-data",
    "text-plain",
    "timestamp-query",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_malformed_requests_get_a_reason(tsa, stamped, name):
    body, content_type, want, reason = _bad_cases(stamped)[name]
    status, answer = _answer(tsa.request("POST", "/verify", body, {"Content-Type": content_type}))
    assert status == want and reason in answer["error"], answer
    assert set(answer) == {"error"}


def test_no_5xx_for_any_truncation_or_bit_flip(tsa, stamped):
    body, content_type = multipart(*token_and_data(stamped))
    for cut in range(0, len(body), 97):
        headers = {"Content-Type": content_type}
        status, _, reply = tsa.request("POST", "/verify", body[:cut], headers)
        assert status < 500, (cut, reply)
    token = stamped.response
    for position in range(0, len(token), 13):
        flipped = bytearray(token)
        flipped[position] ^= 0x10
        status, _ = post_multipart(tsa, ("token", bytes(flipped), "t"), ("data", b"d", "d"))
        assert status in (200, 400)
    assert tsa.get("readyz")[0] == 200


def test_get_is_not_allowed(tsa):
    assert tsa.get("verify")[0] == 405


# --- a server with its own [verify] settings ----------------------------------------------

LIMITS = {"max_data_bytes": 4096, "max_token_bytes": 4096}


@pytest.fixture(scope="module")
def foreign_pki():
    return make_pki("ec", 92)


@pytest.fixture(scope="module")
def configured(tmp_path_factory, hsm, session_ntp, foreign_pki):
    """Trust roots: a directory with the foreign root (PEM) and this TSA's CA (DER);
    genTime shown in Europe/Paris; small bounds. Same key and certificate as `tsa`,
    empty ledger of its own."""
    root = tmp_path_factory.mktemp("verify-server")
    trust = root / "trust"
    trust.mkdir()
    (trust / "foreign.pem").write_bytes(foreign_pki.root.public_bytes(Encoding.PEM))
    ca_pem = Path(hsm.ca_file).read_text()
    ca_der = base64.b64decode("".join(ca_pem.strip().splitlines()[1:-1]))
    (trust / "ours.der").write_bytes(ca_der)
    server = TsaServer(
        root / "s",
        hsm,
        session_ntp.address,
        verify={
            "trust_roots": str(trust),
            "time_zone": "Europe/Paris",
            **LIMITS,
        },
    ).start()
    yield server
    server.stop()


def test_trust_roots_directory_replaces_the_ca(configured, tsa, foreign_pki):
    token = build_token(foreign_pki)
    status, report = post_multipart(configured, ("token", token, "t"), ("data", DATA, "d"))
    assert status == 200 and report["valid"] is True, report["checks"]
    status, report = post_multipart(tsa, ("token", token, "t"), ("data", DATA, "d"))
    assert report["valid"] is False


def test_time_zone_and_token_missing_from_ledger(configured, stamped):
    status, report = post_multipart(configured, *token_and_data(stamped))
    assert status == 200 and report["valid"] is True, report["checks"]
    fields = report["fields"]
    assert fields["time_zone"] == "Europe/Paris"
    local = datetime.fromisoformat(fields["gen_time_local"])
    assert local.utcoffset().total_seconds() in (3600, 7200)
    assert local == datetime.fromisoformat(fields["gen_time_utc"].replace("Z", "+00:00"))
    # Same TSA certificate, but this server's ledger never saw the token: a serious finding.
    assert report["issued_by_this_tsa"] is True
    assert report["ledger"]["found"] is False
    assert "no entry" in report["ledger"]["reason"]


def test_size_bounds_give_413(configured, stamped):
    token, _ = token_and_data(stamped)
    status, answer = post_multipart(configured, token, ("data", b"x" * 4097, "d"))
    assert status == 413 and "max_data_bytes" in answer["error"]
    status, report = post_multipart(configured, token, ("data", b"x" * 4096, "d"))
    assert status == 200 and report["compared_with"]["data_bytes"] == 4096
    status, answer = post_multipart(configured, ("token", b"0" * 5000, "t"), ("data", b"", "d"))
    assert status == 413 and "token" in answer["error"]
    huge = {"token": "A" * (3 << 20), "digest": "00"}
    status, answer = post_json(configured, huge)
    assert status == 413


def test_chunked_upload_is_bounded_while_streaming(configured, stamped):
    body, content_type = multipart(*token_and_data(stamped, b"y" * 20000))
    conn = http.client.HTTPConnection("127.0.0.1", configured.port, timeout=30)
    try:
        chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
        conn.request(
            "POST",
            "/verify",
            body=chunks,
            headers={"Content-Type": content_type},
            encode_chunked=True,
        )
        reply = conn.getresponse()
        answer = json.loads(reply.read())
    finally:
        conn.close()
    assert reply.status == 413 and "max_data_bytes" in answer["error"]
