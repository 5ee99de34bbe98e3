"""Administrators edit the handle registry's word lists and dispute weights: the HTTP
side of tsa_server/names/policy_operations.py.

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
key (member and auditor keys have no admin scope: 403).
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import AfterValidator, Field, RootModel, WithJsonSchema

from tsa_server.accounts.key_rules import Scope
from tsa_server.names import policy_operations as policy
from tsa_server.names.policy_edits import MAX_EDIT_WORDS
from tsa_server.names.policy_operations import Edited, WordChange
from tsa_server.web.api import Body, Operation, Param, json_response, read_body, ref
from tsa_server.web.auth import require
from tsa_server.web.names.registry import HANDLE, caller, errors, scope_note, service

Words = Annotated[list[str], Field(max_length=MAX_EDIT_WORDS)]


def _given(edit: WordEdit | None) -> WordEdit:
    """A list named with null is refused, as it always was (absent is fine)."""
    if edit is None:
        raise ValueError('must be {"add": [...], "remove": [...]}')
    return edit


class WordEdit(Body):
    """One word list's edit."""

    add: Words | None = None
    remove: Words | None = None

    def change(self) -> WordChange:
        return WordChange(self.add, self.remove)


ListEdit = Annotated[WordEdit | None, AfterValidator(_given)]


class WordsEdit(Body):
    """PATCH /api/v1/names/policy/words: one or more lists."""

    banned: ListEdit = None
    restricted: ListEdit = None
    brands: ListEdit = None

    def lists(self) -> dict[str, WordChange]:
        given = {"banned": self.banned, "restricted": self.restricted, "brands": self.brands}
        return {name: edit.change() for name, edit in given.items() if edit is not None}


class WeightsEdit(RootModel[dict[str, Any]]):
    """PATCH /api/v1/names/policy/weights: ``{metric: number | "a/b" | null}``, checked
    by the registry (names/policy_edits.weights_edit)."""

    root: Annotated[
        dict[str, Any],
        WithJsonSchema(
            {"type": "object", "additionalProperties": {"type": ["number", "string", "null"]}}
        ),
    ]


def _answer(body: dict[str, Any], tag: str) -> web.Response:
    return web.json_response(body, headers={"ETag": tag})


def _edited(edited: Edited) -> web.Response:
    return _answer(policy.edited_json(edited), edited.view.etag)


@require()
async def words(request: web.Request) -> web.Response:
    view = policy.admin_of(service(request)).view()
    return _answer(view.words_json(), view.etag)


@require(Scope.ADMIN)
async def edit_words(request: web.Request) -> web.Response:
    names, who = service(request), await caller(request)
    policy.require_editor(names, who)  # before the body, as it always was
    body = await read_body(request, WordsEdit)
    if_match = request.headers.get("If-Match")
    return _edited(await policy.edit_words(names, who, body.lists(), if_match))


@require()
async def weights(request: web.Request) -> web.Response:
    view = policy.admin_of(service(request)).view()
    return _answer(view.weights_json(), view.etag)


@require(Scope.ADMIN)
async def edit_weights(request: web.Request) -> web.Response:
    names, who = service(request), await caller(request)
    policy.require_editor(names, who)
    body = await read_body(request, WeightsEdit)
    if_match = request.headers.get("If-Match")
    return _edited(await policy.edit_weights(names, who, body.root, if_match))


@require()
async def changes(request: web.Request) -> web.Response:
    return web.json_response(policy.changes_json(policy.admin_of(service(request))))


@require(Scope.ADMIN)
async def reload(request: web.Request) -> web.Response:
    return _edited(await policy.reload(service(request), await caller(request)))


# ----------------------------------------------------------- the description
_WORDS = "/api/v1/names/policy/words"
_WEIGHTS = "/api/v1/names/policy/weights"
_IF_MATCH = Param("If-Match", "header", required=True)
_EDIT_ERRORS = (400, 401, 403, 404, 412, 428, 503)
_POLICY = json_response(ref("PolicyWords"))
_ANY_OBJECT = json_response({"type": "object"})
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "get",
        _WORDS,
        "Word lists in force (banned, restricted, brands), version and ETag",
        {"200": _POLICY, **errors(401, 404)},
        params=(HANDLE,),
    ),
    Operation(
        "patch",
        _WORDS,
        "Operator admin: add/remove words; If-Match required; time-stamped, in the "
        "operations log, durable, in force at once",
        {"200": _POLICY, **errors(*_EDIT_ERRORS)},
        body=WordsEdit,
        params=(_IF_MATCH,),
        description=scope_note("admin"),
    ),
    Operation(
        "get",
        _WEIGHTS,
        "Dispute weights in force (H-16), version and ETag",
        {"200": _ANY_OBJECT, **errors(401, 404)},
        params=(HANDLE,),
    ),
    Operation(
        "patch",
        _WEIGHTS,
        "Operator admin: override weights (null drops an override); If-Match required",
        {"200": _POLICY, **errors(*_EDIT_ERRORS)},
        body=WeightsEdit,
        params=(_IF_MATCH,),
        description=scope_note("admin"),
    ),
    Operation(
        "get",
        "/api/v1/names/policy/changes",
        "Every policy change: canonical record, RFC 3161 token, operations-log index",
        {"200": _ANY_OBJECT, **errors(401, 404)},
        params=(HANDLE,),
    ),
    Operation(
        "post",
        "/api/v1/names/policy/reload",
        "Operator admin: re-read the conf word lists (the overlay stays on top)",
        {"200": _POLICY, **errors(401, 403, 404, 409)},
        params=(HANDLE,),
        description=scope_note("admin"),
    ),
)
