"""Core of the registry service: state, clock, lexicon, event emission, live check.

`RegistryCore` holds what every operation needs; `Lifecycle` (lifecycle.py) and
`Registry` (registry.py) add the operations. Every accepted operation becomes one
`Event`; its canonical bytes go to the injected `EventSink` (the TSA + operations-log
seam) before the store changes, so a failing sink leaves the registry untouched.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tsa_server.clock.beijing import Clock, require_aware

from .config import Policy
from .events import Event, EventKind, EventSink
from .reasons import Refusal, Refused
from .store import HandleRecord, HandleStatus, MemoryStore, NameStore
from .validation import Check, check_handle, check_shop_name, name_key
from .words import Lexicon


@dataclass(frozen=True)
class Done:
    """An accepted operation and the event it logged."""

    event: Event

    @property
    def ok(self) -> bool:
        return True


Result = Done | Refused


class ReleaseCause(enum.StrEnum):
    SHOP_DELETED = "shop_deleted"  # H-12: held one month
    WITHDRAWN = "withdrawn"  # the holder gives it up: held one month (not during the beta)
    PENALTY = "penalty"  # H-12: 节点处罚清退 -> RECLAIM_REVIEW


class ReviewOutcome(enum.StrEnum):
    RELEASE = "release"  # free for anyone
    RETAIN = "retain"  # the platform keeps it (回收)


BLOCKING = {
    HandleStatus.ACTIVE: Refusal.TAKEN,
    HandleStatus.CONTESTED: Refusal.CONTESTED,
    HandleStatus.ON_HOLD: Refusal.ON_HOLD,
    HandleStatus.RECLAIM_REVIEW: Refusal.UNDER_REVIEW,
    HandleStatus.RETAINED: Refusal.RESERVED,
}


class RegistryCore:
    """State in a `NameStore`, events to an `EventSink`, time from the injected clock."""

    def __init__(
        self,
        policy: Policy,
        lexicon: Callable[[], Lexicon],
        clock: Clock,
        sink: EventSink,
        store: NameStore | None = None,
    ):
        self.policy = policy
        self._lexicon = lexicon
        self._clock = clock
        self._sink = sink
        self.store: NameStore = store if store is not None else MemoryStore()

    # ----------------------------------------------------------------- helpers
    def _now(self) -> datetime:
        return require_aware(self._clock(), "clock()")

    def key(self, handle: str) -> str:
        return name_key(handle, self.policy)

    def lookup(self, handle: str, at: datetime | None = None) -> HandleRecord | None:
        """The record of `handle` at `at` (default now), None if free; an expired hold
        counts as free (G-3: free from `available_at` on)."""
        rec = self.store.get(self.key(handle))
        if rec and rec.status is HandleStatus.ON_HOLD and rec.hold:
            return None if rec.hold.expired(at or self._now()) else rec
        return rec

    def _emit(
        self,
        kind: EventKind,
        at: datetime,
        key: str,
        handle: str,
        data: dict[str, Any],
        put: Iterable[HandleRecord] = (),
        delete: Iterable[str] = (),
    ) -> Done:
        seq = self.store.last_seq() + 1
        event = Event(seq, kind, at, key, handle, data)
        self._sink.record(event, event.canonical_bytes())  # write-ahead: may raise
        self.store.commit(seq, list(put), list(delete))
        return Done(event)

    def _holding_of(self, shop_id: str, account_id: str | None) -> HandleRecord | Refused:
        rec = self.store.by_shop(shop_id)
        if rec is None or rec.holding is None or rec.holding.shop_id != shop_id:
            return Refused(Refusal.NOT_HOLDER, shop_id)
        if account_id is not None and rec.holding.account_id != account_id:
            return Refused(Refusal.NOT_OWNER, "the shop belongs to another account")
        return rec

    def _bound(self, shop_id: str) -> Refused | None:
        rec = self.store.by_shop(shop_id)
        if rec is None:
            return None
        if rec.holding is not None and rec.holding.shop_id == shop_id:
            return Refused(Refusal.ALREADY_HOLDS, rec.handle)
        return Refused(Refusal.ALREADY_APPLIED, rec.handle)

    # ------------------------------------------------------------------ queries
    def check(self, handle: str, shop_name: str | None = None) -> Check:
        """Live check: name rules (byte count, validity, reason) plus availability."""
        lex = self._lexicon()
        c = (
            check_handle(handle, lex, self.policy)
            if shop_name is None
            else check_shop_name(handle, shop_name, lex, self.policy)
        )
        if c.ok:
            rec = self.lookup(handle)
            if rec is not None and rec.status in BLOCKING:
                return replace(c, refused=Refused(BLOCKING[rec.status], rec.handle))
        return c
