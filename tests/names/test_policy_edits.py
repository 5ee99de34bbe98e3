"""Administrators' edits of the word lists and weights, as pure values (policy_edits.py)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tsa_server.names import Lexicon, Policy
from tsa_server.names.config import Weights
from tsa_server.names.policy_edits import (
    MAX_EDIT_WORDS,
    EditError,
    Overlay,
    apply_edits,
    content_digest,
    effective_lexicon,
    effective_policy,
    etag,
    fold_word,
    list_edit,
    weights_edit,
)

BASE = Lexicon(banned=frozenset({"国家级"}), restricted=frozenset({"旗舰", "店"}))
POLICY = Policy()


def test_words_are_nfkc_case_folded_and_validated():
    assert fold_word(" ＮＩＫＥ ", POLICY, "w") == "nike"
    for bad, message in (
        ("", "empty"),
        ("  ", "empty"),
        ("a b", r"U\+0020"),
        ("😀", r"U\+1F600"),
        (3, "string"),
        ("一二三四五六七八九十一", "22 bytes > 20"),
    ):
        with pytest.raises(EditError, match=message):
            fold_word(bad, POLICY, "w")


def test_list_edit_bounds_and_shape():
    e = list_edit("banned", ["最佳", "最佳", "ＡＢ"], None, POLICY)
    assert (e.add, e.remove) == (("最佳", "ab"), ())
    with pytest.raises(EditError, match="unknown word list"):
        list_edit("famous", ["x"], None, POLICY)
    with pytest.raises(EditError, match="both added and removed"):
        list_edit("banned", ["最佳"], ["最佳"], POLICY)
    with pytest.raises(EditError, match="list of words"):
        list_edit("banned", "最佳", None, POLICY)
    with pytest.raises(EditError, match=f"at most {MAX_EDIT_WORDS}"):
        list_edit("banned", [f"w{i}" for i in range(MAX_EDIT_WORDS + 1)], None, POLICY)


def test_overlay_adds_removes_and_restores_file_words():
    o = apply_edits(Overlay(), BASE, (list_edit("banned", ["最佳"], ["国家级"], POLICY),))
    assert (o.added["banned"], o.removed["banned"]) == ({"最佳"}, {"国家级"})
    lex = effective_lexicon(BASE, o)
    assert lex.banned == {"最佳"} and lex.restricted == BASE.restricted
    # re-adding a file word drops the removal; removing an added word drops the addition
    o = apply_edits(o, BASE, (list_edit("banned", ["国家级"], ["最佳"], POLICY),))
    assert o.added["banned"] == frozenset() and o.removed["banned"] == frozenset()
    assert effective_lexicon(BASE, o) == BASE


def test_edit_refuses_present_additions_and_missing_removals():
    with pytest.raises(EditError, match="already listed"):
        apply_edits(Overlay(), BASE, (list_edit("banned", ["国家级"], None, POLICY),))
    with pytest.raises(EditError, match="not listed"):
        apply_edits(Overlay(), BASE, (list_edit("brands", None, ["小米"], POLICY),))


def test_weights_override_and_fall_back_to_the_file():
    raw = weights_edit({"search_rate": 40, "wangwang": "1/2", "star_level": None})
    assert raw == {"search_rate": 40, "wangwang": Fraction(1, 2), "star_level": None}
    o = apply_edits(Overlay(), BASE, (), raw)
    p = effective_policy(POLICY, o)
    assert p.disputes.weights.search_rate == 40 and p.disputes.weights.wangwang == Fraction(1, 2)
    assert p.disputes.weights.star_level == Weights().star_level
    o = apply_edits(o, BASE, (), {"search_rate": None})
    assert effective_policy(POLICY, o).disputes.weights.search_rate == Weights().search_rate
    for bad in (
        {},
        {"luck": 1},
        {"search_rate": -1},
        {"search_rate": True},
        {"search_rate": "x"},
        {"search_rate": [1]},
        [],
    ):
        with pytest.raises(EditError):
            weights_edit(bad)
    zero = {
        m: 0
        for m in (
            "search_rate",
            "usage_duration",
            "wangwang",
            "repeat_rate",
            "transactions",
            "star_level",
        )
    }
    with pytest.raises(EditError, match="positive sum"):
        effective_policy(POLICY, apply_edits(Overlay(), BASE, (), weights_edit(zero)))


def test_etag_follows_version_and_content():
    w = Weights()
    d1 = content_digest(BASE, w)
    d2 = content_digest(Lexicon(banned=frozenset({"最佳"})), w)
    assert d1 != d2 and content_digest(BASE, Weights(search_rate=Fraction(31))) != d1
    assert etag(3, d1) == f'"3-{d1[:16]}"' and etag(3, d1) != etag(4, d1)
