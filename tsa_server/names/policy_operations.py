"""Administrators' use cases on the registry policy: read the word lists and weights in
force, edit them, list the changes, reload the conf files.

Editors are the organisations of [names] operators with an admin-scope key. An edit
quotes the version it was based on (`if_match`, the entity tag of a read: missing ->
`VersionRequired`, stale -> `StaleVersion`); an accepted change is time-stamped by this
TSA, appended to the operations log (``name_policy``), stored in the names database and
in force for the next check (names/policy_admin.py).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .commands import Caller
from .errors import NamesConflict, NoSuchName, NotPermitted, NotTimestamped, VersionRequired
from .operations import is_operator
from .policy_admin import PolicyAdmin, PolicyView
from .policy_edits import LISTS, EditError, ListEdit, list_edit, weights_edit
from .policy_store import PolicyChange
from .timestamping import NamesService, TimestampUnavailable
from .words import WordListError


@dataclass(frozen=True)
class WordChange:
    """One list's edit: words to add and to remove (None: none)."""

    add: Sequence[str] | None = None
    remove: Sequence[str] | None = None


@dataclass(frozen=True)
class Edited:
    """The policy in force after an edit, and the change record (None for a reload)."""

    view: PolicyView
    change: PolicyChange | None = None


def admin_of(names: NamesService) -> PolicyAdmin:
    if names.policy_admin is None:
        raise NoSuchName("the registry policy is not editable on this server")
    return names.policy_admin


def require_editor(names: NamesService, caller: Caller) -> PolicyAdmin:
    admin = admin_of(names)
    if not is_operator(names, caller):
        raise NotPermitted("only an operator organisation's admin key edits the policy")
    return admin


async def _edit(
    names: NamesService,
    caller: Caller,
    if_match: str | None,
    edits: tuple[ListEdit, ...] = (),
    weights: Mapping[str, Fraction | None] | None = None,
) -> Edited:
    if not if_match:
        raise VersionRequired("send If-Match with the ETag of GET (optimistic concurrency)")
    by = {"org": caller.org_id, "key": caller.key_id}
    async with names.operation():
        admin = admin_of(names)
        try:
            change = await names.edit_policy(if_match=if_match, by=by, edits=edits, weights=weights)
        except TimestampUnavailable as exc:
            raise NotTimestamped(f"the change could not be time-stamped: {exc}") from None
        return Edited(admin.view(), change)


async def edit_words(
    names: NamesService, caller: Caller, lists: Mapping[str, WordChange], if_match: str | None
) -> Edited:
    """Add words to and remove words from the banned, restricted and brand lists."""
    require_editor(names, caller)
    unknown = sorted(set(lists) - set(LISTS))
    if unknown or not lists:
        raise EditError(f"give one or more of {list(LISTS)}; unknown: {unknown}")
    policy = names.registry.policy
    edits = tuple(
        list_edit(name, _listed(lists[name].add), _listed(lists[name].remove), policy)
        for name in LISTS
        if name in lists
    )
    if not any(e.add or e.remove for e in edits):
        raise EditError("nothing to add or remove")
    return await _edit(names, caller, if_match, edits=edits)


def _listed(words: Sequence[str] | None) -> list[str] | None:
    return None if words is None else list(words)


async def edit_weights(
    names: NamesService, caller: Caller, raw: Mapping[str, Any], if_match: str | None
) -> Edited:
    """Override dispute weights (`{metric: number | "a/b" | null}`; null drops one)."""
    require_editor(names, caller)
    change = weights_edit(dict(raw))
    return await _edit(names, caller, if_match, weights=change)


async def reload(names: NamesService, caller: Caller) -> Edited:
    """Re-read the conf word lists (the administrators' overlay stays on top)."""
    admin = require_editor(names, caller)
    async with names.operation():
        try:
            view = admin.reload()
        except WordListError as exc:
            raise NamesConflict(f"the lists in force are unchanged: {exc}") from None
        ops = names.sink.ops
        if ops is not None:
            by = {"org": caller.org_id, "key": caller.key_id}
            ops.record("name_policy_reload", by=by, etag=view.etag)
    return Edited(view)


def changes_json(admin: PolicyAdmin) -> dict[str, Any]:
    return {"changes": [change_json(c) for c in admin.store.changes()]}


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


def edited_json(edited: Edited) -> dict[str, Any]:
    """The lists and weights in force (and the change record of an edit)."""
    view = edited.view
    body = {**view.words_json(), "weights": view.weights_json()["weights"]}
    if edited.change is not None:
        body["change"] = change_json(edited.change)
    return body
