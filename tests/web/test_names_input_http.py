"""Hostile input to the handle (字号) endpoints against a real `tsa serve`: a raw UTF-8
query string, deeply nested or non-UTF-8 JSON, numbers that would hang `Fraction`
(1e999999999) or overflow `int` (1e999 is infinity) are each a 4xx with a message, in
a fraction of a second, with at most one log line and never a traceback."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.accounts.test_http import tsa_accounts
from tests.support.names_server import start_names_server

pytestmark = pytest.mark.both_backends

NESTED = b'{"handle": ' + b"[" * 5000 + b"]" * 5000 + b"}"


@pytest.fixture
def names_server(make_server, tmp_path: Path, hsm):
    server, orgs = start_names_server(make_server, tmp_path, ("A", "Op"))
    keys = {
        n: tsa_accounts(
            server, "create-key", "--org", org, "--role", "owner", "--scope", "admin,read,deposit"
        )
        for n, org in orgs.items()
    }
    return server, keys


def _raw(port: int, request_line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_raw_utf8_in_a_query_is_a_400_and_one_log_line(names_server) -> None:
    server, _ = names_server
    answer = _raw(server.port, "GET /api/v1/names/check?handle=星辰 HTTP/1.1".encode())
    assert answer.split(b"\r\n")[0].endswith(b"400 Bad Request"), answer[:200]
    assert b"Invalid char in url query" in answer
    answer = _raw(server.port, "GET /api/v1/names/星辰 HTTP/1.1".encode())
    assert b" 400 " in answer.split(b"\r\n")[0]
    time.sleep(0.2)  # the log line is written after the answer
    log = server.log()
    lines = [line for line in log.splitlines() if "malformed HTTP request" in line]
    assert len(lines) == 2 and "Invalid char in url query" in lines[0], lines
    assert "Traceback" not in log and " ERROR " not in log, log[-2000:]
    # Percent-encoded, the same handle is checked as usual.
    status, _, body = server.get("/api/v1/names/check?handle=%E6%98%9F%E8%BE%B0")
    assert status == 200 and json.loads(body)["bytes"] == 4


def _send(server, key: str, method: str, path: str, body: bytes, headers=None):
    started = time.monotonic()
    status, _, raw = server.request(
        method,
        path,
        body,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})},
    )
    elapsed = time.monotonic() - started
    return status, json.loads(raw)["error"], elapsed


def test_hostile_bodies_are_refused_fast_with_a_reason(names_server) -> None:
    server, keys = names_server
    op = keys["Op"]
    posts = [
        ("POST", "/api/v1/names/applications"),
        ("POST", "/api/v1/names/abcd/change"),
        ("POST", "/api/v1/names/abcd/release"),
        ("POST", "/api/v1/names/abcd/reclaim"),
        ("POST", "/api/v1/names/abcd/objections"),
        ("POST", "/api/v1/names/abcd/complaints"),
        ("POST", "/api/v1/names/abcd/decision"),
        ("PATCH", "/api/v1/names/policy/words"),
        ("PATCH", "/api/v1/names/policy/weights"),
    ]
    etag = {
        "If-Match": server.request(
            "GET", "/api/v1/names/policy/weights", None, {"Authorization": f"Bearer {op}"}
        )[1]["ETag"]
    }
    for method, path in posts:
        status, error, _ = _send(server, op, method, path, NESTED, etag)
        assert status == 400 and "nested deeper" in error, (path, status, error)
        status, error, _ = _send(server, op, method, path, b'{"statement": "\xff\xfe"}', etag)
        assert status == 400 and "not valid JSON" in error, (path, status, error)

    decision = "/api/v1/names/abcd/decision"
    bombs = [
        ({"search_rate": "1e999999999"}, "search_rate: not a number"),
        ({"repeat_rate": "1e-999999999"}, "repeat_rate: not a number"),
        ({"transactions": "1" * 5000}, "transactions: not a number"),
        ({"transactions": "١٢"}, "transactions: not a number"),
        ({"usage_days": 1e999}, "usage_days must be an integer"),
        ({"usage_days": "30"}, "usage_days must be an integer"),
        ({"star_level": 10**30}, "star_level must lie within"),
        ({"continuous_days": [1]}, "continuous_days must be an integer"),
        ({"wangwang": "false"}, "wangwang must be true or false"),
        ({"luck": 1}, "unknown field(s): luck"),
    ]
    for metrics, reason in bombs:
        body = json.dumps({"metrics": {"shop": metrics}}).encode()
        status, error, elapsed = _send(server, op, "POST", decision, body)
        assert status == 400 and reason in error, (metrics, status, error)
        assert elapsed < 5.0, (metrics, elapsed)
    for weight in ("1e999999999", "1e-999999999", 1e308, "9" * 4000):
        body = json.dumps({"search_rate": weight}).encode()
        status, error, elapsed = _send(
            server, op, "PATCH", "/api/v1/names/policy/weights", body, etag
        )
        assert status == 400 and "search_rate" in error and elapsed < 5.0, (weight, error)
    status, error, _ = _send(server, op, "POST", decision, b'{"winner": "' + b"w" * 300 + b'"}')
    assert status == 400 and "winner" in error
    assert "Traceback" not in server.log()
