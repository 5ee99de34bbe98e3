"""Fixtures of the accounts tests: an injectable clock, an account store, accounts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.databases import EngineDatabase
from tsa_server.accounts.key_rules import Role, Scope
from tsa_server.accounts.service import Accounts
from tsa_server.accounts.store import SqlAccountStore

START = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
ALL_SCOPES = frozenset(Scope)


class FakeClock:
    """`now()` under test control, millisecond precision like the store."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(engine_db: EngineDatabase) -> Path:
    """The SQLite file (a test taking it runs on SQLite only)."""
    return Path(engine_db.where)


@pytest.fixture
def store(engine_db: EngineDatabase, clock: FakeClock) -> Iterator[SqlAccountStore]:
    """The store on each engine (SQLite only for a test that takes db_path)."""
    opened = engine_db.open(now=clock)
    yield opened
    opened.close()


@pytest.fixture
def accounts(store: SqlAccountStore, clock: FakeClock) -> Accounts:
    return Accounts(store, now=clock)


@pytest.fixture
def two_orgs(accounts: Accounts):
    """Organisations A and B, each with an owner key holding every scope."""
    a = accounts.create_organisation("Org A")
    b = accounts.create_organisation("Org B")
    key_a = accounts.create_key(a.id, scopes=ALL_SCOPES, role=Role.OWNER)
    key_b = accounts.create_key(b.id, scopes=ALL_SCOPES, role=Role.OWNER)
    return a, b, key_a, key_b
