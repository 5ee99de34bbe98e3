"""Ledger store interfaces: `Reader` for everything that only reads, `Store` to append.

Consumers are typed with these, never with a backend's class: `ledger/store/sqlite.py`
implements both today, and a PostgreSQL backend will implement the same.

A store keeps the entries (the exact DER of each token) in index order with their leaf
and chain hashes (docs/spec/ledger.md B.1, B.8), and the sequencing state: the next index, the
last genTime and the writer epoch that fences a deposed writer (L-08).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from ledger.merkle import NodeReader


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


@dataclass(frozen=True)
class PublishedLog:
    """One published log."""

    name: str  # the log's key in the database and in URLs: /ledger/<name>/
    kind: str  # "tokens" or "ops"
    unit: str  # the time-stamping unit (node) that writes it; "" for a single node
    origin: str
    vkey: str  # the checkpoint note verifier key
    certificate: str  # the unit's certificate chain (PEM) for a token log, else ""


class Reader(Protocol):
    """Everything the server and the tools read from a ledger. Every method reads committed
    entries only; sizes and indices are entry counts and 0-based positions."""

    def close(self) -> None: ...

    # Entries

    def size(self) -> int: ...

    def entry(self, index: int) -> Entry | None: ...

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[Entry]:
        """Entries start..end-1 (to the last one when end is None), in index order."""
        ...

    def entry_by_serial(self, serial: int) -> Entry | None: ...

    def entry_by_leaf_hash(self, leaf: bytes) -> Entry | None: ...

    def entries_by_imprint(self, imprint: bytes, limit: int = 100, start: int = 0) -> list[Entry]:
        """At most `limit` entries with this imprint from index `start` on, in index order."""
        ...

    def index_at_time(self, gen_time_ms: int) -> int:
        """The first index whose genTime is >= gen_time_ms (the size if none)."""
        ...

    def entry_bundle(self, index: int, width: int) -> list[bytes]:
        """The tokens of tlog entry bundle `index` (entries 256*index ..), `width` of them."""
        ...

    # The tree and the hash chain

    def node_reader(self, size: int) -> NodeReader:
        """Perfect-subtree hashes of the tree of `size` entries, for proofs in O(log n)."""
        ...

    def root(self, size: int) -> bytes: ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]: ...

    def tile_hashes(self, level: int, index: int, width: int) -> bytes:
        """The contents of tlog tile (level, index) of the given width: 32-byte hashes."""
        ...

    def chain_head(self, size: int) -> bytes:
        """The B.8 chain value after `size` entries; LookupError beyond the ledger."""
        ...

    # Archived signed checkpoints

    def checkpoints(self) -> list[SignedCheckpoint]: ...

    def checkpoint_sizes(self, after: int = -1, limit: int = -1) -> list[int]:
        """Archived checkpoint sizes above `after`, ascending, at most `limit` (-1: all)."""
        ...

    def latest_checkpoint(self) -> SignedCheckpoint | None: ...

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None: ...


class Store(Reader, Protocol):
    """A ledger's one writer (a second one is fenced off by the epoch, L-08)."""

    def claim_epoch(self) -> SequenceState:
        """Become the writer: durably start a new epoch and return where to resume."""
        ...

    def append(self, epoch: int, first_index: int, entries: list[NewEntry]) -> None:
        """Durably append entries at first_index.. (fsync'd on return) or raise LedgerError."""
        ...

    def add_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Archive a signed checkpoint; LedgerError unless it is larger than the last one."""
        ...
