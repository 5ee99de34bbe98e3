"""Word lists (format, reload) and word-break segmentation (H-5, H-6, H-9)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsa_server.names.words import (
    Lexicon,
    LexiconSource,
    WordListError,
    load_word_list,
    parse_word_list,
    segment,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "names"


def test_parse_format():
    text = "# header\n\n旗舰  # trailing comment\n  ＡＢＣ \nabc\n"
    assert parse_word_list(text) == frozenset({"旗舰", "abc"})


def test_parse_rejects_bad_word():
    with pytest.raises(WordListError, match=r"<text>:2"):
        parse_word_list("ok\nbad word\n")


def test_shipped_lists_load():
    for name in ("banned", "restricted", "brands"):
        words = load_word_list(CONF / f"{name}.txt")
        assert words, name
    assert "nike" in load_word_list(CONF / "brands.txt")


def test_reload_picks_up_edits_and_keeps_old_on_error(tmp_path):
    files = {n: tmp_path / f"{n}.txt" for n in ("banned", "restricted", "brands")}
    for f in files.values():
        f.write_text("# empty\n", encoding="utf-8")
    source = LexiconSource(files["banned"], files["restricted"], files["brands"])
    assert source.current().find_banned("国家级好店") is None
    files["banned"].write_text("国家级\n", encoding="utf-8")
    assert source.reload().find_banned("国家级好店") == "国家级"
    files["banned"].write_text("bad word!\n", encoding="utf-8")
    with pytest.raises(WordListError):
        source.reload()
    assert source.current().find_banned("国家级好店") == "国家级"


def test_banned_is_a_folded_substring_test():
    lex = Lexicon(banned=frozenset({"ABC"}))
    assert lex.find_banned("xxＡｂｃyy") == "abc"
    assert lex.find_banned("xxabyy") is None


def test_brand_contains_or_exact():
    lex = Lexicon(brands=frozenset({"小米"}))
    assert lex.find_brand("小米数码") == "小米"
    assert lex.find_brand("小米数码", exact=True) is None
    assert lex.find_brand("小米", exact=True) == "小米"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("旗舰店", ("旗舰", "店")),
        ("官方", ("官方",)),
        ("小米旗舰", None),
        ("官方旗舰店", ("官方", "旗舰", "店")),
        ("", None),
    ],
)
def test_segment_examples(text, expected):
    assert segment(text, frozenset({"旗舰", "官方", "店"})) == expected


def test_segment_prefers_fewest_pieces():
    assert segment("abab", frozenset({"a", "b", "ab", "abab"})) == ("abab",)
    assert segment("aab", frozenset({"a", "ab", "aa", "b"})) in {("a", "ab"), ("aa", "b")}


# ---------------------------------------------------------------- properties
alphabet = st.sampled_from("ab店旗")
words_st = st.frozensets(st.text(alphabet, min_size=1, max_size=3), min_size=1, max_size=6)


def _min_pieces(text: str, words: frozenset[str]) -> int | None:
    @cache
    def go(i: int) -> int | None:
        if i == len(text):
            return 0
        options = [go(i + len(w)) for w in words if text.startswith(w, i)]
        found = [o for o in options if o is not None]
        return 1 + min(found) if found else None

    return go(0) if text else None


@settings(max_examples=300)
@given(words_st, st.text(alphabet, max_size=12))
def test_segment_matches_brute_force(words, text):
    result = segment(text, words)
    best = _min_pieces(text, words)
    if best is None:
        assert result is None
    else:
        assert result is not None
        assert "".join(result) == text and all(p in words for p in result)
        assert len(result) == best


@given(words_st, st.data())
def test_concatenation_of_words_always_segments(words, data):
    pieces = data.draw(st.lists(st.sampled_from(sorted(words)), min_size=1, max_size=6))
    result = segment("".join(pieces), words)
    assert result is not None and len(result) <= len(pieces)


@given(st.lists(st.sampled_from(["旗舰", "官方", "店"]), min_size=1, max_size=5))
def test_restricted_cover_detects_all_restricted_handles(pieces):
    lex = Lexicon(restricted=frozenset({"旗舰", "官方", "店"}))
    handle = "".join(pieces)
    assert lex.restricted_cover(handle) is not None
    assert lex.restricted_cover(handle + "好") is None
    assert lex.restricted_cover("好" + handle) is None
