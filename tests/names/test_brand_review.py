"""Group-1 (brand) applications with proof, and the operator's review (H-9, H-14)."""

from __future__ import annotations

import pytest

from tsa_server.names import (
    EventKind,
    Group,
    HandleStatus,
    Lexicon,
    Mark,
    MarkKind,
    Refusal,
    beijing,
)
from tsa_server.names.applicants import BrandProof
from tsa_server.names.sql_store import SqlNameStore

from .conftest import E5_LEXICON, shop

MARK = Mark(MarkKind.REGISTERED, "小米", beijing(2010, 1, 1))
PROOF = BrandProof("第1234567号", evidence_item="itm_1", evidence_sha256="ab" * 32)
BRANDS = Lexicon(restricted=E5_LEXICON.restricted, brands=frozenset({"小米"}))


def _brand(registry, shop_id="s2"):
    return registry.apply(
        shop(shop_id, "other"),
        "小米",
        group=Group.BRAND,
        mark=MARK,
        shop_name="小米官方店",
        proof=PROOF,
    )


def test_proof_validation():
    with pytest.raises(ValueError, match="registration_number"):
        BrandProof(" ", evidence_item="x")
    with pytest.raises(ValueError, match="proof document"):
        BrandProof("123")
    with pytest.raises(ValueError, match="hex"):
        BrandProof("123", evidence_sha256="AB" * 32)


def test_brand_application_waits_for_review_then_is_certified(make_registry, sink):
    registry = make_registry(lexicon=BRANDS)
    assert registry.apply(shop("s1", "小米数码"), "小米").reason is Refusal.BRAND_PROOF_REQUIRED
    applied = _brand(registry)
    assert applied.event.data["proof"] == PROOF.to_json()
    assert registry.lookup("小米").application("s2").proof == PROOF
    # no operator: the automatic publication leaves it pending
    r = registry.approve("小米", brand_review=True)
    assert (r.reason, r.detail) == (Refusal.BRAND_REVIEW_PENDING, "s2")
    assert registry.certify("小米", "s9").reason is Refusal.NOT_BRAND_APPLICANT
    done = registry.certify("小米", "s2", "商标注册证已核验")
    assert done.event.kind is EventKind.BRAND_CERTIFIED
    assert done.event.data["note"] == "商标注册证已核验" and done.event.data["dropped"] == []
    rec = registry.lookup("小米")
    assert rec.status is HandleStatus.ACTIVE and rec.holding.shop_name == "小米官方店"
    assert registry.certify("小米", "s2").reason is Refusal.NOTHING_PENDING


def test_rejected_brand_leaves_the_public_applicants(make_registry):
    registry = make_registry()
    assert registry.apply(shop("s1", "小米数码"), "小米").ok
    assert _brand(registry).ok
    assert registry.approve("小米", brand_review=True).reason is Refusal.BRAND_REVIEW_PENDING
    assert registry.reject_brand("小米", "s1").reason is Refusal.NOT_BRAND_APPLICANT
    r = registry.reject_brand("小米", "s2", "证书与申请人不符")
    assert r.event.kind is EventKind.BRAND_REJECTED and r.event.data["applicants"] == 1
    approved = registry.approve("小米", brand_review=True)
    assert approved.event.kind is EventKind.APPROVED
    assert registry.lookup("小米").holding.shop_id == "s1"


def test_a_lone_rejected_brand_frees_the_handle(make_registry):
    registry = make_registry(lexicon=BRANDS)
    assert _brand(registry).ok
    assert registry.reject_brand("小米", "s2").ok
    assert registry.lookup("小米") is None and registry.check("小米").reason is (
        Refusal.BRAND_PROOF_REQUIRED
    )


def test_public_application_has_no_proof(registry):
    with pytest.raises(ValueError, match="Group-1"):
        registry.apply(shop("s1", "alpha店"), "alpha", proof=PROOF)


def test_sqlite_keeps_mark_and_proof(make_registry, clock, tmp_path):
    from tsa_server.names import MemorySink, Registry

    store = SqlNameStore(tmp_path / "names.sqlite")
    registry = Registry(make_registry().policy, lambda: BRANDS, clock, MemorySink(), store)
    assert _brand(registry).ok
    app = SqlNameStore(tmp_path / "names.sqlite").get(registry.key("小米")).application("s2")
    assert (app.group, app.mark, app.proof) == (Group.BRAND, MARK, PROOF)
