"""The registry's use cases as the API offers them (docs/spec/evidence.md part D): who
may do what, which registry operation a command becomes, and the refusals, raised as
names errors (names/errors.py). Each accepted operation is time-stamped by this TSA
before it is committed (`NamesService.run`, names/timestamping.py).

Operators are the organisations of [names] operators calling with an admin-scope key:
they publish results, certify or reject brand applicants' proof, uphold or dismiss
trademark complaints, decide contests and resolve penalty reviews. A handle with a brand
application stays pending until its proof is reviewed: neither open registration's
immediate publication nor an operator's plain publication approves it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .applicants import Group
from .brand_claims import brand_claim
from .commands import (
    MAX_TEXT,
    ApplyCommand,
    Caller,
    ComplaintCommand,
    DecisionCommand,
    EvidenceItems,
)
from .core import Done, ReleaseCause, Result, ReviewOutcome
from .disputes import metrics_from_json
from .errors import InvalidNameRequest, NameRefused, NoSuchName, NotPermitted, NotTimestamped
from .reasons import Refusal, Refused
from .registry import Registry
from .store import HandleRecord, HandleStatus
from .timestamping import EventMismatch, NamesService, TimestampUnavailable
from .trademark import Verdict
from .validation import Check

Operation = Callable[[Registry], Result]


@dataclass(frozen=True)
class OperationResult:
    """An accepted command: the event it logged (the last, when it logged two)."""

    done: Done
    published: bool = False  # an application whose result was published at once (H-15)
    earlier: Mapping[str, int] = field(default_factory=dict)  # e.g. applied_seq: the first


def is_operator(names: NamesService, caller: Caller) -> bool:
    return caller.org_id in names.operators and caller.admin


async def _attempt(names: NamesService, op: Operation) -> Result:
    """One registry operation, time-stamped and committed, or refused."""
    try:
        return await names.run(op)
    except TimestampUnavailable as exc:
        raise NotTimestamped(f"the event could not be time-stamped: {exc}") from None
    except EventMismatch as exc:
        raise NotTimestamped(f"concurrent change, retry: {exc}") from None


async def _run(names: NamesService, op: Operation) -> Done:
    result = await _attempt(names, op)
    if isinstance(result, Refused):
        raise NameRefused(result)
    return result


def check(names: NamesService, handle: str, shop_name: str | None) -> Check:
    """The live check while typing (public)."""
    if len(handle) > MAX_TEXT or (shop_name is not None and len(shop_name) > MAX_TEXT):
        raise InvalidNameRequest(f"at most {MAX_TEXT} characters")
    return names.registry.check(handle, shop_name or None)


async def apply(
    names: NamesService, caller: Caller, command: ApplyCommand, evidence: EvidenceItems | None
) -> OperationResult:
    """Apply for a handle for the caller's shop. In open registration a public
    application's result is published at once (H-15): approved when the applicant and
    its shop name are unique, contested otherwise; a brand application for the handle
    waits for the operator's review (H-14)."""
    handle, shop = command.handle, caller.shop(command.shop_name)
    if command.group not in (1, 2):
        raise InvalidNameRequest("group must be 1 (brand, with mark and proof) or 2 (public)")
    group = Group(command.group)
    op: Operation
    if group is Group.PUBLIC:
        if command.claims_brand:
            raise InvalidNameRequest("mark and proof belong to a group 1 (brand) application")

        def op(r: Registry) -> Result:
            return r.apply(shop, handle)
    else:
        mark, proof = brand_claim(
            evidence, caller.org_id, handle, command.mark, command.proof, "group 1"
        )

        def op(r: Registry) -> Result:
            return r.apply(shop, handle, group=group, mark=mark, proof=proof)

    async with names.operation():
        applied = await _run(names, op)
        if names.registry.policy.beta is None and group is Group.PUBLIC:
            outcome = await _attempt(names, lambda r: r.approve(handle, brand_review=True))
            if isinstance(outcome, Done):
                return OperationResult(outcome, True, {"applied_seq": applied.event.seq})
    return OperationResult(applied)


def _held_by(names: NamesService, caller: Caller, handle: str) -> HandleRecord:
    rec = names.registry.lookup(handle)
    if rec is None:
        raise NoSuchName("no such handle")
    if rec.holding is None:
        raise NameRefused(Refused(Refusal.NOT_HOLDER, rec.handle))
    if rec.holding.account_id != caller.org_id:
        raise NameRefused(Refused(Refusal.NOT_OWNER, "the handle belongs to another account"))
    return rec


async def change(
    names: NamesService, caller: Caller, handle: str, new_handle: str | None, custom: str | None
) -> OperationResult:
    """The holder changes its handle (quota, 30-day spacing) and/or the custom part."""
    if new_handle is None and custom is None:
        raise InvalidNameRequest("give handle and/or custom")
    org = caller.org_id
    async with names.operation():
        holding = _held_by(names, caller, handle).holding
        assert holding is not None
        shop_id = holding.shop_id
        if new_handle is None:
            assert custom is not None
            done = await _run(names, lambda r: r.change_custom(org, shop_id, custom))
        else:
            done = await _run(names, lambda r: r.change_handle(org, shop_id, new_handle, custom))
    return OperationResult(done)


async def release(
    names: NamesService, caller: Caller, handle: str, cause_text: str
) -> OperationResult:
    """The holder gives the handle up; an operator releases it for a shop's deletion or
    a penalty."""
    try:
        cause = ReleaseCause(cause_text)
    except ValueError:
        raise InvalidNameRequest(
            f"cause must be one of {[c.value for c in ReleaseCause]}"
        ) from None
    async with names.operation():
        if cause is not ReleaseCause.WITHDRAWN:
            if not is_operator(names, caller):
                raise NotPermitted("only an operator may release for that cause")
            rec = names.registry.lookup(handle)
            if rec is None or rec.holding is None:
                raise NameRefused(Refused(Refusal.NOT_HOLDER, handle))
            shop_id = rec.holding.shop_id
            done = await _run(names, lambda r: r.release(shop_id, cause))
        else:
            holding = _held_by(names, caller, handle).holding
            assert holding is not None
            shop_id, org = holding.shop_id, caller.org_id
            done = await _run(names, lambda r: r.release(shop_id, cause, account_id=org))
    return OperationResult(done)


async def reclaim(
    names: NamesService, caller: Caller, handle: str, shop_name: str | None
) -> OperationResult:
    """The former holder takes the handle back during its hold."""
    shop = caller.shop(handle if shop_name is None else shop_name)
    async with names.operation():
        return OperationResult(await _run(names, lambda r: r.reclaim(shop, handle)))


async def object_to(
    names: NamesService, caller: Caller, handle: str, statement: str
) -> OperationResult:
    """A contender (not the leader) objects during the objection period."""
    org = caller.org_id
    async with names.operation():
        return OperationResult(await _run(names, lambda r: r.object(handle, org, org, statement)))


async def complain(
    names: NamesService,
    caller: Caller,
    handle: str,
    command: ComplaintCommand,
    evidence: EvidenceItems | None,
) -> OperationResult:
    """H-13: a registered-mark holder complains against the handle's holder, at any time;
    pending until an operator upholds or dismisses it."""
    shop = caller.shop(command.shop_name)
    mark, proof = brand_claim(
        evidence, caller.org_id, handle, command.mark, command.proof, "a complaint"
    )
    statement = command.statement
    async with names.operation():
        done = await _run(
            names, lambda r: r.complain(handle, shop, mark, proof, statement=statement)
        )
    return OperationResult(done)


def require_operator(names: NamesService, caller: Caller) -> None:
    if not is_operator(names, caller):
        raise NotPermitted("only an operator organisation decides handles")


async def decide(
    names: NamesService, caller: Caller, handle: str, d: DecisionCommand
) -> OperationResult:
    """Operators: certify or reject a brand applicant's proof (brand + verdict), uphold or
    dismiss a trademark complaint (complaint + verdict), publish a pending handle (with
    metrics), decide a contest (winner or the provisional leader), or resolve a penalty
    review (outcome)."""
    require_operator(names, caller)
    try:
        metrics = metrics_from_json({} if d.metrics is None else d.metrics)
    except ValueError as exc:
        raise InvalidNameRequest(str(exc)) from None
    # an empty text is as good as none
    brand, complaint, verdict = d.brand or None, d.complaint or None, d.verdict or None
    note = d.note
    if complaint is not None:
        if brand is not None or verdict not in ("uphold", "dismiss"):
            raise InvalidNameRequest(
                'a complaint decision gives complaint (shop id) and verdict ("uphold" or "dismiss")'
            )
    elif (brand is None) != (verdict is None) or verdict not in (None, "certify", "reject"):
        raise InvalidNameRequest(
            'a brand review gives brand (shop id) and verdict ("certify" or "reject")'
        )
    async with names.operation():
        rec = names.registry.lookup(handle)
        if rec is None:
            raise NoSuchName("no such handle")
        if complaint is not None:
            v = Verdict(verdict or "")
            done = await _run(names, lambda r: r.decide_complaint(handle, complaint, v, note))
        elif brand is not None:
            if verdict == "certify":
                done = await _run(names, lambda r: r.certify(handle, brand, note))
            else:
                done = await _run(names, lambda r: r.reject_brand(handle, brand, note))
                if names.registry.policy.beta is None:
                    # open registration: the public applicants' result is due now
                    outcome = await _attempt(names, lambda r: r.approve(handle, brand_review=True))
                    if isinstance(outcome, Done):
                        return OperationResult(outcome, earlier={"rejected_seq": done.event.seq})
        elif rec.status is HandleStatus.PENDING:
            done = await _run(names, lambda r: r.approve(handle, metrics, brand_review=True))
        elif rec.status is HandleStatus.RECLAIM_REVIEW:
            try:
                review = ReviewOutcome(d.outcome or "")
            except ValueError:
                raise InvalidNameRequest("outcome must be release or retain") from None
            done = await _run(names, lambda r: r.resolve_review(handle, review, note))
        else:
            winner = d.winner or None
            done = await _run(names, lambda r: r.decide(handle, winner=winner, note=note))
    return OperationResult(done)
