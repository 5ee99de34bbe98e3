"""Self sign-up (注册), when the operator turns it on ([evidence] signup = true):

``GET  /signup``  the form: organisation name, your name, login (e-mail), password twice
``POST /signup``  a new organisation with you as its owner (accounts/membership.py
                  `sign_up`); you are signed in (a new session) and its page says so

Off (the default), both are 404 and no page links to them. Every POST checks the
form's CSRF token first (the anonymous `tsa_pre` cookie's), and is rate-limited by the
sign-in lock-out (accounts/login_limits.py) in a limiter of its own: every attempt
counts, successful or not, per login and per client address, so one address makes a
few organisations an hour at most and each costs one argon2 hash, off the event loop.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tsa_server.accounts.errors import AccountError
from tsa_server.accounts.login_limits import LoginLimits
from tsa_server.accounts.membership import sign_up
from tsa_server.accounts.people import normal_login
from tsa_server.web.auth import accounts
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.organisation import refusal
from tsa_server.web.pages.render import language, render, translate
from tsa_server.web.pages.security import (
    SESSION_COOKIE,
    SIGNUP_LIMITS,
    people_of,
    person_of,
    set_session_cookie,
)
from tsa_server.web.pages.signin import form

_FIELDS = ("organisation", "name", "login")


def _limits(request: web.Request) -> LoginLimits:
    limits = request.app.get(SIGNUP_LIMITS)
    if limits is None or people_of(request) is None:
        raise web.HTTPNotFound()
    return limits


def _form_page(
    request: web.Request, values: dict[str, str], message: str = "", status: int = 200
) -> web.Response:
    context = {"message": message, **{k: values.get(k, "") for k in _FIELDS}}
    return render(request, "signup.html", context, status=status)


@page
async def signup_form(request: web.Request) -> web.StreamResponse:
    _limits(request)
    if await person_of(request) is not None:
        raise web.HTTPSeeOther("/organisation")
    return _form_page(request, {})


@page
async def signup(request: web.Request) -> web.StreamResponse:
    limits = _limits(request)
    people = people_of(request)
    assert people is not None
    await person_of(request)
    values = await form(request)
    lang = language(request)
    address = request.remote or "unknown"
    login = values.get("login", "")
    try:
        account = normal_login(login)
    except AccountError:
        account = login[:200]
    wait = limits.locked(account, address)
    if wait is not None:
        seconds = max(1, int(wait.total_seconds() + 0.999))
        message = translate(lang, "Too many sign-ups from here. Try again in %(seconds)s seconds.")
        return _form_page(request, values, message % {"seconds": seconds}, 429)
    limits.failed(account, address)  # every attempt counts (module docstring)
    if values.get("password", "") != values.get("again"):
        return _form_page(request, values, translate(lang, "The two passwords differ."), 400)
    try:
        await asyncio.to_thread(
            sign_up,
            accounts(request),
            people,
            organisation=values.get("organisation", ""),
            name=values.get("name", ""),
            login=login,
            password=values.get("password", ""),
        )
        _, session_id = await asyncio.to_thread(
            people.sign_in, login, values.get("password", ""), address
        )
    except AccountError as exc:
        message, status = refusal(request, exc)
        return _form_page(request, values, message, status)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await asyncio.to_thread(people.sign_out, old)
    reply = web.HTTPSeeOther("/organisation?welcome=1")  # the page says what happened
    set_session_cookie(request, reply, session_id)
    raise reply
