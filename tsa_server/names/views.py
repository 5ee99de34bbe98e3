"""What the registry shows a caller, as JSON-ready data: the live check, a handle's
status (a contender sees its own metrics beside the provisional leader's, never other
contenders'; operators see every standing), its history with the RFC 3161 tokens (the
events' bytes only to the accounts they name and to operators), and an accepted
operation's result."""

from __future__ import annotations

import json
from typing import Any

from tsa_server.clock.beijing import utc_text

from .commands import Caller
from .disputes import Standing
from .errors import NoSuchName
from .operations import OperationResult, is_operator
from .quota import changes_left, next_change_at
from .registry import standing_data
from .sql_store import StoredEvent
from .timestamping import NamesService, event_json
from .validation import Check


def check_json(names: NamesService, c: Check) -> dict[str, Any]:
    policy = names.registry.policy
    body: dict[str, Any] = {
        "handle": c.handle.text,
        "bytes": c.handle.byte_length,
        "valid": c.ok,
        "reason": c.reason.value if c.reason else None,
        "detail": c.refused.detail if c.refused else None,
        "field": c.refused.field.value if c.refused and c.refused.field else None,
        "limits": {
            "handle": [policy.handle_min_bytes, policy.handle_max_bytes],
            "shop_name": [policy.shop_name_min_bytes, policy.shop_name_max_bytes],
        },
    }
    if c.shop_name is not None:
        body["shop_name"] = {"text": c.shop_name.text, "bytes": c.shop_name.byte_length}
    return body


def _standing(s: Standing) -> dict[str, Any]:
    return {**standing_data(s), "score_display": f"{float(s.score):.2f}"}


def status_json(names: NamesService, caller: Caller, handle: str) -> dict[str, Any]:
    org = caller.org_id
    registry = names.registry
    operator = is_operator(names, caller)
    rec = registry.lookup(handle)
    if rec is None:
        c = registry.check(handle)
        return {
            "handle": c.handle.text,
            "status": "free",
            "valid": c.ok,
            "reason": c.reason.value if c.reason else None,
        }
    body: dict[str, Any] = {"handle": rec.handle, "status": rec.status.value}
    if rec.holding is not None:
        h = rec.holding
        body["holder"] = {
            "shop": h.shop_id,
            "shop_name": h.shop_name,
            "custom": h.custom,
            "since": utc_text(h.history.approved_at),
        }
        if h.account_id == org:
            nxt = next_change_at(h.history, registry.policy)
            body["changes"] = {
                "used": len(h.history.changes),
                "left": changes_left(h.history, registry.policy),
                "next_change_at": utc_text(nxt) if nxt else None,
            }
    if rec.hold is not None:
        body["hold"] = {
            "kind": rec.hold.kind.value,
            "since": utc_text(rec.hold.since),
            "available_at": utc_text(rec.hold.available_at) if rec.hold.available_at else None,
            "yours": rec.hold.former_account == org,
        }
    if rec.holding is not None:  # H-13: open trademark complaints against the holder
        body["complaints"] = len(rec.complaints)
        if operator:
            body["complaint_by"] = [c.shop_id for c in rec.complaints]
        body["complained"] = rec.complaint(org) is not None
    mine = rec.application(org)
    body["applicants"] = len(rec.applications)
    body["applied"] = mine is not None
    if rec.contest is not None:
        window = rec.contest.window
        body["objection_window"] = {"start": utc_text(window.start), "end": utc_text(window.end)}
        body["objections"] = len(rec.contest.objections)
        ranking = rec.contest.ranking
        body["manual_review"] = ranking.leader is None
        if operator:
            body["standings"] = [_standing(s) for s in ranking.standings]
            body["leader"] = ranking.leader
        elif mine is not None:  # H-16: own metrics beside the provisional leader's only
            own = ranking.standing(org)
            leader = ranking.standing(ranking.leader) if ranking.leader else None
            body["own"] = _standing(own) if own else None
            body["leader"] = _standing(leader) if leader else None
            body["decided_by"] = ranking.decided_by
    return body


def history_json(names: NamesService, caller: Caller, handle: str) -> dict[str, Any]:
    operator = is_operator(names, caller)
    events = names.store.events_touching(names.registry.key(handle), names.registry.key)
    if not events:
        raise NoSuchName("no event for this handle")

    def reveal(e: StoredEvent) -> bool:
        data = json.loads(e.canonical)["data"]
        # a holder who lost the handle to a complaint sees that event too (H-13)
        return operator or caller.org_id in (data.get("account"), data.get("former_account"))

    return {
        "handle": events[-1].handle,
        "events": [event_json(e, reveal=reveal(e)) for e in events],
    }


def outcome_json(names: NamesService, outcome: OperationResult) -> dict[str, Any]:
    """The handle's status after the operation and its event (bytes included: the
    caller is named in it or an operator)."""
    e = outcome.done.event
    rec = names.registry.lookup(e.handle)
    stored = next((s for s in names.store.events(e.key) if s.seq == e.seq), None)
    return {
        "handle": e.handle,
        "status": rec.status.value if rec else "free",
        "event": event_json(stored, reveal=True) if stored else None,
        **outcome.earlier,
    }
