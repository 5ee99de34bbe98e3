"""The HTTP face of the TSA, against the real server: transport rules and the
rejection matrix, each rejection followed by a granted request (the server keeps serving)."""

from __future__ import annotations

import hashlib
import http.client
import os

import pytest
from asn1crypto import core

from tests.support.queries import (
    NULL,
    TimeStampResp,
    extension,
    failure_of,
    make_request,
    parse_response,
)
from tests.support.tsa import QUERY_TYPE, TsaServer

pytestmark = pytest.mark.both_backends

REPLY_TYPE = "application/timestamp-reply"


def assert_granted(server: TsaServer, data: bytes = b"after") -> TimeStampResp:
    status, headers, body = server.post_query(make_request(data))
    assert status == 200
    assert headers["Content-Type"] == REPLY_TYPE
    reply = parse_response(body)
    assert reply["status"]["status"].native == "granted"
    tst = reply["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    assert tst["message_imprint"]["hashed_message"].native == hashlib.sha256(data).digest()
    return reply


REJECTIONS = {
    "empty-body": (b"", "bad_data_format"),
    "random-bytes": (os.urandom(64), "bad_data_format"),
    "truncated-der": (make_request()[:-5], "bad_data_format"),
    "trailing-garbage": (make_request() + b"\x00\x01", "bad_data_format"),
    "version-2": (make_request(version=2), "bad_request"),
    "md5": (make_request(hash_name="md5"), "bad_alg"),
    "sha1": (make_request(hash_name="sha1"), "bad_alg"),
    "unknown-hash-oid": (make_request(hash_name="1.2.3.4.5", digest=b"\x01" * 32), "bad_alg"),
    "hash-params-integer": (make_request(params=b"\x02\x01\x05"), "bad_alg"),
    "digest-too-short": (make_request(digest=b"\x01" * 31), "bad_data_format"),
    "digest-too-long-for-sha384": (
        make_request(hash_name="sha384", digest=b"\x01" * 64),
        "bad_data_format",
    ),
    "unknown-policy": (make_request(policy="1.2.3.4.5.6"), "unaccepted_policy"),
    "critical-unknown-extension": (
        make_request(extensions=extension("1.2.3.4", True)),
        "unaccepted_extensions",
    ),
    "noncritical-unknown-extension": (
        make_request(extensions=extension("1.2.3.4", False)),
        "unaccepted_extensions",
    ),
    "absurd-nonce": (make_request(nonce=1 << 1000), "bad_request"),
}


@pytest.mark.parametrize("name", sorted(REJECTIONS))
def test_rejection_matrix(tsa: TsaServer, name: str) -> None:
    body, failure = REJECTIONS[name]
    status, headers, reply = tsa.post_query(body)
    assert status == 200
    assert headers["Content-Type"] == REPLY_TYPE
    parsed = parse_response(reply)
    assert parsed["status"]["status"].native == "rejection"
    assert set(parsed["status"]["fail_info"].native) == {failure}
    assert parsed["status"]["status_string"].native  # a short human reason
    assert isinstance(parsed["time_stamp_token"], core.Void)
    assert_granted(tsa)


def test_accepts_null_hash_parameters_and_default_policy(tsa: TsaServer) -> None:
    status, _, body = tsa.post_query(make_request(params=NULL))
    assert failure_of(body) == ("granted", set())


def test_wrong_method_is_405(tsa: TsaServer) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        status, headers, _ = tsa.request(method, "/", make_request())
        assert status == 405
        assert "POST" in headers["Allow"]
    assert_granted(tsa)


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "text/plain", "application/timestamp-reply"]
)
def test_wrong_content_type_is_415(tsa: TsaServer, content_type: str) -> None:
    status, _, _ = tsa.post_query(make_request(), content_type=content_type)
    assert status == 415
    assert_granted(tsa)


def test_content_type_parameters_tolerated(tsa: TsaServer) -> None:
    status, _, body = tsa.post_query(make_request(), content_type=QUERY_TYPE + "; charset=binary")
    assert status == 200 and failure_of(body)[0] == "granted"


def test_tsr_path_is_an_alias(tsa: TsaServer) -> None:
    status, _, body = tsa.post_query(make_request(), path="/tsr")
    assert status == 200 and failure_of(body)[0] == "granted"


def test_10mb_body_is_413(tsa: TsaServer) -> None:
    status, _, _ = tsa.post_query(b"\x30" + os.urandom(10 * 1024 * 1024))
    assert status == 413
    assert_granted(tsa)


def test_chunked_oversized_body_is_413(tsa: TsaServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", tsa.port, timeout=30)
    conn.putrequest("POST", "/")
    conn.putheader("Content-Type", QUERY_TYPE)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"\x00" * 4096
    try:
        for _ in range(64):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server may close once it has said 413
    assert conn.getresponse().status == 413
    conn.close()
    assert_granted(tsa)


def test_chunked_valid_request_is_granted(tsa: TsaServer) -> None:
    body = make_request(b"chunked")
    conn = http.client.HTTPConnection("127.0.0.1", tsa.port, timeout=30)
    conn.request(
        "POST",
        "/",
        body=iter([body[:10], body[10:]]),
        headers={"Content-Type": QUERY_TYPE, "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    reply = conn.getresponse()
    assert reply.status == 200
    assert failure_of(reply.read())[0] == "granted"


def test_get_landing_page(tsa: TsaServer) -> None:
    status, headers, body = tsa.get("/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b"RFC 3161" in body and b"application/timestamp-query" in body


def test_certs_is_the_pem_chain(tsa: TsaServer, hsm) -> None:
    status, headers, body = tsa.get("/certs")
    assert status == 200
    assert headers["Content-Type"] == "application/pem-certificate-chain"
    assert body == hsm.chain_file.read_bytes()


def test_health_and_readiness(tsa: TsaServer) -> None:
    assert tsa.get("/healthz")[0] == 200
    status, _, body = tsa.get("/readyz")
    assert status == 200 and b'"ready": true' in body


def test_token_can_be_fetched_again_by_serial(tsa: TsaServer) -> None:
    reply = assert_granted(tsa, b"fetch me")
    token = reply["time_stamp_token"]
    serial = token["content"]["encap_content_info"]["content"].parsed["serial_number"].native
    status, headers, body = tsa.get(f"/tokens/{serial:x}")
    assert status == 200 and headers["Content-Type"] == REPLY_TYPE
    assert parse_response(body)["time_stamp_token"].dump() == token.dump()
    assert tsa.get(f"/tokens/0x{serial:x}")[0] == 200
    assert tsa.get(f"/tokens/{serial + 1:x}")[0] == 404
    assert tsa.get("/tokens/not-hex")[0] == 400


def raw_exchange(tsa: TsaServer, head: bytes, body: bytes = b"") -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", tsa.port), timeout=10) as sock:
        sock.sendall(head)
        first = sock.recv(65536)
        if body and first.startswith(b"HTTP/1.1 100"):
            sock.sendall(body)
            first += sock.recv(65536)
        return first


def test_expect_continue_is_refused_before_the_body_when_too_large(tsa: TsaServer) -> None:
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
        b"Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
    )
    reply = raw_exchange(tsa, head)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:40]
    wrong_type = head.replace(b"timestamp-query", b"json").replace(b"100000", b"10")
    assert raw_exchange(tsa, wrong_type).startswith(b"HTTP/1.1 415")


def test_expect_continue_then_a_valid_request_is_granted(tsa: TsaServer) -> None:
    body = make_request(b"expect")
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
    )
    reply = raw_exchange(tsa, head, body)
    assert reply.startswith(b"HTTP/1.1 100 Continue")
    assert b"HTTP/1.1 200" in reply
