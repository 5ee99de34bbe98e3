"""The ledger's SQLite files: how the project opens a file it writes, the ledger schema
with the triggers that keep it append-only (docs/spec/ledger.md L-18), and the writer lock.
"""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path
from typing import IO

import sqlite_utils

from ledger.errors import LedgerWriteError
from ledger.files import ensure_private_file
from ledger.store import sqlite_tree

SCHEMA_VERSION = 1

_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_contiguous BEFORE INSERT ON entries
WHEN NEW.idx != (SELECT COALESCE(MAX(idx) + 1, 0) FROM entries)
BEGIN SELECT RAISE(ABORT, 'ledger indices must be contiguous'); END;
CREATE TRIGGER IF NOT EXISTS entries_monotone BEFORE INSERT ON entries
WHEN NEW.gen_time < (SELECT gen_time FROM entries WHERE idx = NEW.idx - 1)
BEGIN SELECT RAISE(ABORT, 'genTime must not decrease'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_advance BEFORE INSERT ON checkpoints
WHEN NEW.size <= (SELECT COALESCE(MAX(size), -1) FROM checkpoints)
BEGIN SELECT RAISE(ABORT, 'a checkpoint must be larger than the last one'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'signed checkpoints are archived, never changed'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'signed checkpoints are archived, never changed'); END;
CREATE TRIGGER IF NOT EXISTS seq_no_delete BEFORE DELETE ON seq
BEGIN SELECT RAISE(ABORT, 'the sequence row is permanent'); END;
CREATE TRIGGER IF NOT EXISTS seq_epoch_forward BEFORE UPDATE ON seq
WHEN NEW.epoch < OLD.epoch OR NEW.next_idx < OLD.next_idx
BEGIN SELECT RAISE(ABORT, 'the sequence only moves forward'); END;
"""


def lock_exclusively(path: Path) -> IO[str]:
    """Hold `path` (the ledger's `.lock` file) exclusively, or fail at once."""
    try:
        ensure_private_file(path)
        handle = open(path, "a+")
    except OSError as exc:
        raise LedgerWriteError(f"cannot create the ledger lock {path}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LedgerWriteError(
            f"the ledger {path.with_suffix('')} is in use by another process (lock {path})"
        ) from None
    return handle


def connect(path: Path | str) -> sqlite3.Connection:
    """The project's one way to open a SQLite file it writes: autocommit (transactions
    are explicit), WAL, synchronous=FULL (durable on every commit), a busy timeout.
    The file is private to the service user (ledger/files.py)."""
    ensure_private_file(Path(path))
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    if "entries" not in db.table_names():
        db.table("entries").create(
            {
                "idx": int,
                "token": bytes,
                "gen_time": int,
                "serial": str,
                "imprint_alg": str,
                "imprint": bytes,
                "leaf_hash": bytes,
                "chain_hash": bytes,
            },
            pk="idx",
            not_null={"token", "gen_time", "serial", "leaf_hash", "chain_hash"},
        )
        db.table("entries").create_index(["serial"], unique=True)
        db.table("entries").create_index(["gen_time"])
    if "seq" not in db.table_names():
        db.table("seq").create(
            {"id": int, "next_idx": int, "last_gen_time": int, "epoch": int, "schema": int},
            pk="id",
        )
        db.table("seq").insert(
            {"id": 1, "next_idx": 0, "last_gen_time": 0, "epoch": 0, "schema": SCHEMA_VERSION}
        )
    # Ledgers made before checkpoints were signed had placeholder tables, never written.
    for stale in ("integrated", "checkpoints"):
        table = db.table(stale)
        if table.exists() and "chain_head" not in table.columns_dict and not table.count:
            table.drop()
    if "checkpoints" not in db.table_names():
        db.table("checkpoints").create(
            {"size": int, "root": bytes, "chain_head": bytes, "note": str, "signed_at": int},
            pk="size",
            not_null={"root", "chain_head", "note"},
        )
    conn.executescript(_TRIGGERS + sqlite_tree.SCHEMA)
    # Ledgers made before lookups moved to the side database (sqlite_lookup.py) indexed
    # these random keys in every commit.
    conn.execute("DROP INDEX IF EXISTS idx_entries_leaf_hash")
    conn.execute("DROP INDEX IF EXISTS idx_entries_imprint")
