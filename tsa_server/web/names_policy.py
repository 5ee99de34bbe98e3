"""Administrators edit the handle registry's word lists and dispute weights.

``GET   /api/v1/names/policy/words``    any key: the lists in force, version, ETag
``PATCH /api/v1/names/policy/words``    operator admin: ``{"banned": {"add": [..],
                                         "remove": [..]}, "restricted": .., "brands": ..}``
``GET   /api/v1/names/policy/weights``  any key: the dispute weights in force
``PATCH /api/v1/names/policy/weights``  operator admin: ``{"search_rate": 40, ..}``
                                         (``null`` drops an override)
``GET   /api/v1/names/policy/changes``  any key: every change with its RFC 3161 token
``POST  /api/v1/names/policy/reload``   operator admin: re-read the conf files

An edit needs ``If-Match`` with the ETag of a GET (428 without it, 412 with a stale
one: another administrator changed the policy meanwhile; the answer carries the
current ETag). Editors are the organisations of [names] operators, with an admin-scope
key (member and auditor keys have no admin scope: 403). An accepted change is
time-stamped by this TSA, appended to the operations log (``name_policy``), stored in
the names database (it overrides conf/, survives restarts and reloads; see
tsa_server.names.policy_edits) and in force for the next check.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from tsa_server.evidence.accounts import Scope
from tsa_server.names.policy_edits import (
    LISTS,
    EditError,
    StaleVersion,
    list_edit,
    weights_edit,
)
from tsa_server.names.policy_store import PolicyChange
from tsa_server.names.timestamping import NamesService, TimestampUnavailable
from tsa_server.names.words import WordListError
from tsa_server.web.auth import PRINCIPAL, require
from tsa_server.web.bodies import read_json_object
from tsa_server.web.errors import BadRequest
from tsa_server.web.names import is_operator, service


def _admin(request: web.Request) -> NamesService:
    names = service(request)
    if names.policy_admin is None:
        raise BadRequest(404, "the registry policy is not editable on this server")
    if not is_operator(request, names):
        raise BadRequest(403, "only an operator organisation's admin key edits the policy")
    return names


def _if_match(request: web.Request) -> str:
    value = request.headers.get("If-Match")
    if not value:
        raise BadRequest(428, "send If-Match with the ETag of GET (optimistic concurrency)")
    return value


def _answer(body: dict[str, Any], tag: str, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers={"ETag": tag})


def change_json(c: PolicyChange) -> dict[str, Any]:
    return {
        "version": c.version,
        "at": c.at,
        "by": {"org": c.by_org, "key": c.by_key},
        "canonical": base64.b64encode(c.canonical).decode(),
        "sha256": c.sha256,
        "token": base64.b64encode(c.token).decode(),
        "gen_time": c.gen_time,
        "ops_index": c.ops_index,
    }


async def _edit(request: web.Request, names: NamesService, **edit: Any) -> web.Response:
    p = request[PRINCIPAL]
    by = {"org": p.org_id, "key": p.key_id}
    if_match = _if_match(request)
    async with names.operation():
        assert names.policy_admin is not None
        try:
            change = await names.edit_policy(if_match=if_match, by=by, **edit)
        except StaleVersion as exc:
            body = {"error": str(exc), "etag": exc.current}
            return web.json_response(body, status=412, headers={"ETag": exc.current})
        except EditError as exc:
            raise BadRequest(400, str(exc)) from None
        except TimestampUnavailable as exc:
            raise BadRequest(503, f"the change could not be time-stamped: {exc}") from None
        view = names.policy_admin.view()
    body = {**view.words_json(), "weights": view.weights_json()["weights"]}
    return _answer({**body, "change": change_json(change)}, view.etag)


@require()
async def words(request: web.Request) -> web.Response:
    names = service(request)
    if names.policy_admin is None:
        raise BadRequest(404, "the registry policy is not editable on this server")
    view = names.policy_admin.view()
    return _answer(view.words_json(), view.etag)


@require(Scope.ADMIN)
async def edit_words(request: web.Request) -> web.Response:
    names = _admin(request)
    body = await read_json_object(request)
    unknown = sorted(set(body) - set(LISTS))
    if unknown or not body:
        raise BadRequest(400, f"give one or more of {list(LISTS)}; unknown: {unknown}")
    edits = []
    for name in LISTS:
        if name not in body:
            continue
        part = body[name]
        if not isinstance(part, dict) or set(part) - {"add", "remove"}:
            raise BadRequest(400, f'{name} must be {{"add": [...], "remove": [...]}}')
        try:
            edits.append(
                list_edit(name, part.get("add"), part.get("remove"), names.registry.policy)
            )
        except EditError as exc:
            raise BadRequest(400, str(exc)) from None
    if not any(e.add or e.remove for e in edits):
        raise BadRequest(400, "nothing to add or remove")
    return await _edit(request, names, edits=tuple(edits))


@require()
async def weights(request: web.Request) -> web.Response:
    names = service(request)
    if names.policy_admin is None:
        raise BadRequest(404, "the registry policy is not editable on this server")
    view = names.policy_admin.view()
    return _answer(view.weights_json(), view.etag)


@require(Scope.ADMIN)
async def edit_weights(request: web.Request) -> web.Response:
    names = _admin(request)
    body = await read_json_object(request)
    try:
        change = weights_edit(body)
    except EditError as exc:
        raise BadRequest(400, str(exc)) from None
    return await _edit(request, names, weights=change)


@require()
async def changes(request: web.Request) -> web.Response:
    names = service(request)
    if names.policy_admin is None:
        raise BadRequest(404, "the registry policy is not editable on this server")
    return web.json_response(
        {"changes": [change_json(c) for c in names.policy_admin.store.changes()]}
    )


@require(Scope.ADMIN)
async def reload(request: web.Request) -> web.Response:
    names = _admin(request)
    assert names.policy_admin is not None
    async with names.operation():
        try:
            view = names.policy_admin.reload()
        except WordListError as exc:
            raise BadRequest(409, f"the lists in force are unchanged: {exc}") from None
        ops = names.sink.ops
        if ops is not None:
            p = request[PRINCIPAL]
            ops.record(
                "name_policy_reload",
                by={"org": p.org_id, "key": p.key_id},
                etag=view.etag,
            )
    return _answer({**view.words_json(), "weights": view.weights_json()["weights"]}, view.etag)
