"""Numbers in URLs, parsed at the edge: the one way the HTTP layer reads an integer or a
serial number from a path segment or a query parameter.

A client's number is refused with 400 and a message saying what is accepted, before it
reaches SQLite (whose integers are signed 64-bit: a larger Python int raises
OverflowError deep in a query) or a loop over its value. Only ASCII digits count:
`str.isdigit` also accepts "²" and "١", which `int` then refuses or reads differently.
"""

from __future__ import annotations

import re

from aiohttp import web

from ledger.serials import serial_candidates

#: The largest integer SQLite stores: every index, size and time in the ledger is below.
MAX_SQL_INT = (1 << 63) - 1
_DECIMAL = re.compile(r"[0-9]{1,19}")


def non_negative_int(text: str, name: str) -> int:
    """`text` as an integer 0..2**63-1, or 400 saying so."""
    if _DECIMAL.fullmatch(text) is None or int(text) > MAX_SQL_INT:
        raise web.HTTPBadRequest(text=f"{name} must be a decimal integer from 0 to {MAX_SQL_INT}\n")
    return int(text)


def query_int(request: web.Request, name: str, default: int | None = None) -> int:
    """Query parameter `name` as a non-negative integer; `default` when absent (400 when
    absent and there is no default)."""
    text = request.query.get(name)
    if text is None:
        if default is None:
            raise web.HTTPBadRequest(text=f"missing parameter {name}\n")
        return default
    return non_negative_int(text, name)


def optional_int(request: web.Request, name: str) -> int | None:
    """Query parameter `name` as a non-negative integer, None when absent."""
    text = request.query.get(name)
    return None if text is None else non_negative_int(text, name)


def path_int(request: web.Request, name: str) -> int:
    return non_negative_int(request.match_info[name], name)


def serials(text: str) -> tuple[int, ...]:
    """The serial numbers a path segment may spell (ledger/serials.py: 0x-hex, bare hex or
    decimal; a string of digits alone is tried both ways), or 400 saying what is accepted."""
    try:
        return serial_candidates(text)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
