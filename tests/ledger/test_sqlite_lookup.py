"""Lookups by imprint and leaf hash (ledger/store/sqlite_lookup.py): the same answers
as a scan of the ledger whether the side database covers none, part or all of it, and
never a wrong or missing answer from a side database made for another ledger. Commits
touch no random-keyed index."""

from __future__ import annotations

import shutil
import sqlite3
import time

from ledger.hashing import leaf_hash
from ledger.store.base import NewEntry
from ledger.store.sqlite import SqliteReader, SqliteStore
from ledger.store.sqlite_lookup import lookup_path


def _entries(first: int, count: int, tag: bytes) -> list[NewEntry]:
    # Imprints repeat (every 7th entry shares one), as when a document is stamped twice.
    return [
        NewEntry(tag + b"%d" % i, i, i + 1, "sha256", b"%032d" % (i % 7))
        for i in range(first, first + count)
    ]


def _scan(path, column: str, key: bytes, limit: int, start: int = 0) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            f"SELECT idx FROM entries WHERE {column} = ? AND idx >= ? ORDER BY idx LIMIT ?",
            (key, start, limit),
        ).fetchall()
    finally:
        conn.close()
    return [idx for (idx,) in rows]


def _wait_copied(store: SqliteStore, size: int) -> None:
    deadline = time.monotonic() + 20
    while store._lookup_copier.copied_size < size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store._lookup_copier.copied_size == size


def _check_lookups(reader, path, size: int, tag: bytes) -> None:
    for residue in range(7):
        key = b"%032d" % residue
        for limit in (1, 5, 1000):
            got = [e.index for e in reader.entries_by_imprint(key, limit)]
            assert got == _scan(path, "imprint", key, limit)
            assert got, "every residue occurs"
            # Pages: from any index on, in the covered part, the tail or across both.
            for start in (1, size // 2, size - 3, size):
                got = [e.index for e in reader.entries_by_imprint(key, limit, start)]
                assert got == _scan(path, "imprint", key, limit, start)
    for index in (0, 1, size // 2, size - 1):
        entry = reader.entry_by_leaf_hash(leaf_hash(tag + b"%d" % index))
        assert entry is not None and entry.index == index
    assert reader.entry_by_leaf_hash(b"\0" * 32) is None
    assert reader.entries_by_imprint(b"\1" * 32) == []


def test_lookups_agree_with_a_scan_before_during_and_after_copying(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = SqliteStore(path)
    epoch = store.claim_epoch().epoch
    store.append(epoch, 0, _entries(0, 300, b"a"))
    _wait_copied(store, 300)
    # The next entries are only in the tail until the copier's next round.
    store.append(epoch, 300, _entries(300, 200, b"a"))
    _check_lookups(store, path, 500, b"a")
    reader = SqliteReader(path)
    _check_lookups(reader, path, 500, b"a")
    _wait_copied(store, 500)
    _check_lookups(reader, path, 500, b"a")
    reader.close()
    store.close()


def test_commits_touch_no_random_keyed_index(tmp_path) -> None:
    """Ledgers made with the old imprint and leaf-hash indexes lose them on open."""
    path = tmp_path / "ledger.sqlite"
    store = SqliteStore(path)
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("CREATE INDEX idx_entries_imprint ON entries(imprint)")
    conn.execute("CREATE INDEX idx_entries_leaf_hash ON entries(leaf_hash)")
    conn.close()
    store = SqliteStore(path)
    indexed = {
        row[0]
        for (name,) in store._writer.execute("SELECT name FROM pragma_index_list('entries')")
        for row in store._writer.execute("SELECT name FROM pragma_index_info(?)", (name,))
    }
    assert indexed == {"serial", "gen_time"}
    store.close()


def test_a_side_database_of_another_ledger_is_never_believed(tmp_path) -> None:
    first, second = tmp_path / "first.sqlite", tmp_path / "second.sqlite"
    store = SqliteStore(first)
    store.append(store.claim_epoch().epoch, 0, _entries(0, 400, b"x"))
    _wait_copied(store, 400)
    store.close()
    other = SqliteStore(second)
    other.append(other.claim_epoch().epoch, 0, _entries(0, 900, b"y"))
    other.close()
    # The first ledger's side database, dropped next to the second ledger (a restored
    # backup, a copied directory): lookups must still find the second ledger's entries.
    lookup_path(second).unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        (tmp_path / ("second.sqlite.lookup" + suffix)).unlink(missing_ok=True)
    shutil.copy(lookup_path(first), lookup_path(second))
    reader = SqliteReader(second)
    _check_lookups(reader, second, 900, b"y")
    reader.close()
    # The writer's copier starts the foreign side database over.
    reopened = SqliteStore(second)
    _wait_copied(reopened, 900)
    _check_lookups(reopened, second, 900, b"y")
    reopened.close()


def test_lookups_work_without_a_side_database(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite"
    store = SqliteStore(path)
    store.append(store.claim_epoch().epoch, 0, _entries(0, 50, b"z"))
    store.close()
    for name in ("ledger.sqlite.lookup", "ledger.sqlite.lookup-wal", "ledger.sqlite.lookup-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    reader = SqliteReader(path)
    _check_lookups(reader, path, 50, b"z")
    reader.close()
