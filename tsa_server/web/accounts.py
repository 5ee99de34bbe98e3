"""The account endpoints: who am I, and the organisation's API keys.

``GET /api/v1/account``      any valid key: its organisation, role and scopes
``GET /api/v1/keys``         scope read: every key of the organisation, never a secret
``POST /api/v1/keys``        scope admin: a new key; its secret is in this answer only
``DELETE /api/v1/keys/{id}`` scope admin (or the key itself): revoke, with every key it made

A key of another organisation is answered exactly like a key that does not exist (404).
A new key never holds more than the key that makes it (evidence/key_rules.py): no higher
role, no scope it lacks (403), no later expiry (403; none asked: the creator's).
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from tsa_server.evidence.accounts import (
    MAX_KEY_DAYS,
    ApiKey,
    Role,
    Scope,
    key_summary,
    parse_role,
    parse_scopes,
)
from tsa_server.evidence.errors import InvalidInput
from tsa_server.evidence.times import ts, utc_now
from tsa_server.web.auth import KEY_USE, PRINCIPAL, accounts, read_json_object, require

_NEW_KEY_FIELDS = frozenset({"name", "scopes", "role", "expires_in_days"})


def _summary(request: web.Request, key: ApiKey) -> dict:
    """key_summary with the key's newest use, also one not written to the database yet."""
    recorder = request.app.get(KEY_USE)
    return key_summary(key if recorder is None else recorder.last_use(key), utc_now())


@require()
async def account(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    service = accounts(request)
    org = service.organisation(principal.org_id)
    key = service.key(principal.org_id, principal.key_id)
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
    keys = accounts(request).keys(request[PRINCIPAL].org_id)
    return web.json_response({"keys": [_summary(request, k) for k in keys]})


@require(Scope.ADMIN)
async def create_key(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    unknown = sorted(set(body) - _NEW_KEY_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}")
    name = body.get("name", "")
    if not isinstance(name, str):
        raise InvalidInput("name must be a string")
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidInput("scopes must be a list of scope names (timestamp, deposit, read, admin)")
    role = body.get("role", Role.MEMBER.value)
    if not isinstance(role, str):
        raise InvalidInput("role must be a string")
    days = body.get("expires_in_days")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_KEY_DAYS
    ):
        raise InvalidInput(f"expires_in_days must be an integer 1-{MAX_KEY_DAYS}")
    created = accounts(request).create_key_as(
        request[PRINCIPAL],
        scopes=parse_scopes(scopes),
        role=parse_role(role),
        name=name,
        expires_in=None if days is None else timedelta(days=days),
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
    done = accounts(request).revoke_key_as(request[PRINCIPAL], request.match_info["key_id"])
    now = utc_now()
    return web.json_response(
        {
            "key": key_summary(done.key, now),
            "revoked_with": [key_summary(k, now) for k in done.cascaded],
        }
    )
