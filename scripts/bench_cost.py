"""What a level of scripts/bench costs: CPU of processes from /proc (user + system time of
a process and its descendants), of the whole machine from /proc/stat, and PostgreSQL's
side of it from the database's own counters.

PostgreSQL figures, between two snapshots of the primary:
- write transactions: the transaction ids handed out (`pg_current_snapshot()`'s xmax),
  exact and at once; every transaction that wrote (a group commit of a node's batches,
  a lease renewal, a checkpoint) takes one, read-only ones take none;
- commits: `pg_stat_database.xact_commit` of the ledger's database, read-only ones
  included; backends report it at most once a second, so a level may count up to about
  a second of its neighbour's;
- WAL: bytes from `pg_current_wal_lsn()` (exact), WAL fsyncs from `pg_stat_wal.wal_sync`
  (reported like xact_commit);
- CPU: every process of the postmaster (backends, WAL writer, checkpointer, WAL sender).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

CLK_TCK = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found, todo = [], [pid]
    while todo:
        each = todo.pop()
        found.append(each)
        todo += children(each)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and their descendants."""
    total = 0.0
    for pid in pids:
        for each in tree(pid):
            try:
                fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent not idle, all cores, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class PgSnapshot:
    xid: int = 0
    commits: int = 0
    wal_lsn: int = 0
    wal_syncs: int = 0
    cpu_s: float = 0.0
    standby_cpu_s: float = 0.0


@dataclass
class PgMeter:
    """Counters of one PostgreSQL primary (and its standby's CPU, when there is one)."""

    admin_url: str  # the ledger's database, as a superuser
    postmaster: int
    standby_postmaster: int | None = None
    _conn: psycopg.Connection | None = field(default=None, repr=False)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.admin_url, autocommit=True)
        return self._conn

    def snapshot(self) -> PgSnapshot:
        query = (
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint,"
            " (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
            " (SELECT wal_sync FROM pg_stat_wal)"
        )
        row = self._connection().execute(query).fetchone()
        assert row is not None
        return PgSnapshot(
            xid=int(row[0]),
            commits=int(row[1]),
            wal_lsn=int(row[2]),
            wal_syncs=int(row[3]),
            cpu_s=cpu_seconds([self.postmaster]),
            standby_cpu_s=cpu_seconds([self.standby_postmaster])
            if self.standby_postmaster
            else 0.0,
        )

    def level(self, before: PgSnapshot, after: PgSnapshot, tokens: int, seconds: float) -> dict:
        per = max(tokens, 1)
        figures = {
            "pg_cpu_us_per_token": round(1e6 * (after.cpu_s - before.cpu_s) / per),
            "pg_write_tx_per_s": round((after.xid - before.xid) / seconds),
            "pg_commits_per_s": round((after.commits - before.commits) / seconds),
            "pg_wal_syncs_per_s": round((after.wal_syncs - before.wal_syncs) / seconds),
            "pg_wal_bytes_per_token": round((after.wal_lsn - before.wal_lsn) / per),
            "pg_tokens_per_write_tx": round(tokens / max(after.xid - before.xid, 1), 1),
            "pg_cpu_s": after.cpu_s - before.cpu_s,
        }
        if self.standby_postmaster:
            figures["standby_cpu_us_per_token"] = round(
                1e6 * (after.standby_cpu_s - before.standby_cpu_s) / per
            )
            figures["standby_cpu_s"] = after.standby_cpu_s - before.standby_cpu_s
        return figures

    def storage(self) -> dict:
        """Bytes of the ledger's tables (with their indexes and TOAST) per entry, and of
        the whole database per entry (every log: tokens and operations)."""
        query = (
            "SELECT (SELECT count(*) FROM ledger_entries),"
            " pg_total_relation_size('ledger_entries'),"
            " pg_total_relation_size('ledger_nodes'),"
            " pg_total_relation_size('ledger_checkpoints'),"
            " pg_database_size(current_database())"
        )
        row = self._connection().execute(query).fetchone()
        assert row is not None
        entries = max(int(row[0]), 1)
        return {
            "entries": int(row[0]),
            "entry_bytes_per_entry": round(int(row[1]) / entries),
            "tree_bytes_per_entry": round(int(row[2]) / entries),
            "ledger_bytes_per_entry": round(sum(int(v) for v in row[1:4]) / entries),
            "database_bytes_per_entry": round(int(row[4]) / entries),
        }

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
