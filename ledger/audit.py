"""Replay a ledger without trusting the operator: every entry, in order, from the first.

Checks per entry: contiguous index; stored leaf hash = SHA-256(0x00 || token) (B.1);
stored chain value = the B.8 chain recomputed from the genesis; genTime non-decreasing;
serial unique; the token parses and its TSTInfo agrees with the row (serial, genTime,
imprint). The Merkle root of the whole log is recomputed with a compact range. Callers
add deeper per-token checks (signatures, certificates) through `inspect`.
Memory is O(log n) for the tree plus the set of serials seen.
"""

from __future__ import annotations

import builtins
import hashlib
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from asn1crypto import cms, tsp  # noqa: F401 - importing tsp registers TSTInfo with cms

from ledger.binding import LedgerBinding, find_binding
from ledger.checkpoint import Checkpoint as NoteCheckpoint
from ledger.checkpoint import NoteVerifier, open_checkpoint
from ledger.errors import LedgerError
from ledger.hashing import CHAIN_GENESIS, EMPTY_ROOT, chain_hash, leaf_hash
from ledger.merkle import CompactRange, root_of
from ledger.serials import serial_text
from ledger.store.base import Entry, SignedCheckpoint

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Inspect = Callable[[bytes], "Inspection"]
StoredNode = Callable[[int, int], "bytes | None"]
_BATCH = 4096  # entries handed to the workers at a time
Progress = Callable[[int, int], None]  # (entries done, bytes done)


@dataclass(frozen=True)
class Failure:
    index: int | None
    check: str
    message: str


@dataclass
class AuditReport:
    size: int = 0
    bytes: int = 0  # the entries' total size; the field's name shadows the type below
    root: builtins.bytes = hashlib.sha256(b"").digest()
    chain_head: builtins.bytes = CHAIN_GENESIS
    seconds: float = 0.0
    kind: str = "token log"  # or "operations log"
    checkpoints: int = 0  # archived checkpoints checked against the replay
    signatures: int = 0  # of them, signed notes verified with the log's key
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    state: AuditState | None = None  # where a later --resume starts

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "log": self.kind,
            "size": self.size,
            "bytes": self.bytes,
            "root": self.root.hex(),
            "chain_head": self.chain_head.hex(),
            "seconds": round(self.seconds, 3),
            "checkpoints": self.checkpoints,
            "signatures": self.signatures,
            "failures": [f.__dict__ for f in self.failures],
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class Inspection:
    """What one token says about itself, computed independently of every other entry (so
    workers can do it in parallel): its fields, its LedgerBinding, and any problems a
    deeper check (signature, certificate) found."""

    serial: int | None = None
    gen_time_ms: int | None = None
    imprint: bytes | None = None
    binding: LedgerBinding | None = None
    problems: tuple[str, ...] = ()


def inspect_token(token: bytes) -> Inspection:
    """Parse a DER TimeStampToken; a token that does not parse is a problem, not a crash."""
    try:
        info = cms.ContentInfo.load(token, strict=True)
        tst = info["content"]["encap_content_info"]["content"].parsed
        gen_ms = (tst["gen_time"].native - _UNIX_EPOCH) // timedelta(milliseconds=1)
        return Inspection(
            tst["serial_number"].native,
            gen_ms,
            tst["message_imprint"]["hashed_message"].native,
            find_binding(tst),
        )
    except Exception as exc:  # noqa: BLE001 - any parse failure is a finding
        return Inspection(problems=(f"token does not parse: {type(exc).__name__}",))


def inspect_entry(_token: bytes) -> Inspection:
    """For logs whose entries are not tokens (the operations log)."""
    return Inspection()


def _check_binding(
    binding: LedgerBinding, index: int, roots: dict[int, bytes] | None, origin: str | None
) -> list[str]:
    """L-07 invariants: own index, an anchor at or below it that is a published root."""
    problems = []
    if binding.leaf_index != index:
        problems.append(f"LedgerBinding.leafIndex is {binding.leaf_index}, not {index}")
    if origin is not None and binding.origin != origin:
        problems.append(f"LedgerBinding.origin {binding.origin!r} is not {origin!r}")
    if binding.anchor_size > index:
        problems.append(f"LedgerBinding.anchorSize {binding.anchor_size} exceeds the index")
    elif roots is None:
        pass  # no checkpoint archive to check the anchor against (reported as a warning)
    elif binding.anchor_size not in roots:
        problems.append(f"anchor {binding.anchor_size} is not an archived checkpoint")
    elif roots[binding.anchor_size] != binding.anchor_root:
        problems.append(f"anchorRoot differs from MTH(D[0:{binding.anchor_size}])")
    return problems


def _check_token(
    entry: Entry, seen: Inspection, roots: dict[int, bytes] | None, origin: str | None
) -> list[str]:
    problems = list(seen.problems)
    if seen.binding is not None:
        problems += _check_binding(seen.binding, entry.index, roots, origin)
    if seen.serial is not None and seen.serial != entry.serial:
        problems.append(
            f"token serial {serial_text(seen.serial)} differs from the stored "
            f"{serial_text(entry.serial)}"
        )
    if seen.gen_time_ms is not None and seen.gen_time_ms != entry.gen_time_ms:
        problems.append(
            f"token genTime {seen.gen_time_ms} ms differs from the stored {entry.gen_time_ms}"
        )
    if seen.imprint is not None and seen.imprint != entry.imprint:
        problems.append("token imprint differs from the stored imprint")
    return problems


def _inspected(
    entries: Iterable[Entry], inspect: Inspect, jobs: int
) -> Iterator[tuple[Entry, Inspection]]:
    """Entries in order with their inspections, computed by `jobs` worker processes."""
    if jobs <= 1:
        for entry in entries:
            yield entry, inspect(entry.token)
        return
    # Each forked worker receives `inspect` once, as it starts (fork copies it, nothing is
    # pickled): an inspector keeps what it learnt (a verified frame) for all its tokens.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_WorkerInspect.install, initargs=(inspect,)
    ) as pool:
        batch: list[Entry] = []
        for entry in entries:
            batch.append(entry)
            if len(batch) == _BATCH:
                yield from zip(batch, _map(pool, batch), strict=True)
                batch = []
        yield from zip(batch, _map(pool, batch), strict=True)


def _map(pool: ProcessPoolExecutor, batch: list[Entry]) -> Iterator[Inspection]:
    return pool.map(_WorkerInspect.run, [e.token for e in batch], chunksize=64)


class _WorkerInspect:
    """The inspector of this worker process, installed by the pool as the worker starts."""

    inspect: Inspect | None = None

    @classmethod
    def install(cls, inspect: Inspect) -> None:
        cls.inspect = inspect

    @staticmethod
    def run(token: bytes) -> Inspection:
        assert _WorkerInspect.inspect is not None, "installed by the pool initializer"
        return _WorkerInspect.inspect(token)


def _check_checkpoint(
    checkpoint: SignedCheckpoint,
    root: bytes,
    head: bytes,
    verifier: NoteVerifier | None,
    origin: str | None,
) -> list[str]:
    problems = []
    if checkpoint.root != root:
        problems.append("archived root differs from the replayed tree")
    if checkpoint.chain_head != head:
        problems.append("archived chain head differs from the replayed chain")
    try:
        if verifier is not None:
            signed, _ = open_checkpoint(checkpoint.note, verifier, origin=origin)
        else:
            signed = NoteCheckpoint.parse(checkpoint.note.split("\n\n", 1)[0] + "\n")
    except LedgerError as exc:
        return problems + [f"signed note rejected: {exc}"]
    if (signed.size, signed.root) != (checkpoint.size, root):
        problems.append("the signed note's size or root differs from the replayed tree")
    return problems


class StrataJson(TypedDict):
    """`_Strata` as saved in an audit state file."""

    pending: list[list[str]]
    counts: list[int]


class _Strata:
    """Completes the perfect nodes at tree levels 8, 16, ... as leaves arrive, so that a
    source's stored tile hashes can be compared with the replay in O(log n) memory."""

    def __init__(self, pending: list[list[bytes]] | None = None, counts: list[int] | None = None):
        self._pending = pending or []  # per stratum: hashes awaiting a full group
        self._counts = counts or []

    def to_json(self) -> StrataJson:
        return {"pending": [[h.hex() for h in g] for g in self._pending], "counts": self._counts}

    @classmethod
    def from_json(cls, data: StrataJson) -> _Strata:
        return cls([[bytes.fromhex(h) for h in g] for g in data["pending"]], data["counts"])

    def add(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        return self._add(leaf, 0)

    def add_group(self, node: bytes) -> list[tuple[int, int, bytes]]:
        """The level-8 node of the next 256 leaves, with no leaf pending (what `add` of
        each of them would leave): it and the nodes it completes above."""
        if self._pending and self._pending[0]:
            raise ValueError("leaves are pending below this group")
        if not self._pending:
            self._pending.append([])
            self._counts.append(0)
        done = [(8, self._counts[0], node)]
        self._counts[0] += 1
        return done + self._add(node, 1)

    def set_leaves(self, leaves: list[bytes]) -> None:
        """The leaves of the last, incomplete group (fewer than 256), after add_group."""
        if leaves:
            if not self._pending:
                self._pending.append([])
                self._counts.append(0)
            self._pending[0][:] = leaves

    def _add(self, value: bytes, depth: int) -> list[tuple[int, int, bytes]]:
        done: list[tuple[int, int, bytes]] = []
        while True:
            if depth == len(self._pending):
                self._pending.append([])
                self._counts.append(0)
            group = self._pending[depth]
            group.append(value)
            if len(group) < 256:
                return done
            value = root_of(group)
            group.clear()
            level, index = 8 * (depth + 1), self._counts[depth]
            self._counts[depth] += 1
            done.append((level, index, value))
            depth += 1


@dataclass
class AuditState:
    """Everything a replay carries from one entry to the next: enough to resume."""

    size: int = 0
    tree: CompactRange = field(default_factory=CompactRange)
    chain_head: bytes = CHAIN_GENESIS
    last_gen_ms: int | None = None
    serials: set[int] = field(default_factory=set)
    roots: dict[int, bytes] = field(default_factory=lambda: {0: EMPTY_ROOT})
    strata: _Strata = field(default_factory=lambda: _Strata())


def audit(
    entries: Iterable[Entry],
    *,
    checkpoints: Iterable[SignedCheckpoint] | None = None,
    verifier: NoteVerifier | None = None,
    origin: str | None = None,
    inspect: Inspect = inspect_token,
    jobs: int = 1,
    progress: Progress | None = None,
    stored_node: StoredNode | None = None,
    state: AuditState | None = None,
) -> AuditReport:
    """Replay `entries` (in stored order) and report every failure with its index.

    Every archived checkpoint is checked at its size against the replayed root and
    chain head, and its signed note against `verifier` (the log's vkey); tokens'
    LedgerBindings must anchor to those roots. `inspect` looks at each entry alone (give
    `inspect_entry` for a log whose entries are not tokens, or a deeper check such as
    signatures); `jobs` > 1 runs it in that many worker processes. `stored_node(level,
    index)` gives the source's own hash of each complete node at the tile strata (levels
    8, 16, ...), which must equal the replay's. With `state` (from an earlier audit of
    the same log) the replay resumes where that audit stopped: `entries` must start at
    `state.size`; the report carries the new state."""
    report = AuditReport()
    started = time.monotonic()
    st = state or AuditState()
    tree, head, last_gen, serials, strata = (
        st.tree,
        st.chain_head,
        st.last_gen_ms,
        st.serials,
        st.strata,
    )
    report.size = st.size
    fail = report.failures.append
    pending = sorted((c for c in checkpoints or () if c.size >= st.size), key=lambda c: c.size)
    # Without the checkpoint archive, LedgerBinding anchors cannot be checked: say so.
    roots: dict[int, bytes] | None = st.roots if checkpoints is not None else None
    if roots is None:
        report.warnings.append("LedgerBinding anchors not checked: no checkpoints given")
    if verifier is None and pending:
        report.warnings.append("checkpoint signatures not verified: no verifier key given")

    def reach(size: int) -> None:
        root = tree.root()
        if roots is not None:
            roots[size] = root
        while pending and pending[0].size == size:
            checkpoint = pending.pop(0)
            report.checkpoints += 1
            report.signatures += verifier is not None
            for problem in _check_checkpoint(checkpoint, root, head, verifier, origin):
                fail(Failure(None, "checkpoint", f"checkpoint {size}: {problem}"))

    reach(st.size)
    for expected, (entry, seen) in enumerate(_inspected(entries, inspect, jobs), st.size):
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
            fail(Failure(i, "serial", f"serial {serial_text(entry.serial)} appears twice"))
        serials.add(entry.serial)
        for problem in _check_token(entry, seen, roots, origin):
            fail(Failure(i, "token", problem))
        tree.append(leaf)
        if stored_node is not None:
            for level, index, node in strata.add(leaf):
                stored = stored_node(level, index)
                if stored is not None and stored != node:
                    message = f"stored node ({level}, {index}) differs from the replayed tree"
                    fail(Failure(None, "tile", message))
        report.size += 1
        report.bytes += len(entry.token)
        if pending and pending[0].size == report.size:
            reach(report.size)
        if progress is not None:
            progress(report.size, report.bytes)
    for checkpoint in pending:
        fail(
            Failure(
                None,
                "checkpoint",
                f"checkpoint {checkpoint.size} is beyond the "
                f"{report.size} entries of the ledger: entries lost or rolled back",
            )
        )
    report.root = tree.root()
    report.chain_head = head
    report.seconds = time.monotonic() - started
    report.state = AuditState(report.size, tree, head, last_gen, serials, roots or {}, strata)
    return report
