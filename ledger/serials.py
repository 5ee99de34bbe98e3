"""The one spelling of a token's serial number (and of the other large integers a token
carries, such as its nonce), and the spellings a person may type.

Shown everywhere (the CLI, the API's JSON, the PDF certificate, the ledger lookups, the
audit): ``0x`` and the hexadecimal digits in whole bytes, upper case, exactly as
``openssl ts -reply -text`` prints it (OpenSSL's ``BN_bn2hex``), so a serial copied
from one place is found by a text search in any other. In JSON it is a string:
JavaScript cannot represent a 121-bit integer exactly.

Read: ``0x``-prefixed hex, bare hex or decimal, in either case. A string of decimal
digits alone is both a bare-hex and a decimal spelling; :func:`serial_candidates` gives
both readings (hex first, what the lookups always took) and a lookup tries each.
"""

from __future__ import annotations

import re

#: RFC 3161 serial numbers: positive integers of at most 160 bits (40 hex digits).
SERIAL_BITS = 160

_HEX = re.compile(r"(0[xX])?([0-9a-fA-F]{1,40})")
_DECIMAL = re.compile(r"[0-9]{1,49}")

ACCEPTED = (
    f"a serial number is 0x-prefixed hex (as openssl prints it), bare hex or decimal, "
    f"at most {SERIAL_BITS} bits"
)


def serial_text(number: int) -> str:
    """``0x`` and whole bytes of upper-case hex: ``0x01000000000000010000000000000001``."""
    if number < 0:
        return "-" + serial_text(-number)
    digits = format(number, "X")
    return "0x" + ("0" + digits if len(digits) % 2 else digits)


def serial_candidates(text: str) -> tuple[int, ...]:
    """The integers ``text`` may spell, most likely first; ValueError saying what is
    accepted when it spells none."""
    readings: list[int] = []
    found = _HEX.fullmatch(text)
    if found is not None:
        readings.append(int(found.group(2), 16))
        if found.group(1) is not None:
            return tuple(readings)
    if _DECIMAL.fullmatch(text) is not None:
        decimal = int(text)
        if decimal < 1 << SERIAL_BITS and decimal not in readings:
            readings.append(decimal)
    if not readings:
        raise ValueError(f"{text[:60]!r}: {ACCEPTED}")
    return tuple(readings)
