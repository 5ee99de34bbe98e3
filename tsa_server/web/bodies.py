"""Decoding what clients send, bounded: the one JSON reader of the HTTP layer.

Every endpoint that takes JSON decodes it here, so a hostile body (deep nesting that
would exhaust Python's recursion limit, invalid UTF-8, a non-object) is a clear client
error in one place instead of a RecursionError and a 500 in each handler.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import ClientPayloadError, web

from tsa_server.web.errors import BadRequest

#: Deepest nesting of arrays and objects any request of this API needs (metadata items
#: are 3 levels deep); far below the interpreter's recursion limit.
MAX_JSON_DEPTH = 32


class JsonRejected(ValueError):
    """The body is not acceptable JSON; the message says why, for the client."""


def load_json(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``raw`` as JSON, refusing invalid text and nesting deeper than ``max_depth``."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JsonRejected(f"JSON nested deeper than {max_depth} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise JsonRejected(f"not valid JSON: {exc}") from None
    if _depth_exceeds(value, max_depth):
        raise JsonRejected(f"JSON nested deeper than {max_depth} levels")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Iterative, so the check itself cannot hit the recursion limit.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


#: Largest JSON body of the account endpoints: a key request is ~100 bytes.
MAX_JSON_BYTES = 16 * 1024
#: Most bytes taken from the connection's buffer at once.
READ_CHUNK = 1 << 16


class BodyTooLarge(BadRequest):
    """The body goes past the endpoint's limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it passes `limit` bytes (a chunked
    body has no Content-Length: at most one byte past the limit is read)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(min(READ_CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
    return b"".join(chunks)


async def read_json_object(request: web.Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The body as a JSON object: 415 unless application/json, 413 past `limit`, 400 when
    it is not one JSON object."""
    if request.content_type != "application/json":
        raise BadRequest(415, "send application/json")
    try:
        body = await read_bounded(request, limit)
    except (ConnectionError, ClientPayloadError):
        raise BadRequest(400, "incomplete request body") from None
    try:
        value = load_json(body) if body else {}
    except JsonRejected as exc:
        raise BadRequest(400, f"the body is {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return value
