"""Organisation settings (机构设置) for owners and admins, read-only for now:

``GET /organisation``  the people and their roles, the API keys (never a secret: name,
                       role, scopes, state, dates, as GET /api/v1/keys lists them) and
                       the webhook endpoint (as GET /api/v1/webhook shows it)

Everything is read through the accounts and evidence services with the person's
organisation and the admin scope, as the JSON API does; members and auditors get 403.
Making keys, changing roles and setting the webhook stay with the API and the CLI.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tsa_server.accounts.key_rules import Scope
from tsa_server.accounts.keys import key_summary
from tsa_server.accounts.people import Person
from tsa_server.accounts.times import utc_now
from tsa_server.evidence.webhooks import webhook_json
from tsa_server.web.auth import accounts
from tsa_server.web.evidence.context import service_of
from tsa_server.web.pages.guard import page
from tsa_server.web.pages.render import render
from tsa_server.web.pages.security import signed_in


@page
@signed_in
async def settings(request: web.Request, person: Person) -> web.StreamResponse:
    person.principal.require(Scope.ADMIN)
    org = person.member.org_id
    service = service_of(request)
    registry = accounts(request)

    def read() -> dict[str, Any]:
        now = utc_now()
        row = service.store.webhook(org)
        return {
            "organisation": registry.organisation(org),
            "members": registry.store.members(org),
            "keys": [key_summary(k, now) for k in registry.keys(org)],
            "webhook": None if row is None else webhook_json(row),
        }

    return render(request, "organisation.html", await asyncio.to_thread(read))
