"""API keys and the webhook endpoint on the organisation page, for its owners and admins:

``POST /organisation/keys``                  a new key (name, role, scopes, lifetime):
                                             `Accounts.create_key_as` with the person's
                                             principal, as POST /api/v1/keys; its secret
                                             is on the answer page, once
``POST /organisation/keys/{key_id}/revoke``  `Accounts.revoke_key_as`, as DELETE
                                             /api/v1/keys/{id} (with the keys it made)
``POST /organisation/webhook``               set the URL: evidence/webhook_endpoint.py,
                                             the rules of PUT /api/v1/webhook; the new
                                             signing secret on the answer page, once
``POST /organisation/webhook/remove``        remove it

A key never holds more than the person who makes it (key_rules.check_grant: no higher
role, no scope the person's role lacks). A secret is in the body of one answer only:
never in a URL, a log line or a later page (every page is Cache-Control: no-store).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web

from tsa_server.accounts.errors import AccountError, InvalidAccountInput
from tsa_server.accounts.key_rules import Scope, parse_role, parse_scopes
from tsa_server.accounts.keys import MAX_KEY_DAYS
from tsa_server.accounts.people import Person
from tsa_server.evidence import webhook_endpoint
from tsa_server.evidence.webhooks import WebhookSettings
from tsa_server.fees import FieldError
from tsa_server.web.auth import accounts
from tsa_server.web.evidence.context import DISPATCHER, service_of
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.organisation import done_page, refusal, settings_page
from tsa_server.web.pages.render import language, translate
from tsa_server.web.pages.security import signed_in
from tsa_server.web.pages.signin import form


def _expires_in(text: str) -> timedelta | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_KEY_DAYS:
        raise InvalidAccountInput(f"a key lives 1 to {MAX_KEY_DAYS} days, or until revoked")
    return timedelta(days=int(text))


@page
@signed_in
async def create_key(request: web.Request, person: Person) -> web.StreamResponse:
    await form(request)
    fields = await request.post()  # cached: the scopes are repeated fields
    lang = language(request)
    scopes = [v for v in fields.getall("scopes", []) if isinstance(v, str)]
    try:
        created = await asyncio.to_thread(
            accounts(request).create_key_as,
            person.principal,
            scopes=parse_scopes(scopes) if scopes else frozenset(),
            role=parse_role(str(fields.get("role", ""))),
            name=str(fields.get("name", "")),
            expires_in=_expires_in(str(fields.get("expires_days", ""))),
        )
    except AccountError as exc:
        message, status = refusal(request, exc)
        return await settings_page(request, person, message=message, status=status)
    key = created.key
    text = translate(lang, "The %(role)s key %(id)s was made with the scopes %(scopes)s.")
    scope_list = ", ".join(sorted(key.scopes))
    message = text % {"role": translate(lang, key.role), "id": key.id, "scopes": scope_list}
    return done_page(request, translate(lang, "API key made"), message, secret=created.secret)


@page
@signed_in
async def revoke_key(request: web.Request, person: Person) -> web.StreamResponse:
    await form(request)
    lang = language(request)
    key_id = request.match_info["key_id"]
    try:
        done = await asyncio.to_thread(accounts(request).revoke_key_as, person.principal, key_id)
    except AccountError as exc:
        message, status = refusal(request, exc)
        return await settings_page(request, person, message=message, status=status)
    message = translate(lang, "The key %(id)s was revoked: it is refused from now on.")
    revoked = tuple(k.id for k in done.cascaded)
    return done_page(
        request,
        translate(lang, "API key revoked"),
        message % {"id": done.key.id},
        revoked=revoked,
    )


def _settings(request: web.Request) -> WebhookSettings:
    dispatcher = request.app.get(DISPATCHER)
    return dispatcher.settings if dispatcher is not None else WebhookSettings()


@page
@signed_in
async def set_webhook(request: web.Request, person: Person) -> web.StreamResponse:
    values = await form(request)
    lang = language(request)
    person.principal.require(Scope.ADMIN)
    service = service_of(request)
    try:
        result = await webhook_endpoint.set_webhook(
            service, _settings(request), person.member.org_id, values.get("url", "").strip()
        )
    except (AccountError, FieldError) as exc:
        message, status = refusal(request, exc)
        return await settings_page(request, person, message=message, status=status)
    text = translate(lang, "Notices are now sent to %(url)s, signed with the secret below.")
    return done_page(
        request,
        translate(lang, "Webhook set"),
        text % {"url": result.webhook["url"]},
        secret=result.secret,
    )


@page
@signed_in
async def remove_webhook(request: web.Request, person: Person) -> web.StreamResponse:
    await form(request)
    lang = language(request)
    person.principal.require(Scope.ADMIN)
    removed = await webhook_endpoint.remove_webhook(service_of(request), person.member.org_id)
    if not removed:
        message = translate(lang, "No webhook is set.")
        return await settings_page(request, person, message=message, status=404)
    message = translate(lang, "The webhook was removed: no more notices are sent.")
    return done_page(request, translate(lang, "Webhook removed"), message)
