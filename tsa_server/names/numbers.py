"""Numbers that come from outside (API bodies, the policy file), bounded before they
become exact `Fraction`s or ints.

`Fraction("1e999999999")` computes 10**999999999 (it would hold the event loop for
good) and `int(1e999)` raises OverflowError; `Fraction` also accepts non-ASCII digits
("١٢") and underscores. So a rational is read only in the plain syntax here: an
optional sign, at most `MAX_DIGITS` ASCII digits with an optional fraction part and an
exponent of at most two digits, or "a/b" with at most `MAX_DIGITS` digits each side.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

MAX_DIGITS = 18  # digits of an integer or fraction part; 10**18 fits every metric
MAX_EXPONENT_DIGITS = 2  # 1e99 is the largest, 1e-99 the smallest

_DECIMAL = re.compile(
    rf"[+-]?(?:[0-9]{{1,{MAX_DIGITS}}}(?:\.[0-9]{{0,{MAX_DIGITS}}})?|\.[0-9]{{1,{MAX_DIGITS}}})"
    rf"(?:[eE][+-]?[0-9]{{1,{MAX_EXPONENT_DIGITS}}})?"
)
_RATIO = re.compile(rf"[+-]?[0-9]{{1,{MAX_DIGITS}}}/[0-9]{{1,{MAX_DIGITS}}}")
_LARGEST = 10**MAX_DIGITS


class NumberError(ValueError):
    """A number outside the accepted syntax or range; the message says which."""


def rational(value: object, where: str) -> Fraction:
    """A JSON or TOML number, or a decimal or "a/b" string, as an exact Fraction
    (0.1 is 1/10, not the binary float); a Fraction (a built-in default) as it is."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NumberError(f"{where} must be a number or an 'a/b' string")
    if isinstance(value, int):
        if abs(value) > _LARGEST:
            raise NumberError(f"{where}: at most {MAX_DIGITS} digits")
        return Fraction(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise NumberError(f"{where} must be a finite number")
    text = str(value).strip()
    if _DECIMAL.fullmatch(text) is None and _RATIO.fullmatch(text) is None:
        raise NumberError(
            f"{where}: not a number: {text[:40]!r} (digits with an optional fraction and "
            f"an exponent of at most {MAX_EXPONENT_DIGITS} digits, or 'a/b')"
        )
    try:
        return Fraction(text)
    except ZeroDivisionError:
        raise NumberError(f"{where}: division by zero") from None


def whole(value: object, where: str, low: int = 0, high: int = _LARGEST) -> int:
    """A JSON integer (an integral number such as 3.0 too) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NumberError(f"{where} must be an integer")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise NumberError(f"{where} must be an integer")
    if not low <= value <= high:
        raise NumberError(f"{where} must lie within [{low}, {high}]")
    return int(value)
