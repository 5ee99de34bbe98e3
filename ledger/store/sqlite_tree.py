"""The Merkle tree of a SQLite ledger, kept so that any node costs one small query.

Leaf hashes live in `entries.leaf_hash`. The `nodes` table holds the perfect-subtree
hashes at the tile strata only (tree levels 8, 16, 24, ...: the rows of tlog-tiles
levels 1, 2, 3, ...), about n/255 rows. A node at level l is the root of at most 128
hashes of the stratum below it, read with one range query. The root of any size, an
inclusion or a consistency proof therefore cost O(log n) queries at ten million
entries as at ten. Nodes are written in the same transaction as the entries that
complete them, so the tree can never disagree with a committed ledger.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache

from ledger.merkle import NodeReader, root_of

STRATUM = 8  # tree levels per tile level (tlog-tiles: 256-wide tiles)
SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS nodes_no_update BEFORE UPDATE ON nodes
BEGIN SELECT RAISE(ABORT, 'tree nodes are append-only'); END;
CREATE TRIGGER IF NOT EXISTS nodes_no_delete BEFORE DELETE ON nodes
BEGIN SELECT RAISE(ABORT, 'tree nodes are append-only'); END;
"""


def stratum_hashes(conn: sqlite3.Connection, level: int, start: int, end: int) -> list[bytes]:
    """Hashes of the nodes [start, end) at a stratum level (0 = the leaves)."""
    if level == 0:
        rows = conn.execute(
            "SELECT leaf_hash FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        )
    else:
        rows = conn.execute(
            "SELECT hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (level, start, end),
        )
    return [row[0] for row in rows]


def node(conn: sqlite3.Connection, level: int, index: int) -> bytes:
    """The hash of the perfect subtree (level, index); it must lie inside the tree."""
    base = level - level % STRATUM
    width = 1 << (level - base)
    hashes = stratum_hashes(conn, base, index * width, (index + 1) * width)
    if len(hashes) != width:
        raise LookupError(f"node ({level}, {index}) is not complete in this ledger")
    return root_of(hashes)


def integrate(conn: sqlite3.Connection, size: int) -> None:
    """Write every stratum node a tree of `size` leaves completes that is not stored yet.
    Call inside the transaction that inserts the entries; on an older ledger without
    nodes it is also the backfill."""
    level = STRATUM
    while size >> level:
        first = conn.execute(
            "SELECT COALESCE(MAX(idx) + 1, 0) FROM nodes WHERE level = ?", (level,)
        ).fetchone()[0]
        last = size >> level
        rows = []
        for index in range(first, last):
            below = stratum_hashes(conn, level - STRATUM, index << STRATUM, (index + 1) << STRATUM)
            rows.append((level, index, root_of(below)))
        if rows:
            conn.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", rows)
        level += STRATUM


def cached_reader(conn: sqlite3.Connection, size: int) -> NodeReader:
    """A NodeReader for a tree of `size` leaves. Perfect nodes never change once complete,
    so caching them is safe for as long as the ledger is append-only."""

    @lru_cache(maxsize=4096)
    def read(level: int, index: int) -> bytes:
        if (index + 1) << level > size:
            raise LookupError(f"node ({level}, {index}) lies outside a tree of size {size}")
        return node(conn, level, index)

    return read
