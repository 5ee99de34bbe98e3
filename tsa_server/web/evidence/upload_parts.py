"""The multipart body of POST /api/v1/deposits/upload, read part by part with every
bound checked before the bytes it concerns are stored (issue 13, item 6).

The metadata part comes first (at most MAX_METADATA_BYTES, JSON through web/bodies.py).
Its optional `items` list (one object per file) declares how many files follow: that
many units are claimed at once, and [evidence] max_batch_items checked, before the
first file part. Without it, each file part claims its unit as it arrives (what
`curl -F metadata=... -F file=@a -F file=@b` sends). A file is then streamed into the
blob store's tmp/ within what the request has left of max_upload_request_bytes
(uploads.UploadSession); nothing is installed under its key here.

For the retry of an idempotent request that was already answered, files are only
hashed (`store=False`): the retry is recognised by its digests and nothing is written.
The client's file name is metadata (its last path component, printable, at most 255
characters) and never becomes a path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from tsa_server.evidence.uploads import UploadBody, UploadedFile, UploadSession, file_name
from tsa_server.fees import FieldError
from tsa_server.fees.deposit import MAX_CHARS
from tsa_server.web.bodies import JsonRejected, load_json
from tsa_server.web.errors import BadRequest

#: Largest metadata part of a multipart upload.
MAX_METADATA_BYTES = 1 << 20


def media_type(part: BodyPartReader) -> str:
    value = part.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
    if len(value) > MAX_CHARS["media_type"] or not value.isprintable() or "/" not in value:
        return "application/octet-stream"
    return value.lower()


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise BadRequest(413, f"the metadata part exceeds {limit} bytes")
    return bytes(data)


def _metadata(data: bytes) -> dict[str, Any]:
    try:
        value = load_json(data) if data.strip() else {}
    except JsonRejected as exc:
        raise FieldError({"metadata": f"must be a JSON object ({exc})"}) from None
    if not isinstance(value, dict):
        raise FieldError({"metadata": "must be a JSON object"})
    return value


async def read_upload(
    request: web.Request,
    session: UploadSession,
    *,
    max_items: int,
    store: bool,
    check_metadata: Callable[[dict[str, Any]], None],
) -> UploadBody:
    """The metadata and the files of the request (module docstring). FieldError (also
    from `check_metadata`, before any file), BadRequest, InsufficientCredits /
    MonthlyQuotaExceeded (claims) or BlobTooLarge before anything beyond a bound is
    kept."""
    reader = await request.multipart()
    body: UploadBody | None = None
    while True:
        part = await reader.next()
        if part is None:
            break
        if isinstance(part, MultipartReader):
            raise BadRequest(400, "nested multipart is not accepted")
        if body is None:
            if part.name != "metadata":
                raise FieldError({"metadata": "the first part must be the metadata"})
            raw = await _read_part(part, MAX_METADATA_BYTES)
            session.received += len(raw)
            metadata = _metadata(raw)
            check_metadata(metadata)
            body = await _declared(metadata, session, max_items, store)
            continue
        if part.name is None:
            raise FieldError(
                {
                    "part": "unreadable Content-Disposition: quote the file name, or give it "
                    "as file_name in the metadata's items"
                }
            )
        if part.name != "file":
            raise FieldError({part.name[:40]: "unknown part (send file parts)"})
        count = len(body.files) + 1
        if count > max_items:
            raise FieldError({"file": f"at most {max_items} files per request"})
        if body.per_file and count > len(body.per_file):
            raise FieldError({"items": f"{len(body.per_file)} entries for more files"})
        if store and count > session.claimed:
            await session.claim(1)  # before the file's first byte
        name, media = file_name(part.filename), media_type(part)
        if store:
            ref = await session.stage(part)
            body.files.append(UploadedFile(name, media, ref.sha256, ref))
        else:
            sha256, _ = await session.hash(part)
            body.files.append(UploadedFile(name, media, sha256, None))
    if body is None:
        raise FieldError({"metadata": "required (the first part)"})
    if not body.files:
        raise FieldError({"file": "at least one file part"})
    if body.per_file and len(body.per_file) != len(body.files):
        raise FieldError({"items": f"{len(body.per_file)} entries for {len(body.files)} files"})
    return body


async def _declared(
    metadata: dict[str, Any], session: UploadSession, max_items: int, store: bool
) -> UploadBody:
    """The metadata's `items` declare the files to come: bound and claim them now."""
    per_file = metadata.get("items", [])
    if not isinstance(per_file, list):
        raise FieldError({"items": "a list with one object per file"})
    if len(per_file) > max_items:
        raise FieldError({"items": f"at most {max_items} files per request"})
    if store and len(per_file) > session.claimed:
        await session.claim(len(per_file) - session.claimed)
    return UploadBody(metadata, per_file)
