"""The organisation's people over the JSON API, for the operator's and owners' tools (the
rules: accounts/membership.py `Membership`, the same the organisation page calls):

``GET    /api/v1/members``                 scope read: every member, with role
``POST   /api/v1/members``                 scope admin: a person who signs in (name,
                                           login, initial password, role)
``PUT    /api/v1/members/{member_id}/role`` scope admin: another role
``DELETE /api/v1/members/{member_id}``      scope admin: remove, with the keys they made

Nobody gives a role above the calling key's, nor acts on a member above it (403); the
last owner stays (409). The initial password is never echoed nor logged.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from tsa_server.accounts.errors import MemberNotFound
from tsa_server.accounts.key_rules import Role, Scope, parse_role
from tsa_server.accounts.keys import MAX_NAME_CHARS, Member, key_summary
from tsa_server.accounts.times import ts, utc_now
from tsa_server.web.api import Body, Described, Operation, Param, json_response, read_body, ref
from tsa_server.web.auth import PRINCIPAL, accounts, require
from tsa_server.web.pages.organisation import membership


class NewMember(Body):
    """POST /api/v1/members."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
    login: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    role: str = Role.MEMBER.value

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return f"NewMember(name={self.name!r}, login={self.login!r}, role={self.role!r})"


class NewRole(Body):
    """PUT /api/v1/members/{member_id}/role."""

    role: str


def _member(member: Member) -> dict[str, Any]:
    return {
        "id": member.id,
        "name": member.name,
        "role": str(member.role),
        "created_at": ts(member.created_at),
    }


def _member_id(request: web.Request) -> str:
    member_id = request.match_info["member_id"]
    if not member_id.isascii() or not member_id.isprintable() or len(member_id) > 64:
        raise MemberNotFound("no such member")
    return member_id


@require(Scope.READ)
async def list_members(request: web.Request) -> web.Response:
    members = await asyncio.to_thread(accounts(request).store.members, request[PRINCIPAL].org_id)
    return web.json_response({"members": [_member(m) for m in members]})


@require(Scope.ADMIN)
async def add_member(request: web.Request) -> web.Response:
    body = await read_body(request, NewMember)
    member = await asyncio.to_thread(
        membership(request).add_person,
        request[PRINCIPAL],
        name=body.name,
        login=body.login,
        password=body.password,
        role=parse_role(body.role),
    )
    return web.json_response({"member": _member(member)}, status=201)


@require(Scope.ADMIN)
async def set_role(request: web.Request) -> web.Response:
    member_id = _member_id(request)
    body = await read_body(request, NewRole)
    done = await asyncio.to_thread(
        membership(request).change_role, request[PRINCIPAL], member_id, parse_role(body.role)
    )
    now = utc_now()
    return web.json_response(
        {"member": _member(done.member), "revoked": [key_summary(k, now) for k in done.revoked]}
    )


@require(Scope.ADMIN)
async def remove_member(request: web.Request) -> web.Response:
    member_id = _member_id(request)
    done = await asyncio.to_thread(membership(request).remove, request[PRINCIPAL], member_id)
    now = utc_now()
    return web.json_response(
        {
            "removed": _member(done.member),
            "revoked": [key_summary(k, now) for k in done.revoked],
        }
    )


_ANY_OBJECT = json_response({"type": "object"})
_ERRORS = {
    "400": json_response(ref("Refusal"), "bad input"),
    "401": json_response(ref("Error"), "no or bad API key"),
    "403": json_response(ref("Refusal"), "not allowed: scope, or a role above the key's"),
}
_MEMBER = (Param("member_id", "path"),)
DESCRIBED = Described(
    operations=(
        Operation(
            "get",
            "/api/v1/members",
            "The organisation's members and their roles (read scope)",
            {"200": _ANY_OBJECT, **_ERRORS},
        ),
        Operation(
            "post",
            "/api/v1/members",
            "A new member who signs in to the web pages (admin scope): no role above the "
            "calling key's (403); a login taken is a 409",
            {"201": _ANY_OBJECT, **_ERRORS, "409": json_response(ref("Error"), "login taken")},
            body=NewMember,
        ),
        Operation(
            "put",
            "/api/v1/members/{member_id}/role",
            "Give a member another role (admin scope); the keys they made that the new role "
            "could not make are revoked (listed); the last owner keeps the role (409)",
            {
                "200": _ANY_OBJECT,
                **_ERRORS,
                "404": json_response(ref("Error"), "unknown"),
                "409": json_response(ref("Error"), "the last owner"),
            },
            body=NewRole,
            params=_MEMBER,
        ),
        Operation(
            "delete",
            "/api/v1/members/{member_id}",
            "Remove a member (admin scope) with every key they made; not oneself (403), not "
            "the last owner nor a member the operator's keys name (409)",
            {
                "200": _ANY_OBJECT,
                **_ERRORS,
                "404": json_response(ref("Error"), "unknown"),
                "409": json_response(ref("Error"), "kept"),
            },
            params=_MEMBER,
        ),
    )
)
