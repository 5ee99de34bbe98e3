"""Handle change quota (H-10, A-13).

A change at `t` is allowed iff fewer than `change_quota` (5) changes were used and
`t >= last handle event + change_interval` (30 x 24 h), where the last handle event
is the approval or the latest change. The initial registration is not a change;
custom-part changes are unlimited and never touch this history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tsa_server.clock.beijing import display, require_aware

from .config import Policy
from .reasons import Refusal, Refused


@dataclass(frozen=True)
class ChangeHistory:
    """When the handle was approved and when each later handle change happened."""

    approved_at: datetime
    changes: tuple[datetime, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "approved_at", require_aware(self.approved_at))
        object.__setattr__(self, "changes", tuple(require_aware(t) for t in self.changes))

    @property
    def last_event(self) -> datetime:
        return max((self.approved_at, *self.changes))

    def with_change(self, at: datetime) -> ChangeHistory:
        return ChangeHistory(self.approved_at, (*self.changes, at))


def changes_left(history: ChangeHistory, policy: Policy) -> int:
    return max(0, policy.change_quota - len(history.changes))


def next_change_at(history: ChangeHistory, policy: Policy) -> datetime | None:
    """The first instant a handle change is allowed, or None once the quota is used."""
    if changes_left(history, policy) == 0:
        return None
    earliest = history.last_event + policy.change_interval
    beta = policy.beta
    if beta is not None and history.approved_at < beta.ends_at:
        earliest = max(earliest, beta.ends_at)
    return earliest


def check_change(history: ChangeHistory, at: datetime, policy: Policy) -> Refused | None:
    """H-10: None if a handle change at `at` is allowed, else the refusal."""
    at = require_aware(at)
    if changes_left(history, policy) == 0:
        return Refused(Refusal.QUOTA_EXHAUSTED, f"{policy.change_quota} changes used")
    beta = policy.beta
    if beta is not None and history.approved_at < beta.ends_at and at < beta.ends_at:
        # H-10: no withdrawal or change during the phase-1 beta
        return Refused(Refusal.CHANGE_FROZEN, f"frozen until {display(beta.ends_at)}")
    earliest = history.last_event + policy.change_interval
    if at < earliest:
        return Refused(Refusal.TOO_SOON, f"next change at {display(earliest)}")
    return None
