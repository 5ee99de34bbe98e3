"""The pages' static files (pages/static/): served at /static/<name>.<hash>.<ext>, the
hash being the first 12 hex digits of the content's SHA-256, so a name never changes
meaning and browsers may keep a file for a year (`immutable`). Templates ask
`asset("site.css")` for the current name. Files are read once, at import.
"""

from __future__ import annotations

import hashlib
import mimetypes
from importlib import resources

from aiohttp import web

LONG_CACHE = "public, max-age=31536000, immutable"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}


def _load() -> tuple[dict[str, str], dict[str, tuple[bytes, str]]]:
    names: dict[str, str] = {}
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("tsa_server.web.pages").joinpath("static").iterdir():
        if not entry.is_file() or entry.name.startswith("."):
            continue
        body = entry.read_bytes()
        stem, dot, ext = entry.name.rpartition(".")
        digest = hashlib.sha256(body).hexdigest()[:12]
        served = f"{stem}.{digest}.{ext}" if dot else f"{entry.name}.{digest}"
        kind = _TYPES.get("." + ext) or mimetypes.guess_type(entry.name)[0]
        names[entry.name] = served
        files[served] = (body, kind or "application/octet-stream")
    return names, files


NAMES, FILES = _load()


def url(name: str) -> str:
    """The fingerprinted URL of a static file (KeyError for an unknown one)."""
    return "/static/" + NAMES[name]


async def static(request: web.Request) -> web.Response:
    found = FILES.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(text="no such file\n")
    body, kind = found
    charset = "utf-8" if kind.startswith("text/") else None
    return web.Response(
        body=body,
        content_type=kind,
        charset=charset,
        headers={"Cache-Control": LONG_CACHE, "X-Content-Type-Options": "nosniff"},
    )
