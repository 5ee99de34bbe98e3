"""Ledger store interfaces: `Reader` for everything that only reads, `Store` to append.

A store keeps the entries (the exact DER of each token) in index order with their leaf
and chain hashes (docs/spec/ledger.md B.1, B.8), and the sequencing state: the next index, the
last genTime and the writer epoch that fences a deposed writer (L-08).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class NewEntry:
    """What the issuance path hands to the store for one token."""

    token: bytes  # DER TimeStampToken: the leaf (L-02)
    gen_time_ms: int  # genTime, milliseconds since the Unix epoch, UTC
    serial: int
    imprint_alg: str
    imprint: bytes


@dataclass(frozen=True)
class Entry:
    """One stored entry, as read back."""

    index: int
    token: bytes
    gen_time_ms: int
    serial: int
    imprint_alg: str
    imprint: bytes
    leaf_hash: bytes
    chain_hash: bytes


@dataclass(frozen=True)
class SignedCheckpoint:
    """A signed checkpoint as archived: its size, root, the B.8 chain head at that size,
    the signed note (C2SP), and when it was signed (Unix seconds)."""

    size: int
    root: bytes
    chain_head: bytes
    note: str
    signed_at: int | None = None


@dataclass(frozen=True)
class SequenceState:
    """Where a writer resumes: the next index, the last genTime and its own epoch."""

    next_index: int
    last_gen_time_ms: int
    chain_head: bytes
    epoch: int


class Reader(Protocol):
    def size(self) -> int: ...

    def entry(self, index: int) -> Entry | None: ...

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[Entry]: ...

    def entry_by_serial(self, serial: int) -> Entry | None: ...


class Store(Reader, Protocol):
    def claim_epoch(self) -> SequenceState:
        """Become the writer: durably start a new epoch and return where to resume."""
        ...

    def append(self, epoch: int, first_index: int, entries: list[NewEntry]) -> None:
        """Durably append entries at first_index.. (fsync'd on return) or raise LedgerError."""
        ...
