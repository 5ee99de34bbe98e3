"""Registry service flows: apply/approve, contests, changes, release/hold/reclaim, review."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from fractions import Fraction

import pytest

from tests.names.conftest import BETA_POLICY, OPEN_POLICY, shop
from tsa_server.names import (
    ContestView,
    Done,
    EventKind,
    Group,
    HandleStatus,
    Lexicon,
    Mark,
    MarkKind,
    Metrics,
    Refusal,
    Refused,
    ReleaseCause,
    ReviewOutcome,
    ShopState,
    beijing,
)

STRONG = Metrics(search_rate=Fraction(9, 10), usage_days=300, wangwang=True)
WEAK = Metrics(search_rate=Fraction(1, 10), usage_days=50)


def _hold(registry, shop_id="s1", account="acct-s1", name="alpha店", handle="alpha"):
    assert registry.apply(shop(shop_id, name, account), handle).ok
    assert registry.approve(handle).ok


def test_unique_application_is_auto_approved(registry, sink):
    assert registry.apply(shop("s1", "alpha数码"), "alpha").ok
    assert registry.lookup("alpha").status is HandleStatus.PENDING
    r = registry.approve("alpha")
    assert isinstance(r, Done) and r.event.kind is EventKind.APPROVED
    rec = registry.lookup("alpha")
    assert rec.status is HandleStatus.ACTIVE
    assert (rec.holding.handle, rec.holding.custom) == ("alpha", "数码")
    assert registry.approve("alpha").reason is Refusal.NOTHING_PENDING


def test_live_check_reports_bytes_validity_and_reason(registry):
    c = registry.check("ａｌｐｈａ", "alpha数码")
    assert (c.ok, c.handle.byte_length, c.shop_name.byte_length) == (True, 5, 9)
    _hold(registry)
    c = registry.check("ALPHA")
    assert (c.ok, c.reason, c.handle.byte_length) == (False, Refusal.TAKEN, 5)
    assert registry.check("ab").reason is Refusal.TOO_SHORT


def test_two_applicants_are_contested_with_objection_period(registry, clock):
    registry.apply(shop("s1", "alpha店"), "alpha")
    registry.apply(shop("s2", "alpha数码"), "alpha")
    published = clock.now
    assert registry.approve("alpha").reason is Refusal.METRICS_MISSING
    r = registry.approve("alpha", {"s1": WEAK, "s2": STRONG})
    assert isinstance(r, Done) and r.event.kind is EventKind.CONTESTED
    assert r.event.data["leader"] == "s2"
    rec = registry.lookup("alpha")
    assert rec.status is HandleStatus.CONTESTED
    assert rec.contest.window.end == published + timedelta(days=7)
    assert registry.apply(shop("s3", "alpha好"), "alpha").reason is Refusal.CONTESTED


def test_contest_view_shows_own_metrics_beside_the_leader(registry, clock):
    registry.apply(shop("s1", "alpha店"), "alpha")
    registry.apply(shop("s2", "alpha数码"), "alpha")
    registry.approve("alpha", {"s1": WEAK, "s2": STRONG})
    view = registry.contest_view("alpha", "s1")
    assert isinstance(view, ContestView)
    assert (view.own.contender, view.own.metrics, view.own.rank) == ("s1", WEAK, 2)
    assert (view.leader.contender, view.leader.metrics) == ("s2", STRONG)
    assert view.own.score < view.leader.score and view.decided_by == "score"
    assert registry.contest_view("alpha", "s9").reason is Refusal.NOT_CONTENDER
    assert registry.object("alpha", "s2", "acct-s2").reason is Refusal.LEADER_CANNOT_OBJECT
    assert registry.object("alpha", "s1", "acct-s2").reason is Refusal.NOT_OWNER
    clock.advance(timedelta(days=7))
    assert registry.contest_view("alpha", "s1").reason is Refusal.OBJECTION_CLOSED


@pytest.mark.parametrize("first", ["s1", "s2"])
def test_decision_by_weights_then_usage_never_submission_order(make_registry, clock, first):
    # Usage carries no weight here, so the totals tie and usage duration must decide
    # (H-16), whichever shop applied first (H-8).
    no_usage_weight = replace(
        OPEN_POLICY.disputes, weights=replace(OPEN_POLICY.disputes.weights, usage_duration=0)
    )
    registry = make_registry(replace(OPEN_POLICY, disputes=no_usage_weight))
    names = {"s1": "alpha店", "s2": "alpha数码"}
    for sid in [first] + [s for s in names if s != first]:
        registry.apply(shop(sid, names[sid]), "alpha")
    m1 = Metrics(search_rate=Fraction(1, 2), usage_days=400)
    m2 = Metrics(search_rate=Fraction(1, 2), usage_days=380)
    assert registry.approve("alpha", {"s1": WEAK}).reason is Refusal.METRICS_MISSING
    r = registry.approve("alpha", {"s1": m1, "s2": m2})
    assert (r.event.data["leader"], r.event.data["decided_by"]) == ("s1", "usage_duration")
    clock.advance(timedelta(days=7))
    r = registry.decide("alpha")
    assert isinstance(r, Done) and r.event.data["shop"] == "s1"
    assert registry.lookup("alpha").holding.shop_name == "alpha店"


def test_decide_with_a_non_contender_is_refused(registry, clock):
    registry.apply(shop("s1", "alpha店"), "alpha")
    registry.apply(shop("s2", "alpha数码"), "alpha")
    registry.approve("alpha", {"s1": WEAK, "s2": STRONG})
    clock.advance(timedelta(days=7))
    assert registry.decide("alpha", winner="s9").reason is Refusal.NOT_CONTENDER
    assert registry.decide("bravo").reason is Refusal.NOT_CONTESTED


def test_mark_holder_takes_precedence(make_registry, clock):
    registry = make_registry()
    registry.apply(shop("s1", "alpha店"), "alpha")
    mark = Mark(MarkKind.REGISTERED, "alpha", beijing(2010, 1, 1))
    assert registry.apply(
        shop("s2", "other"), "alpha", group=Group.BRAND, mark=mark, shop_name="alpha官方"
    ).ok
    r = registry.approve("alpha")
    assert r.event.kind is EventKind.APPROVED and r.event.data["dropped"] == ["s1"]
    assert registry.lookup("alpha").holding.shop_id == "s2"


def test_brand_handle_needs_group1(make_registry):
    registry = make_registry(lexicon=Lexicon(brands=frozenset({"小米"})))
    r = registry.apply(shop("s1", "小米数码"), "小米数码")
    assert r.reason is Refusal.BRAND_PROOF_REQUIRED


def test_one_application_per_shop(registry):
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    assert registry.apply(shop("s1", "alpha店"), "alpha店").reason is Refusal.ALREADY_APPLIED
    registry.approve("alpha")
    assert registry.apply(shop("s1", "alpha店"), "alpha店").reason is Refusal.ALREADY_HOLDS
    assert (
        registry.apply(shop("s2", "x", state=ShopState.DELETED), "alpha").reason
        is Refusal.SHOP_DELETED
    )


def test_cross_account_change_refused(registry, clock):
    _hold(registry)
    clock.advance(timedelta(days=31))
    assert registry.change_handle("intruder", "s1", "bravo").reason is Refusal.NOT_OWNER
    assert registry.change_custom("intruder", "s1", "数码").reason is Refusal.NOT_OWNER
    assert registry.change_handle("acct-s1", "s9", "bravo").reason is Refusal.NOT_HOLDER
    with pytest.raises(ValueError):
        registry.release("s1", ReleaseCause.WITHDRAWN)
    r = registry.release("s1", ReleaseCause.WITHDRAWN, account_id="intruder")
    assert r.reason is Refusal.NOT_OWNER


def test_change_to_unavailable_handles(registry, clock):
    _hold(registry)
    _hold(registry, "s2", "acct-s2", "bravo店", "bravo")
    registry.apply(shop("s3", "charlie店"), "charlie")
    clock.advance(timedelta(days=31))
    assert registry.change_handle("acct-s1", "s1", "BRAVO").reason is Refusal.TAKEN
    assert registry.change_handle("acct-s1", "s1", "charlie").reason is Refusal.PENDING_ELSEWHERE
    assert registry.change_handle("acct-s1", "s1", "官方").reason is Refusal.RESTRICTED_ALONE


def test_change_holds_the_old_handle_for_its_owner(registry, clock):
    _hold(registry)
    clock.advance(timedelta(days=31))
    r = registry.change_handle("acct-s1", "s1", "delta", custom="数码")
    assert isinstance(r, Done) and r.event.data["shop_name"] == "delta数码"
    assert registry.lookup("alpha").status is HandleStatus.ON_HOLD
    assert registry.apply(shop("s2", "alpha店"), "alpha").reason is Refusal.ON_HOLD
    clock.advance(timedelta(days=31))
    r = registry.change_handle("acct-s1", "s1", "alpha")  # its former owner may return
    assert isinstance(r, Done) and r.event.data["changes_left"] == 3
    # a case-only change keeps the key and spends a change
    clock.advance(timedelta(days=31))
    assert registry.change_handle("acct-s1", "s1", "ALPHA").ok
    assert registry.lookup("alpha").holding.handle == "ALPHA"


def test_release_hold_and_only_former_owner_reclaims(registry, clock):
    _hold(registry, account="owner")
    deleted = clock.now
    assert registry.release("s1", ReleaseCause.SHOP_DELETED).ok
    rec = registry.lookup("alpha")
    assert rec.status is HandleStatus.ON_HOLD
    assert registry.reclaim(shop("s2", "alpha店", "other"), "alpha").reason is Refusal.ON_HOLD
    assert registry.apply(shop("s3", "alpha店", "owner"), "alpha").reason is Refusal.ON_HOLD
    clock.advance(timedelta(days=10))
    r = registry.reclaim(shop("s3", "alpha旗舰店", "owner"), "alpha")
    assert isinstance(r, Done) and r.event.kind is EventKind.RECLAIMED
    holding = registry.lookup("alpha").holding
    assert (holding.shop_id, holding.custom, holding.history.approved_at) == (
        "s3",
        "旗舰店",
        deleted + timedelta(days=10),
    )


def test_reclaim_after_the_hold_is_an_application(registry, clock):
    _hold(registry, account="owner")
    registry.release("s1", ReleaseCause.SHOP_DELETED)
    clock.advance(timedelta(days=31))
    assert registry.lookup("alpha") is None
    assert registry.reclaim(shop("s3", "alpha店", "owner"), "alpha").reason is Refusal.HOLD_EXPIRED
    assert (
        registry.reclaim(shop("s3", "bravo店", "owner"), "bravo").reason
        is Refusal.NOTHING_TO_RECLAIM
    )
    assert registry.apply(shop("s2", "alpha店", "other"), "alpha").ok


def test_review_resolution(registry, clock):
    _hold(registry)
    _hold(registry, "s2", "acct-s2", "bravo店", "bravo")
    registry.release("s1", ReleaseCause.PENALTY)
    registry.release("s2", ReleaseCause.PENALTY)
    assert registry.resolve_review("alpha", ReviewOutcome.RELEASE).ok
    assert registry.lookup("alpha") is None
    assert registry.resolve_review("bravo", ReviewOutcome.RETAIN, "kept").ok
    assert registry.apply(shop("s3", "bravo店"), "bravo").reason is Refusal.RESERVED
    assert (
        registry.resolve_review("bravo", ReviewOutcome.RELEASE).reason is Refusal.NOT_UNDER_REVIEW
    )


def test_withdrawal_refused_during_beta_then_held(make_registry, clock):
    registry = make_registry(BETA_POLICY)
    clock.set(beijing(2013, 9, 26))
    registry.apply(shop("s1", "alpha店"), "alpha")
    clock.set(beijing(2013, 10, 14))
    registry.approve("alpha")
    r = registry.release("s1", ReleaseCause.WITHDRAWN, account_id="acct-s1")
    assert r.reason is Refusal.CHANGE_FROZEN
    assert registry.change_custom("acct-s1", "s1", "好店").ok  # custom part is not frozen
    clock.set(beijing(2013, 10, 21))
    r = registry.release("s1", ReleaseCause.WITHDRAWN, account_id="acct-s1")
    assert isinstance(r, Done) and r.event.data["available_at"] == "2013-11-20T16:00:00Z"


def test_refusals_change_nothing(registry, sink):
    before = registry.store.last_seq()
    results = [
        registry.apply(shop("s1", "小米数码"), "华为"),
        registry.approve("nothing"),
        registry.decide("nothing"),
        registry.change_custom("a", "s1", "x"),
    ]
    assert all(isinstance(r, Refused) for r in results)
    assert registry.store.last_seq() == before and sink.records == []
