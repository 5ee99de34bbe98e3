"""Pure rules H-1 .. H-17 (validation, quota, holds, eligibility, disputes) and G-2."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.names.conftest import BETA_POLICY, E5_LEXICON, OPEN_POLICY, shop
from tsa_server.names import (
    BEIJING,
    Field,
    Group,
    Lexicon,
    Mark,
    MarkKind,
    Metrics,
    Refusal,
    ShopState,
    add_months,
    beijing,
    check_custom,
    check_handle,
    check_shop_name,
)
from tsa_server.names.applicants import check_eligibility, check_mark, search_direct_enabled
from tsa_server.names.config import BrandMatch, DisputePolicy, HoldReclaim, Weights
from tsa_server.names.disputes import (
    ContenderScore,
    effective_usage_days,
    percent_text,
    rank,
    score,
    search_to_shop_rate,
)
from tsa_server.names.holds import check_take, release_hold, review_hold
from tsa_server.names.quota import ChangeHistory, changes_left, check_change, next_change_at

DP = DisputePolicy()


# ------------------------------------------------------------------- G-2
@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (beijing(2020, 2, 29), 15, beijing(2021, 5, 29)),
        (beijing(2024, 2, 29), 36, beijing(2027, 2, 28)),
        (beijing(2024, 2, 29), 48, beijing(2028, 2, 29)),
        (beijing(2024, 1, 31, 15), 1, beijing(2024, 2, 29, 15)),
        (beijing(2013, 3, 25), 6, beijing(2013, 9, 25)),
        (datetime(2022, 11, 30, 16, 30, tzinfo=UTC), 36, beijing(2025, 12, 1, 0, 30)),
        (beijing(2024, 3, 31), -1, beijing(2024, 2, 29)),
    ],
)
def test_add_months(start, months, expected):
    assert add_months(start, months) == expected


def test_add_months_refuses_naive():
    with pytest.raises(ValueError):
        add_months(datetime(2024, 1, 1), 1)


@given(
    st.datetimes(
        min_value=datetime(1995, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(-240, 240),
)
def test_add_months_keeps_beijing_time_of_day_and_clamps(t, n):
    out, local = add_months(t, n).astimezone(BEIJING), t.astimezone(BEIJING)
    assert out.time() == local.time()
    assert (out.year * 12 + out.month) - (local.year * 12 + local.month) == n
    assert out.day <= local.day


# ------------------------------------------------------------ H-1 .. H-3
def test_h1_handle_alone_or_with_custom():
    assert check_shop_name("联合信任", "联合信任", E5_LEXICON, OPEN_POLICY).custom == ""
    c = check_shop_name("abcd", "ABCD旗舰店", E5_LEXICON, OPEN_POLICY)
    assert c.ok and c.custom == "旗舰店"  # prefix compared after case-fold


@pytest.mark.parametrize(
    ("handle", "reason"),
    [
        ("abc", Refusal.TOO_SHORT),
        ("a" * 14, None),
        ("a" * 15, Refusal.TOO_LONG),
        ("a一二三四五六", None),
        ("1234", None),
        ("ab cd", Refusal.BAD_CHARACTER),
        ("ab-cd", Refusal.BAD_CHARACTER),
        ("中", Refusal.TOO_SHORT),
    ],
)
def test_h2_h3_handle_bounds_and_characters(handle, reason):
    assert check_handle(handle, Lexicon(), OPEN_POLICY).reason is reason


def test_h2_shop_name_bounds():
    assert check_shop_name("abcd", "abcd" + "x" * 16, Lexicon(), OPEN_POLICY).ok
    c = check_shop_name("abcd", "abcd" + "x" * 17, Lexicon(), OPEN_POLICY)
    assert (c.reason, c.refused.field, c.shop_name.byte_length) == (
        Refusal.TOO_LONG,
        Field.SHOP_NAME,
        21,
    )


def test_a22_custom_part_uses_the_handle_character_set():
    c = check_custom("abcd", "旗舰店!", E5_LEXICON, OPEN_POLICY)
    assert c.reason is Refusal.BAD_CHARACTER


# ------------------------------------------------------------- H-5, H-6
def test_h5_banned_in_custom_part_and_across_the_boundary():
    lex = Lexicon(banned=frozenset({"国家级", "好店"}))
    c = check_custom("alpha", "国家级", lex, OPEN_POLICY)
    assert (c.reason, c.refused.field) == (Refusal.BANNED_WORD, Field.CUSTOM)
    lex = Lexicon(banned=frozenset({"a好"}))
    c = check_shop_name("alpha", "alpha好", lex, OPEN_POLICY)
    assert (c.reason, c.refused.field, c.refused.detail) == (
        Refusal.BANNED_WORD,
        Field.SHOP_NAME,
        "a好",
    )


def test_h6_restricted_words_allowed_in_custom_part():
    assert check_shop_name("小米数码", "小米数码官方旗舰店", E5_LEXICON, OPEN_POLICY).ok


# -------------------------------------------------------------------- H-9
def test_h9_brand_needs_proof():
    lex = Lexicon(brands=frozenset({"小米"}))
    c = check_handle("小米数码", lex, OPEN_POLICY)
    assert (c.reason, c.refused.detail) == (Refusal.BRAND_PROOF_REQUIRED, "小米")
    assert check_handle("小米数码", lex, OPEN_POLICY, brand_proof=True).ok
    exact = replace(OPEN_POLICY, brand_match=BrandMatch.EXACT)
    assert check_handle("小米数码", lex, exact).ok
    assert check_handle("小米", lex, exact).reason is Refusal.BRAND_PROOF_REQUIRED


# ------------------------------------------------------------------- H-10
def test_h10_quota_and_spacing():
    approved = beijing(2024, 1, 1, 12)
    h = ChangeHistory(approved)
    assert changes_left(h, OPEN_POLICY) == 5
    assert next_change_at(h, OPEN_POLICY) == approved + timedelta(hours=720)
    t = approved
    for _ in range(5):
        t += timedelta(days=30)
        assert check_change(h, t, OPEN_POLICY) is None
        h = h.with_change(t)
    assert next_change_at(h, OPEN_POLICY) is None
    assert check_change(h, t + timedelta(days=365), OPEN_POLICY).reason is Refusal.QUOTA_EXHAUSTED


def test_h10_frozen_during_beta():
    h = ChangeHistory(beijing(2013, 10, 14))
    assert check_change(h, beijing(2013, 10, 20), BETA_POLICY).reason is Refusal.CHANGE_FROZEN
    # After the beta the 30-day spacing from approval still applies.
    assert check_change(h, beijing(2013, 10, 21), BETA_POLICY).reason is Refusal.TOO_SOON
    assert check_change(h, beijing(2013, 11, 13), BETA_POLICY) is None
    assert next_change_at(h, BETA_POLICY) == beijing(2013, 11, 13)


# ------------------------------------------------------------- H-11, H-14
def test_h11_blocked_holder_loses_search_direct():
    assert search_direct_enabled(ShopState.ACTIVE)
    assert not search_direct_enabled(ShopState.BLOCKED)


def test_h11_deleted_shop_cannot_apply():
    s = shop("s1", "alpha店", state=ShopState.DELETED)
    r = check_eligibility(s, Group.PUBLIC, None, "alpha", beijing(2024, 1, 1), OPEN_POLICY)
    assert r.reason is Refusal.SHOP_DELETED


@pytest.mark.parametrize(
    ("mark", "handle", "reason"),
    [
        (None, "alpha", Refusal.MARK_REQUIRED),
        (Mark(MarkKind.REGISTERED, "alpha", beijing(2013, 9, 1)), "alpha", None),
        (
            Mark(MarkKind.REGISTERED, "alpha", beijing(2013, 9, 1), listed=False),
            "alpha",
            Refusal.MARK_NOT_LISTED,
        ),
        (
            Mark(MarkKind.APPLICATION, "alpha", beijing(2013, 5, 1)),
            "alpha",
            Refusal.MARK_TOO_RECENT,
        ),
        (Mark(MarkKind.REGISTERED, "ALPHA", beijing(2010, 1, 1)), "alpha", None),
        (Mark(MarkKind.REGISTERED, "bravo", beijing(2010, 1, 1)), "alpha", Refusal.MARK_MISMATCH),
    ],
)
def test_h14_group1_marks(mark, handle, reason):
    r = check_mark(mark, handle, beijing(2013, 9, 25), OPEN_POLICY)
    assert (r.reason if r else None) is reason


def test_h15_no_beta_means_open_registration():
    s = shop("s1", "alpha店", opened=beijing(2030, 1, 1))
    assert (
        check_eligibility(s, Group.PUBLIC, None, "alpha", beijing(2031, 1, 1), OPEN_POLICY) is None
    )


# ------------------------------------------------------------------- H-12
def test_h12_hold_rules():
    h = release_hold("owner", "s1", beijing(2024, 1, 31, 15), OPEN_POLICY)
    during, after = beijing(2024, 2, 10), beijing(2024, 2, 29, 15)
    assert check_take(h, "owner", during, OPEN_POLICY) is None
    assert check_take(h, "other", during, OPEN_POLICY).reason is Refusal.ON_HOLD
    assert check_take(h, "other", after, OPEN_POLICY) is None
    nobody = replace(OPEN_POLICY, hold_reclaim_by=HoldReclaim.NOBODY)
    assert check_take(h, "owner", during, nobody).reason is Refusal.ON_HOLD
    review = review_hold("owner", "s1", beijing(2024, 1, 31))
    assert not review.expired(beijing(2099, 1, 1))
    assert check_take(review, "owner", during, OPEN_POLICY).reason is Refusal.UNDER_REVIEW


# ------------------------------------------------------------ H-16, H-17
def test_h16_score_uses_weights_and_caps():
    m = Metrics(
        search_rate=Fraction(1, 2),
        usage_days=1095,
        wangwang=True,
        repeat_rate=Fraction(1, 5),
        transactions=Fraction(2000),
        star_level=10,
    )
    assert score(m, DP) == 15 + 30 + 20 + 2 + 5 + Fraction(5, 2)
    only_rate = DisputePolicy(weights=Weights(1, 0, 0, 0, 0, 0))
    assert score(m, only_rate) == Fraction(1, 2)


def test_h16_continuous_use_scores_higher():
    steady = Metrics(usage_days=400)
    patchy = Metrics(usage_days=400, continuous_days=100)
    assert effective_usage_days(patchy, DP) == 100 + Fraction(300, 2)
    assert score(steady, DP) > score(patchy, DP)


def test_a15_tie_break_chain():
    base = dict(usage_days=100, search_rate=Fraction(1, 2))
    a = ContenderScore("A", Fraction(70), Metrics(**base, wangwang=True))
    b = ContenderScore("B", Fraction(70), Metrics(**base))
    assert (rank([b, a], DP).leader, rank([b, a], DP).decided_by) == ("A", "wangwang")
    c = ContenderScore("C", Fraction(70), Metrics(usage_days=100, search_rate=Fraction(1, 3)))
    d = ContenderScore("D", Fraction(70), Metrics(usage_days=100, search_rate=Fraction(333, 1000)))
    assert rank([d, c], DP).decided_by == "search_rate" and rank([d, c], DP).leader == "C"
    star_only = DisputePolicy(tie_breaks=("usage_duration", "star_level"))
    assert rank([a, b], star_only).leader is None


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans()), min_size=1, max_size=6
    ),
    st.randoms(),
)
def test_h8_input_order_never_matters(rows, rnd):
    entries = [
        ContenderScore(f"s{i}", Fraction(s), Metrics(usage_days=d, wangwang=w))
        for i, (s, d, w) in enumerate(rows)
    ]
    shuffled = entries[:]
    rnd.shuffle(shuffled)
    assert rank(entries, DP) == rank(shuffled, DP)


def test_h17_rate_validation_and_display():
    assert percent_text(Fraction(1, 3)) == "33.3%" and percent_text(Fraction(2, 3), 2) == "66.67%"
    assert percent_text(Fraction(1, 2000)) == "0.1%"  # half-up
    for entered, searchers in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            search_to_shop_rate(entered, searchers)
