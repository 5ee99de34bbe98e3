"""G-7 byte counter and character set: examples and hypothesis properties."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsa_server.names.charset import (
    CharacterError,
    disallowed_chars,
    fold,
    gbk_length,
    is_allowed_char,
    measure,
    normalize,
)

ASCII_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
ascii_alnum = st.sampled_from(ASCII_ALNUM)
fullwidth = st.sampled_from([chr(ord(c) + 0xFEE0) for c in ASCII_ALNUM])
allowed_text = st.text(st.one_of(cjk, ascii_alnum, fullwidth), max_size=30)
# Outside GBK: emoji, CJK Ext-A, Ext-B, U+9FA6..U+9FFF, private use.
outside = st.one_of(
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
    st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF),
    st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF),
    st.characters(min_codepoint=0x9FA6, max_codepoint=0x9FFF),
    st.characters(min_codepoint=0xE000, max_codepoint=0xF8FF),
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("联合信任", 8),
        ("abcd", 4),
        ("ABC中", 5),
        ("ＡＢＣＤ", 4),
        ("ＡＢＣＤ１２", 6),
        ("一二三四五六七", 14),
        ("龥", 2),
        ("\ufa29", 2),
        ("Ａ中", 3),
    ],
)
def test_examples(text, size):
    assert gbk_length(text) == size


@pytest.mark.parametrize(
    "ch",
    [
        "😀",
        "\u3400",
        "\U00020000",
        "\u9fa6",
        "\u9fff",
        " ",
        "-",
        "_",
        "。",
        "ア",
        "한",
        "\ue000",
        "é",
    ],
)
def test_refused_characters(ch):
    with pytest.raises(CharacterError) as info:
        gbk_length("ab" + ch)
    assert info.value.chars and not any(is_allowed_char(c) for c in info.value.chars)
    assert measure("ab" + ch).byte_length is None


def test_compatibility_ideographs_fold_to_unified():
    # U+F900 is NFKC-equal to U+8C48 (豈), which GBK encodes: accepted, 2 bytes
    assert normalize("\uf900") == "\u8c48" and gbk_length("\uf900") == 2


@settings(max_examples=300)
@given(allowed_text)
def test_counter_is_gbk_length_of_nfkc(text):
    norm = unicodedata.normalize("NFKC", text)
    assert gbk_length(text) == len(norm.encode("gbk"))
    assert gbk_length(text) == sum(1 if c.isascii() else 2 for c in norm)
    assert measure(text).byte_length == gbk_length(text)


@given(st.text(ascii_alnum, max_size=20))
def test_fullwidth_equals_halfwidth(text):
    wide = "".join(chr(ord(c) + 0xFEE0) for c in text)
    assert normalize(wide) == text
    assert gbk_length(wide) == gbk_length(text) == len(text)
    assert fold(wide) == fold(text) == text.lower()


@given(allowed_text, outside, allowed_text)
def test_rejects_non_gbk(before, bad, after):
    text = before + bad + after
    with pytest.raises(CharacterError):
        gbk_length(text)
    m = measure(text)
    assert m.byte_length is None and bad in m.bad_chars


@settings(max_examples=300)
@given(st.text(max_size=30))
def test_any_text_is_measured_consistently(text):
    m = measure(text)
    assert m.text == unicodedata.normalize("NFKC", text)
    if m.byte_length is None:
        assert m.bad_chars and disallowed_chars(text) == m.bad_chars
    else:
        assert all(is_allowed_char(c) for c in m.text)
        assert m.byte_length == len(m.text.encode("gbk"))


@given(allowed_text)
def test_fold_is_idempotent_and_length_preserving(text):
    assert fold(fold(text)) == fold(text)
    assert len(fold(text)) == len(normalize(text))
