"""The public pages that need no sign-in: the landing page (GET /) and the language
switch (GET /lang/{zh|en}?next=/path, which sets the `lang` cookie and goes back to a
path of this site only)."""

from __future__ import annotations

from aiohttp import web

from tsa_server.web.handlers import STATE
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import LANG_COOKIE, LANGUAGES, render
from tsa_server.web.pages.security import local_path, person_of, secure


@page
async def landing(request: web.Request) -> web.StreamResponse:
    """What this TSA is and how to use it, with its real public URL."""
    await person_of(request)
    url = request.app[STATE].public_url.rstrip("/")
    return render(request, "landing.html", {"url": url})


async def switch_language(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    if lang not in LANGUAGES:
        raise web.HTTPNotFound(text="no such language\n")
    reply = web.HTTPSeeOther(local_path(request.query.get("next")))
    reply.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=365 * 86400,
        samesite="Lax",
        secure=secure(request),
        httponly=True,
        path="/",
    )
    raise reply
