"""Who is signed in, and the defences of every page form.

Session. The `tsa_session` cookie holds a random 256-bit session id (accounts/people.py
keeps only its SHA-256, with an expiry): HttpOnly, SameSite=Lax, Path=/, and Secure when
the server is reached over https (its [server] origin, or the request itself). Signing in
always issues a new id and ends the old session, so an id planted before sign-in (session
fixation) is never the signed-in one.

CSRF. Every form carries a synchronizer token: HMAC-SHA256 keyed with the session id (or,
before sign-in, with the random `tsa_pre` cookie's value), which only this browser holds
(HttpOnly) and another site can neither read nor set. Every POST of a page checks it
(`check_csrf`) before anything else; a missing or wrong one is a 403 page.

`next=` parameters are followed only to a path of this site (`local_path`): never to
another host, a scheme, or a protocol-relative URL.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from tsa_server.accounts.login_limits import LoginLimits
from tsa_server.accounts.membership import MembershipStore
from tsa_server.accounts.people import People, Person
from tsa_server.web.handlers import STATE

SESSION_COOKIE = "tsa_session"
PRE_COOKIE = "tsa_pre"
CSRF_FIELD = "csrf"
PEOPLE = web.AppKey("people", People)
MEMBERSHIP_STORE = web.AppKey("membership_store", MembershipStore)
#: Self sign-up's limiter, set only when [evidence] signup is on (web/pages/signup.py).
SIGNUP_LIMITS = web.AppKey("signup_limits", LoginLimits)
PERSON = web.RequestKey("person", object)  # Person | None once looked up
_PRE = web.RequestKey("pre_session", str)
_CSRF_LABEL = b"tsa-csrf-v1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CsrfRefused(Exception):
    """A page POST without the form's token."""


def secure(request: web.Request) -> bool:
    return request.secure or request.app[STATE].public_url.startswith("https://")


def people_of(request: web.Request) -> People | None:
    return request.app.get(PEOPLE)


async def person_of(request: web.Request) -> Person | None:
    """The signed-in person of this request (looked up once, off the event loop)."""
    if PERSON in request:
        found = request[PERSON]
        return found if isinstance(found, Person) else None
    people = people_of(request)
    session_id = request.cookies.get(SESSION_COOKIE, "")
    person = None
    if people is not None and session_id:
        person = await asyncio.to_thread(people.session, session_id)
    request[PERSON] = person
    return person


def _token(key: str) -> str:
    return hmac.new(key.encode("ascii", "replace"), _CSRF_LABEL, hashlib.sha256).hexdigest()


def _csrf_key(request: web.Request) -> str:
    found = request.get(PERSON)
    if isinstance(found, Person):
        return "s:" + request.cookies.get(SESSION_COOKIE, "")
    pre = request.get(_PRE) or request.cookies.get(PRE_COOKIE, "")
    if len(pre) < 32:
        pre = secrets.token_urlsafe(32)
        request[_PRE] = pre
    return "p:" + pre


def csrf_token(request: web.Request) -> str:
    return _token(_csrf_key(request))


def check_csrf(request: web.Request, sent: str | None) -> None:
    """Refuse the POST unless `sent` is this browser's token (CsrfRefused)."""
    if not sent or not hmac.compare_digest(sent.encode(), csrf_token(request).encode()):
        raise CsrfRefused()


def set_pre_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Give an anonymous visitor the cookie their forms' token is keyed with."""
    pre = request.get(_PRE)
    if pre is not None:
        response.set_cookie(
            PRE_COOKIE, pre, httponly=True, samesite="Lax", secure=secure(request), path="/"
        )


def set_session_cookie(request: web.Request, response: web.StreamResponse, sid: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        httponly=True,
        samesite="Lax",
        secure=secure(request),
        path="/",
        max_age=12 * 3600,
    )


def local_path(target: str | None, default: str = "/") -> str:
    """`target` when it is a path of this site, else `default` (no open redirects)."""
    if not target or len(target) > 500 or not target.isascii() or not target.isprintable():
        return default
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def page_context(request: web.Request) -> dict[str, Any]:
    found = request.get(PERSON)
    return {
        "person": found if isinstance(found, Person) else None,
        "csrf": csrf_token(request),
        "path": request.path_qs if local_path(request.path_qs) == request.path_qs else "/",
        "signup_open": SIGNUP_LIMITS in request.app,
    }


def signed_in(handler: Callable[[web.Request, Person], Awaitable[web.StreamResponse]]) -> Handler:
    """A page for signed-in people: others are sent to the sign-in page (and back)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        person = await person_of(request)
        if person is None:
            raise web.HTTPSeeOther("/signin?next=" + quote(local_path(request.path_qs), safe="/"))
        return await handler(request, person)

    return wrapped
