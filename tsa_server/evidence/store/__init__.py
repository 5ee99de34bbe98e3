"""Where the evidence layer keeps its state: one SQLite file (WAL, synchronous=FULL:
durable on every commit), one store per aggregate, each a small protocol with one SQLite
class:

- `items.ItemStore`: items and their storage records;
- `credits.CreditStore`: the chained, append-only credit entries;
- `notices.NoticeStore`, `webhooks.WebhookStore`: notices and their webhook deliveries;
- `idempotency.IdempotencyStore`: the Idempotency-Keys of deposit requests;
- `jobs.JobStore`: which process runs each background job's rounds (one per cluster);
- `evidence_records.EvidenceRecordStore`: each item's RFC 4998 evidence record;
- `changes.ChangeStore`: one fee-layer change across items, credits and notices in one
  transaction;
- the organisations, members and API keys are tsa_server.accounts.store's.

`EvidenceStore` is the SQLite set over one file (what wiring builds, and what the
operator CLI and the tests open); `EvidenceStorage` is the protocol the evidence service
is typed with. Several processes may open the same file (accounts/sqlite.py).
"""

from __future__ import annotations

import sqlite3
from typing import Protocol

from tsa_server.accounts.store import AccountStore, SqlAccountStore
from tsa_server.evidence.schema import create_schema
from tsa_server.evidence.store.changes import ChangeStore, SqlChangeStore
from tsa_server.evidence.store.credits import CreditStore
from tsa_server.evidence.store.evidence_records import (
    EvidenceRecordStore,
    SqlEvidenceRecordStore,
)
from tsa_server.evidence.store.idempotency import IdempotencyStore, SqlIdempotencyStore
from tsa_server.evidence.store.items import MAX_PAGE as MAX_PAGE
from tsa_server.evidence.store.items import ItemStore
from tsa_server.evidence.store.jobs import JobStore, SqlJobStore
from tsa_server.evidence.store.notices import NoticeStore
from tsa_server.evidence.store.webhooks import SqlWebhookStore, WebhookStore


class EvidenceStorage(
    AccountStore,
    ItemStore,
    CreditStore,
    NoticeStore,
    ChangeStore,
    IdempotencyStore,
    WebhookStore,
    JobStore,
    EvidenceRecordStore,
    Protocol,
):
    """Every store over the evidence database together: what EvidenceService reads and
    writes (organisations included: a deposit checks its organisation)."""


class EvidenceStore(
    SqlChangeStore,
    SqlIdempotencyStore,
    SqlWebhookStore,
    SqlJobStore,
    SqlEvidenceRecordStore,
    SqlAccountStore,
):
    """The SQL set over one evidence database (SQLite file or PostgreSQL): accounts,
    items, credit entries, notices, webhooks, idempotency keys and job leases."""

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        create_schema(conn)


def _implements(store: EvidenceStore) -> EvidenceStorage:
    """The type checker proves the SQL set implements the protocol."""
    return store
