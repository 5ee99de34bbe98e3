"""State of the handle registry behind a small `NameStore` protocol.

One `HandleRecord` per handle key says where the handle stands (pending, contested,
active, on hold, under review, retained); a key with no record is free. Records are
immutable values; `commit` applies one operation's writes atomically together with
the event sequence number, so a SQLite store can map it onto one transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tsa_server.clock.beijing import Interval

from .applicants import BrandProof, Group, Mark
from .disputes import Ranking
from .holds import HandleHold
from .quota import ChangeHistory
from .trademark import Complaint


class HandleStatus(enum.StrEnum):
    PENDING = "pending"
    CONTESTED = "contested"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    RECLAIM_REVIEW = "reclaim_review"
    RETAINED = "retained"  # kept by the platform after review (回收)


@dataclass(frozen=True)
class Application:
    shop_id: str
    account_id: str
    handle: str  # NFKC form as applied for
    shop_name: str  # NFKC form; the handle is its prefix (H-1)
    group: Group
    applied_at: datetime
    mark: Mark | None = None  # Group 1: the mark offered (H-14)
    proof: BrandProof | None = None  # Group 1: the proof the operator reviews (H-9)


@dataclass(frozen=True)
class Holding:
    shop_id: str
    account_id: str
    handle: str
    custom: str
    history: ChangeHistory
    mark: Mark | None = None  # the holder's certified mark (Group 1, H-14; H-13 upheld)

    @property
    def shop_name(self) -> str:
        return self.handle + self.custom


@dataclass(frozen=True)
class Objection:
    shop_id: str
    account_id: str
    at: datetime
    statement: str


@dataclass(frozen=True)
class Contest:
    window: Interval  # H-15 objection period [publish, publish + 7 d)
    ranking: Ranking
    objections: tuple[Objection, ...] = ()


@dataclass(frozen=True)
class HandleRecord:
    key: str
    handle: str
    status: HandleStatus
    applications: tuple[Application, ...] = ()
    contest: Contest | None = None
    holding: Holding | None = None
    hold: HandleHold | None = None
    complaints: tuple[Complaint, ...] = ()  # H-13: open trademark complaints (ACTIVE only)

    def complaint(self, shop_id: str) -> Complaint | None:
        return next((c for c in self.complaints if c.shop_id == shop_id), None)

    def shop_ids(self) -> set[str]:
        """Shops this record binds: applicants, contenders or the holder."""
        ids = {a.shop_id for a in self.applications}
        if self.holding is not None:
            ids.add(self.holding.shop_id)
        return ids

    def application(self, shop_id: str) -> Application | None:
        return next((a for a in self.applications if a.shop_id == shop_id), None)


class NameStore(Protocol):
    def get(self, key: str) -> HandleRecord | None: ...

    def by_shop(self, shop_id: str) -> HandleRecord | None:
        """The record a live shop is bound to (as applicant or holder), if any."""
        ...

    def records(self) -> Iterator[HandleRecord]: ...

    def last_seq(self) -> int: ...

    def commit(self, seq: int, put: Iterable[HandleRecord], delete: Iterable[str]) -> None:
        """Atomically store `put`, remove the keys in `delete` and set the last sequence."""
        ...


class MemoryStore:
    """The in-process `NameStore`."""

    def __init__(self) -> None:
        self._records: dict[str, HandleRecord] = {}
        self._seq = 0

    def get(self, key: str) -> HandleRecord | None:
        return self._records.get(key)

    def by_shop(self, shop_id: str) -> HandleRecord | None:
        live = (HandleStatus.PENDING, HandleStatus.CONTESTED, HandleStatus.ACTIVE)
        return next(
            (r for r in self._records.values() if r.status in live and shop_id in r.shop_ids()),
            None,
        )

    def records(self) -> Iterator[HandleRecord]:
        return iter(list(self._records.values()))

    def last_seq(self) -> int:
        return self._seq

    def commit(self, seq: int, put: Iterable[HandleRecord], delete: Iterable[str]) -> None:
        if seq != self._seq + 1:
            raise ValueError(f"sequence gap: {seq} after {self._seq}")
        for key in delete:
            self._records.pop(key, None)
        for record in put:
            self._records[record.key] = record
        self._seq = seq
