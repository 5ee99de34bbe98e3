"""Replay a ledger without trusting the operator: every entry, in order, from the first.

Checks per entry: contiguous index; stored leaf hash = SHA-256(0x00 || token) (B.1);
stored chain value = the B.8 chain recomputed from the genesis; genTime non-decreasing;
serial unique; the token parses and its TSTInfo agrees with the row (serial, genTime,
imprint). The Merkle root of the whole log is recomputed with a compact range. Callers
add deeper per-token checks (signatures, certificates) through `token_check`.
Memory is O(log n) for the tree plus the set of serials seen.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from asn1crypto import cms, tsp  # noqa: F401 - importing tsp registers TSTInfo with cms

from ledger.hashing import CHAIN_GENESIS, chain_hash, leaf_hash
from ledger.merkle import CompactRange
from ledger.store.base import Entry

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TokenCheck = Callable[[Entry], list[str]]
Progress = Callable[[int, int], None]  # (entries done, bytes done)


@dataclass(frozen=True)
class Failure:
    index: int | None
    check: str
    message: str


@dataclass
class AuditReport:
    size: int = 0
    bytes: int = 0
    root: bytes = hashlib.sha256(b"").digest()
    chain_head: bytes = CHAIN_GENESIS
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "size": self.size,
            "bytes": self.bytes,
            "root": self.root.hex(),
            "chain_head": self.chain_head.hex(),
            "seconds": round(self.seconds, 3),
            "failures": [f.__dict__ for f in self.failures],
        }


def _token_fields(token: bytes) -> tuple[int, int, bytes]:
    """(serial, genTime in ms, imprint digest) from a DER TimeStampToken."""
    info = cms.ContentInfo.load(token, strict=True)
    tst = info["content"]["encap_content_info"]["content"].parsed
    gen_time = tst["gen_time"].native
    gen_ms = (gen_time - _UNIX_EPOCH) // timedelta(milliseconds=1)
    return tst["serial_number"].native, gen_ms, tst["message_imprint"]["hashed_message"].native


def _check_token(entry: Entry) -> list[str]:
    try:
        serial, gen_ms, imprint = _token_fields(entry.token)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a finding, not a crash
        return [f"token does not parse: {type(exc).__name__}"]
    problems = []
    if serial != entry.serial:
        problems.append(f"token serial {serial:x} differs from the stored {entry.serial:x}")
    if gen_ms != entry.gen_time_ms:
        problems.append(f"token genTime {gen_ms} ms differs from the stored {entry.gen_time_ms}")
    if imprint != entry.imprint:
        problems.append("token imprint differs from the stored imprint")
    return problems


def audit(
    entries: Iterable[Entry],
    *,
    token_check: TokenCheck | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    """Replay `entries` (in stored order) and report every failure with its index."""
    report = AuditReport()
    started = time.monotonic()
    tree = CompactRange()
    head = CHAIN_GENESIS
    last_gen = None
    serials: set[int] = set()
    fail = report.failures.append
    for expected, entry in enumerate(entries):
        i = entry.index
        if i != expected:
            fail(Failure(expected, "contiguous", f"expected index {expected}, found {i}"))
            break  # everything after a gap is misplaced; the chain check would repeat it
        leaf = leaf_hash(entry.token)
        if leaf != entry.leaf_hash:
            fail(Failure(i, "leaf_hash", "stored leaf hash is not SHA-256(0x00 || token)"))
        head = chain_hash(head, leaf)
        if head != entry.chain_hash:
            fail(Failure(i, "chain", "stored chain value differs from the replayed chain"))
            head = entry.chain_hash  # report each break once, not every entry after it
        if last_gen is not None and entry.gen_time_ms < last_gen:
            fail(Failure(i, "gen_time", f"genTime decreases ({entry.gen_time_ms} < {last_gen})"))
        last_gen = entry.gen_time_ms
        if entry.serial in serials:
            fail(Failure(i, "serial", f"serial {entry.serial:x} appears twice"))
        serials.add(entry.serial)
        for problem in _check_token(entry) + (token_check(entry) if token_check else []):
            fail(Failure(i, "token", problem))
        tree.append(leaf)
        report.size += 1
        report.bytes += len(entry.token)
        if progress is not None:
            progress(report.size, report.bytes)
    report.root = tree.root()
    report.chain_head = head
    report.seconds = time.monotonic() - started
    return report
