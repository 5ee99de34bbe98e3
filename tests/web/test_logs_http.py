"""Structured logs and request ids (issue 17 item 3) on the real server: JSON lines by
configuration, text by default; the request id echoed in `X-Request-Id` and on the line;
one line per client error and none for a granted token; no API key, bearer credential or
PIN in the log. The formatters and the masking on their own at the end."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from tests.support.queries import make_request
from tsa_server.web.logs import REQUEST_ID, JsonFormatter, RequestIdFilter, TextFormatter, redact

SECRET_KEY = "tsa_0123456789abcdef_" + "5ec7e7" * 8


def json_lines(server) -> list[dict]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def settled(read, count: int, timeout: float = 5.0):
    """`read()` once it holds `count` items: a request's line is written just after its
    response, so the client may look before the server wrote it."""
    deadline = time.monotonic() + timeout
    while len(found := read()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_json_lines_with_request_ids_and_one_line_per_client_error(
    make_server, tmp_path, hsm
) -> None:
    server = make_server(
        logging={"level": "INFO", "format": "json"},
        evidence={"path": str(tmp_path / "e.sqlite"), "blobs": str(tmp_path / "blobs")},
    ).start()
    status, headers, _ = server.request("GET", "/tokens/zz", None, {"X-Request-Id": "lb-42.a"})
    assert status == 400 and headers["X-Request-Id"] == "lb-42.a"
    # Ours when the client's is not a short token of safe characters.
    status, headers, _ = server.request("GET", "/no-such", None, {"X-Request-Id": "a b\tc"})
    assert status == 404 and headers["X-Request-Id"] != "a b\tc"
    generated = headers["X-Request-Id"]
    status, headers, _ = server.post_query(make_request(b"granted"), "/tsr")
    assert status == 200 and headers["X-Request-Id"] not in ("", generated)
    status, _, _ = server.post_query(b"x", "/tsr", content_type="text/plain")
    assert status == 415
    status, _, _ = server.request(
        "GET",
        f"/api/v1/account?api_key={SECRET_KEY}",
        None,
        {"Authorization": f"Bearer {SECRET_KEY}"},
    )
    assert status == 401

    requests = settled(
        lambda: [line for line in json_lines(server) if line["logger"] == "tsa.access"], 4
    )
    for line in json_lines(server):
        assert {"time", "level", "logger", "message"} <= line.keys()
    assert [(r["route"], r["status"]) for r in requests] == [
        ("/tokens/{serial}", 400),
        ("unmatched", 404),
        ("/tsr", 415),
        ("/api/v1/account", 401),
    ]
    assert requests[0]["request_id"] == "lb-42.a" and requests[0]["path"] == "/tokens/zz"
    assert requests[1]["request_id"] == generated
    assert all(r["method"] == "GET" for r in requests if r["route"] != "/tsr")
    assert all(isinstance(r["duration_ms"], float) for r in requests)
    log = server.log()
    assert "5ec7e75ec7e7" not in log and "api_key" not in log
    pin = Path(hsm.pkcs11["pin_file"]).read_text().strip()
    assert len(pin) >= 4 and pin not in log


def test_text_lines_by_default_with_the_request_id(make_server) -> None:
    server = make_server().start()
    status, headers, _ = server.request("GET", "/tokens/zz", None, {"X-Request-Id": "trace-7"})
    assert status == 400
    lines = settled(lambda: [x for x in server.log().splitlines() if "tsa.access" in x], 1)
    assert len(lines) == 1, server.log()
    assert lines[0].endswith("[trace-7]") and "GET /tokens/zz -> 400" in lines[0]
    assert not lines[0].startswith("{")


def test_access_lines_for_every_request_when_configured(make_server) -> None:
    server = make_server(logging={"level": "INFO", "access": True}).start()
    assert server.post_query(make_request(b"one"))[0] == 200
    assert server.get("/healthz")[0] == 200

    def lines() -> list[str]:
        wanted = ("POST / -> 200", "GET /healthz -> 200")
        return [x for x in server.log().splitlines() if x.split(": ", 1)[-1].startswith(wanted)]

    assert len(settled(lines, 2)) == 2
    time.sleep(0.3)
    assert len(lines()) == 2, server.log()


def _record(message: str, **extra) -> logging.LogRecord:
    record = logging.LogRecord("tsa.web", logging.ERROR, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_formatters_mask_secrets_and_carry_the_request_id() -> None:
    token = REQUEST_ID.set("req-1")
    try:
        record = _record(f"refused Authorization: Bearer {SECRET_KEY} for {SECRET_KEY}")
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    try:
        raise ValueError(f"boom with {SECRET_KEY}")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == "req-1" and entry["level"] == "ERROR"
    assert "5ec7e7" not in json.dumps(entry)
    assert "tsa_0123456789abcdef_…" in entry["message"] and "Bearer …" in entry["message"]
    text = TextFormatter().format(record)
    assert "[req-1]" in text.splitlines()[0] and "5ec7e7" not in text
    assert redact("nothing secret in tsa_server/web/logs.py") == (
        "nothing secret in tsa_server/web/logs.py"
    )
    assert redact("Basic dXNlcjpwYXNz") == "Basic …"
