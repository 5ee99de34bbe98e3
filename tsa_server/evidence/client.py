"""A small client of the deposit API (`tsa evidence deposit`): JSON calls and a streamed
multipart upload that never holds a whole file in memory (chunked transfer encoding,
the body produced a chunk at a time from the files or iterables given)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from tsa_server.evidence.errors import EvidenceError

CHUNK = 1 << 20


class Unreachable(EvidenceError):
    """The server did not answer: the message names the URL tried."""


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout), parts.path or "/"


def call(
    url: str,
    key: str | None,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 300.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request; an iterable body is sent chunked. (status, headers, body)."""
    conn, base = _connection(url, timeout)
    headers = dict(headers or {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    target = base.rstrip("/") + "/" + path.lstrip("/")
    try:
        chunked = body is not None and not isinstance(body, bytes)
        conn.request(method, target, body=body, headers=headers, encode_chunked=chunked)
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    except OSError as exc:
        raise Unreachable(
            f"cannot reach the server at {url}: {exc.strerror or exc} (is `tsa serve` "
            "running there? --url or [server] in --config name it)"
        ) from None
    finally:
        conn.close()


def _json(status: int, raw: bytes) -> tuple[int, dict[str, Any]]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = {"error": raw[:200].decode(errors="replace")}
    return status, value if isinstance(value, dict) else {"value": value}


def post_json(url: str, key: str, path: str, value: Any) -> tuple[int, dict[str, Any]]:
    status, _, raw = call(
        url, key, "POST", path, json.dumps(value).encode(), {"Content-Type": "application/json"}
    )
    return _json(status, raw)


def multipart(
    metadata: dict[str, Any],
    files: Sequence[tuple[str, Iterable[bytes]]],
    boundary: str,
) -> Iterator[bytes]:
    """The multipart/form-data body, produced lazily: metadata part, then file parts."""
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n'
        f"Content-Type: application/json\r\n\r\n"
    ).encode()
    yield json.dumps(metadata).encode()
    for name, chunks in files:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        yield (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{quoted}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        yield from chunks
    yield f"\r\n--{boundary}--\r\n".encode()


def read_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def upload(
    url: str,
    key: str,
    metadata: dict[str, Any],
    files: Sequence[str | tuple[str, Iterable[bytes]]],
) -> tuple[int, dict[str, Any]]:
    """POST /api/v1/deposits/upload: stored deposits of paths or (name, chunks) pairs."""
    pairs = [(os.path.basename(f), read_chunks(f)) if isinstance(f, str) else f for f in files]
    boundary = "tsa-" + secrets.token_hex(16)
    status, _, raw = call(
        url,
        key,
        "POST",
        "api/v1/deposits/upload",
        multipart(metadata, pairs, boundary),
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    return _json(status, raw)
