"""The Merkle tree of a PostgreSQL ledger log, kept as `sqlite_tree.py` keeps SQLite's.

Leaf hashes live in `ledger_entries.leaf_hash`; `ledger_nodes` holds the perfect-subtree
hashes at the tile strata only (tree levels 8, 16, 24...), written in the append
transaction that completes them. Any node is the root of at most 128 hashes of the
stratum below it (one range query), so roots, proofs and tiles cost O(log n) queries.
The hashing is `ledger.merkle.root_of`, the strata are `sqlite_tree.STRATUM`.
"""

from __future__ import annotations

from ledger.merkle import root_of
from ledger.store.postgres_schema import Connection
from ledger.store.sqlite_tree import STRATUM

__all__ = ["STRATUM", "integrate", "node", "stratum_hashes"]


def stratum_hashes(conn: Connection, log: str, level: int, start: int, end: int) -> list[bytes]:
    """Hashes of the nodes [start, end) at a stratum level (0 = the leaves)."""
    if level == 0:
        rows = conn.execute(
            "SELECT leaf_hash FROM ledger_entries WHERE log = %s AND idx >= %s AND idx < %s "
            "ORDER BY idx",
            (log, start, end),
        )
    else:
        rows = conn.execute(
            "SELECT hash FROM ledger_nodes WHERE log = %s AND level = %s AND idx >= %s "
            "AND idx < %s ORDER BY idx",
            (log, level, start, end),
        )
    return [bytes(row[0]) for row in rows]


def node(conn: Connection, log: str, level: int, index: int) -> bytes:
    """The hash of the perfect subtree (level, index); it must lie inside the tree."""
    base = level - level % STRATUM
    width = 1 << (level - base)
    hashes = stratum_hashes(conn, log, base, index * width, (index + 1) * width)
    if len(hashes) != width:
        raise LookupError(f"node ({level}, {index}) is not complete in this ledger")
    return root_of(hashes)


def integrate(conn: Connection, log: str, old_size: int, new_size: int) -> None:
    """Write the stratum nodes that growing the tree from `old_size` to `new_size` leaves
    completes. Call inside the append transaction, after inserting the entries: every
    earlier append stored the nodes its own size completed, so those below
    `old_size >> level` exist already (a duplicate would violate the primary key)."""
    level = STRATUM
    while new_size >> level:
        rows = []
        for index in range(old_size >> level, new_size >> level):
            below = stratum_hashes(
                conn, log, level - STRATUM, index << STRATUM, (index + 1) << STRATUM
            )
            if len(below) != 1 << STRATUM:
                raise LookupError(f"node ({level}, {index}) lacks hashes of the stratum below")
            rows.append((log, level, index, root_of(below)))
        if rows:
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO ledger_nodes (log, level, idx, hash) VALUES (%s, %s, %s, %s)",
                    rows,
                )
        level += STRATUM
