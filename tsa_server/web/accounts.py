"""The account endpoints: who am I, and the organisation's API keys.

``GET /api/v1/account``      any valid key: its organisation, role and scopes
``GET /api/v1/keys``         scope read: every key of the organisation, never a secret
``POST /api/v1/keys``        scope admin: a new key; its secret is in this answer only
``DELETE /api/v1/keys/{id}`` scope admin (or the key itself): revoke, with every key it made

A key of another organisation is answered exactly like a key that does not exist (404).
A new key never holds more than the key that makes it (accounts/key_rules.py): no higher
role, no scope it lacks (403), no later expiry (403; none asked: the creator's).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from tsa_server.accounts.key_rules import Role, Scope, parse_role, parse_scopes
from tsa_server.accounts.keys import MAX_KEY_DAYS, ApiKey, key_summary
from tsa_server.accounts.times import ts, utc_now
from tsa_server.web.api import Body, Described, Operation, Param, json_response, read_body, ref
from tsa_server.web.auth import KEY_USE, PRINCIPAL, accounts, require


class NewKey(Body):
    """POST /api/v1/keys."""

    name: str = ""
    scopes: list[str]
    role: str = Role.MEMBER.value
    expires_in_days: Annotated[int, Field(ge=1, le=MAX_KEY_DAYS)] | None = None


def _summary(request: web.Request, key: ApiKey) -> dict[str, Any]:
    """key_summary with the key's newest use, also one not written to the database yet."""
    recorder = request.app.get(KEY_USE)
    return key_summary(key if recorder is None else recorder.last_use(key), utc_now())


@require()
async def account(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    service = accounts(request)
    org = await asyncio.to_thread(service.organisation, principal.org_id)
    key = await asyncio.to_thread(service.key, principal.org_id, principal.key_id)
    return web.json_response(
        {
            "organisation": {"id": org.id, "name": org.name, "created_at": ts(org.created_at)},
            "role": str(principal.role),
            "scopes": sorted(str(s) for s in principal.scopes),
            "key": _summary(request, key),
        }
    )


@require(Scope.READ)
async def list_keys(request: web.Request) -> web.Response:
    keys = await asyncio.to_thread(accounts(request).keys, request[PRINCIPAL].org_id)
    return web.json_response({"keys": [_summary(request, k) for k in keys]})


@require(Scope.ADMIN)
async def create_key(request: web.Request) -> web.Response:
    body = await read_body(request, NewKey)
    created = await asyncio.to_thread(
        accounts(request).create_key_as,
        request[PRINCIPAL],
        scopes=parse_scopes(body.scopes),
        role=parse_role(body.role),
        name=body.name,
        expires_in=None if body.expires_in_days is None else timedelta(days=body.expires_in_days),
    )
    return web.json_response(
        {
            "key": key_summary(created.key, utc_now()),
            "secret": created.secret,
            "note": "store the secret now: it is shown only once and cannot be recovered",
        },
        status=201,
    )


@require()
async def revoke_key(request: web.Request) -> web.Response:
    done = await asyncio.to_thread(
        accounts(request).revoke_key_as, request[PRINCIPAL], request.match_info["key_id"]
    )
    now = utc_now()
    return web.json_response(
        {
            "key": key_summary(done.key, now),
            "revoked_with": [key_summary(k, now) for k in done.cascaded],
        }
    )


def _errors(*codes: int) -> dict[str, object]:
    text = {400: "bad input", 401: "no or bad API key", 403: "not allowed (scope or owner)"}
    text[404] = "unknown"
    refusal = {400, 403}  # documented with the registry's refusal shape, as they always were
    return {
        str(c): json_response(ref("Refusal" if c in refusal else "Error"), text[c]) for c in codes
    }


_ANY_OBJECT = json_response({"type": "object"})
DESCRIBED = Described(
    operations=(
        Operation(
            "get",
            "/api/v1/account",
            "The key's organisation, role and scopes",
            {"200": _ANY_OBJECT, **_errors(401)},
        ),
        Operation(
            "get",
            "/api/v1/keys",
            "The organisation's API keys (read scope), never a secret",
            {"200": _ANY_OBJECT, **_errors(401, 403)},
        ),
        Operation(
            "post",
            "/api/v1/keys",
            "A new API key (admin scope); its secret is shown once. It holds no higher role, no "
            "scope and no later expiry than the calling key (403); without expires_in_days it "
            "inherits the calling key's expiry",
            {"201": _ANY_OBJECT, **_errors(400, 401, 403)},
            body=NewKey,
        ),
        Operation(
            "delete",
            "/api/v1/keys/{key_id}",
            "Revoke a key (admin scope, or the key itself) and every key it created, "
            "transitively (listed in revoked_with)",
            {"200": _ANY_OBJECT, **_errors(401, 403, 404)},
            params=(Param("key_id", "path"),),
        ),
    )
)
