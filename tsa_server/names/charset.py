"""Characters and byte length of handles and shop names (G-7, H-2, H-3, A-14, A-22).

Procedure: NFKC-normalise; accept only ASCII letters, ASCII digits and CJK ideographs
that GBK can encode; the byte length is the GBK-encoded length (1 byte per ASCII
character, 2 per ideograph). Comparison keys additionally case-fold (A-14).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_IDEOGRAPH_NAMES = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH")


def normalize(text: str) -> str:
    """NFKC form: full-width `ＡＢＣＤ１２` becomes `ABCD12` (G-7)."""
    return unicodedata.normalize("NFKC", text)


def fold(text: str) -> str:
    """Comparison key: NFKC, then case-fold (`ABC` = `abc` = `ＡＢＣ`, A-14)."""
    return normalize(normalize(text).casefold())


@lru_cache(maxsize=4096)
def is_allowed_char(ch: str) -> bool:
    """True for an ASCII letter or digit, or a GBK-encodable CJK ideograph.

    Checked on the NFKC form (A-22). Emoji, CJK Ext-A/B (U+3400, U+20000) and
    U+9FA6..U+9FFF are outside GBK and refused rather than counted (G-7).
    """
    if len(ch) != 1:
        return False
    if ch.isascii():
        return ch.isalnum()
    if not unicodedata.name(ch, "").startswith(_IDEOGRAPH_NAMES):
        return False
    try:
        ch.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


def disallowed_chars(text: str) -> tuple[str, ...]:
    """The distinct characters of NFKC(`text`) outside the set, in order of appearance."""
    seen: dict[str, None] = {}
    for ch in normalize(text):
        if not is_allowed_char(ch):
            seen.setdefault(ch, None)
    return tuple(seen)


class CharacterError(ValueError):
    """A name contains characters outside the handle character set (H-3, G-7)."""

    def __init__(self, chars: tuple[str, ...]):
        shown = ", ".join(f"U+{ord(c):04X}" for c in chars)
        super().__init__(f"characters not allowed: {shown}")
        self.chars = chars


def gbk_length(text: str) -> int:
    """G-7 byte length of NFKC(`text`); raises `CharacterError` outside the set."""
    norm = normalize(text)
    bad = disallowed_chars(norm)
    if bad:
        raise CharacterError(bad)
    return len(norm.encode("gbk"))


@dataclass(frozen=True)
class Measure:
    """What a "check while typing" field shows: normal form, bytes, bad characters.

    `byte_length` is None when the text holds a character outside the set, since
    such a character has no byte length under G-7.
    """

    text: str
    byte_length: int | None
    bad_chars: tuple[str, ...]


def measure(text: str) -> Measure:
    """Normalise and count `text` without raising."""
    norm = normalize(text)
    bad = disallowed_chars(norm)
    return Measure(norm, None if bad else len(norm.encode("gbk")), bad)
