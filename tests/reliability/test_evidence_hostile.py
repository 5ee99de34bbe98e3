"""Hostile uploads to the evidence API of the real server: path tricks in file names,
oversized uploads (also after a good file in the same request), wrong media types and
broken multipart bodies. A refused upload stores nothing: no blob, no temporary file,
no item, no credit spent; an accepted name is metadata and never becomes a path."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.support.tsa import TsaServer, evidence_settings
from tests.web.test_evidence_http import FORM, Api, new_org
from tsa_server.evidence import client

LIMIT = 64 * 1024  # [evidence] max_upload_bytes of these tests


@pytest.fixture
def server(make_server, tmp_path: Path) -> TsaServer:
    return make_server(evidence=evidence_settings(tmp_path, max_upload_bytes=LIMIT)).start()


@pytest.fixture
def api(server: TsaServer) -> Api:
    return new_org(server, "Hostile", units=20)


def blob_files(tmp_path: Path) -> list[str]:
    root = tmp_path / "blobs"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def stored(api: Api, tmp_path: Path) -> tuple:
    """What a refused upload must leave unchanged."""
    total = api.get("/api/v1/items")[2]["total"]
    return blob_files(tmp_path), total, api.balance()


def multipart(parts: list[tuple[str, str, bytes]], boundary: str = "b0undary") -> bytes:
    """parts: (Content-Disposition parameters, Content-Type, body)."""
    out = b""
    for disposition, media, body in parts:
        out += (
            (
                f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n"
                f"Content-Type: {media}\r\n\r\n"
            ).encode()
            + body
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def post_upload(api: Api, body: bytes, media: str = "multipart/form-data; boundary=b0undary"):
    return api.call("POST", "/api/v1/deposits/upload", body, {"Content-Type": media}, raw=True)


def metadata_part() -> tuple[str, str, bytes]:
    return ('name="metadata"', "application/json", json.dumps(FORM).encode())


TRICKS = (
    "../../../../../tmp/{tag}",
    "..\\..\\..\\{tag}",
    "/etc/{tag}",
    "C:\\Windows\\{tag}",
    "%2e%2e%2f%2e%2e%2f{tag}",
    "./.././{tag}",
)


def test_path_tricks_in_file_names_never_become_paths(api: Api, tmp_path: Path) -> None:
    for trick in TRICKS:
        tag = f"escape-{secrets.token_hex(6)}"
        name = trick.format(tag=tag)
        data = b"a file with a tricky name " + tag.encode()
        status, body = client.upload(api.server.url, api.key, FORM, [(name, [data])])
        assert status == 201, body
        kept = body["items"][0].get("file_name", "")
        assert "/" not in kept and "\\" not in kept and kept.endswith(tag), (trick, kept)
        # the bytes live only under their hash in the blob store (<dir>/ab/cd/<sha256>)
        for path in blob_files(tmp_path):
            parts = Path(path).parts
            assert len(parts) == 3 and len(parts[2]) == 64, path
        for root in (tmp_path, Path("/tmp"), Path("/etc"), Path("/")):
            assert not (root / tag).exists(), f"{root / tag} was written"
        assert not list(tmp_path.rglob(f"*{tag}*"))


def test_unprintable_file_name_is_refused_and_nothing_stored(api: Api, tmp_path: Path) -> None:
    before = stored(api, tmp_path)
    body = multipart(
        [
            metadata_part(),
            ('name="file"; filename="evil\x7fname.txt"', "text/plain", b"some bytes"),
        ]
    )
    status, _, reply = post_upload(api, body)
    assert 400 <= status < 500, reply
    assert stored(api, tmp_path) == before


def test_oversized_upload_is_refused_and_nothing_stored(api: Api, tmp_path: Path) -> None:
    before = stored(api, tmp_path)
    big = [b"\x55" * 16384] * (LIMIT // 16384 * 3)
    status, body = client.upload(api.server.url, api.key, FORM, [("big.bin", big)])
    assert status == 413, body
    assert stored(api, tmp_path) == before


def test_oversized_second_file_leaves_not_even_the_first(api: Api, tmp_path: Path) -> None:
    before = stored(api, tmp_path)
    good = ("good.txt", [b"a small good file " + secrets.token_bytes(8)])
    big = ("big.bin", [b"\xaa" * 16384] * (LIMIT // 16384 * 2))
    status, body = client.upload(api.server.url, api.key, FORM, [good, big])
    assert status == 413, body
    assert stored(api, tmp_path) == before


MEDIA = (
    "text/plain",
    "application/json",
    "application/octet-stream",
    "multipart/mixed; boundary=b0undary",
    "image/png",
)


def test_wrong_media_types_are_refused_and_nothing_stored(api: Api, tmp_path: Path) -> None:
    before = stored(api, tmp_path)
    body = multipart([metadata_part(), ('name="file"; filename="f.txt"', "text/plain", b"x")])
    for media in MEDIA:
        status, _, reply = post_upload(api, body, media)
        assert status == 415, (media, reply)
    assert stored(api, tmp_path) == before


BROKEN = {
    "truncated": b'--b0undary\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}',
    "no-boundary": b"no boundary at all",
    "file-first": multipart([('name="file"; filename="a.txt"', "text/plain", b"before metadata")]),
    "unknown-part": multipart([metadata_part(), ('name="other"', "text/plain", b"unknown")]),
    "no-file": multipart([metadata_part()]),
}


def test_broken_multipart_is_refused_and_nothing_stored(api: Api, tmp_path: Path) -> None:
    before = stored(api, tmp_path)
    for name, body in BROKEN.items():
        status, _, reply = post_upload(api, body)
        assert 400 <= status < 500, (name, reply)
    assert stored(api, tmp_path) == before


DEEP = b"[" * 16384 + b"]" * 16384  # 16 KB of nesting: RecursionError in json.loads


def test_deeply_nested_json_is_a_client_error(api: Api, tmp_path: Path) -> None:
    """Issue 13, item 13: the deposit body and the upload's metadata part are decoded by
    the bounded reader (web/bodies.py): 4xx, one log line, never a 500 or a traceback."""
    before = stored(api, tmp_path)
    deep_object = b'{"a":' * 5000 + b"1" + b"}" * 5000
    for body in (DEEP, deep_object, b'{"items": ' + DEEP + b"}"):
        status, _, reply = api.call(
            "POST", "/api/v1/deposits", body, {"Content-Type": "application/json"}, raw=True
        )
        assert status == 400 and b"nested deeper" in reply, (status, reply[:200])
    for metadata in (DEEP, deep_object):
        upload = multipart(
            [
                ('name="metadata"', "application/json", metadata),
                ('name="file"; filename="f.txt"', "text/plain", b"never stored"),
            ]
        )
        status, _, reply = post_upload(api, upload)
        assert status == 422 and b"nested deeper" in reply, (status, reply[:200])
    assert stored(api, tmp_path) == before
    log = api.server.log()
    assert "Traceback" not in log and "RecursionError" not in log
