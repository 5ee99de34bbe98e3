"""Typed errors of the fee layer (parts B, C, F and REC-1 .. REC-10 of docs/spec/evidence.md).

Every refusal the rule functions make is one of these; none of them leaves a partial
result behind (functions compute entries first and raise before returning any). All
derive from `tsa_server.errors.TSAError`, the server's one taxonomy; the web layer maps
them to HTTP (InsufficientCredits -> 402, StateError -> 409, FieldError -> 422, ...).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from tsa_server.errors import ConfigError, TSAError


class PricingError(ConfigError):
    """conf/pricing.toml is malformed, has an unknown key or an out-of-range value."""


class FeeError(TSAError):
    """Root of every refusal of the fee layer."""


class InsufficientCredits(FeeError):
    """G-6, S-7, S-9, T-1, T-4: the usable balance cannot pay `needed` units.

    Nothing is debited (never partial). `available` counts units in lots still valid at
    the instant of the debit; `lapsed` counts units that would have covered it but lapsed
    (T-1 "refused (lapsed)").
    """

    def __init__(self, needed: int, available: int, lapsed: int = 0):
        why = f"needs {needed} credit(s), {available} usable"
        if lapsed:
            why += f" ({lapsed} more lapsed)"
        super().__init__(why)
        self.needed, self.available, self.lapsed = needed, available, lapsed


class LedgerConflict(FeeError):
    """REC-1: an idempotency key is already in the ledger with different content."""

    def __init__(self, key: str):
        super().__init__(f"idempotency key {key!r} already used by a different entry")
        self.key = key


class InvalidEntry(FeeError):
    """An entry cannot be applied: unknown lot or hold, lapsed lot, negative bucket."""


class DuplicatePeriod(InvalidEntry):
    """R-5: a storage period (item, term, period) may be paid at most once."""


class StateError(FeeError):
    """The operation is not allowed in the evidence item's current storage state."""


class GraceExpired(StateError):
    """R-15: reinstatement asked for at or after the end of the grace window."""


class ConfirmationRequired(FeeError):
    """R-10: deleting an original needs the user's confirmation that they downloaded it."""


class DigestMismatch(FeeError):
    """R-13: re-uploaded bytes do not hash to the certified SHA-256 digest."""


class OriginalLocked(FeeError):
    """S-10, A-6: the stored original cannot be viewed or downloaded in this state."""


class QuotaExceeded(FeeError):
    """REC-10: a monthly quota or a rate limit refuses the request."""


class NotAllowed(FeeError):
    """REC-10: the role or API-key scope does not permit the action."""


class FieldError(FeeError):
    """P-7, T-9: deposit fields missing, blank or not accepted; `fields` names them all."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in sorted(fields.items())))
        self.fields = dict(fields)


def unknown_field(name: str, known: Iterable[str], given: Iterable[str] = ()) -> str:
    """What to say of a field a request may not carry: "unknown field", with the known
    field not `given` already that it is closest to (`filename` -> "unknown field (did
    you mean file_name?)")."""
    candidates = sorted(set(known) - set(given))
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"unknown field (did you mean {close[0]}?)" if close else "unknown field"
