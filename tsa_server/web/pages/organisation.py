"""Organisation settings (机构设置):

``GET /organisation``  the people and their roles, the API keys (never a secret: as
                       GET /api/v1/keys lists them) and, for owners and admins, the
                       webhook endpoint (as GET /api/v1/webhook shows it) with the forms
                       that change them (organisation_people.py, organisation_keys.py)

Members and auditors see the people and the keys read-only (the API lets their read
scope list keys), without forms or the webhook; the server refuses their changes
whatever a page shows (each change requires the admin scope in the use case).

`settings_page` is also the answer of a refused change: the same page with the reason,
translated when it is one of the rules' fixed texts, and the status web/errors.py gives
the error. `done_page` is the answer of a change: what happened.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tsa_server.accounts.errors import AccountError
from tsa_server.accounts.key_rules import ROLE_RANK, ROLE_SCOPES, Role, Scope
from tsa_server.accounts.keys import KEY_PREFIX, key_summary
from tsa_server.accounts.membership import Membership
from tsa_server.accounts.people import Person
from tsa_server.accounts.times import utc_now
from tsa_server.evidence.webhooks import webhook_json
from tsa_server.fees import FieldError
from tsa_server.web.auth import KEY_USE, accounts
from tsa_server.web.errors import error_response
from tsa_server.web.evidence.context import service_of
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import language, render, translate
from tsa_server.web.pages.security import MEMBERSHIP_STORE, people_of, signed_in


def membership(request: web.Request) -> Membership:
    people = people_of(request)
    store = request.app.get(MEMBERSHIP_STORE)
    if people is None or store is None:
        raise web.HTTPNotFound()
    return Membership(accounts(request), people, store)


def may_administer(person: Person) -> bool:
    return person.principal.has(Scope.ADMIN)


def grantable_roles(person: Person) -> list[str]:
    """The roles `person` may give (none above their own), highest first."""
    mine = ROLE_RANK[person.member.role]
    return [r.value for r in sorted(Role, key=lambda r: -ROLE_RANK[r]) if ROLE_RANK[r] <= mine]


def _read(request: web.Request, person: Person) -> dict[str, Any]:
    """Everything the page shows, read in a worker thread."""
    org = person.member.org_id
    registry = accounts(request)
    people = people_of(request)
    recorder = request.app.get(KEY_USE)
    admin = may_administer(person)
    service = service_of(request) if admin else None
    now = utc_now()
    members = registry.store.members(org)
    names = {f"person-{m.id}": m.name for m in members}
    logins = {}
    for m in members:
        row = people.store.person_of(m.id) if people is not None else None
        logins[m.id] = row["login"] if row else ""
    keys = []
    for key in registry.keys(org):
        shown = key_summary(key if recorder is None else recorder.last_use(key), now)
        shown["maker"] = names.get(key.created_by, "")
        shown["prefix"] = f"{KEY_PREFIX}_{key.id}_…"
        outranked = ROLE_RANK[key.role] > ROLE_RANK[person.member.role]
        shown["may_revoke"] = admin and shown["state"] == "active" and not outranked
        keys.append(shown)
    webhook = None
    if service is not None:
        row = service.store.webhook(org)
        webhook = None if row is None else webhook_json(row)
    return {
        "organisation": registry.organisation(org),
        "members": members,
        "logins": logins,
        "keys": keys,
        "webhook": webhook,
    }


async def settings_page(
    request: web.Request,
    person: Person,
    *,
    message: str = "",
    status: int = 200,
    good: bool = False,
) -> web.Response:
    person.principal.require(Scope.READ)
    context = await asyncio.to_thread(_read, request, person)
    admin = may_administer(person)
    mine = ROLE_SCOPES[person.member.role]
    context.update(
        admin=admin,
        me=person.member.id,
        my_rank=ROLE_RANK[person.member.role],
        rank={r.value: n for r, n in ROLE_RANK.items()},
        roles=grantable_roles(person) if admin else [],
        scopes=[s.value for s in Scope if s in mine],
        message=message,
        good=good,
    )
    return render(request, "organisation.html", context, status=status)


def refusal(request: web.Request, exc: AccountError | FieldError) -> tuple[str, int]:
    """The reader's text and the status of a refused change."""
    lang = language(request)
    if isinstance(exc, FieldError):
        reasons = "; ".join(exc.fields.values())
        return translate(lang, "The webhook URL was refused:") + " " + reasons, 422
    return translate(lang, str(exc)), error_response(exc).status


def done_page(
    request: web.Request,
    title: str,
    message: str,
    *,
    secret: str = "",
    revoked: tuple[str, ...] = (),
    status: int = 200,
) -> web.Response:
    """What a change did (`title` and `message` already in the reader's language). A
    page with a secret is never stored by the browser or a proxy (no-store, as every
    page) and the secret is in its body only."""
    context = {"title": title, "message": message, "secret": secret, "revoked": revoked}
    return render(request, "organisation_done.html", context, status=status)


@page
@signed_in
async def settings(request: web.Request, person: Person) -> web.StreamResponse:
    if request.query.get("welcome") == "1":  # after sign-up (signup.py): a fixed text
        lang = language(request)
        welcome = translate(lang, "Your organisation was created and you are its owner.")
        return await settings_page(request, person, message=welcome, good=True)
    return await settings_page(request, person)
