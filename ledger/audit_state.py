"""The state file of `--resume`: where an earlier successful audit of the same log
stopped (size, compact range, chain head, last genTime, checkpoint roots, pending tile
nodes) and every serial it saw, so an incremental audit replays only new entries.

A SQLite file: the serial set can be large, and writing it is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ledger.audit import AuditState, _Strata
from ledger.errors import LedgerError
from ledger.merkle import CompactRange


def save(path: Path, source: str, state: AuditState) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("CREATE TABLE serials (serial TEXT PRIMARY KEY) WITHOUT ROWID")
        meta = {
            "source": source,
            "size": state.size,
            "tree": state.tree.to_bytes().hex(),
            "chain_head": state.chain_head.hex(),
            "last_gen_ms": state.last_gen_ms,
            "roots": {str(k): v.hex() for k, v in state.roots.items()},
            "strata": state.strata.to_json(),
        }
        conn.execute("INSERT INTO meta VALUES ('state', ?)", (json.dumps(meta),))
        conn.executemany(
            "INSERT INTO serials VALUES (?)", ((format(s, "x"),) for s in state.serials)
        )
        conn.commit()
    finally:
        conn.close()
    tmp.replace(path)


def load(path: Path, source: str) -> AuditState:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = json.loads(
                conn.execute("SELECT value FROM meta WHERE key='state'").fetchone()[0]
            )
            serials = {int(row[0], 16) for row in conn.execute("SELECT serial FROM serials")}
        finally:
            conn.close()
    except (sqlite3.Error, TypeError, ValueError) as exc:
        raise LedgerError(f"{path} is not an audit state file: {exc}") from None
    if meta["source"] != source:
        raise LedgerError(f"{path} records an audit of {meta['source']}, not {source}")
    return AuditState(
        size=meta["size"],
        tree=CompactRange.from_bytes(bytes.fromhex(meta["tree"])),
        chain_head=bytes.fromhex(meta["chain_head"]),
        last_gen_ms=meta["last_gen_ms"],
        serials=serials,
        roots={int(k): bytes.fromhex(v) for k, v in meta["roots"].items()},
        strata=_Strata.from_json(meta["strata"]),
    )
