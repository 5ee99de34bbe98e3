"""Fixtures of the evidence-layer tests: an injectable clock, the evidence store (the
SQLite set, accounts included), accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.accounts.conftest import ALL_SCOPES as ALL_SCOPES
from tests.accounts.conftest import START as START
from tests.accounts.conftest import FakeClock
from tests.support.databases import EngineDatabase
from tsa_server.accounts.key_rules import Role
from tsa_server.accounts.service import Accounts
from tsa_server.evidence.store import EvidenceStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(engine_db: EngineDatabase) -> Path:
    """The SQLite file (a test taking it runs on SQLite only)."""
    return Path(engine_db.where)


@pytest.fixture
def store(engine_db: EngineDatabase, clock: FakeClock) -> Iterator[EvidenceStore]:
    """The store on each engine (SQLite only for a test that takes db_path)."""
    opened = engine_db.open(now=clock)
    yield opened
    opened.close()


@pytest.fixture
def accounts(store: EvidenceStore, clock: FakeClock) -> Accounts:
    return Accounts(store, now=clock)


@pytest.fixture
def two_orgs(accounts: Accounts):
    """Organisations A and B, each with an owner key holding every scope."""
    a = accounts.create_organisation("Org A")
    b = accounts.create_organisation("Org B")
    key_a = accounts.create_key(a.id, scopes=ALL_SCOPES, role=Role.OWNER)
    key_b = accounts.create_key(b.id, scopes=ALL_SCOPES, role=Role.OWNER)
    return a, b, key_a, key_b
