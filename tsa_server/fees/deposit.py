"""Deposit metadata (P-7, S-12, REC-1, REC-7; test T-9).

P-7: the depositor (存储人) and the work's content (作品内容) are required and recorded
truthfully; the evidence time (存证时间) is the token's `genTime` and is never entered by
the user, so a form that carries a time field is refused rather than silently ignored.
Every text field is bounded (bound every input before using it).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import FieldError, unknown_field

REQUIRED = ("depositor", "work_content")  # P-7
OPTIONAL = ("work_title", "statement", "handle", "file_name", "media_type")
MAX_CHARS = {
    "depositor": 200,
    "work_content": 4000,
    "work_title": 300,
    "statement": 4000,
    "handle": 20,
    "file_name": 255,
    "media_type": 127,
}
"""Upper bounds in characters: generous for people, small enough for a certificate page."""
TIME_FIELDS = frozenset({"evidence_time", "certified_at", "deposit_time", "gen_time", "time"})
"""P-7: fields a client might use to assert a time; the evidence time is genTime only."""


@dataclass(frozen=True)
class DepositForm:
    """What the depositor states about one item (S-12: real name, statement; P-7)."""

    depositor: str
    work_content: str
    work_title: str = ""
    statement: str = ""  # 申请人自述声明
    handle: str = ""  # part D handle printed on the certificate, if any
    file_name: str = ""
    media_type: str = ""


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return unicodedata.normalize("NFC", value).strip()


def parse_deposit_form(fields: Mapping[str, object]) -> DepositForm:
    """T-9: validate raw form fields; every problem is reported at once in `FieldError`."""
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    for name, raw in fields.items():
        if name in TIME_FIELDS:
            errors[name] = "not accepted: the evidence time is the token's genTime (P-7)"
        elif name not in MAX_CHARS:
            errors[name] = unknown_field(name, MAX_CHARS, fields)
        else:
            text = _text(raw)
            if text is None:
                errors[name] = "must be text"
            elif len(text) > MAX_CHARS[name]:
                errors[name] = f"longer than {MAX_CHARS[name]} characters"
            else:
                values[name] = text
    for name in REQUIRED:
        if not values.get(name) and name not in errors:
            errors[name] = "required (P-7)"
    if errors:
        raise FieldError(errors)
    return DepositForm(**values)
