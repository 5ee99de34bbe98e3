"""People and roles on the organisation page, for its owners and admins (the rules:
accounts/membership.py `Membership`, which this module only calls):

``POST /organisation/people``                     add a person: name, login, initial
                                                  password (twice) and role
``POST /organisation/people/{member_id}/role``    give a person another role
``GET  /organisation/people/{member_id}/remove``  the confirmation step
``POST /organisation/people/{member_id}/remove``  remove the person

Every POST checks the CSRF token first; a change answers with a page saying what it
did (and which API keys it revoked); a refusal is the organisation page with the reason.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tsa_server.accounts.errors import AccountError, MemberNotFound
from tsa_server.accounts.key_rules import Role, Scope, parse_role
from tsa_server.accounts.people import Person
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.organisation import done_page, membership, refusal, settings_page
from tsa_server.web.pages.render import language, render, translate
from tsa_server.web.pages.security import signed_in
from tsa_server.web.pages.signin import form


def _member_id(request: web.Request) -> str:
    member_id = request.match_info["member_id"]
    if not member_id.isascii() or not member_id.isprintable() or len(member_id) > 64:
        raise MemberNotFound("no such member")
    return member_id


def _role(values: dict[str, str]) -> Role:
    return parse_role(values.get("role", ""))


@page
@signed_in
async def add_person(request: web.Request, person: Person) -> web.StreamResponse:
    values = await form(request)
    lang = language(request)
    rules = membership(request)
    person.principal.require(Scope.ADMIN)  # before the form's own checks
    if values.get("password", "") != values.get("again"):
        message = translate(lang, "The two passwords differ.")
        return await settings_page(request, person, message=message, status=400)
    try:
        member = await asyncio.to_thread(
            rules.add_person,
            person.principal,
            name=values.get("name", ""),
            login=values.get("login", ""),
            password=values.get("password", ""),
            role=_role(values),
        )
    except AccountError as exc:
        message, status = refusal(request, exc)
        return await settings_page(request, person, message=message, status=status)
    text = translate(lang, "%(name)s was added as %(role)s and can sign in as %(login)s.")
    login = values.get("login", "").strip().casefold()
    message = text % {"name": member.name, "role": translate(lang, member.role), "login": login}
    return done_page(request, translate(lang, "Person added"), message)


@page
@signed_in
async def change_role(request: web.Request, person: Person) -> web.StreamResponse:
    values = await form(request)
    lang = language(request)
    try:
        change = await asyncio.to_thread(
            membership(request).change_role,
            person.principal,
            _member_id(request),
            _role(values),
        )
    except AccountError as exc:
        message, status = refusal(request, exc)
        return await settings_page(request, person, message=message, status=status)
    member = change.member
    text = translate(lang, "%(name)s now has the role %(role)s.")
    message = text % {"name": member.name, "role": translate(lang, member.role)}
    revoked = tuple(k.id for k in change.revoked)
    return done_page(request, translate(lang, "Role changed"), message, revoked=revoked)


@page
@signed_in
async def remove_form(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.ADMIN)
    rules = membership(request)
    member = await asyncio.to_thread(
        rules.accounts.store.member, person.member.org_id, _member_id(request)
    )
    if member is None:
        raise MemberNotFound("no such member")
    return render(request, "organisation_remove.html", {"member": member})


@page
@signed_in
async def remove_person(request: web.Request, person: Person) -> web.StreamResponse:
    await form(request)
    lang = language(request)
    try:
        change = await asyncio.to_thread(
            membership(request).remove, person.principal, _member_id(request)
        )
    except AccountError as exc:
        message, status = refusal(request, exc)
        return await settings_page(request, person, message=message, status=status)
    text = translate(lang, "%(name)s was removed: their sign-in and sessions have ended.")
    revoked = tuple(k.id for k in change.revoked)
    return done_page(
        request,
        translate(lang, "Person removed"),
        text % {"name": change.member.name},
        revoked=revoked,
    )
