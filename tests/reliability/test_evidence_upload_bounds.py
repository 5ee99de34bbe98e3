"""Uploads are allowed before they are stored (issue 13, item 6), against a real
`tsa serve`: a raw HTTP client sends an upload up to the start of a file part and then
stalls. The refusal (402 credits, 429 quota, 422 files per batch, 413 request bytes)
must arrive while it stalls, with the blob store and its tmp/ untouched; with an
Idempotency-Key nothing is skipped, and an answered retry stores nothing. Disconnecting
mid-file, or any refusal, leaves nothing on disk."""

from __future__ import annotations

import json
import secrets
import socket
import time
from pathlib import Path

import pytest

from tests.support.tsa import TsaServer, evidence_settings
from tests.web.test_evidence_http import FORM, Api, new_org, sha
from tsa_server.evidence import client

FILE_LIMIT = 64 * 1024  # [evidence] max_upload_bytes of these tests
REQUEST_LIMIT = 160 * 1024  # [evidence] max_upload_request_bytes
BATCH = 3  # [evidence] max_batch_items
QUOTA = 6  # [evidence] monthly_item_quota
BOUNDARY = "b0und4ry"


@pytest.fixture
def server(make_server, tmp_path: Path) -> TsaServer:
    return make_server(
        evidence=evidence_settings(
            tmp_path,
            max_upload_bytes=FILE_LIMIT,
            max_upload_request_bytes=REQUEST_LIMIT,
            max_batch_items=BATCH,
            monthly_item_quota=QUOTA,
        )
    ).start()


def on_disk(tmp_path: Path) -> list[str]:
    """Everything in the blob store: fan-out directories, blobs, and tmp/'s files."""
    root = tmp_path / "blobs"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != "tmp")


def metadata_part(**extra) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="metadata"\r\n'
        "Content-Type: application/json\r\n\r\n"
    ).encode() + json.dumps({**FORM, **extra}).encode()


def file_head(name: str = "f.bin") -> bytes:
    return (
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()


def end() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


class RawUpload:
    """POST /api/v1/deposits/upload over a socket, chunked, sent piece by piece."""

    def __init__(self, api: Api, headers: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", api.server.port), timeout=10)
        lines = {
            "Host": "127.0.0.1",
            "Authorization": f"Bearer {api.key}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Transfer-Encoding": "chunked",
            **(headers or {}),
        }
        head = "POST /api/v1/deposits/upload HTTP/1.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in lines.items()) + "\r\n"
        self.sock.sendall(head.encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def finish(self) -> None:
        self.sock.sendall(b"0\r\n\r\n")

    def answer(self, timeout: float = 15.0) -> tuple[int, dict[str, str], dict] | None:
        """The answer, or None when the server is still waiting for the body."""
        self.sock.settimeout(timeout)
        raw = b""
        try:
            while b"\r\n\r\n" not in raw:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                raw += chunk
                self.sock.settimeout(15)  # an answer has begun: wait for all of it
        except TimeoutError:
            return None
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        return int(status_line.split()[1]), headers, json.loads(rest[:length] or b"{}")

    def close(self) -> None:
        self.sock.close()


def refused_while_stalled(upload: RawUpload, *pieces: bytes) -> tuple[int, dict]:
    """Send `pieces` (paced), then only a trickle of the last file (the multipart
    parser looks a little ahead for the next boundary): the refusal must come before
    that file is complete."""
    try:
        for piece in pieces:
            upload.send(piece)
            time.sleep(0.05)
        for _ in range(40):  # 1 KiB every 50 ms for 2 s: 40 KiB, never a whole file
            answer = upload.answer(timeout=0.05)
            if answer is not None:
                return answer[0], answer[2]
            upload.send(b"\x00" * 1024)
        answer = upload.answer()
        assert answer is not None, "the server waited for the file's bytes instead of refusing"
        return answer[0], answer[2]
    finally:
        upload.close()


def test_credits_quota_and_file_count_are_checked_before_a_byte_is_stored(
    server: TsaServer, tmp_path: Path
) -> None:
    empty = on_disk(tmp_path)
    some = secrets.token_bytes(20_000)

    # 0 credits, with an Idempotency-Key (it used to skip the credit check): 402 at once
    broke = new_org(server, "Broke")
    for headers in ({"Idempotency-Key": "retry-1"}, {}):
        status, body = refused_while_stalled(
            RawUpload(broke, headers), metadata_part(), file_head(), some
        )
        assert status == 402 and body["available"] == 0, body
        assert on_disk(tmp_path) == empty

    # 1 credit: the first file may arrive, the second part is refused before its bytes
    one = new_org(server, "One credit", units=1)
    status, body = refused_while_stalled(
        RawUpload(one, {"Idempotency-Key": "two-files"}),
        metadata_part(),
        file_head("a.bin"),
        some,
        file_head("b.bin"),
        some,
    )
    assert status == 402 and body["needed"] == 2 and body["available"] == 1, body
    assert on_disk(tmp_path) == empty  # not even the first file is kept

    # declared files (metadata items) beyond the credits: refused before the first file
    status, body = refused_while_stalled(
        RawUpload(one), metadata_part(items=[{}, {}]), file_head(), some
    )
    assert status == 402 and body["needed"] == 2, body
    assert on_disk(tmp_path) == empty

    # [evidence] max_batch_items: declared, or counted as parts arrive
    rich = new_org(server, "Rich", units=20)
    status, body = refused_while_stalled(
        RawUpload(rich), metadata_part(items=[{}] * (BATCH + 1)), file_head(), some
    )
    assert status == 422 and f"at most {BATCH}" in body["fields"]["items"], body
    parts = [metadata_part()]
    for n in range(BATCH + 1):
        parts += [file_head(f"{n}.bin"), some + bytes([n])]
    status, body = refused_while_stalled(RawUpload(rich), *parts)
    assert status == 422 and f"at most {BATCH}" in body["fields"]["file"], body
    assert on_disk(tmp_path) == empty

    # the monthly quota: 5 of 6 used, a second file is refused before its bytes (429)
    items = [{"sha256": sha(b"used %d" % n)} for n in range(QUOTA - 1)]
    for batch in (items[:BATCH], items[BATCH:]):
        assert rich.post("/api/v1/deposits", {**FORM, "items": batch})[0] == 201
    status, body = refused_while_stalled(
        RawUpload(rich), metadata_part(), file_head("1"), some, file_head("2"), some
    )
    assert status == 429 and body["quota"] == "monthly_item_quota", body
    assert on_disk(tmp_path) == empty
    assert one.balance() == 1 and broke.balance() == 0
    assert "Traceback" not in server.log()


def test_request_bytes_are_bounded_before_and_while_reading(
    server: TsaServer, tmp_path: Path
) -> None:
    api = new_org(server, "Bytes", units=10)
    empty = on_disk(tmp_path)

    # Content-Length beyond max_upload_request_bytes: 413 before a byte of the body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /api/v1/deposits/upload HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {api.key}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {100 << 30}\r\n\r\n"
            ).encode()
        )
        reply = sock.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert "max_upload_request_bytes" in reply

    # no Content-Length (chunked): the running total stops the third 60 KiB file
    upload = RawUpload(api)
    parts = [metadata_part()]
    for n in range(3):
        parts += [file_head(f"{n}.bin"), bytes([n]) * (60 * 1024)]
    for part in parts:
        upload.send(part)
    upload.send(end())
    upload.finish()
    status, _, body = upload.answer() or (0, {}, {})
    upload.close()
    assert status == 413 and "max_upload_request_bytes" in body["error"], body
    assert on_disk(tmp_path) == empty and api.balance() == 10


def test_a_client_gone_mid_file_leaves_nothing(server: TsaServer, tmp_path: Path) -> None:
    api = new_org(server, "Gone", units=5)
    empty = on_disk(tmp_path)
    upload = RawUpload(api, {"Idempotency-Key": "gone"})
    upload.send(metadata_part())
    upload.send(file_head())
    deadline = time.monotonic() + 10
    while not any(p.startswith("tmp/") for p in on_disk(tmp_path)):  # being written
        assert time.monotonic() < deadline, "the upload never reached the blob store"
        upload.send(secrets.token_bytes(1024))
        time.sleep(0.05)
    upload.sock.shutdown(socket.SHUT_RDWR)
    upload.close()
    while on_disk(tmp_path) != empty:
        assert time.monotonic() < deadline, on_disk(tmp_path)
        time.sleep(0.05)
    assert api.balance() == 5
    # the key was released with the refusal: the same key runs again
    upload = RawUpload(api, {"Idempotency-Key": "gone"})
    upload.send(metadata_part() + file_head() + b"now complete" + end())
    upload.finish()
    answer = upload.answer()
    upload.close()
    assert answer is not None and answer[0] == 201, answer


def test_an_answered_idempotent_retry_stores_nothing(server: TsaServer, tmp_path: Path) -> None:
    api = new_org(server, "Retry", units=1)
    content = secrets.token_bytes(30_000)

    def send(key: str, data: bytes, *, stall: bool = False):
        upload = RawUpload(api, {"Idempotency-Key": key})
        upload.send(metadata_part())
        upload.send(file_head())
        upload.send(data[:10_000])
        if stall:  # mid-file: only hashed, nothing in tmp/
            time.sleep(0.5)
            assert not any(p.startswith("tmp/") for p in on_disk(tmp_path)), on_disk(tmp_path)
        upload.send(data[10_000:] + end())
        upload.finish()
        answer = upload.answer()
        upload.close()
        assert answer is not None
        return answer

    first = send("order-7", content)
    assert first[0] == 201 and api.balance() == 0
    stored = on_disk(tmp_path)
    assert [p for p in stored if p.endswith(sha(content))]

    again = send("order-7", content, stall=True)  # no credit left: the answer is kept
    assert again[0] == 201 and again[1].get("idempotent-replayed") == "true"
    assert again[2] == first[2]
    other = send("order-7", content[::-1])  # same key, another file
    assert other[0] == 422, other
    fresh = send("order-8", content[::-1])  # a new key: every check runs
    assert fresh[0] == 402, fresh
    assert on_disk(tmp_path) == stored and api.balance() == 0


def test_a_reupload_is_bounded_by_the_original_before_it_is_stored(
    server: TsaServer, tmp_path: Path
) -> None:
    api = new_org(server, "Reupload", units=3)
    content = secrets.token_bytes(20_000)
    status, body = client.upload(server.url, api.key, FORM, [("r.bin", [content])])
    assert status == 201, body
    path = f"/api/v1/items/{body['items'][0]['id']}"
    assert api.post(path + "/delete-original", {"confirm_downloaded": True})[0] == 200
    empty = on_disk(tmp_path)
    assert empty == []

    def raw_reupload(length: int | None, data: bytes) -> tuple[int, dict] | None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            framing = f"Content-Length: {length}" if length else "Transfer-Encoding: chunked"
            sock.sendall(
                (
                    f"POST {path}/reupload HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {api.key}\r\n"
                    f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
                ).encode()
            )
            if data:
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n\r\n")
            try:
                reply = sock.recv(65536).decode()
            except TimeoutError:
                return None
        head, _, text = reply.partition("\r\n\r\n")
        return int(head.split()[1]), json.loads(text or "{}")

    # announced longer than the original: refused before a byte is read
    answer = raw_reupload(len(content) + 1, b"")
    assert answer is not None and answer[0] == 422 and "20000 bytes" in answer[1]["error"]
    # more bytes than the original, unannounced: 413, nothing kept
    assert raw_reupload(None, content + b"more")[0] == 413
    # the original's size, other bytes: 422, nothing kept
    assert raw_reupload(None, content[::-1])[0] == 422
    assert on_disk(tmp_path) == empty and api.balance() == 2
    assert raw_reupload(None, content)[0] == 200 and api.balance() == 1
    assert [p for p in on_disk(tmp_path) if p.endswith(sha(content))]
