"""Fixtures of the ledger tests: the session's PostgreSQL server and a database per test.

The server is `tests/support/postgres.py`'s: one per session, started on first use only,
so runs that never touch PostgreSQL never start it. Without PostgreSQL installed, the
tests that need it fail with a message naming `scripts/bootstrap --test`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresNotInstalled, PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session, stopped (fast) at its end."""
    try:
        server = PostgresServer()
    except PostgresNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty schema of this test's own (in a shared database)."""
    return postgres.create_schema()


@pytest.fixture
def postgres_database_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database of this test's own."""
    return postgres.create_database()
