"""The logs a TSA publishes in a shared PostgreSQL database (issue 16): one row per log
(its name, kind, time-stamping unit, origin, checkpoint verifier key and, for a token
log, the unit's certificate chain in PEM), written by the node that writes the log when
it starts, read by every node to list (`GET /ledger/`) and serve every log."""

from __future__ import annotations

import psycopg

from ledger.errors import LedgerError
from ledger.store.base import PublishedLog
from ledger.store.postgres_schema import connect, describe

_COLUMNS = "log, kind, unit, origin, vkey, certificate"


def publish(url: str, log: PublishedLog) -> bool:
    """Record `log` (its row must exist in ledger_logs: its writer made it); True when the
    row is new or changed (the caller records that in its operations log)."""
    try:
        with connect(url) as conn, conn.transaction():
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM ledger_published WHERE log = %s FOR UPDATE",
                (log.name,),
            ).fetchone()
            if row is not None and PublishedLog(*row) == log:
                return False
            conn.execute(
                f"INSERT INTO ledger_published ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (log) DO UPDATE SET kind = excluded.kind, unit = excluded.unit,"
                " origin = excluded.origin, vkey = excluded.vkey,"
                " certificate = excluded.certificate, updated_at = now()",
                (log.name, log.kind, log.unit, log.origin, log.vkey, log.certificate),
            )
            return True
    except psycopg.Error as exc:
        raise LedgerError(
            f"cannot publish the log {log.name!r} in the {describe(url)}: {exc}"
        ) from None


def published(url: str) -> list[PublishedLog]:
    """Every published log, by name."""
    try:
        with connect(url) as conn, conn.transaction():
            rows = conn.execute(f"SELECT {_COLUMNS} FROM ledger_published ORDER BY log").fetchall()
    except psycopg.Error as exc:
        raise LedgerError(f"cannot list the logs in the {describe(url)}: {exc}") from None
    return [PublishedLog(*row) for row in rows]
