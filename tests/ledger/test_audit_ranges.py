"""The audit by ranges (ledger/audit_ranges.py, what `tsa-ledger audit` runs on a SQLite
file) reports exactly what the sequential replay reports: the same findings in the same
order, root, chain head and resume state, on ledgers that span several ranges and tile
groups, with checkpoints inside groups, on their edges and beyond the log, and with
every tampering of tests/ledger/test_audit.py."""

from __future__ import annotations

import base64
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from ledger import audit_ranges
from ledger.audit import AuditReport, Failure, audit, inspect_entry, inspect_token
from ledger.hashing import leaf_hash
from ledger.merkle import CompactRange, MemoryTree
from ledger.store.base import NewEntry, SignedCheckpoint
from ledger.store.sqlite import SqliteReader, SqliteStore
from tests.ledger.test_audit import TRIGGERS, ledger_copy, tamper  # noqa: F401 - fixture

SIZE = 1300
CHECKPOINTS = (1, 255, 256, 300, 512, 700, 1024, 1299, 1300)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SIZE entries (opaque bytes, not tokens) and checkpoints at CHECKPOINTS."""
    path = tmp_path_factory.mktemp("ranges") / "ledger.sqlite"
    store = SqliteStore(path)
    epoch = store.claim_epoch().epoch
    entries = [
        NewEntry(b"entry %d" % i, 1_000 + i // 7, (1 << 120) + i, "sha256", bytes(32))
        for i in range(SIZE)
    ]
    store.append(epoch, 0, entries)
    tree = MemoryTree(leaf_hash(e.token) for e in entries)
    for size in CHECKPOINTS:
        root = tree.root(size)
        note = f"o\n{size}\n{base64.b64encode(root).decode()}\n\n"
        store.add_checkpoint(SignedCheckpoint(size, root, store.chain_head(size), note))
    store.close()
    conn = sqlite3.connect(path)
    for trigger in (*TRIGGERS, "checkpoints_no_update", "nodes_no_update"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.commit()
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return path


@pytest.fixture
def synthetic(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ledger.sqlite"
    shutil.copyfile(template, copy)
    return copy


def both(path: Path, inspect=inspect_entry, jobs: int = 1) -> tuple[AuditReport, AuditReport]:
    reader = SqliteReader(path)
    try:
        checkpoints = reader.checkpoints()
        stored_node = _stored_node(reader)
        sequential = audit(
            reader.entries(), checkpoints=checkpoints, inspect=inspect, stored_node=stored_node
        )
        ranged = audit_ranges.audit_file(
            path, checkpoints=checkpoints, inspect=inspect, jobs=jobs, stored_node=stored_node
        )
    finally:
        reader.close()
    return sequential, ranged


def _stored_node(reader: SqliteReader):
    def stored(level: int, index: int) -> bytes | None:
        hashes = reader.tile_hashes(level // 8, index >> 8, (index & 255) + 1)
        return hashes[-32:] if len(hashes) == 32 * ((index & 255) + 1) else None

    return stored


def _order(failure: Failure) -> tuple[int, str, str]:
    return (-1 if failure.index is None else failure.index, failure.check, failure.message)


def same(sequential: AuditReport, ranged: AuditReport) -> None:
    # The same findings, entry by entry in index order; within one entry the ranged audit
    # names the checks of the main process (binding anchors) after its worker's.
    assert [f.index for f in ranged.failures] == [f.index for f in sequential.failures]
    assert sorted(ranged.failures, key=_order) == sorted(sequential.failures, key=_order)
    assert (ranged.size, ranged.bytes, ranged.root, ranged.chain_head) == (
        sequential.size,
        sequential.bytes,
        sequential.root,
        sequential.chain_head,
    )
    assert (ranged.checkpoints, ranged.warnings) == (sequential.checkpoints, sequential.warnings)
    a, b = sequential.state, ranged.state
    assert a is not None and b is not None
    assert (a.size, a.tree, a.chain_head, a.last_gen_ms, a.serials, a.roots) == (
        b.size,
        b.tree,
        b.chain_head,
        b.last_gen_ms,
        b.serials,
        b.roots,
    )
    assert a.strata.to_json() == b.strata.to_json()


@pytest.fixture(params=[256, 512])
def small_ranges(request, monkeypatch) -> int:
    monkeypatch.setattr(audit_ranges, "RANGE", request.param)
    return int(request.param)


@pytest.mark.parametrize("jobs", [1, 2])
def test_untampered(synthetic, small_ranges, jobs) -> None:
    sequential, ranged = both(synthetic, jobs=jobs)
    assert sequential.ok and sequential.checkpoints == len(CHECKPOINTS)
    same(sequential, ranged)


@pytest.mark.parametrize(
    "statements",
    [
        [("UPDATE entries SET token = x'00' WHERE idx = 300",)],  # leaf hash
        [("UPDATE entries SET chain_hash = zeroblob(32) WHERE idx = 511",)],  # chain, range edge
        [("UPDATE entries SET chain_hash = zeroblob(32) WHERE idx = 512",)],
        [("UPDATE entries SET gen_time = 0 WHERE idx = 512",)],  # genTime at a range's start
        [("UPDATE entries SET gen_time = 99999 WHERE idx = 511",)],  # ... and the end before
        [
            ("DROP INDEX idx_entries_serial",),
            ("UPDATE entries SET serial = ? WHERE idx = 1000", format((1 << 120) + 3, "040x")),
        ],
        [("UPDATE checkpoints SET root = zeroblob(32) WHERE size = 700",)],
        [("UPDATE checkpoints SET chain_head = zeroblob(32) WHERE size = 1024",)],
        [("UPDATE nodes SET hash = zeroblob(32) WHERE level = 8 AND idx = 2",)],
        [
            (
                "INSERT INTO checkpoints (size, root, chain_head, note) "
                "VALUES (1400, zeroblob(32), zeroblob(32), 'x')",
            )
        ],  # fmt: skip
        [("DELETE FROM entries WHERE idx = 600",)],  # a gap: the sequential replay decides
        [("DELETE FROM entries WHERE idx >= 1290",)],  # lost entries under checkpoints
    ],
)
def test_tampering(synthetic, small_ranges, statements) -> None:
    tamper(synthetic, *statements)
    for jobs in (1, 2):
        sequential, ranged = both(synthetic, jobs=jobs)
        assert sequential.failures
        same(sequential, ranged)


def test_real_tokens_and_tamperings(ledger_copy) -> None:  # noqa: F811 - the fixture
    sequential, ranged = both(ledger_copy, inspect_token)
    assert sequential.ok
    same(sequential, ranged)
    reader = SqliteReader(ledger_copy)
    other, serial = reader.entry(3), reader.entry(2).serial  # type: ignore[union-attr]
    reader.close()
    tamper(
        ledger_copy,
        ("DROP INDEX idx_entries_serial",),
        ("UPDATE entries SET serial = ? WHERE idx = 11", format(serial, "040x")),
        ("UPDATE entries SET gen_time = 0 WHERE idx = 12",),
        ("UPDATE entries SET imprint = zeroblob(32) WHERE idx = 13",),
        ("UPDATE entries SET token = ? WHERE idx = 9", other.token),  # type: ignore[union-attr]
        ("UPDATE entries SET token = CAST(token AS TEXT) WHERE idx = 15",),
    )
    for jobs in (1, 2):
        sequential, ranged = both(ledger_copy, inspect_token, jobs)
        assert {(9, "token"), (11, "serial"), (12, "gen_time"), (13, "token")} <= {
            (f.index, f.check) for f in sequential.failures
        }
        same(sequential, ranged)


def test_append_subtree_is_appending_its_leaves() -> None:
    leaves = [leaf_hash(b"%d" % i) for i in range(256 * 7)]
    tree = MemoryTree(leaves)
    ranged, one_by_one = CompactRange(), CompactRange()
    for group in range(7):
        ranged.append_subtree(8, tree(8, group))
        one_by_one.extend(leaves[256 * group : 256 * (group + 1)])
        assert ranged == one_by_one
    with pytest.raises(ValueError):
        CompactRange(1, [leaves[0]]).append_subtree(8, tree(8, 0))


def test_the_cli_replays_a_file_by_ranges_on_every_cpu(synthetic, small_ranges, monkeypatch):
    """Without -j a SQLite file is audited with one worker per CPU (the same summary as
    -j 1); an audit resumed from its state, which replays in order, with one."""
    import os

    from click.testing import CliRunner

    from ledger import cli

    seen: list[tuple[str, int]] = []

    def spy(name, real):
        def call(*args, **kwargs):
            seen.append((name, kwargs["jobs"]))
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(cli, "audit_file", spy("ranges", cli.audit_file))
    monkeypatch.setattr(cli, "audit", spy("replay", cli.audit))
    runner = CliRunner()
    by_default = runner.invoke(cli.cli, ["audit", str(synthetic)])
    one = runner.invoke(cli.cli, ["audit", "-j", "1", str(synthetic)])
    assert by_default.exit_code == 0 == one.exit_code, by_default.output
    timing = re.compile(r"[0-9.]+ s \([0-9,]+ entries/s\)")
    assert timing.sub("", by_default.output) == timing.sub("", one.output)
    assert f"{SIZE} entries" in one.output
    state = synthetic.parent / "audit.state"
    for _ in range(2):  # the first makes the state from the whole file, by ranges
        resumed = runner.invoke(cli.cli, ["audit", "--resume", str(state), str(synthetic)])
        assert resumed.exit_code == 0, resumed.output
    cpus = min(64, len(os.sched_getaffinity(0)))
    assert seen == [("ranges", cpus), ("ranges", 1), ("ranges", cpus), ("replay", 1)]
