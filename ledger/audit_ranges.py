"""The audit of a SQLite ledger file by ranges: the same checks and findings as
`ledger.audit.audit`, with the per-entry work split over worker processes that read the
file themselves.

Every per-entry check of the replay depends on the entry and the row before it only:

* the leaf hash is SHA-256(0x00 || token);
* the chain link: the replay compares SHA-256(0x02 || head || leaf) with the stored
  value and, where they differ, goes on from the stored value, so the check is
  "each stored link follows from the stored link before it and the recomputed leaf";
* genTime non-decreasing, against the row before;
* the token's own fields against its row (`inspect`), LedgerBinding's index and origin.

So a worker takes a range of 256-aligned indices (RANGE entries) and
returns its findings, the level-8 node of each complete group of 256 leaves, the
leaves of the group a checkpoint or the end of the log cuts, its serials in order and
the LedgerBinding anchors it saw. The main process keeps what needs the whole log: the
tree (from level-8 nodes, `CompactRange.append_subtree`), the checkpoints, the stored
tile nodes of levels 8, 16, ..., the serials' uniqueness, the anchors against the
archived roots, and genTime across the ranges' edges. A missing or misplaced row (the
replay stops at the first gap) sends the whole audit to the sequential replay, which
words that finding."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ledger.audit import (
    AuditReport,
    AuditState,
    Failure,
    Inspect,
    Progress,
    StoredNode,
    _check_binding,
    _check_checkpoint,
    _Strata,
    _WorkerInspect,
    audit,
    inspect_entry,
)
from ledger.checkpoint import NoteVerifier
from ledger.hashing import CHAIN_GENESIS, EMPTY_ROOT
from ledger.merkle import CompactRange, root_of
from ledger.serials import serial_text
from ledger.store.base import SignedCheckpoint
from ledger.store.sqlite import SqliteReader

RANGE = 16384  # entries per worker task: a multiple of 256 (small: the workers end together)
_ROWS = 2048  # rows per fetchmany
_SELECT = (
    "SELECT idx, CAST(token AS BLOB), gen_time, serial, CAST(imprint AS BLOB), "
    "CAST(leaf_hash AS BLOB), CAST(chain_hash AS BLOB) FROM entries "
    "WHERE idx >= ? AND idx < ? ORDER BY idx"
)


@dataclass
class Chunk:
    """What a worker found in [start, end)."""

    start: int
    end: int
    gap: bool = False  # a row missing or out of place: the sequential replay decides
    total_bytes: int = 0
    failures: list[Failure] = field(default_factory=list)
    first_gen: int | None = None
    last_gen: int | None = None
    head: bytes = CHAIN_GENESIS  # the stored chain value of the last entry
    serials: list[int] = field(default_factory=list)
    groups: list[bytes] = field(default_factory=list)  # level-8 nodes, complete groups
    cuts: dict[int, list[bytes]] = field(default_factory=dict)  # size -> leaves of its group
    heads: dict[int, bytes] = field(default_factory=dict)  # size -> stored chain value there
    tail: list[bytes] = field(default_factory=list)  # leaves of the last, incomplete group
    # (anchorSize, anchorRoot) -> indices whose LedgerBinding names it
    anchors: dict[tuple[int, bytes], list[int]] = field(default_factory=dict)


def _previous_row(conn: sqlite3.Connection, start: int) -> tuple[bytes, int | None]:
    if start == 0:
        return CHAIN_GENESIS, None
    row = conn.execute(
        "SELECT CAST(chain_hash AS BLOB), gen_time FROM entries WHERE idx = ?", (start - 1,)
    ).fetchone()
    return (bytes(row[0]), row[1]) if row else (CHAIN_GENESIS, None)


def scan(
    path: str, start: int, end: int, cuts: tuple[int, ...], inspect: Inspect | None,
    origin: str | None,
) -> Chunk:  # fmt: skip
    """The per-entry checks of [start, end) (start a multiple of 256), reading the file.
    `cuts`: checkpoint sizes in (start, end], whose chain heads (and, inside a group of
    256, the leaves of that group up to them) the main process needs. `inspect`
    None: the entries are not looked into (tree only, or not tokens)."""
    chunk = Chunk(start, end)
    fail = chunk.failures.append
    sha256 = hashlib.sha256
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA mmap_size = 1099511627776")  # pages read in place: less CPU
    try:
        head, last_gen = _previous_row(conn, start)
        cursor = conn.execute(_SELECT, (start, end))
        expected = start
        group: list[bytes] = []
        serials, groups, anchors = chunk.serials, chunk.groups, chunk.anchors
        total = 0
        while rows := cursor.fetchmany(_ROWS):
            for i, token, gen, serial_hex, imprint, stored_leaf, stored_chain in rows:
                if i != expected:
                    chunk.gap = True
                    return chunk
                expected += 1
                leaf = sha256(b"\x00" + token).digest()
                if leaf != stored_leaf:
                    fail(Failure(i, "leaf_hash", "stored leaf hash is not SHA-256(0x00 || token)"))
                if sha256(b"\x02" + head + leaf).digest() != stored_chain:
                    fail(Failure(i, "chain", "stored chain value differs from the replayed chain"))
                head = stored_chain
                if last_gen is not None and gen < last_gen:
                    fail(Failure(i, "gen_time", f"genTime decreases ({gen} < {last_gen})"))
                last_gen = gen
                serial = int(serial_hex, 16)
                serials.append(serial)
                total += len(token)
                if inspect is not None:
                    _inspect(chunk, i, token, gen, serial, imprint, inspect, origin)
                group.append(leaf)
                if i + 1 in cuts:
                    chunk.heads[i + 1] = head
                    if len(group) < 256:
                        chunk.cuts[i + 1] = list(group)
                if len(group) == 256:
                    groups.append(root_of(group))
                    group = []
        if expected != end:
            chunk.gap = True
        chunk.tail = group
        chunk.head = head
        chunk.total_bytes = total
        chunk.last_gen = last_gen
        del anchors  # filled by _inspect
        return chunk
    finally:
        conn.close()


def _inspect(
    chunk: Chunk, i: int, token: bytes, gen: int, serial: int, imprint: bytes,
    inspect: Inspect, origin: str | None,
) -> None:  # fmt: skip
    """ledger.audit._check_token for one entry, the anchor's root left to the main process."""
    seen = inspect(token)
    problems = list(seen.problems)
    binding = seen.binding
    if binding is not None:
        problems += _check_binding(binding, i, None, origin)
        if binding.anchor_size <= i:
            key = (binding.anchor_size, binding.anchor_root)
            chunk.anchors.setdefault(key, []).append(i)
    if seen.serial is not None and seen.serial != serial:
        problems.append(
            f"token serial {serial_text(seen.serial)} differs from the stored {serial_text(serial)}"
        )
    if seen.gen_time_ms is not None and seen.gen_time_ms != gen:
        problems.append(f"token genTime {seen.gen_time_ms} ms differs from the stored {gen}")
    if seen.imprint is not None and seen.imprint != imprint:
        problems.append("token imprint differs from the stored imprint")
    for problem in problems:
        chunk.failures.append(Failure(i, "token", problem))


def _install(inspect: Inspect | None) -> None:
    _WorkerInspect.inspect = inspect


def _scan_in_worker(
    path: str, start: int, end: int, cuts: tuple[int, ...], inspecting: bool, origin: str | None
) -> Chunk:  # fmt: skip
    return scan(path, start, end, cuts, _WorkerInspect.inspect if inspecting else None, origin)


def _chunks(
    path: str, size: int, sizes: list[int], inspect: Inspect | None, origin: str | None, jobs: int
) -> Iterator[Chunk]:  # fmt: skip
    tasks = []
    for start in range(0, size, RANGE):
        end = min(size, start + RANGE)
        tasks.append((start, end, tuple(s for s in sizes if start < s <= end)))
    if jobs <= 1 or len(tasks) == 1:
        for start, end, cuts in tasks:
            yield scan(path, start, end, cuts, inspect, origin)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        min(jobs, len(tasks)), mp_context=context, initializer=_install,
        initargs=(inspect,),
    ) as pool:  # fmt: skip
        futures = [
            pool.submit(_scan_in_worker, path, s, e, c, inspect is not None, origin)
            for s, e, c in tasks
        ]
        for future in futures:
            yield future.result()


def audit_file(
    path: Path | str,
    *,
    checkpoints: list[SignedCheckpoint] | None = None,
    verifier: NoteVerifier | None = None,
    origin: str | None = None,
    inspect: Inspect = inspect_entry,
    jobs: int = 1,
    progress: Progress | None = None,
    stored_node: StoredNode | None = None,
) -> AuditReport:
    """`ledger.audit.audit` of the SQLite ledger at `path` from its first entry, by
    ranges in `jobs` processes (the same report; a gap falls back to the replay)."""
    started = time.monotonic()
    reader = SqliteReader(path)
    try:
        size = reader.size()
    finally:
        reader.close()
    report = AuditReport()
    pending = sorted(checkpoints or (), key=lambda c: c.size)
    roots: dict[int, bytes] | None = {0: EMPTY_ROOT} if checkpoints is not None else None
    if roots is None:
        report.warnings.append("LedgerBinding anchors not checked: no checkpoints given")
    if verifier is None and pending:
        report.warnings.append("checkpoint signatures not verified: no verifier key given")
    tree, strata, serials = CompactRange(), _Strata(), set[int]()
    head, last_gen = CHAIN_GENESIS, None
    anchors: dict[tuple[int, bytes], list[int]] = {}
    ranked: list[tuple[tuple[int, int], Failure]] = []  # the replay's order of findings

    def reach(at: int, root: bytes, head: bytes) -> None:
        if roots is not None:
            roots[at] = root
        while pending and pending[0].size == at:
            checkpoint = pending.pop(0)
            report.checkpoints += 1
            report.signatures += verifier is not None
            for problem in _check_checkpoint(checkpoint, root, head, verifier, origin):
                message = f"checkpoint {at}: {problem}"
                ranked.append(((at - 1, 9), Failure(None, "checkpoint", message)))

    reach(0, EMPTY_ROOT, CHAIN_GENESIS)
    sizes = [c.size for c in pending]
    looked = None if inspect is inspect_entry else inspect
    tail: list[bytes] = []
    for chunk in _chunks(str(path), size, sizes, looked, origin, jobs):
        if chunk.gap:
            return _sequential(path, checkpoints, verifier, origin, inspect, jobs, progress,
                               stored_node)  # fmt: skip
        for n in range(len(chunk.groups) + 1):
            first = chunk.start + 256 * n  # the group [first, first + 256)
            while pending and first < pending[0].size < first + 256:
                at = pending[0].size
                if at not in chunk.cuts:
                    break  # beyond the log: reported below
                partial = tree.copy()
                partial.extend(chunk.cuts[at])
                reach(at, partial.root(), chunk.heads[at])
            if n == len(chunk.groups):
                break
            tree.append_subtree(8, chunk.groups[n])
            for level, index, value in strata.add_group(chunk.groups[n]):
                stored = stored_node(level, index) if stored_node is not None else None
                if stored is not None and stored != value:
                    message = f"stored node ({level}, {index}) differs from the replayed tree"
                    ranked.append(((first + 255, 8), Failure(None, "tile", message)))
            if pending and pending[0].size == first + 256:
                reach(first + 256, tree.root(), chunk.heads[first + 256])
        for offset, serial in enumerate(chunk.serials):
            if serial in serials:
                message = f"serial {serial_text(serial)} appears twice"
                report.failures.append(Failure(chunk.start + offset, "serial", message))
            serials.add(serial)
        for key, indices in chunk.anchors.items():
            anchors.setdefault(key, []).extend(indices)
        report.failures.extend(chunk.failures)
        report.size = chunk.end
        report.bytes += chunk.total_bytes
        head, last_gen, tail = chunk.head, chunk.last_gen, chunk.tail
        if progress is not None:
            progress(report.size, report.bytes)
    tree.extend(tail)
    strata.set_leaves(tail)
    if roots is not None:
        for (anchor_size, anchor_root), indices in anchors.items():
            if anchor_size not in roots:
                problem = f"anchor {anchor_size} is not an archived checkpoint"
            elif roots[anchor_size] != anchor_root:
                problem = f"anchorRoot differs from MTH(D[0:{anchor_size}])"
            else:
                continue
            report.failures.extend(Failure(i, "token", problem) for i in indices)
    for checkpoint in pending:
        message = (
            f"checkpoint {checkpoint.size} is beyond the "
            f"{report.size} entries of the ledger: entries lost or rolled back"
        )
        ranked.append(((report.size, 10), Failure(None, "checkpoint", message)))
    ranked += [((f.index or 0, _RANK[f.check]), f) for f in report.failures]
    ranked.sort(key=lambda pair: pair[0])  # stable: a check's findings keep their order
    report.failures[:] = [f for _, f in ranked]
    report.root = tree.root()
    report.chain_head = head
    report.seconds = time.monotonic() - started
    report.state = AuditState(report.size, tree, head, last_gen, serials, roots or {}, strata)
    return report


# Within an entry, the replay's order of checks (contiguous is only ever the sequential's).
_RANK = {"contiguous": 0, "leaf_hash": 1, "chain": 2, "gen_time": 3, "serial": 4, "token": 5}


def _sequential(
    path: Path | str, checkpoints: list[SignedCheckpoint] | None, verifier: NoteVerifier | None,
    origin: str | None, inspect: Inspect, jobs: int, progress: Progress | None,
    stored_node: StoredNode | None,
) -> AuditReport:  # fmt: skip
    reader = SqliteReader(path)
    try:
        return audit(
            reader.entries(), checkpoints=checkpoints, verifier=verifier, origin=origin,
            inspect=inspect, jobs=jobs, progress=progress, stored_node=stored_node,
        )  # fmt: skip
    finally:
        reader.close()
