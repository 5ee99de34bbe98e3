"""The errors of the handle registry's use cases: one root, `NamesError`.

The use cases (names/operations.py, names/policy_operations.py) raise these; the web
layer answers each from its table (tsa_server/web/errors.py). A refusal by the rules
(`Refused`) travels as `NameRefused`; whether it is the caller's input, a permission or
the handle's state is decided here (`refusal_kind`), its HTTP status there.
"""

from __future__ import annotations

import enum

from tsa_server.errors import TSAError

from .reasons import Refusal, Refused


class NamesError(TSAError):
    """Root of the registry's errors."""


class RefusalKind(enum.Enum):
    INPUT = "input"  # the caller's names, mark or proof
    FORBIDDEN = "forbidden"  # not the caller's to do
    STATE = "state"  # the handle's or the shop's state does not allow it


_INPUT = frozenset(
    {
        Refusal.BAD_CHARACTER,
        Refusal.TOO_SHORT,
        Refusal.TOO_LONG,
        Refusal.NOT_IN_SHOP_NAME,
        Refusal.NOT_PREFIX,
        Refusal.BANNED_WORD,
        Refusal.RESTRICTED_ALONE,
        Refusal.ALL_RESTRICTED,
        Refusal.BRAND_PROOF_REQUIRED,
        Refusal.MARK_REQUIRED,
        Refusal.MARK_NOT_LISTED,
        Refusal.MARK_TOO_RECENT,
        Refusal.MARK_MISMATCH,
        Refusal.METRICS_MISSING,
        Refusal.PROOF_REQUIRED,
        Refusal.EVIDENCE_NOT_FOUND,
        Refusal.REGISTERED_MARK_REQUIRED,
    }
)
_FORBIDDEN = frozenset({Refusal.NOT_OWNER, Refusal.NOT_HOLDER, Refusal.NOT_CONTENDER})


def refusal_kind(reason: Refusal) -> RefusalKind:
    if reason in _INPUT:
        return RefusalKind.INPUT
    if reason in _FORBIDDEN:
        return RefusalKind.FORBIDDEN
    return RefusalKind.STATE


class NameRefused(NamesError):
    """An operation the registry's rules refused: `refused` says why."""

    def __init__(self, refused: Refused) -> None:
        r = refused
        super().__init__(f"{r.reason.value}: {r.detail}" if r.detail else r.reason.value)
        self.refused = refused

    @property
    def kind(self) -> RefusalKind:
        return refusal_kind(self.refused.reason)


class InvalidNameRequest(NamesError):
    """A command the registry cannot read (a bad date, mark, metrics, word list...)."""


class NotPermitted(NamesError):
    """The caller may not do this (an operator's or an administrator's operation)."""


class NoSuchName(NamesError):
    """No such handle, no event for it, or a part of the registry this server lacks."""


class NamesConflict(NamesError):
    """The registry's state does not allow the operation (a policy reload that failed)."""


class VersionRequired(NamesError):
    """An edit of the policy without the version it was based on (If-Match)."""


class NotTimestamped(NamesError):
    """The event could not be time-stamped (or a concurrent change got in between):
    nothing happened, the caller may retry."""
