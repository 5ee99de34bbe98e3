"""Signing in and out, and changing one's password (accounts/people.py decides; this
module only translates forms and cookies).

``GET  /signin``            the form (a signed-in person goes on to their files)
``POST /signin``            login + password -> a new session cookie, then `next`
``POST /signout``           ends the session
``GET|POST /account/password``  change the password (ends every other session)
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tsa_server.accounts.errors import InvalidAccountInput
from tsa_server.accounts.people import MAX_PASSWORD, Person, SignInLocked, SignInRefused
from tsa_server.web.errors import BadRequest
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import language, render, translate
from tsa_server.web.pages.security import (
    SESSION_COOKIE,
    check_csrf,
    local_path,
    people_of,
    person_of,
    set_session_cookie,
    signed_in,
)

_FORM_LIMIT = 4 * MAX_PASSWORD


async def form(request: web.Request) -> dict[str, str]:
    """An urlencoded page form (its CSRF token checked), as text fields."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadRequest(415, "send the page's form")
    if (request.content_length or 0) > _FORM_LIMIT:
        raise BadRequest(413, "the form is too large")
    fields = await request.post()
    values = {k: v for k, v in fields.items() if isinstance(v, str)}
    check_csrf(request, values.get("csrf"))
    return values


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


@page
async def signin_form(request: web.Request) -> web.StreamResponse:
    if await person_of(request) is not None:
        raise web.HTTPSeeOther(local_path(request.query.get("next"), "/files"))
    nxt = local_path(request.query.get("next"), "/files")
    return render(request, "signin.html", {"message": "", "login": "", "next": nxt})


@page
async def signin(request: web.Request) -> web.StreamResponse:
    people = people_of(request)
    if people is None:
        raise web.HTTPNotFound()
    await person_of(request)
    values = await form(request)
    login, nxt = values.get("login", ""), local_path(values.get("next"), "/files")
    lang = language(request)
    try:
        _, session_id = await asyncio.to_thread(
            people.sign_in, login, values.get("password", ""), _address(request)
        )
    except SignInLocked as exc:
        message = translate(lang, "Too many failed sign-ins. Try again in %(seconds)s seconds.")
        context = {"message": message % {"seconds": exc.seconds}, "login": login, "next": nxt}
        return render(request, "signin.html", context, status=429)
    except SignInRefused:
        message = translate(lang, "Wrong login or password.")
        return render(
            request, "signin.html", {"message": message, "login": login, "next": nxt}, status=401
        )
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # whatever session the browser had before ends: a new id was issued
        await asyncio.to_thread(people.sign_out, old)
    reply = web.HTTPSeeOther(nxt)
    set_session_cookie(request, reply, session_id)
    raise reply


@page
async def signout(request: web.Request) -> web.StreamResponse:
    people = people_of(request)
    await person_of(request)
    await form(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if people is not None and session_id:
        await asyncio.to_thread(people.sign_out, session_id)
    reply = web.HTTPSeeOther("/")
    reply.del_cookie(SESSION_COOKIE, path="/")
    raise reply


@page
@signed_in
async def password_form(request: web.Request, person: Person) -> web.StreamResponse:
    return render(request, "password.html", {"message": "", "ok": False})


@page
@signed_in
async def change_password(request: web.Request, person: Person) -> web.StreamResponse:
    people = people_of(request)
    assert people is not None
    values = await form(request)
    lang = language(request)
    new = values.get("new", "")
    if new != values.get("again"):
        message = translate(lang, "The two new passwords differ.")
        return render(request, "password.html", {"message": message, "ok": False}, status=400)
    try:
        session_id = await asyncio.to_thread(
            people.change_password, person, values.get("old", ""), new
        )
    except SignInRefused:
        message = translate(lang, "The current password is wrong.")
        return render(request, "password.html", {"message": message, "ok": False}, status=400)
    except InvalidAccountInput:
        message = translate(lang, "A password has 10 to 1024 characters.")
        return render(request, "password.html", {"message": message, "ok": False}, status=400)
    reply = web.HTTPSeeOther("/files")
    set_session_cookie(request, reply, session_id)
    raise reply
