"""docs/spec/evidence.md E.5 (Z-1 .. Z-25): every case with its exact expected output."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction
from itertools import permutations

import pytest

from tests.names.conftest import BETA_POLICY, E5_LEXICON, OPEN_POLICY, shop
from tsa_server.names import (
    Done,
    EventKind,
    Field,
    Group,
    HandleStatus,
    Mark,
    MarkKind,
    Metrics,
    Refusal,
    Refused,
    ReleaseCause,
    ShopState,
    beijing,
    check_handle,
    check_shop_name,
    search_to_shop_rate,
)
from tsa_server.names.applicants import check_eligibility, check_mark, check_window
from tsa_server.names.config import DisputePolicy
from tsa_server.names.disputes import ContenderScore, objection_window, percent_text, rank
from tsa_server.names.holds import release_hold
from tsa_server.names.quota import ChangeHistory, check_change

DP = DisputePolicy()

# ------------------------------------------------------------- Z-1 .. Z-10
# (id, handle, shop name or None, expected bytes of the checked field, expected refusal)
NAME_CASES = [
    ("Z-1", "联合信任", None, 8, None),
    ("Z-2a", "ab", None, 2, Refusal.TOO_SHORT),
    ("Z-2b", "abcd", None, 4, None),
    ("Z-2c", "ABC中", None, 5, None),
    ("Z-3a", "一二三四五六七", None, 14, None),
    ("Z-3b", "一二三四五六七八", None, 16, Refusal.TOO_LONG),
    ("Z-4a", "联合信任", "联合信任时间戳旗舰店", 20, None),
    ("Z-4b", "联合信任", "联合信任时间戳官方旗舰店", 24, Refusal.TOO_LONG),
    ("Z-5", "ＡＢＣＤ", None, 4, None),
    ("Z-6a", "ab😀cd", None, None, Refusal.BAD_CHARACTER),
    ("Z-6b", "㐀㐀ab", None, None, Refusal.BAD_CHARACTER),
    ("Z-6c", "𠀀ab", None, None, Refusal.BAD_CHARACTER),
    ("Z-7a", "米旗", "小米旗舰店", 10, Refusal.NOT_PREFIX),
    ("Z-7b", "小米", "小米旗舰店", 10, None),
    ("Z-8a", "华为", "小米数码专营", 12, Refusal.NOT_IN_SHOP_NAME),
    ("Z-8b", "小米", "小米数码专营", 12, None),
    ("Z-9a", "旗舰店", None, 6, Refusal.ALL_RESTRICTED),
    ("Z-9b", "官方", None, 4, Refusal.RESTRICTED_ALONE),
    ("Z-9c", "小米旗舰", None, 8, None),
    ("Z-10", "国家级好店", None, 10, Refusal.BANNED_WORD),
]


@pytest.mark.parametrize(
    ("case", "handle", "shop_name", "size", "reason"), NAME_CASES, ids=[c[0] for c in NAME_CASES]
)
def test_name_cases(case, handle, shop_name, size, reason):
    if shop_name is None:
        c = check_handle(handle, E5_LEXICON, OPEN_POLICY)
        assert c.handle.byte_length == size
    else:
        c = check_shop_name(handle, shop_name, E5_LEXICON, OPEN_POLICY)
        assert c.shop_name is not None and c.shop_name.byte_length == size
    assert c.reason is reason
    assert c.ok is (reason is None)


def test_z5_fullwidth_normalises_and_collides(registry, clock):
    c = check_handle("ＡＢＣＤ", E5_LEXICON, OPEN_POLICY)
    assert (c.handle.text, c.handle.byte_length) == ("ABCD", 4)
    assert registry.apply(shop("s1", "abcd数码"), "abcd").ok
    assert registry.approve("abcd").ok
    r = registry.apply(shop("s2", "ＡＢＣＤ旗舰店"), "ＡＢＣＤ")
    assert r == Refused(Refusal.TAKEN, "abcd")
    assert registry.check("ＡＢＣＤ").reason is Refusal.TAKEN


def test_z6_details_name_the_code_points():
    c = check_handle("ab😀cd", E5_LEXICON, OPEN_POLICY)
    assert c.refused == Refused(Refusal.BAD_CHARACTER, "U+1F600", Field.HANDLE)


def test_z9_z10_details():
    assert check_handle("旗舰店", E5_LEXICON, OPEN_POLICY).refused.detail == "旗舰+店"
    assert check_handle("国家级好店", E5_LEXICON, OPEN_POLICY).refused.detail == "国家级"


# ------------------------------------------------------------- Z-11 .. Z-13
def test_z11_five_changes_then_quota(registry, clock):
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    assert registry.approve("alpha").ok
    for i, new in enumerate(["bravo", "charlie", "delta", "echo", "foxtrot"], start=1):
        clock.advance(timedelta(days=31))
        r = registry.change_handle("acct-s1", "s1", new)
        assert isinstance(r, Done) and r.event.data["changes_used"] == i
    clock.advance(timedelta(days=31))
    r = registry.change_handle("acct-s1", "s1", "golf")
    assert isinstance(r, Refused) and r.reason is Refusal.QUOTA_EXHAUSTED


def test_z12_thirty_times_24_hours(registry, clock):
    clock.set(beijing(2024, 1, 1, 12))
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    assert registry.approve("alpha").ok
    clock.set(beijing(2024, 1, 31, 11, 59))
    assert registry.change_handle("acct-s1", "s1", "bravo").reason is Refusal.TOO_SOON
    clock.set(beijing(2024, 1, 31, 12, 0))
    assert registry.change_handle("acct-s1", "s1", "bravo").ok
    # the pure rule says the same
    h = ChangeHistory(beijing(2024, 1, 1, 12))
    assert check_change(h, beijing(2024, 1, 31, 11, 59), OPEN_POLICY).reason is Refusal.TOO_SOON
    assert check_change(h, beijing(2024, 1, 31, 12), OPEN_POLICY) is None


def test_z13_custom_changes_unlimited(registry, clock):
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    assert registry.approve("alpha").ok
    assert registry.change_custom("acct-s1", "s1", "数码").ok
    clock.advance(timedelta(hours=1))
    r = registry.change_custom("acct-s1", "s1", "旗舰店")
    assert isinstance(r, Done) and r.event.data["shop_name"] == "alpha旗舰店"
    holding = registry.lookup("alpha").holding
    assert holding.history.changes == () and holding.custom == "旗舰店"


# ------------------------------------------------------------- Z-14 .. Z-16
@pytest.mark.parametrize(
    ("deleted", "free"),
    [
        (beijing(2024, 1, 31, 15), beijing(2024, 2, 29, 15)),
        (beijing(2023, 1, 31, 15), beijing(2023, 2, 28, 15)),
        (beijing(2024, 3, 15, 10), beijing(2024, 4, 15, 10)),
    ],
    ids=["Z-14a", "Z-14b", "Z-14c"],
)
def test_z14_hold_one_month(make_registry, clock, deleted, free):
    assert release_hold("a", "s", deleted, OPEN_POLICY).available_at == free
    registry = make_registry()
    clock.set(deleted - timedelta(days=60))
    assert registry.apply(shop("s1", "alpha店", "owner"), "alpha").ok
    assert registry.approve("alpha").ok
    clock.set(deleted)
    r = registry.release("s1", ReleaseCause.SHOP_DELETED)
    assert isinstance(r, Done) and r.event.data["available_at"] == free.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    clock.set(free - timedelta(seconds=1))
    assert registry.apply(shop("s2", "alpha数码", "other"), "alpha").reason is Refusal.ON_HOLD
    clock.set(free)
    assert registry.apply(shop("s2", "alpha数码", "other"), "alpha").ok


def test_z15_penalty_goes_to_review(registry, clock):
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    assert registry.approve("alpha").ok
    assert registry.release("s1", ReleaseCause.PENALTY).ok
    clock.advance(timedelta(days=3650))
    assert registry.lookup("alpha").status is HandleStatus.RECLAIM_REVIEW
    assert registry.apply(shop("s2", "alpha店"), "alpha").reason is Refusal.UNDER_REVIEW
    assert (
        registry.reclaim(shop("s3", "alpha店", "acct-s1"), "alpha").reason is Refusal.UNDER_REVIEW
    )


def test_z16_blocked_shop_cannot_apply(registry):
    r = registry.apply(shop("s1", "alpha店", state=ShopState.BLOCKED), "alpha")
    assert r.reason is Refusal.SHOP_BLOCKED


# ------------------------------------------------------------- Z-17 .. Z-21
def _e(who: str, total: int, days: int = 100, rate: Fraction = Fraction(1, 2)) -> ContenderScore:
    return ContenderScore(who, Fraction(total), Metrics(search_rate=rate, usage_days=days))


def test_z17_higher_score_leads():
    r = rank([_e("B", 75), _e("A", 80)], DP)
    assert (r.leader, r.decided_by) == ("A", "score")
    assert [(s.contender, s.rank) for s in r.standings] == [("A", 1), ("B", 2)]


@pytest.mark.parametrize("order", [0, 1], ids=["A-first", "B-first"])
def test_z18_usage_duration_breaks_the_tie(order):
    entries = [_e("A", 80, days=400), _e("B", 80, days=380)]
    r = rank(entries if order == 0 else entries[::-1], DP)
    assert (r.leader, r.decided_by) == ("A", "usage_duration")


def test_z19_full_tie_is_manual_review_regardless_of_order(make_registry, clock):
    entries = [_e("A", 80), _e("B", 80), _e("C", 80)]
    results = {rank(list(p), DP) for p in permutations(entries)}
    assert len(results) == 1
    (r,) = results
    assert r.leader is None and r.manual_review and r.decided_by is None
    assert [s.rank for s in r.standings] == [1, 1, 1]
    registry = make_registry()
    m = Metrics(search_rate=Fraction(1, 2), usage_days=100)
    for sid in ("s1", "s2"):
        assert registry.apply(shop(sid, "alpha店"), "alpha").ok
    assert registry.approve("alpha", {"s1": m, "s2": m}).ok
    clock.advance(timedelta(days=7))
    assert registry.decide("alpha").reason is Refusal.MANUAL_REVIEW_REQUIRED
    assert registry.decide("alpha", winner="s2", note="review").ok


def test_z20_objection_period(make_registry, clock):
    published = beijing(2013, 10, 14)
    window = objection_window(published, DP)
    assert window.contains(beijing(2013, 10, 20, 23, 59, 59))
    assert not window.contains(beijing(2013, 10, 21))
    assert window.end == beijing(2013, 10, 21)
    registry = make_registry(BETA_POLICY)
    clock.set(beijing(2013, 9, 26))
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    assert registry.apply(shop("s2", "alpha数码"), "alpha").ok
    clock.set(published)
    strong, weak = Metrics(search_rate=Fraction(9, 10)), Metrics(search_rate=Fraction(1, 10))
    assert registry.approve("alpha", {"s1": strong, "s2": weak}).ok
    clock.set(beijing(2013, 10, 20, 23, 59, 59))
    assert registry.object("alpha", "s2", "acct-s2", "my data").ok
    assert registry.decide("alpha").reason is Refusal.OBJECTION_PERIOD_OPEN
    clock.set(beijing(2013, 10, 21))
    assert registry.object("alpha", "s2", "acct-s2").reason is Refusal.OBJECTION_CLOSED
    assert registry.decide("alpha").reason is Refusal.OBJECTIONS_PENDING
    r = registry.decide("alpha", winner="s1", note="objection rejected")
    assert isinstance(r, Done) and r.event.at == beijing(2013, 10, 21)
    assert registry.lookup("alpha").holding.history.approved_at == beijing(2013, 10, 21)


def test_z20_no_objection_leader_takes_effect_at_end(make_registry, clock):
    registry = make_registry(BETA_POLICY)
    clock.set(beijing(2013, 9, 26))
    registry.apply(shop("s1", "alpha店"), "alpha")
    registry.apply(shop("s2", "alpha数码"), "alpha")
    clock.set(beijing(2013, 10, 14))
    registry.approve("alpha", {"s1": Metrics(usage_days=10), "s2": Metrics(usage_days=20)})
    clock.set(beijing(2013, 10, 21))
    r = registry.decide("alpha")
    assert isinstance(r, Done)
    assert (r.event.kind, r.event.data["shop"], r.event.data["by"]) == (
        EventKind.DECIDED,
        "s2",
        "ranking",
    )
    assert r.event.at == beijing(2013, 10, 21)


def test_z21_search_to_shop_rate():
    assert search_to_shop_rate(513, 1000) == Fraction(513, 1000)
    assert percent_text(search_to_shop_rate(513, 1000)) == "51.3%"
    assert search_to_shop_rate(0, 0) == 0
    assert percent_text(search_to_shop_rate(0, 0)) == "0.0%"


# ------------------------------------------------------------- Z-22 .. Z-25
@pytest.mark.parametrize(
    ("opened", "reason"),
    [
        (beijing(2013, 7, 30, 23, 59, 59), None),
        (beijing(2013, 7, 31), Refusal.SHOP_TOO_NEW),
    ],
    ids=["Z-22a", "Z-22b"],
)
def test_z22_opening_cutoff(opened, reason):
    s = shop("s1", "alpha店", opened=opened)
    r = check_window(s, beijing(2013, 9, 25), BETA_POLICY)
    assert (r.reason if r else None) is reason


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (beijing(2013, 10, 7, 23, 59, 59), None),
        (beijing(2013, 10, 8), Refusal.WINDOW_CLOSED),
        (beijing(2013, 9, 24, 23, 59, 59), Refusal.WINDOW_NOT_OPEN),
    ],
    ids=["Z-23a", "Z-23b", "Z-23-before"],
)
def test_z23_group2_window(make_registry, clock, at, reason):
    registry = make_registry(BETA_POLICY)
    clock.set(at)
    r = registry.apply(shop("s1", "alpha店"), "alpha")
    assert (None if r.ok else r.reason) is reason


@pytest.mark.parametrize("at", [beijing(2013, 9, 1), beijing(2013, 10, 8), beijing(2016, 5, 1)])
def test_z23_group1_any_time(make_registry, clock, at):
    registry = make_registry(BETA_POLICY)
    clock.set(at)
    mark = Mark(MarkKind.REGISTERED, "alpha", beijing(2010, 1, 1))
    s = shop("s1", "beta数码", opened=beijing(2015, 1, 1))
    assert registry.apply(s, "alpha", group=Group.BRAND, mark=mark, shop_name="alpha数码").ok


def test_z24_tm_six_months_by_calendar():
    mark = Mark(MarkKind.APPLICATION, "alpha", beijing(2013, 3, 25))
    assert check_mark(mark, "alpha", beijing(2013, 9, 25), BETA_POLICY) is None
    too_early = check_mark(mark, "alpha", beijing(2013, 9, 24, 23, 59, 59), BETA_POLICY)
    assert too_early.reason is Refusal.MARK_TOO_RECENT
    s = shop("s1", "alpha店")
    assert (
        check_eligibility(s, Group.BRAND, mark, "alpha", beijing(2013, 9, 25), BETA_POLICY) is None
    )


def test_z25_unique_handle_effective_at_publication(make_registry, clock, sink):
    registry = make_registry(BETA_POLICY)
    clock.set(beijing(2013, 9, 26))
    assert registry.apply(shop("s1", "alpha店"), "alpha").ok
    assert registry.apply(shop("s2", "bravo店"), "bravo").ok
    assert registry.apply(shop("s3", "bravo店"), "bravo").ok  # duplicate handle
    assert registry.apply(shop("s4", "delta数码"), "delta").ok
    assert registry.apply(shop("s5", "delta数码"), "delta数").ok  # same shop name as s4
    clock.set(beijing(2013, 10, 13, 23, 59, 59))
    assert registry.approve("alpha").reason is Refusal.NOT_YET_PUBLISHED
    clock.set(beijing(2013, 10, 14))
    results = registry.publish({sid: Metrics() for sid in ("s2", "s3")})
    assert [r.event.kind for r in results] == [
        EventKind.APPROVED,
        EventKind.CONTESTED,
        EventKind.CONTESTED,
        EventKind.CONTESTED,
    ]
    alpha = registry.lookup("alpha")
    assert alpha.status is HandleStatus.ACTIVE
    assert alpha.holding.history.approved_at == beijing(2013, 10, 14)
    assert registry.lookup("delta").status is HandleStatus.CONTESTED
    assert registry.lookup("bravo").contest.window.end == beijing(2013, 10, 21)
