"""The trade-name (字号 / handle) endpoints (docs/spec/evidence.md part D).

``GET  /api/v1/names/check?handle=&shop_name=``  public: bytes, validity, reason
``POST /api/v1/names/applications``             deposit scope: apply for a handle; group 1
                                                (brand holder, H-14) adds ``mark`` and
                                                ``proof`` (an evidence item of the caller)
``GET  /api/v1/names/{handle}``                 any key: status (contest view for contenders)
``GET  /api/v1/names/{handle}/history``         any key: events with their RFC 3161 tokens
``POST /api/v1/names/{handle}/change``          deposit scope, holder: new handle / custom part
``POST /api/v1/names/{handle}/release``         deposit scope, holder: give the handle up
``POST /api/v1/names/{handle}/reclaim``         deposit scope, former holder during the hold
``POST /api/v1/names/{handle}/objections``      deposit scope, contender: object
``POST /api/v1/names/{handle}/complaints``      deposit scope, registered-mark holder: complain
                                                against the holder at any time (H-13)
``POST /api/v1/names/{handle}/decision``        admin scope of an operator organisation

Accounts and shops: the registry's account id *and* shop id of a caller are its
organisation id (one shop per organisation; the shop's name is what the application
gives, the shop's opening date is the organisation's creation). An organisation can
therefore only ever act for its own shop: a holder's handle cannot be changed,
released or objected to in its name by another key (403 ``not_owner``).
Operators are the organisations listed in [names] operators; with an admin-scope key
they publish results, certify or reject brand applicants' proof (``{"brand": shop,
"verdict": "certify" | "reject"}``), uphold or dismiss trademark complaints
(``{"complaint": shop, "verdict": "uphold" | "dismiss"}``), decide contests and resolve
penalty reviews.
A handle with a brand application stays pending until its proof is reviewed: neither
open registration's immediate publication nor an operator's plain publication
approves it. The word lists and weights: web/names_policy.py.

Every accepted operation is time-stamped by this TSA before it is committed
(tsa_server.names.timestamping); refusals are JSON ``{"error", "reason", "detail",
"field"}`` with 400 (bad input), 403 (not yours), 404 (unknown), 409 (state).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from tsa_server.beijing_calendar import BEIJING, utc_text
from tsa_server.evidence.accounts import Scope
from tsa_server.names import (
    Done,
    Group,
    HandleStatus,
    Mark,
    MarkKind,
    Metrics,
    Refusal,
    Refused,
    ReleaseCause,
    ReviewOutcome,
    Shop,
)
from tsa_server.names.applicants import BrandProof
from tsa_server.names.disputes import metrics_from_json
from tsa_server.names.quota import changes_left, next_change_at
from tsa_server.names.registry import standing_data
from tsa_server.names.timestamping import (
    EventMismatch,
    NamesService,
    TimestampUnavailable,
    event_json,
)
from tsa_server.names.trademark import Verdict
from tsa_server.web.auth import PRINCIPAL, accounts, require
from tsa_server.web.bodies import read_json_object
from tsa_server.web.errors import BadRequest, json_error
from tsa_server.web.handlers import STATE

MAX_TEXT = 200  # characters of any text field (a handle is at most 14 bytes)

_INPUT = {
    Refusal.BAD_CHARACTER,
    Refusal.TOO_SHORT,
    Refusal.TOO_LONG,
    Refusal.NOT_IN_SHOP_NAME,
    Refusal.NOT_PREFIX,
    Refusal.BANNED_WORD,
    Refusal.RESTRICTED_ALONE,
    Refusal.ALL_RESTRICTED,
    Refusal.BRAND_PROOF_REQUIRED,
    Refusal.MARK_REQUIRED,
    Refusal.MARK_NOT_LISTED,
    Refusal.MARK_TOO_RECENT,
    Refusal.MARK_MISMATCH,
    Refusal.METRICS_MISSING,
    Refusal.PROOF_REQUIRED,
    Refusal.EVIDENCE_NOT_FOUND,
    Refusal.REGISTERED_MARK_REQUIRED,
}
_FORBIDDEN = {Refusal.NOT_OWNER, Refusal.NOT_HOLDER, Refusal.NOT_CONTENDER}


def refusal_status(reason: Refusal) -> int:
    if reason in _INPUT:
        return 400
    if reason in _FORBIDDEN:
        return 403
    return 409


def refused(r: Refused) -> web.Response:
    return web.json_response(
        {
            "error": f"{r.reason.value}: {r.detail}" if r.detail else r.reason.value,
            "reason": r.reason.value,
            "detail": r.detail,
            "field": r.field.value if r.field else None,
        },
        status=refusal_status(r.reason),
    )


def service(request: web.Request) -> NamesService:
    names = request.app[STATE].names
    if names is None:
        raise BadRequest(404, "the handle registry is not enabled on this server")
    return names


def _text(body: dict[str, Any], name: str, *, required: bool = False, default: str = "") -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(400, f"{name} is required")
        return default
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRequest(400, f"{name} must be a string of at most {MAX_TEXT} characters")
    return value


def _only(body: dict[str, Any], *names: str) -> None:
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise BadRequest(400, f"unknown field(s): {', '.join(unknown)}")


def _shop(request: web.Request, shop_name: str) -> Shop:
    """The caller's shop (see the module docstring for the mapping)."""
    org_id = request[PRINCIPAL].org_id
    org = accounts(request).organisation(org_id)
    return Shop(org_id, org_id, shop_name, org.created_at)


def is_operator(request: web.Request, names: NamesService) -> bool:
    p = request[PRINCIPAL]
    return p.org_id in names.operators and p.has(Scope.ADMIN)


async def _run(names: NamesService, op) -> Any:
    try:
        return await names.run(op)
    except TimestampUnavailable as exc:
        raise BadRequest(503, f"the event could not be time-stamped: {exc}") from None
    except EventMismatch as exc:
        raise BadRequest(503, f"concurrent change, retry: {exc}") from None


def _done(names: NamesService, result: Done, status: int = 200, **extra: Any) -> web.Response:
    e = result.event
    rec = names.registry.lookup(e.handle)
    stored = next((s for s in names.store.events(e.key) if s.seq == e.seq), None)
    body: dict[str, Any] = {
        "handle": e.handle,
        "status": rec.status.value if rec else "free",
        "event": event_json(stored, reveal=True) if stored else None,
        **extra,
    }
    return web.json_response(body, status=status)


# --------------------------------------------------------------------- check
async def check(request: web.Request) -> web.Response:
    names = request.app[STATE].names
    if names is None:
        return json_error(404, "the handle registry is not enabled on this server")
    handle = request.query.get("handle")
    shop_name = request.query.get("shop_name")
    if handle is None:
        return json_error(400, "handle is required")
    if len(handle) > MAX_TEXT or (shop_name is not None and len(shop_name) > MAX_TEXT):
        return json_error(400, f"at most {MAX_TEXT} characters")
    c = names.registry.check(handle, shop_name or None)
    body: dict[str, Any] = {
        "handle": c.handle.text,
        "bytes": c.handle.byte_length,
        "valid": c.ok,
        "reason": c.reason.value if c.reason else None,
        "detail": c.refused.detail if c.refused else None,
        "field": c.refused.field.value if c.refused and c.refused.field else None,
        "limits": {
            "handle": [
                names.registry.policy.handle_min_bytes,
                names.registry.policy.handle_max_bytes,
            ],
            "shop_name": [
                names.registry.policy.shop_name_min_bytes,
                names.registry.policy.shop_name_max_bytes,
            ],
        },
    }
    if c.shop_name is not None:
        body["shop_name"] = {"text": c.shop_name.text, "bytes": c.shop_name.byte_length}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------- apply
def _filed_at(value: Any) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is Beijing time (G-1)."""
    if not isinstance(value, str) or len(value) > 40:
        raise BadRequest(400, "mark.filed_at must be an ISO 8601 date or date-time")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(400, f"mark.filed_at: not an ISO 8601 date-time: {value!r}") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=BEIJING)


def _brand_claim(request: web.Request, body: dict[str, Any], handle: str, who: str = "group 1"):
    """Group 1 (H-14) or a complainant (H-13): the mark and the proof, the proof being an
    evidence item of the caller's organisation (by id and/or the SHA-256 of its content)."""
    mark_raw, proof_raw = body.get("mark"), body.get("proof")
    if not isinstance(mark_raw, dict) or not isinstance(proof_raw, dict):
        raise BadRequest(
            400,
            f"{who} needs mark {{kind, filed_at, registration_number}} "
            "and proof {item_id and/or sha256}",
        )
    _only(mark_raw, "kind", "text", "filed_at", "registration_number")
    _only(proof_raw, "item_id", "sha256")
    try:
        kind = MarkKind(_text(mark_raw, "kind", required=True))
    except ValueError:
        raise BadRequest(400, "mark.kind must be R or TM") from None
    mark = Mark(kind, _text(mark_raw, "text", default=handle), _filed_at(mark_raw.get("filed_at")))
    item_id = proof_raw.get("item_id")
    sha = proof_raw.get("sha256")
    if item_id is not None and not isinstance(item_id, str):
        raise BadRequest(400, "proof.item_id must be a string")
    if sha is not None and not isinstance(sha, str):
        raise BadRequest(400, "proof.sha256 must be a string")
    sha = sha.lower() if sha else None
    evidence = request.app[STATE].evidence
    org = request[PRINCIPAL].org_id
    if item_id is not None:
        item = evidence.item(org, item_id) if evidence is not None and len(item_id) < 100 else None
        if item is None or (sha is not None and item.sha256 != sha):
            return mark, Refused(Refusal.EVIDENCE_NOT_FOUND, item_id)
        sha = item.sha256
    elif sha is not None:
        if len(sha) != 64 or evidence is None or not evidence.items_by_sha256(org, sha):
            return mark, Refused(Refusal.EVIDENCE_NOT_FOUND, sha)
    try:
        proof = BrandProof(_text(mark_raw, "registration_number", required=True), item_id, sha)
    except ValueError as exc:
        raise BadRequest(400, f"proof: {exc}") from None
    return mark, proof


@require(Scope.DEPOSIT)
async def apply(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_json_object(request)
    _only(body, "handle", "shop_name", "group", "mark", "proof")
    handle = _text(body, "handle", required=True)
    shop = _shop(request, _text(body, "shop_name", required=True))
    group_raw = body.get("group", 2)
    if group_raw not in (1, 2) or isinstance(group_raw, bool):
        raise BadRequest(400, "group must be 1 (brand, with mark and proof) or 2 (public)")
    group = Group(group_raw)
    if group is Group.PUBLIC:
        if "mark" in body or "proof" in body:
            raise BadRequest(400, "mark and proof belong to a group 1 (brand) application")

        def op(r):
            return r.apply(shop, handle)
    else:
        mark, proof = _brand_claim(request, body, handle)
        if isinstance(proof, Refused):
            return refused(proof)

        def op(r):
            return r.apply(shop, handle, group=group, mark=mark, proof=proof)

    async with names.operation():
        result = await _run(names, op)
        if isinstance(result, Refused):
            return refused(result)
        applied = result
        if names.registry.policy.beta is None and group is Group.PUBLIC:
            # open registration: the result is published at once (H-15): approved when
            # the applicant and its shop name are unique, contested otherwise; a brand
            # application for the handle waits for the operator's review (H-14)
            outcome = await _run(names, lambda r: r.approve(handle, brand_review=True))
            if isinstance(outcome, Done):
                return _done(names, outcome, 201, applied_seq=applied.event.seq)
    return _done(names, applied, 202)


# -------------------------------------------------------------------- status
def _standing(s) -> dict[str, Any]:
    return {**standing_data(s), "score_display": f"{float(s.score):.2f}"}


@require()
async def status(request: web.Request) -> web.Response:
    names = service(request)
    org = request[PRINCIPAL].org_id
    registry = names.registry
    handle = request.match_info["handle"]
    rec = registry.lookup(handle)
    if rec is None:
        c = registry.check(handle)
        return web.json_response(
            {
                "handle": c.handle.text,
                "status": "free",
                "valid": c.ok,
                "reason": c.reason.value if c.reason else None,
            }
        )
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
        if is_operator(request, names):
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
        if is_operator(request, names):
            body["standings"] = [_standing(s) for s in ranking.standings]
            body["leader"] = ranking.leader
        elif mine is not None:  # H-16: own metrics beside the provisional leader's only
            own = ranking.standing(org)
            leader = ranking.standing(ranking.leader) if ranking.leader else None
            body["own"] = _standing(own) if own else None
            body["leader"] = _standing(leader) if leader else None
            body["decided_by"] = ranking.decided_by
    return web.json_response(body)


@require()
async def history(request: web.Request) -> web.Response:
    names = service(request)
    org = request[PRINCIPAL].org_id
    operator = is_operator(request, names)
    key = names.registry.key(request.match_info["handle"])
    events = names.store.events_touching(key, names.registry.key)
    if not events:
        raise BadRequest(404, "no event for this handle")

    def reveal(e) -> bool:
        import json

        data = json.loads(e.canonical)["data"]
        # a holder who lost the handle to a complaint sees that event too (H-13)
        return operator or org in (data.get("account"), data.get("former_account"))

    return web.json_response(
        {"handle": events[-1].handle, "events": [event_json(e, reveal=reveal(e)) for e in events]}
    )


# ------------------------------------------------------- holder operations
def _held_by_caller(request: web.Request, names: NamesService, handle: str):
    rec = names.registry.lookup(handle)
    if rec is None:
        raise BadRequest(404, "no such handle")
    if rec.holding is None:
        return None, refused(Refused(Refusal.NOT_HOLDER, rec.handle))
    if rec.holding.account_id != request[PRINCIPAL].org_id:
        return None, refused(Refused(Refusal.NOT_OWNER, "the handle belongs to another account"))
    return rec, None


@require(Scope.DEPOSIT)
async def change(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_json_object(request)
    _only(body, "handle", "custom")
    new_handle = body.get("handle")
    if new_handle is not None:
        new_handle = _text(body, "handle")
    custom = body.get("custom")
    if custom is not None:
        custom = _text(body, "custom")
    if new_handle is None and custom is None:
        raise BadRequest(400, "give handle and/or custom")
    org = request[PRINCIPAL].org_id
    async with names.operation():
        rec, denied = _held_by_caller(request, names, request.match_info["handle"])
        if denied:
            return denied
        shop_id = rec.holding.shop_id
        if new_handle is None:
            result = await _run(names, lambda r: r.change_custom(org, shop_id, custom))
        else:
            result = await _run(names, lambda r: r.change_handle(org, shop_id, new_handle, custom))
    return refused(result) if isinstance(result, Refused) else _done(names, result)


@require(Scope.DEPOSIT)
async def release(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_json_object(request)
    _only(body, "cause")
    cause_text = _text(body, "cause", default=ReleaseCause.WITHDRAWN.value)
    try:
        cause = ReleaseCause(cause_text)
    except ValueError:
        raise BadRequest(400, f"cause must be one of {[c.value for c in ReleaseCause]}") from None
    org = request[PRINCIPAL].org_id
    async with names.operation():
        if cause is not ReleaseCause.WITHDRAWN:  # shop deleted / penalty: operators only
            if not is_operator(request, names):
                raise BadRequest(403, "only an operator may release for that cause")
            rec = names.registry.lookup(request.match_info["handle"])
            if rec is None or rec.holding is None:
                return refused(Refused(Refusal.NOT_HOLDER, request.match_info["handle"]))
            shop_id = rec.holding.shop_id
            result = await _run(names, lambda r: r.release(shop_id, cause))
        else:
            rec, denied = _held_by_caller(request, names, request.match_info["handle"])
            if denied:
                return denied
            shop_id = rec.holding.shop_id
            result = await _run(names, lambda r: r.release(shop_id, cause, account_id=org))
    return refused(result) if isinstance(result, Refused) else _done(names, result)


@require(Scope.DEPOSIT)
async def reclaim(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_json_object(request)
    _only(body, "shop_name")
    handle = request.match_info["handle"]
    shop = _shop(request, _text(body, "shop_name", default=handle))
    async with names.operation():
        result = await _run(names, lambda r: r.reclaim(shop, handle))
    return refused(result) if isinstance(result, Refused) else _done(names, result)


@require(Scope.DEPOSIT)
async def objections(request: web.Request) -> web.Response:
    names = service(request)
    body = await read_json_object(request)
    _only(body, "statement")
    statement = _text(body, "statement")
    org = request[PRINCIPAL].org_id
    handle = request.match_info["handle"]
    async with names.operation():
        result = await _run(names, lambda r: r.object(handle, org, org, statement))
    return refused(result) if isinstance(result, Refused) else _done(names, result, 201)


@require(Scope.DEPOSIT)
async def complaints(request: web.Request) -> web.Response:
    """H-13: a registered-mark holder complains against the handle's holder, at any
    time; pending (202) until an operator upholds or dismisses it."""
    names = service(request)
    body = await read_json_object(request)
    _only(body, "shop_name", "mark", "proof", "statement")
    handle = request.match_info["handle"]
    shop = _shop(request, _text(body, "shop_name", required=True))
    statement = _text(body, "statement")
    mark, proof = _brand_claim(request, body, handle, "a complaint")
    if isinstance(proof, Refused):
        return refused(proof)
    async with names.operation():
        result = await _run(
            names, lambda r: r.complain(handle, shop, mark, proof, statement=statement)
        )
    return refused(result) if isinstance(result, Refused) else _done(names, result, 202)


# ------------------------------------------------------------------ operator
def _metrics(raw: Any) -> dict[str, Metrics]:
    try:
        return metrics_from_json(raw)
    except ValueError as exc:
        raise BadRequest(400, str(exc)) from None


@require(Scope.ADMIN)
async def decision(request: web.Request) -> web.Response:
    """Operators: certify or reject a brand applicant's proof (brand + verdict), uphold
    or dismiss a trademark complaint (complaint + verdict), publish
    a pending handle (with metrics), decide a contest (winner or the provisional
    leader), or resolve a penalty review (outcome)."""
    names = service(request)
    if not is_operator(request, names):
        raise BadRequest(403, "only an operator organisation decides handles")
    body = await read_json_object(request)
    _only(body, "winner", "note", "metrics", "outcome", "brand", "verdict", "complaint")
    handle = request.match_info["handle"]
    winner = _text(body, "winner") or None
    note = _text(body, "note")
    metrics = _metrics(body.get("metrics", {}))
    brand = _text(body, "brand") or None
    complaint = _text(body, "complaint") or None
    verdict = _text(body, "verdict") or None
    if complaint is not None:
        if brand is not None or verdict not in ("uphold", "dismiss"):
            raise BadRequest(
                400,
                'a complaint decision gives complaint (shop id) and verdict ("uphold" or '
                '"dismiss")',
            )
    elif (brand is None) != (verdict is None) or verdict not in (None, "certify", "reject"):
        raise BadRequest(
            400, 'a brand review gives brand (shop id) and verdict ("certify" or "reject")'
        )
    async with names.operation():
        rec = names.registry.lookup(handle)
        if rec is None:
            raise BadRequest(404, "no such handle")
        if complaint is not None:
            v = Verdict(verdict)
            result = await _run(names, lambda r: r.decide_complaint(handle, complaint, v, note))
        elif brand is not None:
            if verdict == "certify":
                result = await _run(names, lambda r: r.certify(handle, brand, note))
            else:
                result = await _run(names, lambda r: r.reject_brand(handle, brand, note))
                if isinstance(result, Done) and names.registry.policy.beta is None:
                    # open registration: the public applicants' result is due now
                    outcome = await _run(names, lambda r: r.approve(handle, brand_review=True))
                    if isinstance(outcome, Done):
                        return _done(names, outcome, rejected_seq=result.event.seq)
        elif rec.status is HandleStatus.PENDING:
            result = await _run(names, lambda r: r.approve(handle, metrics, brand_review=True))
        elif rec.status is HandleStatus.RECLAIM_REVIEW:
            try:
                outcome = ReviewOutcome(_text(body, "outcome", required=True))
            except ValueError:
                raise BadRequest(400, "outcome must be release or retain") from None
            result = await _run(names, lambda r: r.resolve_review(handle, outcome, note))
        else:
            result = await _run(names, lambda r: r.decide(handle, winner=winner, note=note))
    return refused(result) if isinstance(result, Refused) else _done(names, result)
