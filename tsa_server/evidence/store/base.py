"""The evidence database file every evidence store opens: the accounts' SQLite file
(accounts/sqlite.py) with the whole evidence schema (evidence/schema.py) made on open."""

from __future__ import annotations

import sqlite3

from tsa_server.database.tables import Tables
from tsa_server.evidence.schema import create_schema


class EvidenceFile(Tables):
    """A store over the evidence database: opening it makes the schema where missing."""

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        create_schema(conn)

    def _organisation_exists(self, org_id: str) -> bool:
        return self._row("SELECT 1 FROM organisations WHERE id = ?", (org_id,)) is not None
