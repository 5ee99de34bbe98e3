"""Trademark trump (H-13): a registered-mark holder's complaint against a held handle,
decided by the operator; injectable clock, in-memory and SQLite stores."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

from tests.names.conftest import BETA_POLICY, E5_LEXICON, shop
from tsa_server.names import (
    EventKind,
    Group,
    HandleStatus,
    Mark,
    MarkKind,
    MemorySink,
    Metrics,
    Refusal,
    Registry,
    beijing,
)
from tsa_server.names.applicants import BrandProof
from tsa_server.names.quota import changes_left
from tsa_server.names.sql_store import SqlNameStore
from tsa_server.names.trademark import Verdict

R_MARK = Mark(MarkKind.REGISTERED, "alpha", beijing(2015, 3, 1))
TM_MARK = Mark(MarkKind.APPLICATION, "alpha", beijing(2010, 3, 1))
PROOF = BrandProof("第7654321号", evidence_item="itm_c", evidence_sha256="cd" * 32)
OWNER = shop("s1", "alpha店")
MARK_HOLDER = shop("t9", "alpha数码")


def _held(registry, owner=OWNER) -> None:
    assert registry.apply(owner, "alpha").ok
    assert registry.approve("alpha").ok


def test_complaint_long_after_the_objection_period_is_accepted(make_registry, clock, sink):
    registry = make_registry(BETA_POLICY)
    clock.set(beijing(2013, 9, 26))
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    assert registry.apply(shop("s2", "alpha好"), "alpha").ok
    clock.set(beijing(2013, 10, 14))
    strong = Metrics(search_rate=Fraction(9, 10), usage_days=300)
    assert registry.approve("alpha", {"s1": strong, "s2": Metrics()}).ok
    clock.set(beijing(2013, 10, 21))
    assert registry.decide("alpha").ok
    clock.set(beijing(2016, 5, 4, 10))  # years after the objection period
    r = registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF, statement="注册商标")
    assert r.ok and r.event.kind is EventKind.TRADEMARK_COMPLAINT_FILED
    assert r.event.data["holder"] == "s1" and r.event.data["proof"] == PROOF.to_json()
    assert r.event.data["mark"]["kind"] == "R" and r.event.at == clock.now
    rec = registry.lookup("alpha")
    # pending: nothing moves before the operator decides
    assert rec.status is HandleStatus.ACTIVE and rec.holding.shop_id == "s1"
    assert rec.complaint("t9").shop_name == "alpha数码"
    again = registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF)
    assert again.reason is Refusal.COMPLAINT_PENDING


def test_uphold_moves_the_handle_and_the_former_holder_cannot_reclaim(registry, clock, sink):
    _held(registry)
    clock.advance(timedelta(days=40))
    assert registry.change_custom("acct-s1", "s1", "旗舰").ok
    assert registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF).ok
    other = shop("t8", "alpha好")
    assert registry.complain("alpha", other, R_MARK, PROOF).ok
    clock.advance(timedelta(days=3))
    assert registry.decide_complaint("alpha", "nobody", Verdict.UPHOLD).reason is (
        Refusal.NO_COMPLAINT
    )
    r = registry.decide_complaint("alpha", "t9", Verdict.UPHOLD, "注册证已核验")
    assert r.ok and r.event.kind is EventKind.TRADEMARK_COMPLAINT_UPHELD
    d = r.event.data
    assert (d["former_shop"], d["former_account"], d["former_shop_name"]) == (
        "s1",
        "acct-s1",
        "alpha旗舰",
    )
    assert d["dropped"] == ["t8"] and d["note"] == "注册证已核验"
    rec = registry.lookup("alpha")
    assert rec.status is HandleStatus.ACTIVE and rec.hold is None and rec.complaints == ()
    h = rec.holding
    assert (h.shop_id, h.shop_name, h.mark, h.history.approved_at) == (
        "t9",
        "alpha数码",
        R_MARK,
        clock.now,
    )
    # no hold for the former holder: nothing to reclaim, the handle is taken
    assert registry.reclaim(OWNER, "alpha").reason is Refusal.NOTHING_TO_RECLAIM
    assert registry.apply(OWNER, "alpha").reason is Refusal.TAKEN
    assert registry.change_custom("acct-s1", "s1", "店").reason is Refusal.NOT_HOLDER
    # its quota is not charged: a new handle starts a full history
    assert registry.apply(shop("s1", "beta店"), "beta").ok and registry.approve("beta").ok
    assert changes_left(registry.lookup("beta").holding.history, registry.policy) == 5
    # the new holder's registered mark: later complaints are refused
    r = registry.complain("alpha", other, R_MARK, PROOF)
    assert r.reason is Refusal.HOLDER_HAS_MARK
    kinds = sink.kinds()
    assert kinds.count(EventKind.TRADEMARK_COMPLAINT_FILED) == 2
    assert kinds[-3] is EventKind.TRADEMARK_COMPLAINT_UPHELD


def test_dismiss_changes_nothing(registry, clock, sink):
    _held(registry)
    assert registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF).ok
    before = registry.lookup("alpha")
    r = registry.decide_complaint("alpha", "t9", Verdict.DISMISS, "类别不覆盖主营类目")
    assert r.ok and r.event.kind is EventKind.TRADEMARK_COMPLAINT_DISMISSED
    assert r.event.data["complaints"] == 0
    after = registry.lookup("alpha")
    assert after.holding == before.holding and after.status is HandleStatus.ACTIVE
    assert after.complaints == ()
    assert registry.decide_complaint("alpha", "t9", Verdict.DISMISS).reason is (
        Refusal.NO_COMPLAINT
    )
    # closed: the complainant may complain again (e.g. with other proof)
    assert registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF).ok


def test_refusals(registry, make_registry, sink):
    assert registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF).reason is Refusal.NOT_HELD
    assert registry.apply(OWNER, "alpha").ok
    pending = registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF)
    assert pending.reason is Refusal.NOT_HELD  # pending, not held yet
    assert registry.approve("alpha").ok
    n = len(sink.records)
    cases = [
        (TM_MARK, PROOF, MARK_HOLDER, Refusal.REGISTERED_MARK_REQUIRED),
        (None, PROOF, MARK_HOLDER, Refusal.MARK_REQUIRED),
        (R_MARK, None, MARK_HOLDER, Refusal.PROOF_REQUIRED),
        (Mark(MarkKind.REGISTERED, "gamma", R_MARK.filed_at), PROOF, MARK_HOLDER,
         Refusal.MARK_MISMATCH),
        (Mark(MarkKind.REGISTERED, "alpha", R_MARK.filed_at, listed=False), PROOF, MARK_HOLDER,
         Refusal.MARK_NOT_LISTED),
        (R_MARK, PROOF, OWNER, Refusal.SELF_COMPLAINT),
        (R_MARK, PROOF, shop("s7", "alpha好", "acct-s1"), Refusal.SELF_COMPLAINT),
    ]  # fmt: skip
    for mark, proof, who, reason in cases:
        assert registry.complain("alpha", who, mark, proof).reason is reason, (mark, who)
    bound = shop("s5", "gamma店")
    assert registry.apply(bound, "gamma").ok
    r = registry.complain("alpha", shop("s5", "alpha五"), R_MARK, PROOF)
    assert r.reason is Refusal.ALREADY_APPLIED
    assert len(sink.records) == n + 1  # only gamma's application was logged


def test_holder_with_its_own_certified_mark_is_not_trumped(make_registry):
    registry = make_registry()
    certified = shop("s1", "other")
    assert registry.apply(
        certified, "alpha", group=Group.BRAND, mark=R_MARK, shop_name="alpha店", proof=PROOF
    ).ok
    assert registry.certify("alpha", "s1").ok
    assert registry.lookup("alpha").holding.mark == R_MARK
    r = registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF)
    assert (r.reason, r.detail) == (Refusal.HOLDER_HAS_MARK, "R alpha")


def test_complaints_and_upheld_marks_survive_a_restart(make_registry, clock, tmp_path):
    path = tmp_path / "names.sqlite"
    policy = make_registry().policy

    def open_registry() -> Registry:
        return Registry(policy, lambda: E5_LEXICON, clock, MemorySink(), SqlNameStore(path))

    registry = open_registry()
    _held(registry)
    clock.advance(timedelta(days=400))
    assert registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF, statement="s").ok
    assert registry.complain("alpha", shop("t8", "alpha好"), R_MARK, PROOF).ok
    registry.store.close()

    reopened = open_registry()
    rec = reopened.lookup("alpha")
    assert [c.shop_id for c in rec.complaints] == ["t9", "t8"]
    c = rec.complaint("t9")
    assert (c.mark, c.proof, c.statement, c.filed_at) == (R_MARK, PROOF, "s", clock.now)
    assert reopened.complain("alpha", MARK_HOLDER, R_MARK, PROOF).reason is (
        Refusal.COMPLAINT_PENDING
    )
    assert reopened.decide_complaint("alpha", "t8", Verdict.DISMISS).ok
    assert reopened.decide_complaint("alpha", "t9", Verdict.UPHOLD).ok
    reopened.store.close()

    third = open_registry()
    rec = third.lookup("alpha")
    assert rec.holding.shop_id == "t9" and rec.holding.mark == R_MARK and rec.complaints == ()
    assert third.store.by_shop("s1") is None and third.store.by_shop("t9").key == rec.key
    third.store.close()


def test_an_open_complaint_cannot_be_dodged_by_changing_or_withdrawing(registry, clock, sink):
    from tsa_server.names.core import ReleaseCause

    _held(registry)
    clock.advance(timedelta(days=40))
    assert registry.complain("alpha", MARK_HOLDER, R_MARK, PROOF).ok
    moved = registry.change_handle("acct-s1", "s1", "beta")
    assert moved.reason is Refusal.COMPLAINT_PENDING
    withdrawn = registry.release("s1", ReleaseCause.WITHDRAWN, account_id="acct-s1")
    assert withdrawn.reason is Refusal.COMPLAINT_PENDING
    assert registry.change_custom("acct-s1", "s1", "旗舰").ok  # the custom part is free
    assert registry.lookup("alpha").holding.shop_id == "s1"
    assert registry.decide_complaint("alpha", "t9", Verdict.DISMISS).ok
    assert registry.change_handle("acct-s1", "s1", "beta").ok  # decided: free again
